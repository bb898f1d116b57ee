"""A diverse list: at most N films of one franchise and MMR, as pure functions and as served."""
from __future__ import annotations

import numpy as np
import pytest

from movielinks.indexer.build import build_index
from movielinks.indexer.root import load_current
from movielinks.search.diversity import MAX_CANDIDATES, candidates_for, diversify
from movielinks.search.filters import FilterRequest
from movielinks.server.errors import Kind, ServiceError
from movielinks.server.service import MovieService
from tests.fixtures import make_run

# Ten franchises of 12 films each ("Saga", "Saga 2" ... "Saga 12") among 150 films: a list of 10 holds
# several of one.
NAMES = ("Saga", "Epic", "Tale", "Quest", "Chronicle", "Legend", "Journey", "Odyssey", "Fable", "Ballad")
TITLES = [name if i == 1 else f"{name} {i}" for name in NAMES for i in range(1, 13)]


def test_a_cap_per_group_keeps_the_best_of_each_and_fills_with_the_rest():
    ids, scores = np.array([5, 6, 7, 8, 9, -1]), np.array([0.9, 0.8, 0.7, 0.6, 0.5, -np.inf])
    groups = np.zeros(10, np.uint64)
    groups[[5, 6, 7]] = 3  # one franchise
    picked, kept = diversify(ids, scores, 4, np.eye(10, dtype=np.float32), groups=groups, max_per_group=2)
    assert picked.tolist() == [5, 6, 8, 9] and kept.tolist() == pytest.approx([0.9, 0.8, 0.6, 0.5])
    picked, _ = diversify(ids, scores, 6, np.eye(10, dtype=np.float32), groups=groups, max_per_group=1)
    assert picked.tolist() == [5, 8, 9, -1, -1, -1]  # padded where too few are left
    # weight 0 keeps the order it is given (a strategy's own MMR order), not the scores' order
    picked, _ = diversify(ids[[1, 0, 2, 3]], scores[[1, 0, 2, 3]], 3, np.eye(10, dtype=np.float32), groups=groups,
                          max_per_group=2)
    assert picked.tolist() == [6, 5, 8]


def test_mmr_trades_score_for_novelty_by_its_weight():
    vectors = np.array([[1, 0], [1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)  # 1 is a copy of 0
    ids, scores = np.array([0, 1, 2, 3]), np.array([1.0, 0.92, 0.9, 0.5])
    assert diversify(ids, scores, 3, vectors, weight=0.0)[0].tolist() == [0, 1, 2]
    # scaled scores 1, 0.84, 0.8, 0: after 0, the copy gains 0.7 x 0.84 - 0.3 x 1, film 2 0.7 x 0.8 - 0.3 x 0.8
    assert diversify(ids, scores, 3, vectors, weight=0.3)[0].tolist() == [0, 2, 1]
    assert diversify(ids, scores, 2, vectors, weight=1.0)[0].tolist() == [0, 3]  # novelty alone


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> MovieService:
    tmp = tmp_path_factory.mktemp("diverse")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=150, n_links=70), tmp / "index", progress=False)
    return MovieService(load_current(tmp / "index"))


def test_served_lists_hold_the_cap_and_mmr_changes_them(service):
    franchises = service.version.movie_titles.franchises
    names = list(service.version.movie_names)
    def labels(answer):
        return [label for label in (int(franchises[names.index(t)]) for t, _ in answer) if label]

    for call in (lambda f: service.similar_movies("Saga", 10, f).neighbours,
                 lambda f: [(m.title, m.score) for m in service.recommend(["Saga", "Epic"], [], 10, movie_filter=f).best]):
        assert len(labels(call(None))) > len(set(labels(call(None))))  # uncapped: several of one franchise
        capped = call(FilterRequest(max_per_franchise=1))
        assert len(capped) == 10 and len(labels(capped)) == len(set(labels(capped)))
        plain, diverse = call(None), call(FilterRequest(diversity=0.7))
        assert len(diverse) == 10 and diverse[0] == plain[0] and diverse != plain


@pytest.mark.parametrize("movie_filter, words", [
    (FilterRequest(diversity=1.5), "diversity must be between 0"),
    (FilterRequest(diversity=float("nan")), "diversity must be between 0"),
    (FilterRequest(max_per_franchise=-1), "max_per_franchise must be between 0"),
])
def test_bad_diversity_settings_are_refused_naming_the_bound(service, movie_filter, words):
    for call in (lambda: service.similar_movies("Saga", 5, movie_filter),
                 lambda: service.recommend(["Saga"], [], 5, movie_filter=movie_filter)):
        with pytest.raises(ServiceError, match=words) as refused:
            call()
        assert refused.value.kind is Kind.INVALID_ARGUMENT


def test_the_candidates_a_diverse_list_is_picked_from_are_bounded():
    assert candidates_for(10, 36_000) == 50 and candidates_for(200, 36_000) == 1_000
    assert candidates_for(1_000, 36_000) == MAX_CANDIDATES == candidates_for(5_000, 36_000)  # widened once, not twice
    assert candidates_for(6_000, 36_000) == 6_000 and candidates_for(10, 30) == 30  # never fewer than k, more than there are
