"""The neighbours recommendation (the default): its parts as pure functions, the prominence the
indexer stores, and the served ranking against the same score computed here from the raw vectors."""
from __future__ import annotations

import numpy as np
import pytest

from movielinks.common.records import prominence
from movielinks.indexer.build import build_index
from movielinks.indexer.root import load_current
from movielinks.search import recommend
from movielinks.search.diversity import candidates_for, diversify
from movielinks.server.errors import ServiceError
from movielinks.server.service import MovieService
from tests.fixtures import make_run


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> MovieService:
    tmp = tmp_path_factory.mktemp("neighbours")
    build_index(make_run(tmp / "run", n_movies=260, n_links=90, years=True), tmp / "index", progress=False)
    return MovieService(load_current(tmp / "index"))


def test_prominence_reads_box_office_and_reviews():
    assert prominence({}) == 0.0
    assert prominence({"rotten_tomatoes": 1.0}) == pytest.approx(2 / 3)  # known, best reviewed, no gross
    assert prominence({"gross": 1e9, "rotten_tomatoes": 1.0}) == pytest.approx(1.0)
    assert prominence({"gross": 1e6}) == pytest.approx(0.5)  # known, reviews unknown (a half), gross at the floor
    assert prominence({"gross": 1e12, "rotten_tomatoes": 7.0}) == pytest.approx(1.0)  # clipped, never above 1


def test_relevance_counts_close_neighbours_most_and_scales_to_one():
    ids = np.array([[2, 3, -1], [3, 1, 0]])
    scores = np.array([[0.9, 0.5, -np.inf], [0.8, -0.2, 0.1]])
    relevance = recommend.neighbour_relevance(ids, scores, 5)
    power = recommend.NEIGHBOUR_POWER
    raw = np.array([0.1 ** power, 0.0, 0.9 ** power, 0.5 ** power + 0.8 ** power, 0.0])  # a negative cosine counts 0
    np.testing.assert_allclose(relevance, raw / raw.max(), rtol=1e-6)


def test_local_scaling_lowers_each_cosine_by_the_two_films_local_scales():
    ids = np.array([[2, 3, -1], [3, 1, 0]])
    scores = np.array([[0.9, 0.5, -np.inf], [0.8, -0.2, 0.1]])
    example_scales = recommend.local_scales(scores)
    np.testing.assert_allclose(example_scales, [0.7, (0.8 - 0.2 + 0.1) / 3], rtol=1e-6)  # padding left out
    movie_scales = np.array([0.2, 0.0, 0.4, 0.6, 0.0])
    relevance = recommend.neighbour_relevance(ids, scores, 5, example_scales, movie_scales)
    half = recommend.LOCAL_SCALING / 2
    raw = np.zeros(5)
    for row, scale in zip(range(2), example_scales):
        for movie, cosine in zip(ids[row], scores[row]):
            if movie >= 0:
                raw[movie] += max(cosine - half * (scale + movie_scales[movie]), 0) ** recommend.NEIGHBOUR_POWER
    np.testing.assert_allclose(relevance, raw / raw.max(), rtol=1e-5)
    assert relevance[2] == 1.0 and relevance[1] == 0.0  # the closest pair for its region leads; a negative cosine counts 0


def test_local_scales_are_the_same_a_block_at_a_time(monkeypatch):
    rng = np.random.default_rng(3)
    scores = np.sort(rng.uniform(-1, 1, (1000, 30)).astype(np.float32), axis=1)[:, ::-1].copy()
    scores[::7, 15:] = -np.inf  # padding past the films there are
    scores[::11, :] = np.nan  # a row with none
    whole = recommend.local_scales(scores)
    nearest = scores[:, :recommend.LOCAL_SCALE_NEIGHBOURS].astype(np.float64)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):  # nanmean of the empty rows
        expected = np.nan_to_num(np.nanmean(np.where(np.isfinite(nearest), nearest, np.nan), axis=1))
    np.testing.assert_allclose(whole, expected, rtol=1e-6)
    assert whole[::11].tolist() == [0.0] * len(whole[::11])
    monkeypatch.setattr(recommend, "LOCAL_SCALE_BLOCK", 64)
    np.testing.assert_array_equal(recommend.local_scales(scores), whole)


