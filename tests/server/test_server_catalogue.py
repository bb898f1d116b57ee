"""The server's domain code: title resolution, neighbours, SVM recommendations, limits."""
from __future__ import annotations

import numpy as np
import pytest

import movielinks.server.catalogue

from movielinks.indexer.build import build_index
from movielinks.search import recommend as recommend_module
from movielinks.indexer.root import load_current
from movielinks.server.limits import MAX_BATCH, MAX_BATCH_NEIGHBOURS, MAX_K, MAX_RECOMMEND_TITLES, MAX_STRING_CHARS
from movielinks.server.service import MovieService
from movielinks.server.errors import Kind, ServiceError
from movielinks.search.recommend import MAX_STAND_IN_DISLIKES, stand_in_dislike_ids
from movielinks.server.titles import TitleResolver
from tests.fixtures import make_run, svm_decision

TITLES = ["Interstellar (film)", "Star Wars (film)", "Star Wars: The Force Awakens", "The Martian (film)",
          "Alien (film)", "Aliens (film)", "Heat (1995 film)", "Heat (1986 film)"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> MovieService:
    tmp = tmp_path_factory.mktemp("catalogue")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=250, n_links=80, years=True), tmp / "index",
                progress=False)
    return MovieService(load_current(tmp / "index"))


def error_kind(call) -> Kind:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value.kind


def test_title_resolution_order():
    resolver = TitleResolver(TITLES)
    assert resolver.resolve("Interstellar (film)") == (0, "exact")
    assert resolver.resolve("interstellar (FILM)") == (0, "case_insensitive")
    assert resolver.resolve("the martian") == (3, "qualifier")
    assert resolver.resolve("interst") == (0, "prefix")
    assert resolver.resolve("Inter-stellar (film)") == (0, "close")  # the same name written otherwise
    with pytest.raises(ServiceError, match=r"'Intersteller \(film\)': not in the catalogue .*did you mean: Interstellar"):
        resolver.resolve("Intersteller (film)")  # another spelling may be another film: asked
    with pytest.raises(ServiceError) as unknown:
        resolver.resolve("Star")  # a prefix of two titles: ambiguous, not guessed
    assert unknown.value.kind is Kind.NOT_FOUND
    assert "Star Wars (film)" in unknown.value.message and "Star Wars: The Force Awakens" in unknown.value.message
    with pytest.raises(ServiceError, match="ambiguous; use the exact title: Heat .*Heat"):
        resolver.resolve("heat")  # two films share the name and nothing tells them apart: both offered


def test_unknown_title_names_close_titles(catalogue):
    with pytest.raises(ServiceError) as caught:
        catalogue.similar_movies("Alienz (film)", 5)  # as close to "Alien" as to "Aliens": not guessed
    assert caught.value.kind is Kind.NOT_FOUND
    assert "Alien (film)" in caught.value.message
    assert caught.value.message.count(";") <= 5


def test_similar_movies_exclude_the_query_and_match_exact_search(catalogue):
    vectors = catalogue.version.movie_vectors
    answer = catalogue.similar_movies("Interstellar (film)", 10)
    query, neighbours = answer.query, answer.neighbours
    assert query == "Interstellar (film)"
    assert len(neighbours) == 10 and query not in [n for n, _ in neighbours]
    expected = np.argsort(-(vectors @ vectors[0]))[1:11]
    assert [n for n, _ in neighbours] == [catalogue.version.movies[i].title for i in expected]
    scores = [s for _, s in neighbours]
    assert scores == sorted(scores, reverse=True)
    batch = catalogue.similar_movies_batch(["Interstellar (film)", "alien (film)"], 10)
    assert batch[0] == answer
    assert batch[1] == catalogue.similar_movies("Alien (film)", 10)
    lean = catalogue.similar_movies_batch_names(["Interstellar (film)", "alien (film)"], 10)
    assert lean == [(a.query, a.neighbours) for a in batch]  # the same, names and scores alone


def test_links_and_movies_for_links(catalogue):
    link, similar = catalogue.similar_links("link 3", 5)  # case-insensitive
    assert link == "Link 3" and "Link 3" not in [n for n, _ in similar] and len(similar) == 5
    _, links = catalogue.movie_links("Alien (film)", 7)
    expected = np.argsort(-(catalogue.version.link_vectors @ catalogue.version.movie_vectors[4]))[:7]
    assert [n for n, _ in links] == [catalogue.version.links[i] for i in expected]
    movies = catalogue.link_movies("Link 3", 4).movies
    assert len(movies) == 4
    assert error_kind(lambda: catalogue.similar_links("Link 99999", 5)) is Kind.NOT_FOUND


