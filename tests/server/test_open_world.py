"""The open-world calls against the real server process (`python -m movielinks.server` on a small
built index), with the real client library, command and HTTP gateway: SimilarToLinks (fold-in),
SimilarToVector, GetVectors, Recommend's films and vectors, ExplainSimilarity's B side by links,
and a clear INVALID_ARGUMENT for every bad input."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from movielinks.client import MovielinksClient
from movielinks.client.client import ClientError, MovieFilter
from movielinks.indexer.build import build_index
from movielinks.indexer.root import load_current
from movielinks.search.foldin import Objective, fold_in, fold_in_space, link_film_counts
from movielinks.server.errors import ServiceError
from movielinks.server.limits import MAX_BATCH, MAX_FOLD_IN_LINKS, MAX_VECTOR_VALUES, check_vector_values
from tests.e2e_server import REPO, ServerProcess
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # a server process

LEARNED = {"name": "logistic", "scale": 12.0, "bias": -1.5}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server process, the version it serves, a connected client)."""
    tmp = tmp_path_factory.mktemp("open_world")
    build_index(make_run(tmp / "run", n_movies=120, n_links=40, dim=8, years=True, objective=LEARNED), tmp / "index",
                progress=False)
    server = ServerProcess(tmp / "index", "--http-port", "0")
    try:
        with MovielinksClient(server.address) as client:
            yield server, load_current(tmp / "index"), client
    finally:
        server.stop()


def expected_vector(version, link_names: list[str]) -> np.ndarray:
    """What fold-in gives in this process for those links: the server must answer the same."""
    space = fold_in_space(version.link_vectors, link_film_counts(version.movie_links, len(version.links)),
                          Objective.from_manifest(version.manifest.objective, version.manifest.params))
    return fold_in(space, [[list(version.links).index(n) for n in link_names]]).vectors[0]


def test_similar_to_links_ranks_by_the_folded_in_vector_and_reports_unknown_links(served):
    _, version, client = served
    answer = client.similar_to_links(["Link 3", "link 7", "No Such Link"], k=5, reasons=2)
    assert answer.query_links == ["Link 3", "Link 7"] and answer.unknown_links == ["No Such Link"]
    vector = expected_vector(version, ["Link 3", "Link 7"])
    scores = np.asarray(version.movie_vectors) @ vector
    best = np.argsort(-scores, kind="stable")[:5]
    assert [n.name for n in answer.neighbours] == [version.movie_names[i] for i in best]
    np.testing.assert_allclose([n.score for n in answer.neighbours], scores[best], atol=1e-4)
    for n in answer.neighbours:  # reasons: links each shares with the links given, known ones only
        assert {r.link for r in n.reasons} <= {"Link 3", "Link 7"} and n.url
    assert answer.reasons_basis == "article_links"


def test_similar_to_links_takes_the_filters_of_similar_movies(served):
    _, version, client = served
    answer = client.similar_to_links(["Link 3"], k=4, filter=MovieFilter(min_year=1990))
    assert answer.neighbours and all(n.year and n.year >= 1990 for n in answer.neighbours)


def test_get_vectors_gives_unit_vectors_in_the_versions_space(served):
    _, version, client = served
    found = client.get_vectors(titles=[version.movie_names[4]], links=["link 2"], films=[["Link 3", "Link 7", "nope"]])
    assert found.index_version == version.name and found.dim == version.dim
    np.testing.assert_allclose(found.movies.vectors[0], version.movie_vectors[4], atol=1e-6)
    np.testing.assert_allclose(found.links.vectors[0], version.link_vectors[2], atol=1e-6)
    assert found.links.names == ["Link 2"] and found.films.unknown_links == [["nope"]]
    np.testing.assert_allclose(found.films.vectors[0], expected_vector(version, ["Link 3", "Link 7"]), atol=1e-5)
    assert found.films.vectors.dtype == np.float32 and found.films.vectors.shape == (1, version.dim)


def test_similar_to_vector_answers_as_the_movie_itself_does(served):
    _, version, client = served
    vector = np.asarray(version.movie_vectors[9]) * 3.0  # any length: the server normalises it
    answer = client.similar_to_vector(vector, k=3)
    assert answer.neighbours[0].name == version.movie_names[9]
    assert answer.neighbours[0].score == pytest.approx(1.0, abs=1e-4)


