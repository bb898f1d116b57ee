"""Issue 13.9: no partial export file after a write error or a signal, from `indexer export`
and from `client export`; `indexer export --k` bounded as the server's k."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from movielinks.common.limits import MAX_NEIGHBOURS_K
from movielinks.common.neighbour_files import NeighbourWriter, read_neighbour_file
from tests.e2e_server import REPO, running_server
from tests.ops_support import build

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

N_MOVIES = 3000
# "Disks" full after this many KiB: whether the last write fails in a write or only when the
# file is closed depends on where the limit falls in the writer's buffer, so several are tried.
FILE_LIMITS_KIB = (100, 333, 500, 2000)


@pytest.fixture(scope="module")
def index_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export-failures")
    build(tmp, tmp / "index", 0, n_movies=N_MOVIES)
    return tmp / "index"


@pytest.fixture(scope="module")
def server(index_root):
    with running_server(index_root) as server:
        yield server


def export_command(tool: str, index_root: Path, server_address: str, k: int, out: Path) -> list[str]:
    if tool == "indexer":
        return [sys.executable, "-m", "movielinks.indexer", "export", str(index_root), "--k", str(k), "--out", str(out), "--quiet"]
    return [sys.executable, "-m", "movielinks.client", "--server", server_address, "--json", "export", "--k", str(k),
            "--out", str(out)]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _file_limit(kib: int):
    def limit() -> None:  # runs in the child: writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, kib * 1024))
    return limit


@pytest.mark.parametrize("tool", ["indexer", "client"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_write_error_leaves_no_file_behind(index_root, server, tmp_path, tool, suffix):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / f"neighbours{suffix}"
    for kib in FILE_LIMITS_KIB:
        done = subprocess.run(export_command(tool, index_root, server.address, 50, out), cwd=REPO,
                              capture_output=True, text=True, timeout=120, preexec_fn=_file_limit(kib))
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1].startswith(f"{tool}: error: "), done.stderr
        assert "Traceback" not in done.stderr
        assert leftovers(out_dir) == [], kib


@pytest.mark.parametrize("tool", ["indexer", "client"])
def test_sigterm_during_an_export_leaves_no_file_behind(index_root, server, tmp_path, tool):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "neighbours.csv"
    process = subprocess.Popen(export_command(tool, index_root, server.address, MAX_NEIGHBOURS_K, out), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # Wait until rows are being written (the temporary file has grown), then stop it.
        while not any(p.stat().st_size > 1_000_000 for p in out_dir.iterdir() if p.is_file()):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert leftovers(out_dir) == []


def test_a_temporary_file_of_a_killed_writer_is_removed_by_the_next(tmp_path):
    out = tmp_path / "neighbours.csv"
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    orphan = tmp_path / f".neighbours.csv.partial-{killed.pid}-abc123"
    orphan.write_text("movie,rank\n")
    killed.kill()
    killed.wait()
    still_writing = tmp_path / f".neighbours.csv.partial-{os.getpid()}-def456"  # this process is alive
    still_writing.write_text("movie,rank\n")
    other_target = tmp_path / f".other.csv.partial-{killed.pid}-ghi789"
    other_target.write_text("movie,rank\n")
    with NeighbourWriter(out) as writer:
        writer.write(["A"], [[("B", 0.5)]])
    assert read_neighbour_file(out) == {"A": [("B", 0.5)]}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, still_writing.name, other_target.name])


def test_indexer_export_k_is_bounded_like_the_server(index_root, tmp_path):
    done = subprocess.run(export_command("indexer", index_root, "", MAX_NEIGHBOURS_K + 1, tmp_path / "n.csv"),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"k must be between 1 and {MAX_NEIGHBOURS_K}" in done.stderr
    assert leftovers(tmp_path) == []
