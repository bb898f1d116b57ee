"""Every command line alike, as real processes: a closed pipe is a normal end, a count of 0
is refused, each subcommand's help shows its own options first; and the answers a new user
reads: the server's stop line, a useless attribute model said so, name counts in English."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from movielinks.client.cli import render
from movielinks.common.answers import Prediction
from movielinks.indexer.build import build_index
from movielinks.trainer.run import load_run
from tests.conftest import clustered_films, write_ndjson
from tests.e2e_server import REPO, ServerProcess, running_server
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


def test_a_closed_pipe_ends_every_command_quietly(served):
    tmp, server = served
    # `| head -0`, without the race: the reader is gone before the command writes a byte.
    for argv in (("trainer", "evaluate", str(tmp / "run"), "--json"), ("indexer", "list", str(tmp / "index")),
                 ("client", "--server", server.address, "links", "--search", "link"), ("collector", "--help"),
                 ("client", "--help"), ("server", "--help")):
        read, write = os.pipe()
        os.close(read)
        try:
            ended = command(*argv, stdout=write)
        finally:
            os.close(write)
        assert (ended.returncode, ended.stderr) == (0, ""), (argv, ended.stderr)


def test_a_count_of_0_is_refused_and_indexer_export_takes_k(served, tmp_path):
    tmp, server = served
    for argv in (("client", "--server", server.address, "query", "--movie", "Alien (film)", "-k", "0"),
                 ("client", "--server", server.address, "export", "-k", "0", "--out", str(tmp_path / "c.csv")),
                 ("indexer", "export", str(tmp / "index"), "-k", "0", "--out", str(tmp_path / "i.csv"))):
        refused = command(*argv)
        assert refused.returncode == 2, (argv, refused.stderr)
        assert "-k/--k: 0 is not 1 or more (leave the option out for its default)" in refused.stderr, refused.stderr
        assert not list(tmp_path.iterdir())
    exported = command("indexer", "export", str(tmp / "index"), "-k", "2", "--out", str(tmp_path / "n.jsonl"),
                       "--quiet")
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in (tmp_path / "n.jsonl").read_text().splitlines()]
    assert len(rows) == 120 * 2 and "k=2" in exported.stdout


def test_a_subcommands_help_shows_its_own_options_before_the_connection_options():
    shown = command("client", "query", "--help")
    assert shown.returncode == 0
    text = shown.stdout.split("\noptions:", 1)[1]  # after the usage line, which lists them all
    own = max(text.index(option) for option in ("--movie", "--link", "--reasons", "--from-year", "--exclude-franchise"))
    connection = min(text.index(option) for option in ("--server", "--tls-ca", "--tls-cert", "--token-file", "--json"))
    assert own < text.index("connection and output (also accepted before the command):") < connection


def test_one_name_is_counted_in_the_singular(served):
    _, server = served
    one = command("client", "--server", server.address, "links", "--search", "Link 39")
    assert one.returncode == 0 and one.stdout.splitlines() == ["1 link name contains 'Link 39'", "Link 39"]
    several = command("client", "--server", server.address, "links", "--search", "Link 3", "-k", "2")
    assert several.stdout.splitlines()[0] == "11 link names contain 'Link 3' (first 2 of 11)"


def test_a_model_no_better_than_the_mean_is_not_served(served):
    _, server = served
    refused = command("client", "--server", server.address, "predict", "--movie", "Alien (film)", "--attribute", "gross")
    assert refused.returncode == 1 and refused.stdout == ""
    assert re.fullmatch(r"client: error: the gross model is no better than always predicting the average \(held-out "
                        r"MSE 1\.30 times the average's\): not served; index version \S+\n", refused.stderr), refused.stderr
    served_one = command("client", "--server", server.address, "predict", "--movie", "Alien (film)", "--attribute",
                         "rotten_tomatoes")
    assert served_one.returncode == 0 and "warning" not in served_one.stdout and "predicted" in served_one.stdout
    info = command("client", "--server", server.address, "--json", "info")
    assert json.loads(info.stdout)["attributes"] == ["rotten_tomatoes"]  # what PredictAttribute answers


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


def test_the_stop_line_counts_calls_not_the_health_watches_clients_close(tmp_path):
    build_index(make_run(tmp_path / "run", n_movies=60, n_links=20), tmp_path / "index", progress=False)
    server = ServerProcess(tmp_path / "index")
    try:
        for argv in (("info",), ("lookup", 'movie 001, part "1"'), ("lookup", "Nothing Like It At All")):
            command("client", "--server", server.address, *argv)
    finally:
        assert server.stop() == 0
    stop_line = next(line for line in server.log_lines if "stopped:" in line)
    assert stop_line.rstrip().endswith("calls answered by status since start: NOT_FOUND=1 OK=2; health watches "
                                       "closed by their clients: 3"), stop_line


def test_the_client_warns_of_a_prediction_no_better_than_the_mean():
    # A server from before such models were refused still answers for them: the client says what it is worth.
    useless = render(Prediction("Jaws (film)", "rotten_tomatoes", "fraction", 0.6, None, 0.12, 0.09, "v1"))
    assert useless.splitlines()[-1] == ("warning: this model is no better than always predicting the mean: do not "
                                        "trust the prediction")
    assert "warning" not in render(Prediction("Jaws (film)", "rotten_tomatoes", "fraction", 0.6, None, 0.05, 0.09, "v1"))