def test_link_movies_come_from_the_stored_lists_up_to_their_length(catalogue, monkeypatch):
    version = catalogue.version
    stored_ids = version.link_movies.ids
    searched = catalogue.link_movies("Link 3", 30).movies  # longer than the stored 20: a search
    calls = []
    real_search = movielinks.server.catalogue.search
    monkeypatch.setattr(movielinks.server.catalogue, "search", lambda *a, **kw: calls.append(a) or real_search(*a, **kw))
    answer = catalogue.link_movies("Link 3", 10).movies
    assert not calls  # answered from the list
    link = list(version.links).index("Link 3")
    assert [m.title for m in answer] == [version.movies[i].title for i in stored_ids[link, :10].tolist()]
    assert [m.title for m in answer] == [m.title for m in searched[:10]]  # the same as the search (exact index)
    catalogue.link_movies("Link 3", 21)
    assert len(calls) == 1


def test_recommend_order_is_the_svm_decision_function(catalogue):
    # The svm strategy: likes against the seeded catalogue sample, dislikes as extra negatives (SVM_DISLIKED_WEIGHT),
    # over each film's vector, prominence and era affinity.
    liked, disliked = ["Interstellar (film)", "The Martian (film)", "Alien (film)"], ["Heat (1995 film)", "Star Wars (film)"]
    result = catalogue.recommend(liked, disliked, k=20, worst_k=5, strategy="svm")
    version = catalogue.version
    ids = {m.title: i for i, m in enumerate(version.movies)}
    decision = svm_decision(version, [ids[t] for t in liked], [ids[t] for t in disliked])
    order = [i for i in np.argsort(-decision) if version.movies[i].title not in liked + disliked]
    assert [m.title for m in result.best] == [version.movies[i].title for i in order[:20]]
    np.testing.assert_allclose([m.score for m in result.best], decision[order[:20]], atol=1e-4)
    assert [m.title for m in result.worst] == [version.movies[i].title for i in order[::-1][:5]]
    assert not {m.title for m in result.best + result.worst} & set(liked + disliked)


def test_svm_with_liked_links_fits_them_against_other_links_too(catalogue):
    # A link's vector is not distributed like the films': a sample of links joins the negatives.
    version = catalogue.version
    result = catalogue.recommend(["Alien (film)"], [], k=10, strategy="svm", liked_links=["Link 3", "Link 5"])
    decision = svm_decision(version, [4], [], [3, 5])  # Alien is movie 4
    order = [i for i in np.argsort(-decision) if i != 4]
    ids = {m.title: i for i, m in enumerate(version.movies)}
    got = [ids[m.title] for m in result.best]
    # The same fit up to libsvm's tolerance (the server fits float32 features): scores within 1e-3,
    # and the ten best up to that.
    np.testing.assert_allclose([m.score for m in result.best], decision[got], atol=1e-3)
    assert 4 not in got and decision[got].min() >= decision[order[9]] - 1e-3


def test_svm_learns_how_much_the_era_counts(catalogue):
    # Liked films of the 1960s: the fit gives the era a weight of its own, and other films of
    # those years rise above what the vectors alone would place them.
    version = catalogue.version
    years = np.asarray(version.years)
    liked = np.flatnonzero((years >= 1960) & (years < 1965))[:6].tolist()
    assert len(liked) == 6
    result = catalogue.recommend([version.movies[i].title for i in liked], [], k=20, strategy="svm")
    ids = {m.title: i for i, m in enumerate(version.movies)}
    best_years = years[[ids[m.title] for m in result.best]]
    assert np.mean(np.abs(best_years - 1962) <= 6) > np.mean(np.abs(years[years > 0] - 1962) <= 6) * 2


def test_recommend_without_dislikes_is_deterministic(catalogue):
    first = catalogue.recommend(["Interstellar (film)", "Alien (film)"], [], k=10)
    again = catalogue.recommend(["alien (film)", "Interstellar (film)"], [], k=10)
    assert (first.best, first.worst) == (again.best, again.worst) and len(first.best) == 10
    negatives = stand_in_dislike_ids(250, [0, 4])
    assert len(negatives) == 50 and not {0, 4} & set(negatives.tolist())


