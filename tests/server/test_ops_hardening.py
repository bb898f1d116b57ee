"""Issue 13: no single client, publisher or signal takes the service down. Each test
attacks the real server process (loopback only) the way the issue reproduced it."""
from __future__ import annotations

import concurrent.futures
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import movielinks.indexer.root

from movielinks import indexer
import movielinks.indexer.version
from movielinks.proto import movielinks_pb2 as pb
from movielinks.server import versions
from movielinks.server.admission import DEFAULT_SLOTS
from movielinks.server.limits import MAX_BATCH, MAX_BATCH_NEIGHBOURS, MAX_K, MAX_RECOMMEND_TITLES
from movielinks.server.serve import ServeConfig
from movielinks.server.service import MovieService
from movielinks.server.versions import ServiceHolder, VersionWatcher
from tests import load_client
from tests.e2e_server import REPO, ServerProcess, running_server
from tests.ops_support import (Load, build, info, metrics_address, replace_with_checksum, sample, scrape,
                               stage_version, stub, wait_for)

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

N_MOVIES = 3000
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture(scope="module")
def index_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening")
    build(tmp, tmp / "index", 0, n_movies=N_MOVIES)
    return tmp / "index"


def health_check(channel: grpc.Channel, timeout_s: float) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s).status


def test_stalled_export_streams_leave_health_and_queries_answering(index_root):
    # Issue 13.1: streams opened and never read, 4 x the default --workers (2).
    workers = ServeConfig.workers
    with running_server(index_root) as server, \
            grpc.insecure_channel(server.address) as attacker, grpc.insecure_channel(server.address) as probe:
        streams = [stub(attacker).ExportNeighbours(pb.ExportNeighboursRequest(k=1000, chunk_size=1), timeout=60)
                   for _ in range(4 * workers)]
        # Health watchers hold no worker either (gRPC sends their updates through a callback).
        watches = [health_pb2_grpc.HealthStub(attacker).Watch(health_pb2.HealthCheckRequest(), timeout=60)
                   for _ in range(4 * workers)]
        outcomes = []
        for stream in streams:
            try:
                next(stream)  # the first chunk; then nobody reads, and flow control stalls the stream
                outcomes.append("OK")
            except grpc.RpcError as e:
                outcomes.append(e.code().name)
                assert "export stream slots" in e.details()
        # The streams past the budget are refused; the ones admitted wait aside, each replaced
        # by another worker thread (server.workers).
        assert outcomes.count("OK") == DEFAULT_SLOTS, outcomes
        assert outcomes.count("RESOURCE_EXHAUSTED") == 4 * workers - DEFAULT_SLOTS, outcomes
        for watch in watches:
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        for _ in range(20):
            started = time.monotonic()
            assert health_check(probe, 1.0) == health_pb2.HealthCheckResponse.SERVING
            answer = stub(probe).SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=1.0)
            assert len(answer.neighbours) == 5 and time.monotonic() - started < 1.0
        for call in [*streams, *watches]:
            call.cancel()
        # The cancelled stream's slot comes back.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert len(next(stub(probe).ExportNeighbours(pb.ExportNeighboursRequest(k=5), timeout=10)).results)
                break
            except grpc.RpcError as e:
                assert e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                time.sleep(0.05)


def test_invented_method_names_do_not_grow_the_metrics(index_root, tmp_path):
    # Issue 13.5: refused calls to invented methods, without the token, 20,000 of them.
    token = tmp_path / "token"
    token.write_text("s3cret-token")
    calls = 20_000
    with running_server(index_root, "--token-file", str(token), "--metrics-port", "0") as server, \
            grpc.insecure_channel(server.address) as channel:
        def metrics_bytes() -> int:
            with urllib.request.urlopen(f"http://{metrics_address(server)}/metrics", timeout=10) as response:
                return len(response.read())

        before = metrics_bytes()
        codes: dict[str, int] = {}
        for start in range(0, calls, 50):  # 50 in flight: under --max-concurrent (64)
            futures = [channel.unary_unary(f"/invented.Service{i % 97}/Method{i}").future(b"", timeout=30)
                       for i in range(start, start + 50)]
            for future in futures:
                code = future.code().name
                codes[code] = codes.get(code, 0) + 1
        assert codes == {"UNAUTHENTICATED": calls}
        after = metrics_bytes()
        metrics = scrape(server)
        refusals = [line for line in server.log_lines if "bearer token" in line]
    # 20,000 refusals in well under a minute: the first is logged, the rest counted (the metrics hold each).
    assert len(refusals) == 1 and "refused a call to '/invented.Service" in refusals[0], refusals[:3]
    assert sample(metrics, "movielinks_requests_total", rpc="unknown", code="UNAUTHENTICATED") == calls
    assert not any("Method" in dict(labels).get("rpc", "") for _, labels in metrics)
    assert after < before + 2048 < 64 * 1024, (before, after)


