"""Replicated serving: one client over several server replicas (round robin, health checks, retries)."""
from __future__ import annotations

import collections
import concurrent.futures
import json
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from movielinks.client import ClientError, MovielinksClient
from movielinks.client.cli import main
from movielinks.client.client import server_target
from movielinks.indexer.build import build_index
from movielinks.proto import SERVICE_NAME
from movielinks.server.app import load_service, start
from movielinks.server.security import server_credentials
from movielinks.server.versions import ServiceHolder
from tests.e2e_server import ServerProcess, client_cli
from tests.ops_support import TITLES, sample, scrape, wait_for
from tests.server.test_security import make_ca, make_leaf
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

LOAD_S = 5.0  # how long the failover load runs; the replica dies at KILL_AT_S into it
KILL_AT_S = 2.0
LOAD_THREADS = 4


@pytest.mark.parametrize("typed, target", [
    ("127.0.0.1:50051,127.0.0.1:50052", "ipv4:127.0.0.1:50051,127.0.0.1:50052"),
    (" 10.0.0.1 , 10.0.0.2:7000 ", "ipv4:10.0.0.1:50051,10.0.0.2:7000"),
    ("[::1]:50051,::2", "ipv6:[::1]:50051,[::2]:50051"),
    ("dns:///movielinks.internal:50051", "dns:///movielinks.internal:50051"),
    ("ipv4:127.0.0.1:1,127.0.0.1:2", "ipv4:127.0.0.1:1,127.0.0.1:2"),
    ("movielinks.internal", "movielinks.internal:50051"),  # one name: every record it resolves to
])
def test_several_addresses_become_one_grpc_target(typed, target):
    assert server_target(typed) == target


@pytest.mark.parametrize("typed, says", [
    ("127.0.0.1:1,", "empty address"), ("127.0.0.1:1,,127.0.0.1:2", "empty address"),
    ("127.0.0.1:1,127.0.0.1:0", "port"), ("host-a:1,host-b:2", "one DNS name"),
    ("127.0.0.1:1,[::1]:2", "all IPv4 or all IPv6"), ("127.0.0.1:1,unix:/run/x.sock", "gRPC target"),
])
def test_a_malformed_list_of_addresses_is_a_usage_error(typed, says, capsys, monkeypatch):
    with pytest.raises(ClientError) as caught:
        server_target(typed)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert "malformed" in caught.value.message and says in caught.value.message
    assert main(["--server", typed, "info"]) == 2
    monkeypatch.setenv("MOVIELINKS_SERVER", typed)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.count("client: error: ") == 2 and says in err


class CountingInterceptor(grpc.ServerInterceptor):
    """Counts the movielinks calls a replica receives, by method."""

    def __init__(self):
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(f"/{SERVICE_NAME}/"):
            with self._lock:
                self.calls[handler_call_details.method.rpartition("/")[2]] += 1
        return continuation(handler_call_details)


@pytest.fixture(scope="module")
def index_root(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("replicas")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=200, n_links=60, dim=8), tmp / "index", progress=False)
    return tmp / "index"


@pytest.fixture
def replicas(index_root):
    """replicas(n, credentials=None) -> [(running server, its call counter)], in this process, stopped afterwards."""
    running = []

    def _start(n: int, credentials=None):
        started = []
        for _ in range(n):
            counter = CountingInterceptor()
            server = start(ServiceHolder(load_service(str(index_root))), "127.0.0.1", 0, max_workers=4,
                           credentials=credentials, interceptors=[counter])
            running.append(server)
            started.append((server, counter))
        return started

    yield _start
    for server in running:
        server.stop(0)


def addresses(servers) -> str:
    return ",".join(f"127.0.0.1:{server.port}" for server, _ in servers)


def test_calls_are_spread_round_robin_over_every_replica(replicas):
    servers = replicas(3)
    with MovielinksClient(addresses(servers), timeout_s=10, wait_for_ready=True) as movielinks:
        # round_robin connects to every replica; the first calls may find some not connected yet.
        wait_for(lambda: movielinks.info() and all(counter.calls["GetInfo"] for _, counter in servers))
        for counter in (c for _, c in servers):
            counter.calls.clear()
        for i in range(300):
            movielinks.similar_movies(TITLES[i % len(TITLES)], k=3)
    calls = [counter.calls["SimilarMovies"] for _, counter in servers]
    # round_robin takes the connected replicas in turn: 100 each, give or take a turn.
    assert sum(calls) == 300 and all(95 <= c <= 105 for c in calls), calls


