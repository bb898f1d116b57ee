"""SIGKILL at any moment never leaves a half-written artifact under its final name."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import movielinks.indexer.root


from movielinks import indexer
import movielinks.indexer.version
from tests.conftest import clustered_films, write_ndjson
from tests.fixtures import make_run
from movielinks.trainer.run import load_run

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

REPO = Path(__file__).resolve().parents[2]


def run_and_kill(command: list[str], after_s: float) -> int:
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after_s)
    process.send_signal(signal.SIGKILL)
    return process.wait()


def test_indexer_killed_while_publishing_leaves_only_complete_versions(tmp_path):
    # A run big enough that writing a version takes a while, so the kills land mid-write.
    run = make_run(tmp_path / "run", n_movies=60_000, n_links=2_000, dim=64)
    root = tmp_path / "index"
    build = [sys.executable, "-m", "movielinks.indexer", "build", str(run), "--out", str(root), "--quiet"]
    assert subprocess.run(build, cwd=REPO, capture_output=True).returncode == 0
    first = indexer.root.current_version_name(root)
    for delay_s in (0.6, 0.9, 1.2, 1.5, 1.8, 2.2):
        run_and_kill(build, delay_s)
        for name in indexer.root.list_versions(root):  # hidden staging directories are not listed
            indexer.version.load_version(indexer.root.version_dir(root, name))
        assert indexer.root.load_current(root).name in indexer.root.list_versions(root)
    assert indexer.root.current_version_name(root) >= first
    assert subprocess.run(build, cwd=REPO, capture_output=True).returncode == 0  # the next publish succeeds
    assert indexer.root.current_version_name(root) == indexer.root.list_versions(root)[-1]


@pytest.mark.tf
def test_trainer_killed_at_any_point_leaves_no_partial_run_and_resumes(tmp_path):
    data = write_ndjson(tmp_path / "films.ndjson", clustered_films(n_films=3000))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "movielinks.trainer", "train", "--data", str(data), "--out", str(out), "--quiet",
               "--dim", "16", "--epochs", "40", "--batch-positives", "64", "--min-link-count", "2"]
    checkpoint = Path(str(out) + ".checkpoint") / "checkpoint.npz"
    deadline = time.monotonic() + 60
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more epochs: checkpoints are being replaced while we kill
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "no checkpoint was written within a minute"
    assert not out.exists(), "a killed training left something under the run's final name"
    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    run = load_run(out)
    assert run.manifest.metrics["link_auc"] > 0.7
    assert len(run.manifest.metrics["epoch_losses"]) == 40