def test_predict_attribute(catalogue):
    prediction = catalogue.predict_attribute("Alien (film)", "rotten_tomatoes")
    model = catalogue.version.attribute_models["rotten_tomatoes"]
    assert prediction.predicted == pytest.approx(float(model.predict(catalogue.version.movie_vectors[4])))
    assert prediction.known == catalogue.version.movies[4].attributes.get("rotten_tomatoes")
    assert (prediction.heldout_mse, prediction.baseline_mse) == (model.heldout_mse, model.baseline_mse)
    assert error_kind(lambda: catalogue.predict_attribute("Alien (film)", "box office")) is Kind.NOT_FOUND


def test_export_covers_every_movie_in_order(catalogue):
    chunks = list(catalogue.export_neighbours(3, chunk_size=64))
    rows = [row for chunk in chunks for row in chunk]
    assert [q for q, _ in rows] == [m.title for m in catalogue.version.movies]
    first = catalogue.similar_movies(rows[0][0], 3)
    assert len(chunks) == 4 and rows[0] == (first.query, first.neighbours)


@pytest.mark.parametrize("call", [
    lambda c: c.similar_movies("Alien (film)", 0),
    lambda c: c.similar_movies("Alien (film)", -1),
    lambda c: c.similar_movies("Alien (film)", MAX_K + 1),
    lambda c: c.similar_movies("", 5),
    lambda c: c.similar_movies("   ", 5),
    lambda c: c.similar_movies("x" * (MAX_STRING_CHARS + 1), 5),
    lambda c: c.similar_movies_batch([], 5),
    lambda c: c.similar_movies_batch(["Alien (film)"] * (MAX_BATCH + 1), 5),
    lambda c: c.similar_movies_batch(["Alien (film)"] * (MAX_BATCH_NEIGHBOURS // 10 + 1), 10),
    lambda c: c.recommend(["Alien (film)"] * (MAX_RECOMMEND_TITLES // 2), ["Heat (1995 film)"] * 501, 5),
    lambda c: c.recommend([], ["Alien (film)"], 5),
    lambda c: c.recommend(["Alien (film)"], ["alien (film)"], 5),
    lambda c: c.recommend(["Alien (film)"], [], 5, worst_k=-1),
    lambda c: c.export_neighbours(5, chunk_size=-3).__next__(),
])
def test_bad_requests_are_invalid_arguments(catalogue, call):
    assert error_kind(lambda: call(catalogue)) is Kind.INVALID_ARGUMENT


def test_misspelt_titles_cost_a_bounded_amount_of_work(catalogue, monkeypatch):
    import time

    started = time.perf_counter()
    batch = catalogue.similar_movies_batch_names(["Inter-stellar (film)"] * 5000, 1)  # resolved once, not 5000 times
    assert time.perf_counter() - started < 5 and batch[0][0] == "Interstellar (film)"
    monkeypatch.setattr("movielinks.server.limits.MAX_CLOSE_MATCHES", 1)
    assert len(catalogue.similar_movies_batch_names(["Inter-stellar (film)", "Alien (film)"], 1)) == 2
    with pytest.raises(ServiceError, match="close") as caught:
        catalogue.similar_movies_batch_names(["Inter-stellar (film)", "The Mar-tian (film)"], 1)
    assert caught.value.kind is Kind.INVALID_ARGUMENT


def test_recommend_stops_between_its_steps_once_the_caller_is_gone(catalogue, monkeypatch):
    # Issue 13.2: a Recommend ran on long past its caller's deadline.
    fits: list[int] = []
    real_fit = recommend_module.fit_linear_svm
    monkeypatch.setattr(recommend_module, "fit_linear_svm", lambda *a, **kw: fits.append(1) or real_fit(*a, **kw))
    answers = iter([True, False])  # alive before the fit, gone after it
    with pytest.raises(ServiceError) as stopped:
        catalogue.recommend(["Alien (film)"], [], 5, strategy="svm", alive=lambda: next(answers))
    assert stopped.value.kind is Kind.STOPPED and fits == [1]
    with pytest.raises(ServiceError):
        catalogue.recommend(["Alien (film)"], [], 5, strategy="svm", alive=lambda: False)
    assert fits == [1]  # gone from the start: no fit at all
    assert len(catalogue.recommend(["Alien (film)"], [], 5, strategy="svm", alive=lambda: True).best) == 5
    with pytest.raises(ServiceError) as stopped:  # the default strategy checks too
        catalogue.recommend(["Alien (film)"], [], 5, alive=lambda: False)
    assert stopped.value.kind is Kind.STOPPED


def test_stand_in_dislikes_are_capped():
    assert len(stand_in_dislike_ids(100_000, list(range(1000)))) == MAX_STAND_IN_DISLIKES
    assert len(stand_in_dislike_ids(100_000, [1, 2])) == 50