def test_recommend_and_explain_take_films_given_by_links_and_vectors(served):
    _, version, client = served
    by_vector = client.recommend([], liked_vectors=[version.movie_vectors[9]], k=5, strategy="average_vector")
    assert by_vector.best[0].title == version.movie_names[9]  # nothing given as a title is left out
    by_film = client.recommend([], liked_films=[["Link 3", "Link 7"]], k=5, reasons=1)
    assert len(by_film.best) == 5 and any(m.reasons for m in by_film.best)
    why = client.explain_similarity(version.movie_names[0], links_b=["Link 3", "Link 7"], k=5)
    assert why.b.name == "Link 3 | Link 7"
    expected = float(np.asarray(version.movie_vectors[0]) @ expected_vector(version, ["Link 3", "Link 7"]))
    assert why.cosine == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("call, message", [
    (lambda c: c.similar_to_links(["nothing known", "nor this"]), "none of the 2 links of links"),
    (lambda c: c.similar_to_links([f"Link {i}" for i in range(10_000)]), f"the limit is {MAX_FOLD_IN_LINKS:,}"),
    (lambda c: c.similar_to_links([]), "links needs at least 1 link"),
    (lambda c: c.similar_to_vector([float("nan")] * 8), "not a finite number"),
    (lambda c: c.similar_to_vector([1.0] * 3), "has 3 values; this index version's vectors have 8"),
    (lambda c: c.similar_to_vector([0.0] * 8), "all zeros"),
    (lambda c: c.get_vectors(), "needs at least 1"),
    (lambda c: c.recommend([], liked_vectors=[[float("inf")] * 8]), "liked_vectors[0] has a value that is not"),
    (lambda c: c.recommend([], liked_films=[["nope"]]), "links of liked_films"),
    (lambda c: c.explain_similarity("Movie 001, part \"1\"", "Movie 002, part \"2\"", links_b=["Link 1"]),
     "not both"),
])
def test_bad_input_is_a_clear_invalid_argument(served, call, message):
    _, _, client = served
    with pytest.raises(ClientError) as caught:
        call(client)
    assert caught.value.code == "INVALID_ARGUMENT" and message in caught.value.message