def _shutdown_after_malformed_reflection(index_root, grace_s: float) -> tuple[list[str], float, int]:
    server = ServerProcess(index_root, "--grace", str(grace_s))
    try:
        codes = []
        with grpc.insecure_channel(server.address) as channel:
            reflection = channel.stream_stream(REFLECTION)
            for i in range(20):
                try:
                    list(reflection(iter([b"\xff\xfe\x00" + bytes([i]) * i]), timeout=10))
                    codes.append("OK")
                except grpc.RpcError as e:
                    codes.append(e.code().name)
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        returncode = server.process.wait(grace_s + 30)
        return codes, time.monotonic() - signalled, returncode
    finally:
        server.stop()


def test_shutdowns_after_malformed_reflection_calls_end_within_grace(index_root):
    # Issue 13.6: 20 shutdowns, each after 20 malformed reflection calls (2 servers at a time: with 4
    # on 2 cores, a process's own teardown after its forced exit took up to a second more).
    grace_s = 1.0
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: _shutdown_after_malformed_reflection(index_root, grace_s), range(20)))
    for codes, exit_s, returncode in runs:
        assert codes == ["INVALID_ARGUMENT"] * 20
        assert returncode == 0
        assert exit_s < grace_s + 2, [round(s, 2) for _, s, _ in runs]


def test_exit_is_bounded_by_grace_with_a_stalled_stream(index_root):
    # Issue 13.8: a call still held at the end of the grace period does not hold the exit.
    grace_s = 2.0
    server = ServerProcess(index_root, "--grace", str(grace_s))
    try:
        with grpc.insecure_channel(server.address) as channel:
            stream = stub(channel).ExportNeighbours(pb.ExportNeighboursRequest(k=1000, chunk_size=1), timeout=120)
            next(stream)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert server.process.wait(grace_s + 10) == 0
            exit_s = time.monotonic() - signalled
            with pytest.raises(grpc.RpcError):
                for _ in stream:
                    pass
    finally:
        server.stop()
    assert grace_s <= exit_s < grace_s + 2


def _load(address: str, kind: str, threads: int, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.load_client", address, kind, str(threads), str(seconds)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate(timeout=90)
    assert process.returncode == 0
    return json.loads(out)


def test_cheap_calls_keep_flowing_under_expensive_overload(index_root):
    # Issue 13.7: clients sending Recommend with 500 liked titles next to clients sending SimilarMovies.
    seconds = 4.0
    with running_server(index_root, "--metrics-port", "0") as server:
        alone = _result(_load(server.address, "similar", 4, seconds))
        heavy = _load(server.address, "recommend", 8, seconds + 2)
        time.sleep(1.0)  # the heavy clients are calling by now
        mixed = _result(_load(server.address, "similar", 4, seconds))
        overload = _result(heavy)
        metrics = scrape(server)
    alone_rate, mixed_rate = alone["ok"] / alone["seconds"], mixed["ok"] / mixed["seconds"]
    assert set(alone["codes"]) == set(mixed["codes"]) == {"OK"}, (alone, mixed)
    print(f"SimilarMovies alone {alone_rate:.0f}/s, under overload {mixed_rate:.0f}/s; Recommend {overload}")
    assert mixed_rate >= 0.5 * alone_rate, (alone_rate, mixed_rate, overload)
    # The expensive calls were really there: some answered, the rest refused at once.
    assert overload["ok"] >= 1 and set(overload["codes"]) <= {"OK", "RESOURCE_EXHAUSTED"}, overload
    assert sample(metrics, "movielinks_requests_total", rpc="Recommend", code="OK") == overload["ok"]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_host_localhost_serves_both_loopbacks_or_refuses_to_start(index_root):
    # Issue 13 (smaller): with 127.0.0.1:PORT taken, --host localhost bound [::1] alone and said nothing.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        taken = subprocess.run([sys.executable, "-m", "movielinks.server", "--index", str(index_root), "--host", "localhost",
                                "--port", str(port)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert taken.returncode == 2
    # (gRPC's own log line about the failed bind may come first.)
    assert taken.stderr.strip().splitlines()[-1].startswith(f"server: error: cannot listen on 127.0.0.1:{port}: ")
    with running_server(index_root, "--host", "localhost") as server:
        port = int(server.address.rsplit(":", 1)[1])
        for address in ["127.0.0.1", *(["[::1]"] if _ipv6_loopback() else [])]:
            with grpc.insecure_channel(f"{address}:{port}") as channel:
                assert health_check(channel, 10) == health_pb2.HealthCheckResponse.SERVING


def test_info_names_the_version_by_its_directory(tmp_path):
    # Issue 13 (smaller): a version copied under a new name reported the manifest's name.
    root = tmp_path / "index"
    original = build(tmp_path, root, 0)
    copy = "20990101T000000000000Z-copy"
    shutil.copytree(indexer.root.version_dir(root, original), indexer.root.version_dir(root, copy))
    indexer.root.publish(root, copy)
    with running_server(root) as server, grpc.insecure_channel(server.address) as channel:
        assert stub(channel).GetInfo(pb.GetInfoRequest(), timeout=10).index_version == copy
        assert stub(channel).SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=2),
                                           timeout=10).index_version == copy
    assert f"version={copy}" in "".join(server.log_lines)


