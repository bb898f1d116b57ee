"""Shutdown, overload and deadlines, against the real server process."""
from __future__ import annotations

import re
import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from movielinks.proto import movielinks_pb2 as pb
from tests.e2e_server import ServerProcess, running_server
from tests.ops_support import build, sample, scrape, stub

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

N_MOVIES = 3000


def test_sigterm_under_load_completes_every_accepted_call_then_exits_0(tmp_path):
    """Long because it is one shutdown, in order: load, SIGTERM, the calls drained, the exit, then the
    server's own count of what it answered against the clients'."""
    root = tmp_path / "index"
    build(tmp_path, root, 0, n_movies=N_MOVIES)
    # Three exports and three large batches at once: each budget holds them all.
    server = ServerProcess(root, "--grace", "20", "--workers", "10", "--stream-slots", "3", "--heavy-slots", "3")
    outcomes: list[str] = []
    lock = threading.Lock()

    def call_until_refused(kind: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            service = stub(channel)
            while True:
                try:
                    if kind == 0:  # a slow call: the whole export, in small chunks
                        rows = sum(len(chunk.results) for chunk in service.ExportNeighbours(
                            pb.ExportNeighboursRequest(k=50, chunk_size=16), timeout=60))
                        assert rows == N_MOVIES
                    elif kind == 1:
                        service.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(
                            titles=[f'Movie {i:03d}, part "{i % 7}"' for i in range(100, N_MOVIES)], k=20), timeout=60)
                    else:
                        service.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=60)
                    outcome = "OK"
                except grpc.RpcError as e:
                    outcome = e.code().name
                with lock:
                    outcomes.append(outcome)
                if outcome != "OK":
                    return

    try:
        with grpc.insecure_channel(server.address) as channel:
            # A health watch opened before the signal sees the status change during the grace period.
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            threads = [threading.Thread(target=call_until_refused, args=(i % 3,)) for i in range(8)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()  # or the watch itself would hold the server for the whole grace period
        for t in threads:
            t.join(60)
        assert server.process.wait(30) == 0
        assert time.monotonic() - signalled < 15  # exits once the calls in flight are done, not at --grace
    finally:
        server.stop()
    log = "".join(server.log_lines)
    assert "shutting down" in log
    # Every call the server accepted was answered OK: its own count, logged at exit, shows
    # no other status (a call cut off by the shutdown would count as CANCELLED there). The
    # health watches (the test's, cancelled by it, and each client channel's) are counted
    # apart: a client closing its channel ends one, which is no error.
    counts, watches = re.search(r"calls answered by status since start: ([^;]*); health watches closed by their "
                                r"clients: (\d+)", log).groups()
    answered = dict(pair.split("=") for pair in counts.split())
    assert set(answered) == {"OK"} and int(watches) >= 1, (answered, watches)
    assert int(answered["OK"]) == outcomes.count("OK") > 8
    # Calls made after the shutdown began were turned away before any handler (the server's
    # count above has none of them): UNAVAILABLE, or CANCELLED for one that reached the
    # server in the instant it shut down, before gRPC matched it to a handler
    # (grpc/grpc#41785, still so in grpcio 1.85).
    refused = [o for o in outcomes if o != "OK"]
    assert set(refused) <= {"UNAVAILABLE", "CANCELLED"}, refused
    assert {"OK"} < set(outcomes)


def test_past_max_concurrent_calls_get_resource_exhausted_at_once(tmp_path):
    root = tmp_path / "index"
    build(tmp_path, root, 0, n_movies=N_MOVIES)
    with running_server(root, "--max-concurrent", "2") as server, grpc.insecure_channel(server.address) as channel:
        service = stub(channel)
        # Two exports nobody reads: 100 MB of neighbours, held in progress by flow control.
        export = pb.ExportNeighboursRequest(k=1000, chunk_size=1)
        held = [service.ExportNeighbours(export, timeout=30) for _ in range(2)]
        for stream in held:
            next(stream)
        outcomes: list[tuple[str, float]] = []

        def call() -> None:
            started = time.monotonic()
            try:
                batch = pb.BatchSimilarMoviesRequest(titles=["Alien (film)"] * 500, k=100)
                service.BatchSimilarMovies(batch, timeout=10)
                outcomes.append(("OK", time.monotonic() - started))
            except grpc.RpcError as e:
                outcomes.append((e.code().name, time.monotonic() - started))

        callers = [threading.Thread(target=call) for _ in range(4)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(15)
        assert [code for code, _ in outcomes] == ["RESOURCE_EXHAUSTED"] * 4
        assert max(seconds for _, seconds in outcomes) < 1  # answered at once, not queued
        for stream in held:
            stream.cancel()
        # The server frees the slots as it learns of the cancellations, then answers as before.
        deadline = time.monotonic() + 5
        while True:
            try:
                answer = service.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=5)
                break
            except grpc.RpcError as e:
                assert e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                time.sleep(0.05)
        assert len(answer.neighbours) == 5


def test_a_deadline_shorter_than_an_export_stops_the_work_on_the_server(tmp_path):
    root = tmp_path / "index"
    build(tmp_path, root, 0, n_movies=N_MOVIES)
    # One worker: were it still exporting after the deadline, the next call would wait for it.
    with running_server(root, "--workers", "1", "--metrics-port", "0") as server, \
            grpc.insecure_channel(server.address) as channel:
        service = stub(channel)
        started = time.monotonic()
        rows = 0
        with pytest.raises(grpc.RpcError) as expired:
            for chunk in service.ExportNeighbours(pb.ExportNeighboursRequest(k=1000, chunk_size=1), timeout=0.5):
                rows += len(chunk.results)
        assert expired.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0 < rows < N_MOVIES
        answer = service.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=5)
        assert len(answer.neighbours) == 5 and time.monotonic() - started < 2
        metrics = scrape(server)
        assert sample(metrics, "movielinks_requests_total", rpc="ExportNeighbours", code="DEADLINE_EXCEEDED") == 1
        assert sample(metrics, "movielinks_requests_total", rpc="ExportNeighbours", code="OK") == 0
        assert sample(metrics, "movielinks_request_seconds_sum", rpc="ExportNeighbours") < 1.5