def test_era_is_a_kernel_over_the_years_given():
    years = np.array([0, 1990, 1993, 2020], dtype=np.int16)
    era = recommend.era_affinity(years, np.array([1990, 0, 1996]))  # an unknown example year is ignored
    spread = recommend.era_spread(np.array([1990, 1996]))
    expected = [0.0, (1 + np.exp(-0.5 * (6 / spread) ** 2)) / 2, np.exp(-0.5 * (3 / spread) ** 2),
                (np.exp(-0.5 * (30 / spread) ** 2) + np.exp(-0.5 * (24 / spread) ** 2)) / 2]
    np.testing.assert_allclose(era, expected, rtol=1e-5, atol=1e-12)
    assert not recommend.era_affinity(years, np.array([0])).any()  # no year known: no era at all


def test_the_era_kernel_is_as_wide_as_the_persons_years_spread():
    # Silverman's rule of thumb, 0.9 x min(sd, IQR / 1.34) x n ** -0.2, in range, then shrunk towards
    # ERA_SPREAD_YEARS as if measured on ERA_SPREAD_PRIOR_FILMS more films.
    def shrunk(rule, n):
        prior = recommend.ERA_SPREAD_PRIOR_FILMS
        return (n * rule + prior * recommend.ERA_SPREAD_YEARS) / (n + prior)

    decades = np.array([1968, 1975, 1981, 1985, 1990, 1994, 1996, 2003], dtype=np.float64)
    q75, q25 = np.percentile(decades, [75, 25])
    rule = 0.9 * min(decades.std(), (q75 - q25) / 1.34) * len(decades) ** -0.2
    assert recommend.ERA_SPREAD_RANGE[0] < rule < recommend.ERA_SPREAD_RANGE[1]
    assert recommend.era_spread(decades) == pytest.approx(shrunk(rule, 8))
    one_year = np.full(20, 1995.0)  # no spread at all: the narrowest kernel the range allows, shrunk
    assert recommend.era_spread(one_year) == pytest.approx(shrunk(recommend.ERA_SPREAD_RANGE[0], 20))
    assert recommend.era_spread(decades) > recommend.era_spread(np.array([1993, 1994, 1995, 1995, 1996, 1997]))
    assert recommend.era_spread(np.array([1995.0])) == recommend.ERA_SPREAD_YEARS  # one year says nothing of spread


def test_the_era_comes_from_the_liked_films_and_from_the_disliked_only_without_them():
    years = np.array([1990, 0, 1997, 2001], dtype=np.int16)
    assert recommend.era_years(years, np.array([0]), np.array([2])).tolist() == [1990]  # not 1997
    assert recommend.era_years(years, np.array([1]), np.array([2, 3])).tolist() == [1997, 2001]  # no liked year known
    assert recommend.era_years(years, np.array([], np.int64), np.array([3])).tolist() == [2001]


