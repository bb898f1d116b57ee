"""Films named by their IMDb or Wikidata id in any title field, against the real server process."""
from __future__ import annotations

import json
import urllib.request

import pytest

from movielinks.client import ClientError, MovielinksClient
from movielinks.client.client import MovieFilter
from tests.e2e_server import build_index_cli, running_server
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # real indexer and server processes

TITLES = ["Alien (film)", "Heat (1995 film)", "Aliens (film)", "Heat (1986 film)"]
IDS = {0: {"imdb": "tt0078748", "wikidata": "Q103569"}, 1: {"imdb": "tt0113277", "wikidata": "Q139717"},
       2: {"imdb": "tt0090605"}, 3: {"imdb": "tt0113277"}}  # two films with one id: the most linked wins


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ids")
    build_index_cli(make_run(tmp / "run", titles=TITLES, n_movies=200, external_ids=IDS), tmp / "index")
    with running_server(tmp / "index", "--http-port", "0") as process, MovielinksClient(process.address) as client:
        yield client, process


def test_every_title_field_takes_an_id(server) -> None:
    client, _ = server
    assert client.lookup_title("imdb:tt0078748").title == "Alien (film)"
    assert client.lookup_title("wikidata:Q103569").match == "wikidata"
    assert client.similar_movies("imdb:tt0078748", k=5) == client.similar_movies("Alien (film)", k=5)
    assert client.similar_movies_batch(["imdb:tt0090605"], k=3) == client.similar_movies_batch(["Aliens (film)"], k=3)
    liked = client.recommend(["imdb:tt0078748"], ["wikidata:Q139717"], k=5)
    assert liked.liked_resolved == ["Alien (film)"] and liked.disliked_resolved == ["Heat (1995 film)"]
    assert client.explain_similarity("imdb:tt0078748", "imdb:tt0090605").b.name == "Aliens (film)"
    assert client.nearest_links("wikidata:Q103569", k=3) == client.nearest_links("Alien (film)", k=3)
    assert client.predict_attribute("imdb:tt0078748", "rotten_tomatoes").title == "Alien (film)"
    without = client.similar_movies("Alien (film)", k=10, filter=MovieFilter(exclude_titles=["imdb:tt0090605"]))
    assert "Aliens (film)" not in [n.name for n in without.neighbours]


def test_one_id_of_two_films_is_the_most_linked_ones(server) -> None:
    client, _ = server
    match = client.lookup_title("imdb:tt0113277")
    assert match.match == "imdb" and {match.title, *match.also_matched} == {"Heat (1995 film)", "Heat (1986 film)"}


def test_answers_show_the_ids(server) -> None:
    client, process = server
    match = client.lookup_title("Alien (film)")
    assert (match.imdb_id, match.wikidata_id) == ("tt0078748", "Q103569")
    answer = client.similar_movies("Aliens (film)", k=199)
    assert (answer.query_imdb_id, answer.query_wikidata_id) == ("tt0090605", "")
    shown = {n.name: (n.imdb_id, n.wikidata_id) for n in answer.neighbours}
    assert shown["Alien (film)"] == ("tt0078748", "Q103569") and shown['Movie 100, part "2"'] == ("", "")
    best = client.recommend(["Aliens (film)"], [], k=199).best
    assert {m.title: m.imdb_id for m in best}["Alien (film)"] == "tt0078748"
    with urllib.request.urlopen(process.http_url + "v1/similar-movies?title=imdb:tt0090605&k=199") as response:
        body = json.load(response)
    assert body["query"] == "Aliens (film)" and body["query_imdb_id"] == "tt0090605"
    assert {n["name"]: n["imdb_id"] for n in body["neighbours"]}["Alien (film)"] == "tt0078748"


@pytest.mark.parametrize("title, code, words", [
    ("imdb:not-an-id", "INVALID_ARGUMENT", "is no imdb id; write one as imdb:tt0111161"),
    ("wikidata:Q0", "INVALID_ARGUMENT", "is no wikidata id"),
    ("imdb:tt9999999", "NOT_FOUND", "no movie with imdb id tt9999999 in this index version (4 of its 200"),
    ("wikidata:Q42", "NOT_FOUND", "no movie with wikidata id Q42"),
])
def test_a_bad_or_unknown_id_is_a_clear_error(server, title: str, code: str, words: str) -> None:
    client, _ = server
    with pytest.raises(ClientError) as raised:
        client.similar_movies(title, k=3)
    assert raised.value.code == code and words in raised.value.message