REASONS = {"manifest without version": "no 'version' field", "corrupt npz": "BadZipFile"}


def _publish_bad(tmp_path, root, seed: int, problem: str) -> str:
    name = stage_version(tmp_path, root, seed)
    version = indexer.root.version_dir(root, name)
    if problem == "manifest without version":
        manifest = json.loads((version / indexer.version.MANIFEST).read_text())
        del manifest["version"]
        (version / indexer.version.MANIFEST).write_text(json.dumps(manifest))
    else:  # "corrupt npz": garbage whose checksum the manifest carries
        replace_with_checksum(version, indexer.version.MOVIE_NEIGHBOURS, b"PK\x03\x04 not a zip file at all" * 100)
    indexer.root.publish(root, name)
    return name


@pytest.mark.parametrize("problem", ["manifest without version", "corrupt npz"])
def test_a_bad_version_is_refused_under_load_and_the_next_good_one_taken(tmp_path, problem):
    # Issue 13.3 and 13.4: such a version was swapped in (3 of 4 calls INTERNAL) or killed the reload thread.
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    with running_server(root, "--reload-interval", "0.2", "--metrics-port", "0") as server, Load(server.address) as load:
        time.sleep(0.5)
        bad = _publish_bad(tmp_path, root, 1, problem)
        wait_for(lambda: info(server.address).refused_versions)
        time.sleep(0.5)  # more calls on the old version, after the refusal
        good = stage_version(tmp_path, root, 2)
        indexer.root.publish(root, good)
        wait_for(lambda: info(server.address).index_version == good)
        server.process.send_signal(signal.SIGHUP)  # the reload thread still answers signals too
        time.sleep(0.3)
        metrics = scrape(server)
        [refused] = info(server.address).refused_versions
    assert refused.startswith(f"{bad}: ") and REASONS[problem] in refused, refused
    assert load.failures == [] and load.ok > 20 and load.versions <= {first, good}
    assert sample(metrics, "movielinks_reloads_total", result="refused") == 1
    assert sample(metrics, "movielinks_reloads_total", result="taken") == 1
    assert server.process.returncode == 0
    log = "".join(server.log_lines)
    assert "Traceback" not in log and "unexpected error" not in log  # refused as a bad version, not as a crash


