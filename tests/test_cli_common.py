"""The command lines as real processes: a useless attribute model said so."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from movielinks.client.cli import render
from movielinks.common.records import Prediction
from movielinks.indexer.build import build_index
from movielinks.trainer.run import load_run
from tests.conftest import clustered_films, write_ndjson
from tests.e2e_server import REPO, running_server
from tests.fixtures import make_run

TIMEOUT_S = 120
TITLES = ["Interstellar (film)", "Alien (film)", "The Martian (film)"]


def command(*argv: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """`python -m movielinks.<argv[0]> argv[1:]`, as a user runs it."""
    return subprocess.run([sys.executable, "-m", f"movielinks.{argv[0]}", *argv[1:]], cwd=REPO, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("commands")
    run = make_run(tmp / "run", titles=TITLES, n_movies=120, n_links=40, years=True, useless_models=("gross",))
    build_index(run, tmp / "index", progress=False)
    with running_server(tmp / "index") as server:
        yield tmp, server


def test_a_model_no_better_than_the_mean_is_not_served(served):
    _, server = served
    refused = command("client", "--server", server.address, "predict", "--movie", "Alien (film)", "--attribute", "gross")
    assert refused.returncode == 1 and refused.stdout == ""
    assert re.fullmatch(r"client: error: the gross model is no better than always predicting the average \(held-out "
                        r"MSE 1\.30 times the average's\): not served; index version \S+\n", refused.stderr), refused.stderr
    served_one = command("client", "--server", server.address, "predict", "--movie", "Alien (film)", "--attribute",
                         "rotten_tomatoes")
    assert served_one.returncode == 0 and "warning" not in served_one.stdout and "predicted" in served_one.stdout


def test_trainer_train_flags_a_model_no_better_than_the_mean(tmp_path):
    records = clustered_films(n_films=120)
    noise = iter(np.random.default_rng(1).integers(0, 100, len(records)).tolist())
    for record in records:  # the rating is noise: 32 dimensions fitted to 96 films overfit it
        record[3] = f"{next(noise)}%"
    data = write_ndjson(tmp_path / "films.ndjson", records)
    trained = command("trainer", "train", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet", "--dim", "32",
                      "--epochs", "2", "--min-link-count", "2")
    assert trained.returncode == 0, trained.stderr
    models = load_run(tmp_path / "run").attribute_models
    assert models["rotten_tomatoes"].no_better_than_mean
    warnings = [line for line in trained.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {m.verdict()} (the server refuses to predict {m.name})"
                        for m in models.values() if m.no_better_than_mean], trained.stdout


def test_the_client_warns_of_a_prediction_no_better_than_the_mean():
    # A server from before such models were refused still answers for them: the client says what it is worth.
    useless = render(Prediction("Jaws (film)", "rotten_tomatoes", "fraction", 0.6, None, 0.12, 0.09, "v1"))
    assert useless.splitlines()[-1] == ("warning: this model is no better than always predicting the mean: do not "
                                        "trust the prediction")
    assert "warning" not in render(Prediction("Jaws (film)", "rotten_tomatoes", "fraction", 0.6, None, 0.05, 0.09, "v1"))
