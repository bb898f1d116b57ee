"""Stored neighbour lists hold ids only: the scores served are the vectors' inner products, the
same as a version that stores them (written before they were dropped) serves, and it still loads."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from movielinks.indexer import version as index_version
from movielinks.indexer.build import all_movie_neighbours, build_index, nearest_rows
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.root import load_current
from movielinks.indexer.validate import ranked_lists_problem
from movielinks.indexer.version import load_version
from movielinks.search import recommend
from movielinks.search import filters
from movielinks.search.filters import FilterRequest
from movielinks.search.neighbours import NeighbourLists, pair_scores
from movielinks.server.service import MovieService
from tests.fixtures import make_run
from tests.ops_support import replace_with_checksum

N_MOVIES, N_LINKS = 260, 90


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> tuple[MovieService, MovieService]:
    """A version as built now (ids only), and its copy with scores stored as versions were written before."""
    tmp = tmp_path_factory.mktemp("stored")
    build_index(make_run(tmp / "run", n_movies=N_MOVIES, n_links=N_LINKS, years=True), tmp / "index", progress=False)
    built = load_current(tmp / "index")
    old = tmp / "old" / built.name
    shutil.copytree(built.path, old)
    # What the indexer wrote before: the lists as searched, with their scores, and no scales.
    for name, (ids, scores) in ((index_version.MOVIE_NEIGHBOURS,
                                 all_movie_neighbours(built.movie_index, built.movie_vectors, built.movie_neighbours.k)),
                                (index_version.LINK_MOVIES,
                                 nearest_rows(built.movie_index, built.link_vectors, built.link_movies.k))):
        np.savez(old / name, ids=ids, scores=scores)
        replace_with_checksum(old, name, (old / name).read_bytes())
    return MovieService(built), MovieService(load_version(old))


def test_built_lists_hold_ids_and_scales_only_and_the_old_ones_load(versions) -> None:
    new, old = versions
    for name in (index_version.MOVIE_NEIGHBOURS, index_version.LINK_MOVIES):
        with np.load(new.version.path / name) as saved:
            assert "scores" not in saved.files
            assert ("scales" in saved.files) == (name == index_version.MOVIE_NEIGHBOURS)
        with np.load(old.version.path / name) as saved:
            assert set(saved.files) == {"ids", "scores"}
    assert new.version.movie_neighbours.scores is None and new.version.link_movies.scores is None
    assert old.version.movie_neighbours.scores is not None and old.version.movie_scales is None
    np.testing.assert_array_equal(new.version.movie_neighbours.ids, old.version.movie_neighbours.ids)
    np.testing.assert_array_equal(new.version.link_movies.ids, old.version.link_movies.ids)


def test_stored_scales_are_the_local_scales_of_the_recomputed_scores(versions) -> None:
    new, old = versions
    lists = new.version.movie_neighbours
    _, scores = lists.first(np.arange(N_MOVIES), lists.k)
    np.testing.assert_allclose(new.version.movie_scales, recommend.local_scales(scores), rtol=0, atol=1e-6)
    # A version written before computes them from its stored scores, as the server did.
    np.testing.assert_array_equal(old.catalogue.movie_scales, recommend.local_scales(old.version.movie_neighbours.scores))
    np.testing.assert_allclose(new.catalogue.movie_scales, old.catalogue.movie_scales, rtol=0, atol=1e-6)


def _assert_same(new_movies, old_movies, query_vector, movie_vectors, titles) -> None:
    """The same movies in the same order, each scored its inner product (float32 rounding)."""
    assert [m.title for m in new_movies] == [m.title for m in old_movies] and new_movies
    expected = [float(movie_vectors[titles.index(m.title)] @ query_vector) for m in new_movies]
    np.testing.assert_allclose([m.score for m in new_movies], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose([m.score for m in new_movies], [m.score for m in old_movies], rtol=0, atol=1e-6)


@pytest.mark.parametrize("movie_filter", [None, FilterRequest(min_year=1960)])
def test_similar_and_link_movies_score_the_vectors_as_a_version_with_scores_does(versions, movie_filter) -> None:
    new, old = versions
    vectors = np.asarray(new.version.movie_vectors)
    titles = list(new.version.movie_names)
    for movie in (0, 17, 200):
        _assert_same(new.similar_movies(titles[movie], 10, movie_filter).movies,
                     old.similar_movies(titles[movie], 10, movie_filter).movies, vectors[movie], vectors, titles)
    for link in (0, 5, 60):
        name = new.version.links[link]
        _assert_same(new.link_movies(name, 10).movies, old.link_movies(name, 10).movies,
                     np.asarray(new.version.link_vectors)[link], vectors, titles)


def test_recommend_answers_as_a_version_with_scores_does(versions) -> None:
    new, old = versions
    titles = list(new.version.movie_names)
    liked, disliked = [titles[i] for i in (3, 40, 77)], [titles[i] for i in (5, 150)]
    for call in (lambda s: s.recommend(liked, disliked, k=15, worst_k=3),
                 lambda s: s.recommend([], [], k=5, liked_links=[s.version.links[4]])):
        a, b = call(new), call(old)
        for got, expected in ((a.best, b.best), (a.worst, b.worst)):
            assert [m.title for m in got] == [m.title for m in expected]
            np.testing.assert_allclose([m.score for m in got], [m.score for m in expected], rtol=0, atol=1e-5)


def test_pair_scores_are_inner_products_with_padding_at_minus_infinity() -> None:
    rng = np.random.default_rng(0)
    movies = rng.normal(size=(50, 8)).astype(np.float32)
    rows = rng.normal(size=(6, 8)).astype(np.float32)
    ids = rng.integers(0, 50, (6, 5))
    ids[2, 3:] = -1
    scores = pair_scores(rows, movies, ids)
    expected = np.where(ids >= 0, np.einsum("rd,rmd->rm", rows.astype(np.float64), movies[ids].astype(np.float64)),
                        -np.inf)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    lists = NeighbourLists(ids.astype(np.int32), rows, movies)
    got_ids, got = lists.chosen(np.array([2, 0]), np.array([[4, 0], [1, -1]]))
    assert got_ids.tolist() == [[-1, ids[2, 0]], [ids[0, 1], -1]]
    np.testing.assert_array_equal(got, [[-np.inf, scores[2, 0]], [scores[0, 1], -np.inf]])


def test_products_of_unaligned_rows_equal_the_plain_product(monkeypatch, versions) -> None:
    # A version's vectors live inside the FAISS file, not aligned for float32 (indexer.version).
    assert not np.asarray(versions[0].version.movie_vectors).flags.aligned
    rng = np.random.default_rng(0)
    plain = rng.normal(size=(1000, 8)).astype(np.float32)
    buffer = np.zeros(plain.nbytes + 2, np.uint8)
    unaligned = buffer[2:].view(np.float32).reshape(plain.shape)
    unaligned[...] = plain
    assert not unaligned.flags.aligned
    monkeypatch.setattr(filters, "ALIGNED_BLOCK_ROWS", 300)  # blocks of 300 rows and a last one of 100
    for queries in (rng.normal(size=(1, 8)).astype(np.float32), rng.normal(size=(5, 8))):
        np.testing.assert_allclose(filters.row_products(queries, unaligned), queries @ plain.T, rtol=1e-6, atol=1e-6)
        assert filters.row_products(queries, unaligned).dtype == (queries @ plain.T).dtype
        np.testing.assert_array_equal(filters.row_products(queries, plain), queries @ plain.T)
        for rows in (unaligned, plain):
            np.testing.assert_allclose(filters.row_maxima(queries, rows), (queries @ plain.T).max(axis=0), rtol=1e-6,
                                       atol=1e-6)
    assert (filters.row_maxima(np.empty((0, 8), np.float32), plain) == -np.inf).all()


def test_a_filtered_scan_gives_the_same_answer_whatever_it_holds_at_once(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    vectors, queries = rng.normal(size=(400, 8)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    allowed = rng.random(400) < 0.8  # not selective: every row scored
    excluded = [rng.choice(400, 3, replace=False) for _ in range(30)]
    whole = filters.filtered_search(vectors, queries, allowed, excluded, 7)
    monkeypatch.setattr(filters, "SCORES_PER_PRODUCT", 1000)  # 2 queries a product
    parts = filters.filtered_search(vectors, queries, allowed, excluded, 7)
    np.testing.assert_array_equal(parts[0], whole[0])
    np.testing.assert_array_equal(parts[1], whole[1])
    scores = np.where(allowed, queries @ vectors.T, -np.inf)
    for row, ids in enumerate(excluded):
        scores[row, ids] = -np.inf
    np.testing.assert_array_equal(whole[0], np.argsort(-scores, axis=1, kind="stable")[:, :7])


def test_lists_are_checked_when_built_not_when_loaded(tmp_path: Path, versions) -> None:
    ids = np.array([[1, 2, -1], [0, 2, 1]])
    assert ranked_lists_problem(ids, np.float32([[0.9, 0.8, -np.inf], [0.7, 0.6, 0.5]])) is None
    assert "not ranked" in ranked_lists_problem(ids, np.float32([[0.8, 0.9, -np.inf], [0.7, 0.6, 0.5]]))
    assert "not finite" in ranked_lists_problem(ids, np.float32([[0.9, np.nan, -np.inf], [0.7, 0.6, 0.5]]))
    assert "not ranked" in ranked_lists_problem(np.array([[1, -1, 2]]), np.float32([[0.9, -np.inf, 0.5]]))
    # A version whose neighbours have neither scales nor scores cannot scale a recommendation: refused.
    new, _ = versions
    copy = tmp_path / new.version.name
    shutil.copytree(new.version.path, copy)
    path = copy / index_version.MOVIE_NEIGHBOURS
    np.savez(path, ids=np.asarray(new.version.movie_neighbours.ids))
    replace_with_checksum(copy, index_version.MOVIE_NEIGHBOURS, path.read_bytes())
    with pytest.raises(IndexerError, match="neither local scales nor scores"):
        load_version(copy)