@pytest.mark.parametrize("problem", ["manifest without version", "corrupt npz"])
def test_a_bad_version_at_start_is_one_line_and_exit_2(tmp_path, problem):
    root = tmp_path / "index"
    _publish_bad(tmp_path, root, 1, problem)
    started = subprocess.run([sys.executable, "-m", "movielinks.server", "--index", str(root), "--port", "0"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.count("\n") == 1 and started.stderr.startswith("server: error: "), started.stderr
    assert REASONS[problem] in started.stderr


def test_the_watcher_survives_any_exception_a_loader_raises(tmp_path, monkeypatch):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    holder = ServiceHolder(MovieService(indexer.root.load_current(root)))
    refusals: list[str] = []
    watcher = VersionWatcher(root, holder, on_refused=lambda name, reason: refusals.append(reason))
    real_load = versions.load_named

    def throwing_load(root, name):
        raise ZeroDivisionError("a bug in some loader")

    monkeypatch.setattr(versions, "load_named", throwing_load)
    indexer.root.publish(root, stage_version(tmp_path, root, 1))
    stop = threading.Event()
    watching = threading.Thread(target=watcher.run, args=(stop, 0.05))
    watching.start()
    try:
        wait_for(lambda: refusals)
        assert refusals == ["cannot load: ZeroDivisionError: a bug in some loader"] and holder.current().name == first
        monkeypatch.setattr(versions, "load_named", real_load)
        good = stage_version(tmp_path, root, 2)
        indexer.root.publish(root, good)
        wait_for(lambda: holder.current().name == good)
        assert watching.is_alive()
    finally:
        stop.set()
        watcher.wake()
        watching.join(10)


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


HEAVY_SLOTS = DEFAULT_SLOTS  # the server's default budget for expensive calls


def _at_once(service, requests, copies: int) -> None:
    """Each request sent `copies` times at once (all of them answered), one request after another."""
    for method, request in requests:
        for call in [getattr(service, method).future(request, timeout=60) for _ in range(copies)]:
            call.result()


def test_amplifying_requests_are_refused_at_once_and_memory_stays_flat(index_root):
    # Issue 13.2 (its figures): 10,000 copies of one title with k=1000, or Recommend with 10,000 liked,
    # cost many seconds and gigabytes.
    title = "Alien (film)"
    amplifying = [
        ("BatchSimilarMovies", pb.BatchSimilarMoviesRequest(titles=[title] * MAX_BATCH, k=MAX_K),
         f"the limit is {MAX_BATCH_NEIGHBOURS:,}"),
        ("Recommend", pb.RecommendRequest(liked=[title] * MAX_BATCH, k=MAX_K), f"the limit is {MAX_RECOMMEND_TITLES:,}"),
        ("Recommend", pb.RecommendRequest(liked=[title] * 600, disliked=["Heat (1995 film)"] * 600, k=10),
         f"the limit is {MAX_RECOMMEND_TITLES:,}"),
    ]
    names = load_client.titles(N_MOVIES)
    at_the_limit = [  # the largest requests allowed: answered, at a bounded cost
        ("BatchSimilarMovies", pb.BatchSimilarMoviesRequest(titles=names[:MAX_BATCH_NEIGHBOURS // MAX_K], k=MAX_K)),
        ("Recommend", pb.RecommendRequest(liked=names[:MAX_RECOMMEND_TITLES], k=MAX_K, worst_k=MAX_K)),
        # A diverse list of the largest k, picked once by the strategy's MMR and once for the filter.
        ("Recommend", pb.RecommendRequest(liked=names[:2], k=MAX_K, filter=pb.MovieFilter(diversity=0.5))),
    ]
    with running_server(index_root) as server, grpc.insecure_channel(
            server.address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]) as channel:
        service = stub(channel)
        # Warm to the steady state: scikit-learn imported, and the heap grown for as many of the largest
        # calls at once as there are slots for expensive calls (one at a time is not enough: two at once
        # need twice the working memory, which the allocator then keeps for reuse).
        for _ in range(3):
            _at_once(service, at_the_limit, HEAVY_SLOTS)
        idle_kb = _rss_kb(server.process.pid)
        for _ in range(3):
            for method, request, limit in amplifying:
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as refused:
                    getattr(service, method)(request, timeout=10)
                assert time.monotonic() - started < 0.1
                assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and limit in refused.value.details()
        # Three of each at once: refused for their size, or for want of a slot for expensive calls.
        started = time.monotonic()
        calls = [getattr(service, method).future(request, timeout=10) for _ in range(3) for method, request, _ in amplifying]
        codes = {call.exception().code() for call in calls}
        assert codes <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED} and time.monotonic() - started < 1
        _at_once(service, at_the_limit, HEAVY_SLOTS)
        assert _rss_kb(server.process.pid) <= 1.5 * idle_kb
        assert _rss_kb(server.process.pid, "VmHWM") <= 1.5 * idle_kb, (idle_kb, _rss_kb(server.process.pid, "VmHWM"))


def test_a_version_whose_records_have_a_non_string_title_is_refused(tmp_path):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    holder = ServiceHolder(MovieService(indexer.root.load_current(root)))
    refusals: list[str] = []
    watcher = VersionWatcher(root, holder, on_refused=lambda name, reason: refusals.append(reason))
    bad = stage_version(tmp_path, root, 1)
    version = indexer.root.version_dir(root, bad)
    movies = (version / indexer.version.MOVIES).read_text().splitlines(keepends=True)
    record = json.loads(movies[0])
    record["title"] = 123
    replace_with_checksum(version, indexer.version.MOVIES, "".join([json.dumps(record) + "\n", *movies[1:]]).encode())
    indexer.root.publish(root, bad)
    watcher.check()
    assert holder.current().name == first and len(refusals) == 1 and "title is not a string" in refusals[0]
