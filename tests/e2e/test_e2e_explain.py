"""Answers that explain themselves, end to end: a run with its movies' links ->
`indexer build` -> the real server process -> the real client (library and command).

ExplainSimilarity, reasons, year/director/URL, every filter on similar movies,
batch, movies-for-a-link and recommend, the three strategies with liked links, and
title resolution with the title used said on stderr.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from movielinks.client import ClientError, MovielinksClient
from movielinks.client.client import MovieFilter
from tests.e2e_server import REPO, ServerProcess, build_index_cli
from tests.fixtures import make_run
from movielinks.trainer.run import load_run

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

TITLES = ["Toy Story", "Toy Story 2", "Toy Story 3", "The Godfather", "Amélie", "Titanic (1997 film)",
          "Star Wars (film)", "Alien (film)"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e_explain")
    run = load_run(make_run(tmp / "run", titles=TITLES, n_movies=300, n_links=60, years=True))
    build_index_cli(run.path, tmp / "index")
    old = load_run(make_run(tmp / "old_run", titles=TITLES, n_movies=300, n_links=60, movie_links=False))
    build_index_cli(old.path, tmp / "old_index")
    server, old_server = ServerProcess(tmp / "index"), ServerProcess(tmp / "old_index")
    with MovielinksClient(server.address) as client, MovielinksClient(old_server.address) as old_client:
        yield run, client, server, old_client
    assert server.stop() == 0 and old_server.stop() == 0


def ids(run, names):
    titles = [m.title for m in run.movies]
    return [titles.index(n) for n in names]


def year_of(run, i):
    released = run.movies[i].infobox.get("released", "")
    return int(released.split()[-1]) if released else 0


def test_why_names_the_links_both_articles_have(served):
    run, client, _, _ = served
    found = client.explain_similarity("Toy Story", "toy story 2", k=5)
    a, b = run.movie_links.of(0), run.movie_links.of(1)
    assert found.basis == "article_links" and found.b.name == "Toy Story 2"
    assert found.shared_total == len(np.intersect1d(a, b)) and (found.links_a, found.links_b) == (len(a), len(b))
    assert {run.links.index(s.link) for s in found.shared_links} <= set(np.intersect1d(a, b).tolist())
    contributions = [s.contribution for s in found.shared_links]
    assert contributions == sorted(contributions, reverse=True)
    if found.shared_total <= 5:
        assert sum(contributions) == pytest.approx(found.link_overlap_cosine, rel=1e-4)
    assert found.cosine == pytest.approx(float(run.movie_vectors[0] @ run.movie_vectors[1]), abs=1e-5)
    assert found.a.url == "https://en.wikipedia.org/wiki/Toy_Story" and found.a.director == "D0"
    with pytest.raises(ClientError) as same:
        client.explain_similarity("Toy Story", "toy story")
    assert same.value.code == "INVALID_ARGUMENT"


def test_an_index_without_movie_links_explains_by_model_associations(served):
    _, _, _, old_client = served
    found = old_client.explain_similarity("Toy Story", "Toy Story 2", k=3)
    assert found.basis == "model_associations" and len(found.shared_links) == 3
    assert all(s.contribution == pytest.approx(min(s.cosine_a, s.cosine_b), abs=1e-5) for s in found.shared_links)
    with pytest.raises(ClientError) as refused:
        old_client.similar_movies("Toy Story", filter=MovieFilter(must_link_to=["Link 1"]))
    assert refused.value.code == "INVALID_ARGUMENT" and "rebuild" in refused.value.message
    assert not old_client.info().has_movie_links


def test_results_carry_year_director_url_and_reasons(served):
    run, client, _, _ = served
    result = client.similar_movies("Toy Story", k=8, reasons=3)
    assert result.reasons_basis == "article_links" and result.query_url.endswith("/Toy_Story")
    for n in result.neighbours:
        i = ids(run, [n.name])[0]
        assert (n.year or 0) == year_of(run, i) and n.director == run.movies[i].infobox["director"]
        assert n.url.startswith("https://en.wikipedia.org/wiki/") and len(n.reasons) <= 3
        assert {run.links.index(r.link) for r in n.reasons} <= set(np.intersect1d(run.movie_links.of(0),
                                                                                  run.movie_links.of(i)).tolist())
    plain = client.similar_movies("Toy Story", k=8)
    assert [n.name for n in plain.neighbours] == [n.name for n in result.neighbours]
    assert all(not n.reasons for n in plain.neighbours) and plain.reasons_basis == ""


def test_every_filter_holds_over_grpc(served):
    run, client, _, _ = served
    link = 2
    linking = {i for i in range(len(run.movies)) if link in run.movie_links.of(i).tolist()}
    f = MovieFilter(min_year=1960, max_year=1999, must_link_to=["link 2"], exclude_titles=["Toy Story 3"],
                    exclude_franchise=True)
    found = ids(run, [n.name for n in client.similar_movies("Toy Story", k=30, filter=f).neighbours])
    allowed = [i for i in range(1, len(run.movies))
               if 1960 <= year_of(run, i) <= 1999 and i in linking and i not in (1, 2)]
    vectors = run.movie_vectors
    assert found == sorted(allowed, key=lambda i: -float(vectors[0] @ vectors[i]))[:30]
    batch = client.similar_movies_batch(["Toy Story", "Amélie"], k=30, filter=f)
    assert [n.name for n in batch[0].neighbours] == [run.movies[i].title for i in found]
    by_link = client.link_movies("Link 5", k=10, filter=MovieFilter(max_year=1980, exclude_titles=["Alien (film)"]))
    assert by_link.neighbours and all(0 < (n.year or 0) <= 1980 and n.name != "Alien (film)"
                                      for n in by_link.neighbours)
    recommended = client.recommend(["Toy Story"], k=10, filter=MovieFilter(exclude_franchise=True, min_year=1970))
    assert not {"Toy Story 2", "Toy Story 3"} & {m.title for m in recommended.best}
    assert all((m.year or 0) >= 1970 for m in recommended.best)
    unfiltered = client.similar_movies("Toy Story", k=299)
    assert {"Toy Story 2", "Toy Story 3"} <= {n.name for n in unfiltered.neighbours}


@pytest.mark.parametrize("movie_filter, words", [
    (MovieFilter(min_year=2000, max_year=1990), "after"),
    (MovieFilter(max_year=10_000), "max_year"),
    (MovieFilter(must_link_to=["Link 1"] * 21), "must_link_to"),
])
def test_bad_filters_are_invalid_naming_the_limit(served, movie_filter, words):
    _, client, _, _ = served
    with pytest.raises(ClientError) as refused:
        client.similar_movies("Toy Story", filter=movie_filter)
    assert refused.value.code == "INVALID_ARGUMENT" and words in refused.value.message


def test_strategies_and_liked_links(served):
    run, client, _, _ = served
    vectors = run.movie_vectors
    default = client.recommend(["Toy Story", "Alien (film)"], ["Amélie"], k=5)
    assert default.strategy == "neighbours" and "nearest neighbours" in default.score_meaning
    svm = client.recommend(["Toy Story", "Alien (film)"], ["Amélie"], k=5, strategy="svm")
    assert svm.strategy == "svm" and "decision value" in svm.score_meaning
    best = client.recommend(["Toy Story", "Alien (film)"], ["Amélie"], k=5, strategy="best_score")
    positives, negative = vectors[[0, 7]], vectors[4]
    top_positive, top_negative = (vectors @ positives.T).max(axis=1), vectors @ negative
    scores = np.where(top_positive > top_negative, top_positive, -top_negative ** 2)
    expected = [i for i in np.argsort(-scores, kind="stable") if i not in (0, 4, 7)][:5]
    assert ids(run, [m.title for m in best.best]) == expected and best.strategy == "best_score"
    by_link = client.recommend([], k=5, strategy="average_vector", liked_links=["Link 4"], reasons=2)
    cosines = vectors @ run.link_vectors[4]
    assert ids(run, [m.title for m in by_link.best]) == np.argsort(-cosines, kind="stable")[:5].tolist()
    assert [m.decision_value for m in by_link.best] == pytest.approx(np.sort(cosines)[::-1][:5].tolist(), abs=1e-5)
    with pytest.raises(ClientError) as unknown:
        client.recommend(["Toy Story"], strategy="magic")
    assert unknown.value.code == "INVALID_ARGUMENT" and "neighbours, svm" in unknown.value.message


def test_titles_resolve_as_a_person_expects(served):
    _, client, _, _ = served
    assert client.lookup_title("Godfather").title == "The Godfather"
    assert client.lookup_title("amelie").title == "Amélie"
    assert client.similar_movies("titanic").query == "Titanic (1997 film)"


def client_cli(server, *args):
    return subprocess.run([sys.executable, "-m", "movielinks.client", "--server", server.address, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_client_commands_show_facts_and_say_which_title_they_used(served):
    _, client, server, _ = served
    why = client_cli(server, "why", "Godfather", "Toy Story", "-k", "3")
    assert why.returncode == 0, why.stderr
    assert why.stdout.startswith("A: The Godfather") and "shared link" in why.stdout
    assert why.stderr == "client: using 'The Godfather' for 'Godfather'\n"
    as_json = client_cli(server, "--json", "why", "The Godfather", "Toy Story", "-k", "3")
    assert json.loads(as_json.stdout) == dataclasses.asdict(client.explain_similarity("The Godfather", "Toy Story", 3))
    assert as_json.stderr == ""
    table = client_cli(server, "query", "--movie", "amelie", "-k", "3", "--reasons", "2", "--from-year", "1950")
    assert table.returncode == 0 and "year" in table.stdout and "director" in table.stdout
    assert "https://en.wikipedia.org/wiki/" in table.stdout and "shares:" in table.stdout
    assert table.stderr == "client: using 'Amélie' for 'amelie'\n"
    recommend = client_cli(server, "recommend", "--like-link", "Link 4", "--strategy", "best_score", "-k", "3")
    assert recommend.returncode == 0 and recommend.stdout.startswith("score: best_score: the cosine")
    bad = client_cli(server, "query", "--movie", "Toy Story", "--from-year", "2001", "--to-year", "1999")
    assert bad.returncode == 2 and bad.stderr.startswith("client: error: filter.min_year")


def test_diverse_lists_over_the_real_server_and_the_cli(served):
    run, client, server, _ = served
    franchise = {"Toy Story", "Toy Story 2", "Toy Story 3"}
    capped = client.recommend(["Toy Story 3", "Alien (film)"], k=10, filter=MovieFilter(max_per_franchise=1))
    assert len(capped.best) == 10 and len({m.title for m in capped.best} & franchise) <= 1
    plain = client.similar_movies("Toy Story", k=8)
    diverse = client.similar_movies("Toy Story", k=8, filter=MovieFilter(diversity=0.8))
    assert len(diverse.neighbours) == 8 and diverse.neighbours[0] == plain.neighbours[0] and diverse != plain
    for bad, words in ((MovieFilter(diversity=1.5), "diversity must be between 0"),
                       (MovieFilter(max_per_franchise=-2), "max_per_franchise must be between 0")):
        with pytest.raises(ClientError) as refused:
            client.recommend(["Toy Story"], k=5, filter=bad)
        assert refused.value.code == "INVALID_ARGUMENT" and words in refused.value.message
    shown = subprocess.run([sys.executable, "-m", "movielinks.client", "--server", server.address, "recommend",
                            "--like", "Toy Story", "--diversity", "2"], capture_output=True, text=True, timeout=60)
    assert shown.returncode != 0 and "diversity must be between 0" in shown.stderr
