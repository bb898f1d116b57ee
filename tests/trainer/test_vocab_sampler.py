"""Vocabulary, held-out split and negative sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest

from movielinks.trainer.data import Film, LinkTable
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.sampler import (CHECKED_FROM, _distinct_rows, _draw_links, _grid_clashes, contains,
                                        epoch_batches, grid_shape, pair_keys, popularity_cdf, sample_non_pairs,
                                        split_pairs, true_share)
from movielinks.trainer.train import TrainConfig, train
from movielinks.trainer.vocab import build_vocabulary


def films() -> LinkTable:
    return LinkTable.from_films([
        Film("A", {}, ["x", "y", "x", "rare"]),
        Film("B", {}, ["y", "z", "x"]),
        Film("C", {}, ["z", "y", "x"]),
        Film("D", {}, ["rare", "only once"]),
        Film("E", {}, ["z"]),
    ])


def test_the_vocabulary_marks_the_pairs_whose_link_a_film_has_only_in_citations():
    table = LinkTable.from_films([Film("A", {}, ["x", "y", "x", "z"], kinds="brrn"), Film("B", {}, ["y", "x"], kinds="rb"),
                                  Film("C", {}, ["x", "y"])])
    vocab, kept = build_vocabulary(table, min_link_count=1)
    assert {(vocab.movies[m], vocab.links[j]) for (m, j), c in zip(vocab.pairs.tolist(), vocab.cited) if c} == {
        ("A", "y"), ("A", "z"), ("B", "y")}
    assert build_vocabulary(LinkTable.from_films([Film("C", {}, ["x", "y"])]), 1)[0].cited is None


def test_vocabulary_keeps_links_in_enough_films_with_stable_ids():
    vocab, kept = build_vocabulary(films(), min_link_count=3)
    assert vocab.links == ["x", "y", "z"]  # order of first appearance; "rare" is in only 2 films
    assert vocab.movies == ["A", "B", "C", "E"]  # D has no kept link
    assert kept.tolist() == [0, 1, 2, 4]
    assert vocab.dropped_movies == 1
    # unique pairs: A's repeated "x" counts once
    assert vocab.pairs.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2], [3, 2]]
    again, _ = build_vocabulary(films(), min_link_count=3)
    assert again.links == vocab.links and np.array_equal(again.pairs, vocab.pairs)


def test_vocabulary_counts_films_not_occurrences():
    empty, kept = build_vocabulary(LinkTable.from_films([Film("A", {}, ["x"] * 5), Film("B", {}, ["x"])]),
                                   min_link_count=3)
    assert empty.links == [] and len(kept) == 0  # "x" occurs 6 times but in only 2 films
    vocab, _ = build_vocabulary(LinkTable.from_films([Film("A", {}, ["x"] * 5), Film("B", {}, ["x"])]), min_link_count=2)
    assert vocab.links == ["x"]


def test_flags_are_checked_at_the_edge_and_data_problems_name_the_fix(tmp_path):
    with pytest.raises(TrainerError, match="--min-link-count must be at least 1"):
        TrainConfig(min_link_count=0).check()
    data = tmp_path / "films.ndjson"
    table = films()
    data.write_text("".join(json.dumps([t, {}, table.links_of(i), None, None]) + "\n" for i, t in enumerate(table.titles)))
    with pytest.raises(TrainerError, match="lower --min-link-count"):
        train(data, tmp_path / "run", TrainConfig(min_link_count=10), progress=False, log=lambda line: None)


def test_split_is_seeded_and_disjoint():
    pairs = np.array([[m, l] for m in range(50) for l in range(4)], dtype=np.int32)
    train, heldout = split_pairs(pairs, 0.25, seed=3)
    assert len(heldout) == 50 and len(train) == 150
    assert not set(map(tuple, train.tolist())) & set(map(tuple, heldout.tolist()))
    again, _ = split_pairs(pairs, 0.25, seed=3)
    other, _ = split_pairs(pairs, 0.25, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def dense_pairs(n_movies=40, n_links=30, seed=0):
    """About a third of all (movie, link) cells are true: collisions are frequent."""
    rng = np.random.default_rng(seed)
    cells = np.argwhere(rng.random((n_movies, n_links)) < 0.35).astype(np.int32)
    return cells, n_movies, n_links


@pytest.mark.parametrize("ratio", [1, 3, 10])
@pytest.mark.parametrize("power", [0.0, 0.75, 1.0])
def test_epoch_has_exact_ratio_and_no_true_pair_among_negatives(ratio, power):
    pairs, n_movies, n_links = dense_pairs()
    keys = np.sort(pair_keys(pairs, n_links))
    batches = list(epoch_batches(pairs, keys, n_movies, n_links, negative_ratio=ratio, positives_per_batch=64,
                                 rng=np.random.default_rng(1), link_cdf=popularity_cdf(pairs, n_links, power)))
    positives = np.concatenate([np.column_stack([b.movies, b.links]) for b in batches])
    # every training pair exactly once
    assert sorted(map(tuple, positives.tolist())) == sorted(map(tuple, pairs.tolist()))
    for batch in batches:
        negatives = batch.negative_pairs()
        assert len(negatives) == ratio * len(batch.movies)
        assert len(batch) == (ratio + 1) * len(batch.movies)
        assert not contains(keys, pair_keys(negatives, n_links)).any()
        a, b = grid_shape(ratio)
        assert batch.grid_movies.shape == (len(batch.movies), a) and batch.grid_links.shape == (len(batch.movies), b)
        # a negative's cells are distinct within its grid
        assert all(len(set(row)) == ratio for row in batch.negative_index.tolist())


def test_negatives_cover_movies_and_links_uniformly():
    pairs = np.array([[0, 0]], dtype=np.int32)
    keys = np.sort(pair_keys(pairs, 50))
    big = np.repeat(pairs, 4000, axis=0)
    batch = next(epoch_batches(big, keys, 50, 50, negative_ratio=10, positives_per_batch=4000,
                               rng=np.random.default_rng(0)))
    negatives = batch.negative_pairs()
    for column in (0, 1):
        counts = np.bincount(negatives[:, column], minlength=50)
        assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_popularity_draws_negative_links_as_often_as_films_link_to_them():
    # link j is in 10 * (j + 1) films of 1,000; a link no film links to counts as one film
    pairs = np.array([(m, j) for j in range(5) for m in range(10 * (j + 1))], dtype=np.int32)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    assert popularity_cdf(pairs, 6, 0.0) is None
    cdf = popularity_cdf(pairs, 6, 1.0)
    assert np.allclose(np.diff(np.r_[0, cdf]), np.r_[10, 20, 30, 40, 50, 1] / 151)
    keys = np.sort(pair_keys(pairs, 6))
    positives = np.repeat(pairs[:1], 20_000, axis=0)
    batch = next(epoch_batches(positives, keys, 1000, 6, negative_ratio=10, positives_per_batch=20_000,
                               rng=np.random.default_rng(0), link_cdf=cdf))
    counts = np.bincount(batch.negative_pairs()[:, 1], minlength=6)
    # popular links are drawn more often, the link in no film rarely (but it can be)
    assert counts[4] > 3 * counts[0] > 0 and counts[5] < counts[0]
    assert not contains(keys, pair_keys(batch.negative_pairs(), 6)).any()


def test_epochs_are_seeded():
    pairs, n_movies, n_links = dense_pairs()
    keys = np.sort(pair_keys(pairs, n_links))
    run = lambda seed: list(epoch_batches(pairs, keys, n_movies, n_links, negative_ratio=5, positives_per_batch=100,
                                          rng=np.random.default_rng(seed)))
    first, again, other = run(7), run(7), run(8)
    assert all(np.array_equal(x.negative_pairs(), y.negative_pairs()) for x, y in zip(first, again))
    assert not np.array_equal(first[0].negative_pairs(), other[0].negative_pairs())


def test_sample_non_pairs_avoids_true_pairs():
    pairs, n_movies, n_links = dense_pairs()
    keys = np.sort(pair_keys(pairs, n_links))
    negatives = sample_non_pairs(np.random.default_rng(0), 5000, n_movies, n_links, keys)
    assert len(negatives) == 5000
    assert not contains(keys, pair_keys(negatives, n_links)).any()


def test_sampling_refuses_when_every_pair_is_true():
    pairs = np.array([[m, l] for m in range(3) for l in range(2)], dtype=np.int32)
    keys = np.sort(pair_keys(pairs, 2))
    with pytest.raises(ValueError, match="nothing to sample"):
        next(epoch_batches(pairs, keys, 3, 2, negative_ratio=2, positives_per_batch=4, rng=np.random.default_rng(0)))
    with pytest.raises(ValueError, match="negative_ratio must be at least 1"):
        next(epoch_batches(pairs, keys, 3, 2, negative_ratio=0, positives_per_batch=4, rng=np.random.default_rng(0)))


def test_batch_rows_name_each_touched_row_once_and_pad_with_the_spare_row():
    pairs, n_movies, n_links = dense_pairs()
    keys = np.sort(pair_keys(pairs, n_links))
    for batch in epoch_batches(pairs, keys, n_movies, n_links, negative_ratio=4, positives_per_batch=50,
                               rng=np.random.default_rng(2)):
        rows = batch.rows
        for table_rows, slots, ids, spare in (
            (rows.movie_rows, rows.movie_slots, np.column_stack([batch.movies, batch.grid_movies]), n_movies),
            (rows.link_rows, rows.link_slots, np.column_stack([batch.links, batch.grid_links]), n_links),
        ):
            assert len(table_rows) == ids.size  # fixed length: one shape for every full batch
            real = table_rows[table_rows != spare]
            assert len(set(real.tolist())) == len(real)  # distinct: an update writes each row once
            assert np.array_equal(table_rows[slots], ids)  # slots find every id
            assert set(real.tolist()) == set(ids.ravel().tolist())


def test_contains_answers_each_key_in_its_own_place_whatever_their_order():
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 10_000, 3_000))
    asked = np.concatenate([rng.choice(keys, 500), rng.integers(0, 10_000, 1_500), [keys[0], keys[-1], -1, 10**9]])
    rng.shuffle(asked)
    np.testing.assert_array_equal(contains(keys, asked), np.isin(asked, keys))
    assert contains(np.empty(0, np.int64), asked).tolist() == [False] * len(asked)
    assert contains(keys, np.empty(0, np.int64)).tolist() == []


def test_grid_cells_and_link_draws_found_in_any_order_are_the_same():
    """The sampler looks grid cells up by movie and link draws in sorted order (for the caches at a
    million films): the answers are those of looking each one up as drawn."""
    rng = np.random.default_rng(5)
    n_movies, n_links = 300, 200
    true_keys = np.unique(rng.integers(0, n_movies * n_links, 5_000))
    grid_movies = rng.integers(0, n_movies, (400, 4)).astype(np.int32)
    grid_links = rng.integers(0, n_links, (400, 3)).astype(np.int32)
    keys = grid_movies[:, :, None].astype(np.int64) * n_links + grid_links[:, None, :]
    np.testing.assert_array_equal(_grid_clashes(grid_movies, grid_links, n_links, true_keys),
                                  np.isin(keys, true_keys).reshape(400, 12))
    cdf = np.cumsum(rng.random(n_links))
    cdf /= cdf[-1]
    drawn = _draw_links(np.random.default_rng(9), (400, 3), n_links, cdf)
    as_drawn = np.searchsorted(cdf, np.random.default_rng(9).random((400, 3)), side="right").clip(max=n_links - 1)
    np.testing.assert_array_equal(drawn, as_drawn)
    assert drawn.dtype == np.int32


def test_true_share_says_where_negatives_are_worth_checking():
    """Dense tables (a few films, many links each) are checked; with 100,000 films x a million
    links and 5 pairs a film, random cells are almost never true pairs and are not."""
    rng = np.random.default_rng(11)
    dense = np.unique(rng.integers(0, 300 * 200, 6_000))
    assert true_share(dense, 300, 200, None, np.random.default_rng(1)) > 0.05
    n_movies, n_links = 100_000, 1_000_000
    sparse = np.unique(rng.integers(0, n_movies, 5 * n_movies) * n_links + rng.integers(0, n_links, 5 * n_movies))
    assert true_share(sparse, n_movies, n_links, None, np.random.default_rng(1), cells=1 << 16) < CHECKED_FROM
    # Not checked: no cell is a clash, and the grid keeps its first cells as the negatives.
    grid_movies = rng.integers(0, n_movies, (50, 4)).astype(np.int32)
    grid_links = rng.integers(0, n_links, (50, 3)).astype(np.int32)
    assert not _grid_clashes(grid_movies, grid_links, n_links, sparse[:0]).any()


def _check_pooled_epoch(pairs, keys, n_movies, n_links, ratio, positives, pool):
    """Every guarantee of an epoch without a pool; returns the batches."""
    batches = list(epoch_batches(pairs, keys, n_movies, n_links, negative_ratio=ratio, positives_per_batch=positives,
                                 rng=np.random.default_rng(3), negative_pool=pool))
    seen = np.concatenate([np.column_stack([b.movies, b.links]) for b in batches])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, pairs.tolist()))
    for batch in batches:
        assert len(batch.negative_pairs()) == ratio * len(batch.movies)
        assert not contains(keys, pair_keys(batch.negative_pairs(), n_links)).any()
        rows = batch.rows
        for table_rows, slots, ids in ((rows.movie_rows, rows.movie_slots, np.column_stack([batch.movies, batch.grid_movies])),
                                       (rows.link_rows, rows.link_slots, np.column_stack([batch.links, batch.grid_links]))):
            assert np.array_equal(table_rows[slots], ids)
    return batches


def test_a_negative_pool_shares_a_batchs_negatives_and_bounds_its_rows():
    rng = np.random.default_rng(0)
    n_movies, n_links, positives, pool = 5000, 4000, 256, 32
    pairs = np.unique(np.column_stack([rng.integers(0, n_movies, 20_000), rng.integers(0, n_links, 20_000)]),
                      axis=0).astype(np.int32)
    keys = np.sort(pair_keys(pairs, n_links))
    batches = _check_pooled_epoch(pairs, keys, n_movies, n_links, 10, positives, pool)
    for batch in batches:
        # A batch's grids use at most `pool` movies and links: its rows are its positives' and the pool's.
        assert len(np.unique(batch.grid_movies)) <= pool and len(np.unique(batch.grid_links)) <= pool
        assert len(batch.rows.movie_rows) == min(len(batch.movies) + pool, len(batch.movies) * 5)
    # Different batches draw different pools.
    assert set(batches[0].grid_movies.ravel()) != set(batches[1].grid_movies.ravel())


def test_a_pool_too_full_of_true_pairs_falls_back_to_the_whole_catalogue():
    # A third of the cells are true pairs and the pools hold 2 movies and 2 links: many grids can
    # not be filled from their pool, and are drawn from the catalogue after POOL_REDRAWS tries.
    pairs, n_movies, n_links = dense_pairs()
    keys = np.sort(pair_keys(pairs, n_links))
    batches = _check_pooled_epoch(pairs, keys, n_movies, n_links, 4, 64, 2)
    assert any(len(np.unique(b.grid_movies)) > 2 for b in batches)


def test_a_negative_pool_below_zero_is_refused():
    pairs, n_movies, n_links = dense_pairs()
    with pytest.raises(ValueError, match="negative_pool must be 0"):
        next(epoch_batches(pairs, np.sort(pair_keys(pairs, n_links)), n_movies, n_links, negative_ratio=2,
                           positives_per_batch=4, rng=np.random.default_rng(0), negative_pool=-1))
    with pytest.raises(TrainerError, match="--negative-pool must be 0"):
        TrainConfig(negative_pool=-1).check()


@pytest.mark.parametrize("n_rows", [1, 50, 100_000])
def test_a_batchs_distinct_rows_are_np_uniques_without_sorting_every_id(n_rows):
    # The sampler finds them through a scratch table (its cost at a million films: docs/scale.md);
    # the answer must be np.unique's: the rows sorted (the step reads them in order), then the padding.
    ids = np.random.default_rng(n_rows).integers(0, n_rows, (512, 5)).astype(np.int32)
    rows, slots = _distinct_rows(ids, n_rows, 0, np.empty(n_rows + 1, np.int32))
    distinct, inverse = np.unique(ids, return_inverse=True)
    assert np.array_equal(rows[: len(distinct)], distinct) and (rows[len(distinct):] == n_rows).all()
    assert np.array_equal(slots, inverse.reshape(ids.shape)) and len(rows) == ids.size
