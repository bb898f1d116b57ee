"""A running server takes the version `indexer update` publishes (the real commands), and keeps serving
the old one when an update file is refused."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from movielinks.client import ClientError, MovielinksClient
from movielinks.indexer.root import current_version_name, load_current
from tests.e2e_server import REPO, build_index_cli, running_server
from tests.fixtures import make_run
from tests.ops_support import wait_for

pytestmark = pytest.mark.slow  # real indexer and server processes


def indexer_update(root, data, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movielinks.indexer", "update", str(root), "--data", str(data),
                           "--quiet", *map(str, extra)], cwd=REPO, capture_output=True, text=True)


def test_the_server_serves_folded_in_films_and_keeps_the_old_version_on_a_bad_update(tmp_path) -> None:
    build_index_cli(make_run(tmp_path / "run", n_movies=300, titles=["Alien (film)", "Heat (1995 film)"]),
                    tmp_path / "index", "--neighbours-k", "20")
    base = load_current(tmp_path / "index")
    links = [base.links[i] for i in base.movie_links.of(0).tolist()]
    film = ["Alien: Folded", {"director": "Ridley Scott", "released": "2031"}, links, None, None, None,
            {"imdb": "tt9999991"}]
    (tmp_path / "update.ndjson").write_text(json.dumps(film) + "\n")
    (tmp_path / "removed.txt").write_text("Heat (1995 film)\n")
    with running_server(tmp_path / "index", "--reload-interval", "0.2") as server, \
            MovielinksClient(server.address) as client:
        done = indexer_update(tmp_path / "index", tmp_path / "update.ndjson", "--remove", tmp_path / "removed.txt")
        assert done.returncode == 0, done.stderr
        updated = current_version_name(tmp_path / "index")
        wait_for(lambda: client.info().index_version == updated)
        answer = client.similar_movies("imdb:tt9999991", k=5)
        assert answer.query == "Alien: Folded" and answer.query_year == 2031 and len(answer.neighbours) == 5
        assert client.explain_similarity("Alien: Folded", "Alien (film)").shared_total == len(set(links))
        with pytest.raises(ClientError) as removed:
            client.similar_movies("Heat (1995 film)", k=5)
        assert removed.value.code == "NOT_FOUND"
        (tmp_path / "bad.ndjson").write_text(json.dumps(film) + "\n" + json.dumps(film) + "\n")
        refused = indexer_update(tmp_path / "index", tmp_path / "bad.ndjson")
        assert refused.returncode == 2 and "'Alien: Folded' again (first on line 1)" in refused.stderr
        assert current_version_name(tmp_path / "index") == updated == client.info().index_version
        assert client.similar_movies("Alien: Folded", k=3).index_version == updated
