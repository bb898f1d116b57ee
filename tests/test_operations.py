"""The server as a long-lived service: reloads under load, refusals, shutdown, overload, metrics.

Every test drives the real `python -m server` process.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from indexer import version as iv
from indexer.build import build_index
from proto import movielinks_pb2 as pb
from proto import movielinks_pb2_grpc as pb_grpc
from tests.e2e_server import REPO, ServerProcess, running_server
from tests.fixtures import make_run

TITLES = ["Interstellar (film)", "Alien (film)", "The Martian (film)", "Heat (1995 film)"]


def build(tmp: Path, root: Path, seed: int, **sizes) -> str:
    run = make_run(tmp / f"run-{seed}", seed, titles=TITLES, **sizes)
    return build_index(run, root, progress=False)


def publish_corrupt(tmp: Path, root: Path, seed: int) -> str:
    """A version that fails its checksums, made current."""
    scratch = tmp / f"scratch-{seed}"
    name = build(tmp, scratch, seed)
    shutil.copytree(iv.version_dir(scratch, name), iv.version_dir(root, name))
    vectors = iv.version_dir(root, name) / iv.MOVIE_VECTORS
    data = bytearray(vectors.read_bytes())
    data[-100:] = bytes(100)
    vectors.write_bytes(bytes(data))
    iv.publish(root, name)
    return name


class Load:
    """8 client threads calling SimilarMovies, Recommend and BatchSimilarMovies until stopped."""

    def __init__(self, address: str, threads: int = 8):
        self.address = address
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with grpc.insecure_channel(self.address) as channel:
            stub = pb_grpc.MovielinksStub(channel)
            calls = [
                lambda: stub.SimilarMovies(pb.SimilarMoviesRequest(title=TITLES[rng.integers(4)], k=5), timeout=10),
                lambda: stub.Recommend(pb.RecommendRequest(liked=TITLES[:2], disliked=TITLES[2:3], k=5), timeout=10),
                lambda: stub.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=TITLES * 10, k=3), timeout=10),
            ]
            while not self.stop.is_set():
                try:
                    response = calls[rng.integers(3)]()
                    with self._lock:
                        self.ok += 1
                        self.versions.add(response.index_version)
                except grpc.RpcError as e:
                    with self._lock:
                        self.failures.append(f"{e.code().name}: {e.details()}")


def info(address: str) -> pb.InfoResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.MovielinksStub(channel).GetInfo(pb.GetInfoRequest(), timeout=10)


def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_versions_published_under_load_are_taken_and_a_corrupt_one_is_refused(tmp_path):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    with running_server(root, "--reload-interval", "0.2", "--metrics-port", "0") as server:
        with Load(server.address) as load:
            time.sleep(0.5)
            second = build(tmp_path, root, 1)
            wait_for(lambda: info(server.address).index_version == second)
            time.sleep(0.5)
            corrupt = publish_corrupt(tmp_path, root, 2)
            wait_for(lambda: any(r.startswith(corrupt) for r in info(server.address).refused_versions))
            assert info(server.address).index_version == second  # the old one keeps serving
            time.sleep(0.5)
            third = build(tmp_path, root, 3)
            wait_for(lambda: info(server.address).index_version == third)
            time.sleep(0.5)
        assert load.failures == [] and load.ok > 100
        assert {first, second, third} <= load.versions and corrupt not in load.versions
        refusal = next(r for r in info(server.address).refused_versions if r.startswith(corrupt))
        assert "checksum mismatch" in refusal and iv.MOVIE_VECTORS in refusal
        log = "".join(server.log_lines)
        assert f"reload refused: version={corrupt}" in log and f"reload taken: version={third}" in log
        metrics = scrape(server)
        assert 'movielinks_reloads_total{result="taken"} 2.0' in metrics
        assert 'movielinks_reloads_total{result="refused"} 1.0' in metrics
        assert f'movielinks_index_info{{version="{third}"}} 1.0' in metrics


def test_sighup_reloads_at_once(tmp_path):
    root = tmp_path / "index"
    build(tmp_path, root, 0)
    with running_server(root, "--reload-interval", "0") as server:
        second = build(tmp_path, root, 1)
        time.sleep(0.5)
        assert info(server.address).index_version != second  # no polling
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: info(server.address).index_version == second, 10)


def test_indexer_killed_during_publish_leaves_the_server_serving(tmp_path):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    big_run = make_run(tmp_path / "big", 5, titles=TITLES, n_movies=40_000, n_links=1_000, dim=64)
    command = [sys.executable, "-m", "indexer", "build", str(big_run), "--out", str(root), "--quiet"]
    with running_server(root, "--reload-interval", "0.2") as server:
        for delay_s in (0.8, 1.4, 2.0):
            indexer = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay_s)
            indexer.send_signal(signal.SIGKILL)
            indexer.wait()
            with grpc.insecure_channel(server.address) as channel:
                answer = pb_grpc.MovielinksStub(channel).SimilarMovies(
                    pb.SimilarMoviesRequest(title="Alien (film)", k=3), timeout=10)
            assert answer.index_version in iv.list_versions(root) and len(answer.neighbours) == 3
        assert info(server.address).refused_versions == []
        after = build(tmp_path, root, 6)
        wait_for(lambda: info(server.address).index_version == after)
    assert first in iv.list_versions(root)


def test_sigterm_under_load_completes_every_accepted_call(tmp_path):
    root = tmp_path / "index"
    build(tmp_path, root, 0, n_movies=3000)
    server = ServerProcess(root, "--grace", "20")
    outcomes: list[str] = []
    lock = threading.Lock()

    def call_until_refused(kind: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.MovielinksStub(channel)
            while True:
                try:
                    if kind == 0:  # a slow call: the whole export, in small chunks
                        rows = sum(len(c.results) for c in stub.ExportNeighbours(
                            pb.ExportNeighboursRequest(k=50, chunk_size=16), timeout=60))
                        assert rows == 3000
                    else:
                        stub.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=60)
                    outcome = "OK"
                except grpc.RpcError as e:
                    outcome = e.code().name
                with lock:
                    outcomes.append(outcome)
                if outcome != "OK":
                    return

    threads = [threading.Thread(target=call_until_refused, args=(i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
    assert server.process.wait(30) == 0
    log = "".join(server.log_lines)
    assert "shutting down" in log
    # Every call the server accepted was answered OK: its own count shows no other status
    # (a call cut off by the shutdown would count as CANCELLED there).
    answered = re.search(r"calls answered by status since start: (.*)", log).group(1).split()
    assert len(answered) == 1 and answered[0].startswith("OK="), answered
    assert int(answered[0][3:]) == outcomes.count("OK") > 8
    # The client saw OK for those; calls that arrived as the port closed were refused
    # (UNAVAILABLE), or, arriving in the same instant, cancelled before any handler took them.
    assert set(outcomes) <= {"OK", "UNAVAILABLE", "CANCELLED"}, outcomes


def test_overload_gets_resource_exhausted_and_deadlines_are_honoured(tmp_path):
    root = tmp_path / "index"
    build(tmp_path, root, 0, n_movies=3000)
    with running_server(root, "--max-concurrent", "2") as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.MovielinksStub(channel)
        # Two exports nobody reads: flow control holds them open, in progress on the server.
        held = [stub.ExportNeighbours(pb.ExportNeighboursRequest(k=100, chunk_size=1), timeout=2) for _ in range(2)]
        for stream in held:
            next(stream)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as overloaded:
            stub.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=5)
        assert overloaded.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - started < 1  # answered at once, not queued
        time.sleep(2.5)
        for stream in held:  # their 2 s deadline passed: the server dropped them
            with pytest.raises(grpc.RpcError) as expired:
                list(stream)
            assert expired.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        answer = stub.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=5)
        assert len(answer.neighbours) == 5


def scrape(server: ServerProcess) -> str:
    port = next(line for line in server.log_lines if "listening on" in line).split("metrics=")[1].split()[0]
    with urllib.request.urlopen(f"http://{port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_metrics_count_requests_by_rpc_and_code(tmp_path):
    root = tmp_path / "index"
    name = build(tmp_path, root, 0)
    with running_server(root, "--metrics-port", "0", "--log-format", "json") as server:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.MovielinksStub(channel)
            for _ in range(3):
                stub.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=10)
            with pytest.raises(grpc.RpcError):
                stub.SimilarMovies(pb.SimilarMoviesRequest(title="No Such Film Anywhere", k=5), timeout=10)
        metrics = scrape(server)
        assert 'movielinks_requests_total{code="OK",rpc="SimilarMovies"} 3.0' in metrics
        assert 'movielinks_requests_total{code="NOT_FOUND",rpc="SimilarMovies"} 1.0' in metrics
        assert 'movielinks_request_seconds_count{rpc="SimilarMovies"} 4.0' in metrics
        assert f'movielinks_index_info{{version="{name}"}} 1.0' in metrics
        assert "movielinks_index_movies 300.0" in metrics and "movielinks_index_dim 16.0" in metrics
        assert server.log_lines[0].startswith('{"ts": ')  # one JSON object a line


@pytest.mark.parametrize("problem", ["missing root", "no CURRENT", "corrupt version", "bad TLS file"])
def test_a_bad_start_exits_2_with_one_line_naming_the_file(tmp_path, problem):
    root = tmp_path / "index"
    extra: list[str] = []
    if problem == "no CURRENT":
        build(tmp_path, root, 0)
        (root / iv.CURRENT).unlink()
        named = "CURRENT"
    elif problem == "corrupt version":
        name = build(tmp_path, root, 0)
        (iv.version_dir(root, name) / iv.LINKS).write_text("[]")
        named = iv.LINKS
    elif problem == "bad TLS file":
        build(tmp_path, root, 0)
        extra = ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "missing.key")]
        named = "missing.pem"
    else:
        named = "CURRENT"
    started = subprocess.run([sys.executable, "-m", "server", "--index", str(root), "--port", "0", *extra],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.count("\n") == 1 and started.stderr.startswith("server: error: ") and named in started.stderr
    assert "Traceback" not in started.stderr