def test_the_default_is_neighbours_and_ranks_as_its_score_says(service):
    version = service.version
    vectors = np.asarray(version.movie_vectors, dtype=np.float64)
    liked, disliked = [3, 40, 77], [5, 150]
    result = service.recommend([version.movie_names[i] for i in liked], [version.movie_names[i] for i in disliked],
                               k=15, worst_k=3)
    assert result.strategy == "neighbours" and result.score_meaning == recommend.SCORE_MEANING["neighbours"]

    every = vectors @ vectors.T  # by brute force: every pair's cosine, a film's own left out
    np.fill_diagonal(every, -np.inf)
    scale = -np.sort(-every, axis=1)[:, :recommend.LOCAL_SCALE_NEIGHBOURS].mean(axis=1)  # mean cosine to its 10 nearest

    def relevance(examples, scaling=recommend.LOCAL_SCALING):  # each example's 100 nearest other movies
        total = np.zeros(len(vectors))
        for e in examples:
            nearest = np.argsort(-every[e], kind="stable")[:recommend.NEIGHBOURS_PER_EXAMPLE]
            scaled = every[e, nearest] - scaling * (scale[e] + scale[nearest]) / 2
            total[nearest] += np.maximum(scaled, 0) ** recommend.NEIGHBOUR_POWER
        return total / total.max()

    years = np.asarray(version.years, dtype=np.float64)
    known = years[liked][years[liked] > 0]  # the liked films' years: disliked ones say the era only without them
    assert len(known)
    era = np.exp(-0.5 * ((years[:, None] - known[None, :]) / recommend.era_spread(known)) ** 2).mean(axis=1)
    era[years == 0] = 0
    # The prior counts in full near the liked films (plain relevance >= PRIOR_NEAR), PRIOR_ELSEWHERE far off.
    reach = recommend.PRIOR_ELSEWHERE + (1 - recommend.PRIOR_ELSEWHERE) * np.minimum(
        relevance(liked, scaling=0.0) / recommend.PRIOR_NEAR, 1)
    expected = (relevance(liked) - recommend.DISLIKED_WEIGHT * relevance(disliked)
                + reach * era * (recommend.ERA_WEIGHT + recommend.PROMINENCE_WEIGHT * np.asarray(version.prominence)))
    order = [i for i in np.argsort(-expected, kind="stable") if i not in liked + disliked]
    candidates = np.array(order[:candidates_for(15, len(vectors) - 1)])
    picked, _ = diversify(candidates, expected[candidates], 15, version.movie_vectors,
                          weight=recommend.NEIGHBOURS_DIVERSITY)  # the list is picked by MMR (test_diversity)
    assert [m.title for m in result.best] == [version.movie_names[i] for i in picked]
    np.testing.assert_allclose([m.score for m in result.best], expected[picked], atol=1e-4)
    assert [m.title for m in result.best] != [version.movie_names[i] for i in order[:15]]  # MMR moved some
    # The worst: the lowest scores (films far from every example tie at the era term, so compare scores).
    lowest = np.sort(expected[order])[:3]
    np.testing.assert_allclose([m.score for m in result.worst], lowest, atol=1e-4)
    assert all(expected[version.movie_names.index(title)] <= lowest[-1] + 1e-4 for title in (m.title for m in result.worst))


def test_the_index_stores_each_films_prominence(service):
    version = service.version
    stored = np.asarray(version.prominence)
    assert stored.dtype == np.float32 and len(stored) == len(version.movie_names)
    np.testing.assert_allclose(stored, [prominence(version.movies[i].attributes) for i in range(len(stored))], rtol=1e-6)
    assert stored.max() > 0 and (stored == 0).any()  # the fixture gives reviews to two films in three


def test_liked_links_work_with_the_default_and_an_unknown_strategy_is_refused(service):
    version = service.version
    by_link = service.recommend([], [], liked_links=[version.links[4]], k=5)
    assert by_link.strategy == "neighbours" and len(by_link.best) == 5
    with pytest.raises(ServiceError, match="unknown strategy 'neighbors'"):
        service.recommend([version.movie_names[0]], [], 5, strategy="neighbors")


def test_the_prior_counts_in_full_only_near_the_liked_films():
    reach = recommend.prior_reach(np.array([0.0, recommend.PRIOR_NEAR / 2, recommend.PRIOR_NEAR, 1.0]))
    elsewhere = recommend.PRIOR_ELSEWHERE
    np.testing.assert_allclose(reach, [elsewhere, (1 + elsewhere) / 2, 1.0, 1.0], rtol=1e-6)
