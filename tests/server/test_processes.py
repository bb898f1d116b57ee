"""`server --processes N`: processes on the same port share the calls, restart, and stop with the first one."""
from __future__ import annotations

import os
import re
import signal
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from movielinks.indexer.build import build_index
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server.processes import RESTART_AFTER_S
from tests.e2e_server import ServerProcess
from tests.fixtures import make_run
from tests.ops_support import wait_for

pytestmark = pytest.mark.slow  # real server processes

TITLE = "Alien (film)"


@pytest.fixture(scope="module")
def index_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("processes")
    build_index(make_run(tmp / "run", titles=[TITLE], n_movies=200, n_links=40), tmp / "index", progress=False)
    return tmp / "index"


def start_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.log_lines if re.search(r"process \d+: movielinks server listening", line)]


def other_pids(first: int) -> list[int]:
    """The first process's children that serve (multiprocessing's spawned interpreters, not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == first and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def similar_calls(metrics_address: str) -> float:
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "movielinks_requests_total" and s.labels.get("rpc") == "SimilarMovies")


def test_processes_share_the_port_restart_and_end_with_the_first(index_root):
    server = ServerProcess(index_root, "--processes", "2", "--metrics-port", "0", "--grace", "1")
    try:
        wait_for(lambda: start_lines(server), timeout_s=60)
        metrics = [server.start_fields()["metrics"],
                   re.search(r"metrics=(\S+)", start_lines(server)[0]).group(1)]
        assert metrics[0] != metrics[1]
        # Each channel is one connection (its own, not one from gRPC's pool shared by the process),
        # taken by one process: 16 of them spread over both.
        for _ in range(16):
            with grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                stub = pb_grpc.MovielinksStub(channel)
                for _ in range(3):
                    assert len(stub.SimilarMovies(pb.SimilarMoviesRequest(title=TITLE, k=5), timeout=10).neighbours) == 5
        answered = [similar_calls(address) for address in metrics]
        assert sum(answered) == 48 and min(answered) > 0, answered

        [other] = other_pids(server.process.pid)
        os.kill(other, signal.SIGKILL)
        wait_for(lambda: any("serving process 1 (pid" in line and "starting it again" in line for line in server.log_lines))
        wait_for(lambda: len(start_lines(server)) == 2, timeout_s=RESTART_AFTER_S + 60)
        [again] = other_pids(server.process.pid)
        assert again != other
    finally:
        code = server.stop()
    assert code == 0
    wait_for(lambda: not Path(f"/proc/{again}").exists(), timeout_s=5)


def test_the_other_processes_end_when_the_first_is_killed(index_root):
    server = ServerProcess(index_root, "--processes", "2")
    try:
        wait_for(lambda: start_lines(server), timeout_s=60)
        [other] = other_pids(server.process.pid)
    finally:
        server.process.kill()
        server.process.wait()
    wait_for(lambda: _state(other) == b"Z", timeout_s=20, explain=lambda: _still_running(other, server))


def _still_running(pid: int, server: ServerProcess) -> str:
    """What a process that did not end shows: each thread's name and kernel wait, and the server's log."""
    try:
        threads = [f"{(task / 'comm').read_text().strip()}: {(task / 'wchan').read_text()}"
                   for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:  # it ended meanwhile
        threads = []
    return f"; process {pid}'s threads: {', '.join(threads)}; the server's log:\n{''.join(server.log_lines)}"


def _state(pid: int) -> bytes:
    """The process's state letter; Z (ended) once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return b"Z"