def test_a_replica_whose_health_is_not_serving_gets_no_calls(replicas):
    (a, a_calls), (b, b_calls) = replicas(2)
    with MovielinksClient(addresses([(a, a_calls), (b, b_calls)]), timeout_s=10) as movielinks:
        wait_for(lambda: movielinks.info() and b_calls.calls["GetInfo"] > 0)
        b.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        # The client's health check (a Watch stream per replica) hears of it and takes b out.
        wait_for(lambda: not calls_reaching(b_calls, movielinks, 10), timeout_s=10)
        for _ in range(100):
            movielinks.similar_movies(TITLES[0], k=3)
        assert b_calls.calls["SimilarMovies"] == 0 and a_calls.calls["SimilarMovies"] >= 100
        b.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        wait_for(lambda: calls_reaching(b_calls, movielinks, 10) > 0, timeout_s=10)


def calls_reaching(counter: CountingInterceptor, movielinks: MovielinksClient, n: int) -> int:
    """How many of `n` SimilarMovies calls through `movielinks` reached the replica counted by `counter`."""
    counter.calls.clear()
    for _ in range(n):
        movielinks.similar_movies(TITLES[0], k=3)
    return counter.calls["SimilarMovies"]


def test_tls_to_several_addresses_checks_the_one_name_their_certificates_carry(replicas, tmp_path):
    ca, ca_key, ca_cert = make_ca("replicas test CA")
    leaf = make_leaf(ca_key, ca_cert, "localhost", server=True)  # names localhost and 127.0.0.1
    files = {name: tmp_path / name for name in ("ca.pem", "server.pem", "server.key")}
    for name, data in zip(files, (ca.cert, leaf.cert, leaf.key)):
        files[name].write_bytes(data)
    servers = replicas(2, server_credentials(str(files["server.pem"]), str(files["server.key"]), None))
    target = addresses(servers)
    with MovielinksClient(target, tls_ca=files["ca.pem"], tls_server_name="localhost", timeout_s=10) as movielinks:
        for _ in range(20):
            assert movielinks.similar_movies(TITLES[0], k=3).query == TITLES[0]
    assert all(counter.calls["SimilarMovies"] >= 5 for _, counter in servers)
    with MovielinksClient(target, tls_ca=files["ca.pem"], tls_server_name="elsewhere.example", timeout_s=5) as wrong:
        with pytest.raises(ClientError) as caught:
            wrong.info()
        assert caught.value.code == "UNAVAILABLE"
    with pytest.raises(ClientError, match="--tls-server-name") as caught:
        MovielinksClient(target, tls_ca=files["ca.pem"])
    assert caught.value.code == "INVALID_ARGUMENT"
    assert main(["--server", target, "--tls-ca", str(files["ca.pem"]), "info"]) == 2
    assert main(["--server", target, "--tls-server-name", "localhost", "info"]) == 2  # no TLS to name


def test_the_client_command_takes_several_addresses(replicas):
    servers = replicas(2)
    by_option = client_cli("--server", addresses(servers), "--json", "query", "--movie", TITLES[1], "-k", "3")
    assert by_option.returncode == 0, by_option.stderr
    assert json.loads(by_option.stdout)["query"] == TITLES[1]
    by_environment = client_cli("info", server=addresses(servers))
    assert by_environment.returncode == 0 and "index_version: " in by_environment.stdout, by_environment.stderr
    assert sum(counter.calls["SimilarMovies"] + counter.calls["GetInfo"] for _, counter in servers) == 2
    gone = client_cli("--timeout", "3", "info", server="127.0.0.1:1,127.0.0.1:2")
    assert gone.returncode == 1 and gone.stderr.startswith("client: error: cannot reach any movielinks replica at "
                                                           "ipv4:127.0.0.1:1,127.0.0.1:2"), gone.stderr


def test_a_dns_name_is_a_target(replicas):
    (server, counter), = replicas(1)
    with MovielinksClient(f"dns:///localhost:{server.port}", timeout_s=10) as movielinks:
        assert movielinks.similar_movies(TITLES[2], k=3).query == TITLES[2]
    assert counter.calls["SimilarMovies"] == 1


