"""The HTTP port of the real server process against clients that hold connections open."""
from __future__ import annotations

import socket
import time
import urllib.parse
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from movielinks.indexer.build import build_index
from movielinks.proto import SERVICE_NAME
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server.connections import RESERVED_DESCRIPTORS, STORM_QUIET_S
from tests.e2e_server import ServerProcess
from tests.fixtures import make_run
from tests.ops_support import TITLES, wait_for

DESCRIPTORS = 1024  # the server's limit in this test: 1,100 half-sent requests used to exhaust it
HEAD_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def index_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http-bounds")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=100, n_links=40, dim=8), tmp / "index", progress=False)
    return tmp / "index"


def half_requests(port: int, n: int) -> list[socket.socket]:
    """`n` connections that each send a request head without its final blank line, and wait."""
    opened = []
    for _ in range(n):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass  # refused at the limit: closed by the server already
        opened.append(connection)
    return opened


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5).status


def get_info(base: str) -> int:
    with urllib.request.urlopen(urllib.parse.urljoin(base, "v1/get-info"), timeout=5) as answer:
        return answer.status


@pytest.mark.slow  # waits out the server's HTTP read timeouts: about 14 s
def test_a_slowloris_storm_leaves_grpc_health_and_http_working(index_root):
    server = ServerProcess(index_root, "--http-port", "0", "--http-head-timeout", str(HEAD_TIMEOUT_S),
                           "--reload-interval", "0.2", descriptors=DESCRIPTORS)
    opened: list[socket.socket] = []
    try:
        port = urllib.parse.urlsplit(server.http_url).port
        started = time.monotonic()
        opened = half_requests(port, 1100)
        # The storm holds: the process still has descriptors for gRPC (a new channel, health).
        assert health(server.address) == health_pb2.HealthCheckResponse.SERVING
        held_s = time.monotonic() - started
        assert held_s < HEAD_TIMEOUT_S, f"opening the connections took {held_s:.1f} s: the test proves nothing"
        # The slow clients are cut off at the head timeout; HTTP answers again.
        wait_for(lambda: _answers(server.http_url), timeout_s=HEAD_TIMEOUT_S + 20)
        assert get_info(server.http_url) == 200
        wait_for(lambda: any("storm is over" in line for line in server.log_lines),
                 timeout_s=HEAD_TIMEOUT_S + STORM_QUIET_S + 20)
        assert health(server.address) == health_pb2.HealthCheckResponse.SERVING
    finally:
        for connection in opened:
            connection.close()
        code = server.stop()
    log = "".join(server.log_lines)
    assert code == 0, log
    storm = [line for line in server.log_lines if "HTTP port" in line]
    assert len(storm) == 2, storm  # one line when it began, one when it ended
    limit = min(1000, DESCRIPTORS - RESERVED_DESCRIPTORS, DESCRIPTORS // 2)
    ended = storm[1]
    refused = int(ended.split(" connections refused")[0].rsplit(" ", 1)[1])
    closed = int(ended.split(" closed for sending or reading too slowly")[0].rsplit(" ", 1)[1])
    assert refused >= 1100 - limit and closed >= 1 and refused + closed >= 1100 - 5, ended
    assert f"limit of {limit}" in ended, ended
    assert "Too many open files" not in log and "Traceback" not in log, log[-3000:]


def _answers(base: str) -> bool:
    try:
        return get_info(base) == 200
    except OSError:
        return False


@pytest.mark.slow  # waits out the server's HTTP read timeouts: about 14 s
def test_an_http_export_never_read_gives_its_stream_slot_back(tmp_path):
    build_index(make_run(tmp_path / "run", titles=TITLES, n_movies=3000, n_links=40, dim=8), tmp_path / "index",
                progress=False)
    stall_s = 2.0
    server = ServerProcess(tmp_path / "index", "--http-port", "0", "--stream-slots", "1",
                           "--http-stall-timeout", str(stall_s))
    try:
        port = urllib.parse.urlsplit(server.http_url).port
        reader = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up at once
        reader.settimeout(10)
        reader.connect(("127.0.0.1", port))
        body = b'{"k": 1000, "chunk_size": 1}'  # 3,000 lines of 1,000 neighbours: far more than any buffer
        reader.sendall(b"POST /v1/export-neighbours HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert reader.recv(64).startswith(b"HTTP/1.1 200")  # then never reads again
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.MovielinksStub(channel)

            def export_admitted() -> bool:
                try:
                    return len(next(stub.ExportNeighbours(pb.ExportNeighboursRequest(k=5), timeout=10)).results) > 0
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
                    return False

            stopped_reading = time.monotonic()
            assert not export_admitted()  # the unread HTTP export holds the one slot...
            wait_for(export_admitted, timeout_s=stall_s + 15)  # ...until the stall timeout cuts its reader off
            assert time.monotonic() - stopped_reading >= stall_s - 0.5
        reader.close()
    finally:
        code = server.stop()
    assert code == 0, "".join(server.log_lines)
    assert "Traceback" not in "".join(server.log_lines), "".join(server.log_lines)[-3000:]