def test_get_vectors_refuses_more_names_or_values_than_one_answer_carries(served):
    _, version, client = served
    with pytest.raises(ClientError, match=f"the limit is {MAX_BATCH}") as caught:
        client.get_vectors(titles=[version.movie_names[0]] * (MAX_BATCH + 1))
    assert caught.value.code == "INVALID_ARGUMENT"
    # at this index's 8 dimensions the batch limit comes first; at 100, 5,001 vectors pass the values' limit
    with pytest.raises(ServiceError, match="indexer export --vectors"):
        check_vector_values(MAX_VECTOR_VALUES // 100 + 1, 100)


def client_cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movielinks.client", "--server", server.address, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_client_query_links_prints_the_films_like_the_links_and_the_unknown_ones(served):
    server, version, client = served
    done = client_cli(server, "query", "--links", "Link 3", "link 7", "No Such Link", "-k", "3")
    assert done.returncode == 0, done.stderr
    assert "films like: Link 3 | Link 7" in done.stdout and "unknown links, ignored: No Such Link" in done.stdout
    for n in client.similar_to_links(["Link 3", "Link 7"], k=3).neighbours:
        assert n.name in done.stdout
    as_json = json.loads(client_cli(server, "query", "--links", "Link 3", "--json").stdout)
    assert as_json["query_links"] == ["Link 3"]
    refused = client_cli(server, "query", "--links", "nothing known")
    assert refused.returncode != 0 and "none of the 1 links" in refused.stderr


def test_the_gateway_answers_links_and_vectors_as_json(served):
    server, version, _ = served

    def post(rpc: str, body: dict):
        request = urllib.request.Request(server.http_url + f"v1/{rpc}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    answer = post("similar-to-links", {"links": ["Link 3", "Link 7"], "k": 3})
    assert answer["query_links"] == ["Link 3", "Link 7"] and len(answer["neighbours"]) == 3
    vectors = post("get-vectors", {"titles": [version.movie_names[4]]})
    np.testing.assert_allclose(vectors["movies"][0]["values"], version.movie_vectors[4], atol=1e-6)
    with pytest.raises(urllib.error.HTTPError) as caught:
        post("similar-to-vector", {"vector": [1.0, 2.0]})
    error = json.loads(caught.value.read())["error"]
    assert caught.value.code == 400 and error["status"] == "INVALID_ARGUMENT" and "has 2 values" in error["message"]


def test_client_vectors_prints_writes_and_refuses_as_documented(served, tmp_path):
    server, version, client = served
    title = version.movie_names[4]
    args = ("vectors", title, "--links", "link 2", "--film", "Link 3", "Link 7", "nope", "--film", "Link 5")
    as_json = json.loads(client_cli(server, *args, "--json").stdout)
    assert (as_json["index_version"], as_json["dim"]) == (version.name, version.dim)
    np.testing.assert_allclose(as_json["movies"][0]["vector"], version.movie_vectors[4], atol=1e-6)
    assert as_json["links"][0]["name"] == "Link 2" and as_json["films"][0]["unknown_links"] == ["nope"]
    np.testing.assert_allclose(as_json["films"][0]["vector"], expected_vector(version, ["Link 3", "Link 7"]), atol=1e-5)
    text = client_cli(server, *args)
    assert text.returncode == 0, text.stderr
    assert f"movie: {title}\n" in text.stdout and "link: Link 2\n" in text.stdout
    assert "film: Link 3 | Link 7\n" in text.stdout and "unknown links, ignored: nope" in text.stdout
    written = client_cli(server, *args, "--out", str(tmp_path / "v.npy"))
    assert written.returncode == 0 and f"wrote 4 vectors of {version.dim} values" in written.stdout
    rows, about = np.load(tmp_path / "v.npy"), json.loads((tmp_path / "v.json").read_text())
    assert rows.dtype == np.float32 and rows.shape == (4, version.dim) and about["version"] == version.name
    assert about["names"] == [title, "Link 2", "Link 3 | Link 7", "Link 5"]
    assert about["kinds"] == ["movie", "link", "film", "film"]
    np.testing.assert_allclose(rows[1], version.link_vectors[2], atol=1e-6)
    assert client_cli(server, *args, "--out", str(tmp_path / "w.json")).returncode == 0
    assert json.loads((tmp_path / "w.json").read_text()) == as_json
    refused = client_cli(server, "vectors", "--film", "nothing known")
    assert refused.returncode == 2 and "none of the 1 links of films" in refused.stderr
    unknown = client_cli(server, "vectors", "Zzyzx Qwerty")
    assert unknown.returncode == 1 and "unknown movie 'Zzyzx Qwerty'" in unknown.stderr


def test_client_recommend_takes_films_given_by_their_links(served):
    server, version, client = served
    args = ("recommend", "--like-film", "Link 3", "Link 7", "--dislike-film", "Link 11", "-k", "5")
    want = client.recommend([], liked_films=[["Link 3", "Link 7"]], disliked_films=[["Link 11"]], k=5)
    as_json = json.loads(client_cli(server, *args, "--json").stdout)
    assert [m["title"] for m in as_json["best"]] == [m.title for m in want.best] and len(want.best) == 5
    text = client_cli(server, *args, "--like", version.movie_names[0])
    mixed = client.recommend([version.movie_names[0]], liked_films=[["Link 3", "Link 7"]],
                             disliked_films=[["Link 11"]], k=5)
    assert text.returncode == 0, text.stderr
    assert [line.split("  ")[1].strip() for line in text.stdout.splitlines()[2:] if line[:1].isdigit()] == \
        [m.title for m in mixed.best]
    refused = client_cli(server, "recommend", "--like-film", "nothing known", "nor this")
    assert refused.returncode == 2 and "none of the 2 links of liked_films" in refused.stderr


def test_client_why_takes_b_as_a_film_given_by_its_links(served):
    server, version, client = served
    title = version.movie_names[0]
    want = client.explain_similarity(title, links_b=["Link 3", "Link 7"], k=5)
    text = client_cli(server, "why", title, "--links-b", "Link 3", "link 7", "-k", "5")
    assert text.returncode == 0, text.stderr
    assert "B: Link 3 | Link 7" in text.stdout and f"cosine of the two movie vectors: {want.cosine:.4f}" in text.stdout
    as_json = json.loads(client_cli(server, "why", title, "--links-b", "Link 3", "Link 7", "-k", "5", "--json").stdout)
    assert as_json["b"]["name"] == "Link 3 | Link 7" and as_json["cosine"] == pytest.approx(want.cosine, abs=1e-6)
    assert [s["link"] for s in as_json["shared_links"]] == [s.link for s in want.shared_links]
    refused = client_cli(server, "why", title, "--links-b", "nothing known")
    assert refused.returncode == 2 and "none of the 1 links of links_b" in refused.stderr
    both = client_cli(server, "why", title, version.movie_names[1], "--links-b", "Link 3")
    assert both.returncode == 2 and "one of them" in both.stderr


def test_client_query_vector_takes_a_npy_or_a_json_list_and_answers_as_the_library(served, tmp_path):
    server, version, client = served
    title = version.movie_names[9]
    # the round trip a caller makes: one film's vector out (.npy, shape (1, dim)), films like it back
    assert client_cli(server, "vectors", title, "--out", str(tmp_path / "one.npy")).returncode == 0
    (tmp_path / "mine.json").write_text(json.dumps([3.0 * float(v) for v in version.movie_vectors[9]]))
    want = client.similar_to_vector(version.movie_vectors[9], k=4, filter=MovieFilter(min_year=1990))
    for name in ("one.npy", "mine.json"):
        done = client_cli(server, "query", "--vector", str(tmp_path / name), "-k", "4", "--from-year", "1990", "--json")
        assert done.returncode == 0, done.stderr
        assert [n["name"] for n in json.loads(done.stdout)["neighbours"]] == [n.name for n in want.neighbours]
    text = client_cli(server, "query", "--vector", str(tmp_path / "mine.json"), "-k", "3")
    assert text.returncode == 0 and text.stdout.startswith(f"films like the vector given   (index {version.name})")
    assert title in text.stdout.splitlines()[2]  # the film itself first, at cosine 1


def test_client_recommend_takes_liked_and_disliked_vectors_from_files(served, tmp_path):
    server, version, client = served
    np.save(tmp_path / "liked.npy", np.asarray(version.movie_vectors[9], dtype=np.float32))
    (tmp_path / "disliked.json").write_text(json.dumps([float(v) for v in version.movie_vectors[20]]))
    want = client.recommend([version.movie_names[0]], liked_vectors=[version.movie_vectors[9]],
                            disliked_vectors=[version.movie_vectors[20]], k=5, strategy="average_vector")
    done = client_cli(server, "recommend", "--like-vector", str(tmp_path / "liked.npy"), "--dislike-vector",
                      str(tmp_path / "disliked.json"), "--like", version.movie_names[0], "-k", "5",
                      "--strategy", "average_vector", "--json")
    assert done.returncode == 0, done.stderr
    assert [m["title"] for m in json.loads(done.stdout)["best"]] == [m.title for m in want.best]
    only = client_cli(server, "recommend", "--like-vector", str(tmp_path / "liked.npy"), "-k", "3")
    assert only.returncode == 0 and len(client.recommend([], liked_vectors=[version.movie_vectors[9]], k=3).best) == 3


@pytest.mark.parametrize("command", ["query", "recommend"])
def test_a_vector_file_of_the_wrong_length_is_named_in_the_servers_error(served, tmp_path, command):
    server, version, _ = served
    short = tmp_path / "short.json"
    short.write_text("[0.5, 0.25, 1]")
    args = ("query", "--vector", str(short)) if command == "query" else (
        "recommend", "--like", version.movie_names[0], "--like-vector", str(tmp_path / "ok.json"),
        "--like-vector", str(short))
    (tmp_path / "ok.json").write_text(json.dumps([1.0] * version.dim))
    done = client_cli(server, *args)
    option = "--vector" if command == "query" else "--like-vector"
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert f"{option} {short} has 3 values; this index version's vectors have {version.dim}" in done.stderr


@pytest.mark.parametrize("content, says", [
    (None, "No such file or directory"),
    ("[0.1, NaN, 0.3]", "value 1 is NaN"),
    ("[0.1, Infinity]", "value 1 is infinite"),
    ('{"vector": [0.1]}', "not a vector: give a JSON list of numbers"),
    ('[[0.1, 0.2], [0.3, 0.4]]', "not a vector: give a JSON list of numbers"),
    ("[]", "the vector has no values"),
    ("[0.1, 0.2", "not JSON"),
    (np.zeros((2, 8), dtype=np.float32), "its shape is (2, 8)"),
    (np.array([float("nan")] * 8), "value 0 is NaN"),
    (np.array(["a", "b"]), "not a vector of numbers"),
    (b"not numpy", "not a .npy file"),
])
def test_a_bad_vector_file_is_a_one_line_usage_error_before_any_call(served, tmp_path, content, says):
    server, _, _ = served
    path = tmp_path / ("v.npy" if isinstance(content, (np.ndarray, bytes)) else "v.json")
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    for args in (("query", "--vector", str(path)), ("recommend", "--like", "x", "--dislike-vector", str(path))):
        done = client_cli(server, *args)
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr.count("\n") == 1 and f"{path}: " in done.stderr and says in done.stderr, done.stderr
