"""The whole pipeline as a user runs it: real films -> `trainer train` -> `indexer build` ->
the real server process -> the `client` command and the client library."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from movielinks.client import MovielinksClient
from tests.e2e_server import REPO, ServerProcess, build_index_cli
from movielinks.trainer.run import load_run
from movielinks.trainer.train import TrainConfig

pytestmark = pytest.mark.tf  # the trainer and TensorFlow, in process or as a command

# The newest films of the real file (it is ordered by release year): enough to train on
# in seconds, and it holds films a person knows.
SLICE_FILMS = 8000
QUERY = "Interstellar (film)"


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def pipeline(real_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    lines = real_data.read_text(encoding="utf-8").splitlines(keepends=True)
    films = tmp / "films.ndjson"
    films.write_text("".join(lines[-SLICE_FILMS:]), encoding="utf-8")
    trained = run_command("trainer", "train", "--data", str(films), "--out", str(tmp / "run"), "--epochs", "4",
                          "--quiet")
    assert trained.returncode == 0, trained.stderr
    build_index_cli(tmp / "run", tmp / "index")
    server = ServerProcess(tmp / "index")
    links = {json.loads(line)[0]: json.loads(line)[2] for line in lines[-SLICE_FILMS:]}
    served = [m.title for m in load_run(tmp / "run").movies]  # films with no kept link have no vector
    yield server, {title: links[title] for title in served}
    assert server.stop() == 0, "".join(server.log_lines)


def test_a_user_query_from_the_command_line(pipeline):
    server, _ = pipeline
    answer = run_command("client", "--server", server.address, "--json", "query", "--movie", QUERY, "-k", "10")
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)
    titles = [n["name"] for n in result["neighbours"]]
    assert result["query"] == QUERY and len(titles) == 10 and QUERY not in titles
    scores = [n["score"] for n in result["neighbours"]]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)


def test_neighbours_share_links_far_more_often_than_random_films(pipeline):
    """Learned from links alone, a film's nearest films should share an actor or a genre with it
    much more often than two films picked at random do (about 30% here: genres are shared widely)."""
    server, records = pipeline
    rng = np.random.default_rng(0)
    titles = list(records)
    queries = [titles[i] for i in rng.choice(len(titles), 300, replace=False)]
    with MovielinksClient(server.address) as client:
        results = client.similar_movies_batch(queries, k=10)
    shares = lambda a, b: bool(set(records[a]) & set(records[b]))
    learned = np.mean([shares(r.query, n.name) for r in results for n in r.neighbours])
    pairs = rng.choice(len(titles), (3000, 2))
    chance = np.mean([shares(titles[a], titles[b]) for a, b in pairs])
    assert learned >= 0.5 and learned >= 1.5 * chance, (learned, chance)


def test_the_served_version_carries_the_trainers_evaluation(pipeline):
    server, _ = pipeline
    with MovielinksClient(server.address) as client:
        info = client.info()
        assert info.movies > 7000 and info.dim == TrainConfig().dim
        assert info.metrics["link_auc"] > 0.75, info.metrics
        best = client.recommend(["Interstellar (film)", "Gravity (2013 film)"], [], k=5).best
        assert len(best) == 5 and not {"Interstellar (film)", "Gravity (2013 film)"} & {m.title for m in best}
