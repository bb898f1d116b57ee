"""Index versions published while the real server process serves: taken, or refused
with the old one serving on; and a bad index at start.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import grpc
import pytest

from movielinks.common.files import atomic_write_bytes
import movielinks.indexer.root
from movielinks import indexer
import movielinks.indexer.version
from movielinks.proto import movielinks_pb2 as pb
from movielinks.server.service import MovieService
from movielinks.server.versions import MAX_REFUSALS_KEPT, ServiceHolder, VersionWatcher
from tests.e2e_server import REPO, running_server
from tests.fixtures import make_run
from tests.ops_support import (
    TITLES,
    Load,
    build,
    info,
    publish_corrupt,
    replace_with_checksum,
    stage_version,
    stub,
    wait_for,
)

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes


def test_versions_published_under_load_are_taken_in_turn_and_a_corrupt_one_is_refused(tmp_path):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    with running_server(root, "--reload-interval", "0.2") as server:
        with Load(server.address, threads=8) as load:
            time.sleep(0.5)
            second = build(tmp_path, root, 1)
            wait_for(lambda: info(server.address).index_version == second)
            time.sleep(0.5)
            third = build(tmp_path, root, 2)
            wait_for(lambda: info(server.address).index_version == third)
            time.sleep(0.5)
            corrupt = publish_corrupt(tmp_path, root, 3, indexer.version.MOVIE_INDEX)
            wait_for(lambda: any(r.startswith(f"{corrupt}: ") for r in info(server.address).refused_versions))
            time.sleep(1.0)  # five more polls while CURRENT still names the corrupt version
            assert info(server.address).index_version == third  # the old one keeps serving
            fourth = build(tmp_path, root, 4)
            wait_for(lambda: info(server.address).index_version == fourth)
            time.sleep(0.5)
        assert load.failures == [], load.failures[:5]
        assert load.ok > 100
        assert {first, second, third, fourth} <= load.versions and corrupt not in load.versions
        refused = info(server.address).refused_versions
        assert len(refused) == 1 and "checksum mismatch" in refused[0] and indexer.version.MOVIE_INDEX in refused[0]
    log = "".join(server.log_lines)
    # Logged once on one line, not retried at every poll while CURRENT kept naming it.
    assert log.count(f"reload refused: version={corrupt}") == 1
    refusal_line = next(line for line in server.log_lines if f"reload refused: version={corrupt}" in line)
    assert indexer.version.MOVIE_INDEX in refusal_line and f"still serving {third}" in refusal_line
    assert all(f"reload taken: version={name}" in log for name in (second, third, fourth))


def test_sighup_reloads_at_once_without_polling(tmp_path):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    with running_server(root, "--reload-interval", "0") as server:
        second = build(tmp_path, root, 1)
        time.sleep(0.5)
        assert info(server.address).index_version == first  # no polling
        started = time.monotonic()
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: info(server.address).index_version == second, 10)
        assert time.monotonic() - started < 5


def test_indexer_killed_during_publish_leaves_the_server_serving(tmp_path):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    big_run = make_run(tmp_path / "big", 5, titles=TITLES, n_movies=40_000, n_links=1_000, dim=64)
    command = [sys.executable, "-m", "movielinks.indexer", "build", str(big_run), "--out", str(root), "--quiet"]
    with running_server(root, "--reload-interval", "0.2") as server:
        # Killed at different points of loading, building, checksumming and renaming.
        for delay_s in (0.8, 1.4, 2.0):
            building = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay_s)
            building.kill()
            building.wait()
            with grpc.insecure_channel(server.address) as channel:
                answer = stub(channel).SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=3), timeout=10)
            assert answer.index_version in indexer.root.list_versions(root) and len(answer.neighbours) == 3
        assert info(server.address).refused_versions == []
        after = build(tmp_path, root, 6)
        wait_for(lambda: info(server.address).index_version == after)
    assert first in indexer.root.list_versions(root)


def _point_current_at(root, name: str) -> None:
    atomic_write_bytes(root / indexer.root.CURRENT, f"{name}\n".encode())


@pytest.mark.parametrize("problem", ["missing file", "checksum", "mismatched dims", "mismatched names", "unknown name"])
def test_a_bad_version_is_refused_with_its_reason_and_retried_only_when_current_names_it_anew(tmp_path, problem):
    root = tmp_path / "index"
    good = build(tmp_path, root, 0)
    holder = ServiceHolder(MovieService(indexer.root.load_current(root)))
    refusals: list[str] = []
    watcher = VersionWatcher(root, holder, on_refused=lambda name, reason: refusals.append(reason))
    bad = "no-such-version" if problem == "unknown name" else stage_version(tmp_path, root, 1)
    version = indexer.root.version_dir(root, bad)
    if problem == "missing file":
        (version / indexer.version.LINKS).unlink()
        expected = f"{indexer.version.LINKS}: missing"
    elif problem == "checksum":
        (version / indexer.version.ATTRIBUTE_MODELS).write_text("{}")
        expected = f"{indexer.version.ATTRIBUTE_MODELS}: checksum mismatch"
    elif problem == "mismatched dims":
        other = build(tmp_path, tmp_path / "other", 2, dim=8)
        eight_dims = (indexer.root.version_dir(tmp_path / "other", other) / indexer.version.MOVIE_VECTORS).read_bytes()
        replace_with_checksum(version, indexer.version.MOVIE_VECTORS, eight_dims)
        expected = "dimensions differ"
    elif problem == "mismatched names":
        movies = (version / indexer.version.MOVIES).read_text().splitlines(keepends=True)
        replace_with_checksum(version, indexer.version.MOVIES, "".join(movies[:-1]).encode())
        expected = "differ in size"
    else:
        expected = "no-such-version"
    _point_current_at(root, bad)
    for _ in range(3):  # polls while CURRENT keeps naming it
        watcher.check()
    assert holder.current().name == good
    assert len(refusals) == 1 and expected in refusals[0] and "\n" not in refusals[0]
    assert holder.refused() == [f"{bad}: {refusals[0]}"]
    watcher.check(retry=True)  # SIGHUP: the operator may have repaired it in place
    assert len(refusals) == 2
    _point_current_at(root, good)
    watcher.check()
    _point_current_at(root, bad)  # named anew: tried again
    watcher.check()
    assert len(refusals) == 3 and holder.current().name == good


def test_refusals_kept_are_the_last_twenty_newest_last(tmp_path):
    build(tmp_path, tmp_path / "index", 0)
    holder = ServiceHolder(MovieService(indexer.root.load_current(tmp_path / "index")))
    for i in range(MAX_REFUSALS_KEPT + 5):
        holder.refuse(f"v{i}", "bad")
    assert holder.refused() == [f"v{i}: bad" for i in range(5, MAX_REFUSALS_KEPT + 5)]


@pytest.mark.parametrize("problem", ["missing root", "no CURRENT", "corrupt version", "bad TLS file"])
def test_a_bad_index_at_start_exits_2_with_one_line_naming_the_file(tmp_path, problem):
    root = tmp_path / "index"
    extra: list[str] = []
    if problem == "no CURRENT":
        build(tmp_path, root, 0)
        (root / indexer.root.CURRENT).unlink()
        named = indexer.root.CURRENT
    elif problem == "corrupt version":
        publish_corrupt(tmp_path, root, 0)
        named = indexer.version.MOVIE_VECTORS
    elif problem == "bad TLS file":
        build(tmp_path, root, 0)
        extra = ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "missing.key")]
        named = "missing.pem"
    else:
        named = indexer.root.CURRENT
    started = subprocess.run([sys.executable, "-m", "movielinks.server", "--index", str(root), "--port", "0", *extra],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.count("\n") == 1 and started.stderr.startswith("server: error: ") and named in started.stderr
    assert "Traceback" not in started.stderr