class Load:
    """LOAD_THREADS threads calling SimilarMovies through one client for `duration_s` seconds (at
    `calls_per_s` in all, or as fast as they can); every failure is kept, with when it happened."""

    def __init__(self, movielinks: MovielinksClient, duration_s: float = LOAD_S, calls_per_s: float | None = None):
        self.movielinks = movielinks
        self.duration_s = duration_s
        self.interval_s = 0.0 if calls_per_s is None else LOAD_THREADS / calls_per_s  # each thread's
        self.started = time.monotonic()
        self.ok_at: list[float] = []
        self.failures: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(LOAD_THREADS)]
        for thread in self.threads:
            thread.start()

    def _run(self, seed: int) -> None:
        i = seed
        next_call = 0.0
        while (now := time.monotonic() - self.started) < self.duration_s:
            if now < next_call:
                time.sleep(next_call - now)
                continue
            next_call = max(next_call + self.interval_s, now)  # a late call is not made up for
            try:
                self.movielinks.similar_movies(TITLES[i % len(TITLES)], k=5)
                outcome = None
            except ClientError as e:
                outcome = f"{e.code}: {e.message}"
            with self._lock:
                if outcome is None:
                    self.ok_at.append(now)
                else:
                    self.failures.append((now, outcome))
            i += LOAD_THREADS

    def join(self) -> None:
        for thread in self.threads:
            thread.join(self.duration_s + 30)
        assert not any(thread.is_alive() for thread in self.threads), "a load thread hangs"


def server_processes(n: int, index_root: Path, *args: str) -> list[ServerProcess]:
    """`n` server processes started at once; if one cannot start, the others are stopped."""
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        starting = [pool.submit(ServerProcess, index_root, *args) for _ in range(n)]
    started = [future.result() for future in starting if future.exception() is None]
    if len(started) < n:
        for server in started:
            server.stop()
        raise next(future.exception() for future in starting if future.exception() is not None)
    return started


def served(server: ServerProcess) -> float:
    return sample(scrape(server), "movielinks_requests_total", rpc="SimilarMovies", code="OK")


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
def test_a_replica_stopped_in_the_middle_of_a_load_fails_no_call(index_root, stop):
    # SIGKILL: a replica that dies (connections reset, calls in flight lost); SIGTERM: one
    # restarted on purpose (health NOT_SERVING, then new calls refused while it drains).
    survivor, victim = server_processes(2, index_root, "--metrics-port", "0", "--grace", "1")
    try:
        with MovielinksClient(f"{survivor.address},{victim.address}", timeout_s=10) as movielinks:
            movielinks.info()
            load = Load(movielinks)
            time.sleep(max(0.0, KILL_AT_S - (time.monotonic() - load.started)))
            before = {"survivor": served(survivor), "victim": served(victim)}
            victim.process.send_signal(getattr(signal, stop))
            stopped_at = time.monotonic() - load.started
            victim.process.wait(15)
            load.join()
        after_stop = [t for t in load.ok_at if t > stopped_at + 0.5]
        assert load.failures == [], (len(load.failures), len(load.ok_at), load.failures[:3])
        assert before["survivor"] > 0 and before["victim"] > 0, before  # both served before the stop
        # The load went on after the stop, on the survivor alone.
        assert len(after_stop) >= 50, (len(after_stop), len(load.ok_at))
        assert served(survivor) - before["survivor"] >= len(after_stop)
        assert victim.process.returncode == (-signal.SIGKILL if stop == "SIGKILL" else 0), "".join(victim.log_lines)
    finally:
        victim.stop()
        assert survivor.stop() == 0, "".join(survivor.log_lines)


def test_a_hung_replica_is_left_out_within_2_s_and_fails_no_call(index_root):
    # SIGSTOP: the replica's connections stay up and its kernel still acknowledges, but it answers
    # nothing; calls sent to it used to wait their whole deadline, and it stayed in the rotation.
    # A load one replica can carry alone: the survivor must then answer it all, 2 s after the stop.
    load_s, stop_at_s, settle_s, calls_per_s = 9.0, 3.0, 2.0, 200.0
    survivor, hung = server_processes(2, index_root, "--grace", "1")
    try:
        with MovielinksClient(f"{survivor.address},{hung.address}", timeout_s=10) as movielinks:
            movielinks.info()
            load = Load(movielinks, duration_s=load_s, calls_per_s=calls_per_s)
            time.sleep(max(0.0, stop_at_s - (time.monotonic() - load.started)))
            hung.process.send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic() - load.started
            load.join()
        assert load.failures == [], (len(load.failures), load.failures[:3])
        before = sum(1.0 <= t < stopped_at for t in load.ok_at) / (stopped_at - 1.0)
        after = sum(t >= stopped_at + settle_s for t in load.ok_at) / (load_s - stopped_at - settle_s)
        assert before >= 0.9 * calls_per_s, f"{before:.0f} calls/s before the stop: the machine is too busy to tell"
        assert after >= 0.9 * before, f"{after:.0f} calls/s from {settle_s:g} s after the stop, {before:.0f} before"
    finally:
        hung.process.send_signal(signal.SIGCONT)
        hung.stop()
        assert survivor.stop() == 0, "".join(survivor.log_lines)
