"""Distributed training on TensorFlow's engine: a chief, 2 workers and a parameter server on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.e2e_server import REPO
from trainer.run import load_run

SMALL = ["--dim", "16", "--epochs", "6", "--batch-positives", "128", "--min-link-count", "2",
         "--learning-rate", "0.05", "--quiet"]


def test_two_workers_and_a_parameter_server_train_as_well_as_one_process(small_dataset, tmp_path):
    single = subprocess.run([sys.executable, "-m", "trainer", "train", "--data", str(small_dataset),
                             "--out", str(tmp_path / "single"), *SMALL], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr
    launched = subprocess.run([sys.executable, "-m", "trainer", "launch", "--workers", "2", "--ps", "1",
                               "--timeout", "400", "--", "--data", str(small_dataset),
                               "--out", str(tmp_path / "distributed"), *SMALL],
                              cwd=REPO, capture_output=True, text=True, timeout=450)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "training on a cluster: 2 workers, 1 parameter servers" in launched.stdout
    auc = {name: load_run(tmp_path / name).manifest.metrics["link_auc"] for name in ("single", "distributed")}
    # 269 held-out pairs: an AUC's noise is a few hundredths.
    assert auc["distributed"] > 0.75 and abs(auc["distributed"] - auc["single"]) < 0.06, auc


def test_a_process_that_is_not_the_chief_is_told_what_to_run(small_dataset, tmp_path):
    cluster = {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"], "ps": ["127.0.0.1:3"]}
    env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    done = subprocess.run([sys.executable, "-m", "trainer", "train", "--data", str(small_dataset), "--out",
                           str(tmp_path / "run"), *SMALL], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode == 2 and "run `trainer serve` there" in done.stderr
    bad = subprocess.run([sys.executable, "-m", "trainer", "serve"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "TF_CONFIG": "not json"})
    assert bad.returncode == 2 and "TF_CONFIG is not a cluster description" in bad.stderr
