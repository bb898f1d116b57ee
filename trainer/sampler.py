"""Training pairs: the held-out split and negative sampling, vectorised with numpy.

A (movie, link) pair is encoded as one int64 key, movie * n_links + link, so that
"is this a true pair?" is a binary search in a sorted key array.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator

import numpy as np



def pair_keys(pairs: np.ndarray, n_links: int) -> np.ndarray:
    """int64 keys of [n, 2] (movie, link) pairs."""
    return pairs[:, 0].astype(np.int64) * n_links + pairs[:, 1]


def contains(sorted_keys: np.ndarray, keys: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask: which `keys` are in `sorted_keys`.

    The keys are looked up in their own sorted order: numpy then starts each binary search
    where the last one ended, and walks `sorted_keys` nearly in order, where keys in random
    order miss the cache at every level of every search (the sampler's profile at a million
    films: docs/scale.md). `order`, a permutation of `keys` that puts them nearly in order,
    saves sorting them (any permutation gives the same answer).
    """
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    order = np.argsort(keys) if order is None else order
    in_order = keys[order]
    at = np.searchsorted(sorted_keys, in_order).clip(max=len(sorted_keys) - 1)
    found = np.empty(len(keys), dtype=bool)
    found[order] = sorted_keys[at] == in_order
    return found


def split_pairs(pairs: np.ndarray, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of pairs into (train, held-out); held-out gets round(fraction * n), 0 <= fraction < 1."""
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(pairs))
    n_heldout = int(round(heldout_fraction * len(pairs)))
    return pairs[np.sort(order[n_heldout:])], pairs[np.sort(order[:n_heldout])]


def every_pair_is_true(true_keys: np.ndarray, n_movies: int, n_links: int) -> bool:
    """True when no (movie, link) pair is left to sample as a negative."""
    return len(true_keys) >= n_movies * n_links


def sample_non_pairs(
    rng: np.random.Generator, n: int, n_movies: int, n_links: int, true_keys: np.ndarray
) -> np.ndarray:
    """`n` uniformly random (movie, link) pairs, none of them in `true_keys` (sorted).

    Collisions are redrawn in rounds, so the loop runs over rounds, not samples.
    Used by the evaluation; training draws its negatives with `epoch_batches`.
    Raises ValueError when every pair is a true pair.
    """
    if every_pair_is_true(true_keys, n_movies, n_links):
        raise ValueError("every (movie, link) pair is a true pair: there is nothing to sample")
    negatives = np.column_stack([rng.integers(0, n_movies, n), rng.integers(0, n_links, n)]).astype(np.int32)
    clash = np.flatnonzero(contains(true_keys, pair_keys(negatives, n_links)))
    while len(clash):
        negatives[clash, 0] = rng.integers(0, n_movies, len(clash))
        negatives[clash, 1] = rng.integers(0, n_links, len(clash))
        clash = clash[contains(true_keys, pair_keys(negatives[clash], n_links))]
    return negatives


@dataclasses.dataclass(frozen=True)
class Batch:
    """P positive pairs and exactly `negative_ratio` sampled negative pairs for each.

    The negatives of positive i are drawn from a small grid: `grid_movies[i]` (A
    random movies) crossed with `grid_links[i]` (B random links), A * B a little
    more than the ratio; `negative_index[i]` picks `negative_ratio` grid cells
    (row-major, cell a * B + b) that are not true pairs. Scoring a grid is one
    small matrix product per positive, which gathers (A + B) vectors for
    `negative_ratio` negatives instead of two vectors for each, and keeps the
    negatives nearly independent (each sampled movie meets only B links).

    With a negative pool (`epoch_batches`' `negative_pool`), the grids of one batch are
    drawn from that batch's pool of random movies and links, as PyTorch-BigGraph shares
    its uniform negatives within a chunk of positives: far fewer distinct rows a step.

    `rows` says which table rows the batch touches, so that a training step reads
    and updates only those (its cost is the batch's, not the tables').
    """

    movies: np.ndarray  # int32 [P] positive movie ids
    links: np.ndarray  # int32 [P] positive link ids
    grid_movies: np.ndarray  # int32 [P, A]
    grid_links: np.ndarray  # int32 [P, B]
    negative_index: np.ndarray  # int32 [P, negative_ratio], cells into the A x B grid
    rows: BatchRows

    def negative_pairs(self) -> np.ndarray:
        """The negatives as explicit (movie, link) pairs, [P * negative_ratio, 2]."""
        b = self.grid_links.shape[1]
        rows = np.arange(len(self.movies))[:, None]
        movies = self.grid_movies[rows, self.negative_index // b]
        links = self.grid_links[rows, self.negative_index % b]
        return np.column_stack([movies.ravel(), links.ravel()])

    def __len__(self) -> int:
        """Number of samples: positives plus negatives."""
        return self.negative_index.size + len(self.movies)


@dataclasses.dataclass(frozen=True)
class BatchRows:
    """The distinct movie and link rows a batch touches, each list padded to a fixed length.

    `movie_rows` holds every distinct id of (movies, grid_movies), then padding with
    the id `n_movies` (a spare row past the real ones, never read back);
    `movie_slots[i, 0]` is the slot of positive i's movie in `movie_rows` and
    `movie_slots[i, 1:]` those of its grid movies. The same for links. Fixed lengths
    keep every full batch the same shape, so the compiled step is traced once.
    """

    movie_rows: np.ndarray  # int32 [P * (1 + A)]
    movie_slots: np.ndarray  # int32 [P, 1 + A]
    link_rows: np.ndarray  # int32 [P * (1 + B)]
    link_slots: np.ndarray  # int32 [P, 1 + B]


def batch_rows(movies: np.ndarray, grid_movies: np.ndarray, links: np.ndarray, grid_links: np.ndarray,
               n_movies: int, n_links: int, negative_pool: int = 0,
               scratch: tuple[np.ndarray, np.ndarray] | None = None) -> BatchRows:
    """The BatchRows of a batch (see there). With a `negative_pool`, the grids' ids come from
    pools of that many ids, so the lists are padded to P + pool where every distinct id fits.
    `scratch`: (int32 [n_movies + 1], int32 [n_links + 1]) to work in, reused from batch to batch."""
    movie_scratch, link_scratch = scratch or (np.empty(n_movies + 1, np.int32), np.empty(n_links + 1, np.int32))
    movie_rows, movie_slots = _distinct_rows(np.column_stack([movies, grid_movies]), n_movies, negative_pool,
                                             movie_scratch)
    link_rows, link_slots = _distinct_rows(np.column_stack([links, grid_links]), n_links, negative_pool, link_scratch)
    return BatchRows(movie_rows, movie_slots, link_rows, link_slots)


def _distinct_rows(ids: np.ndarray, spare_row: int, negative_pool: int, scratch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids, sorted and padded; each id's slot among them): np.unique's answer with
    return_inverse, without sorting all of `ids`: `scratch` (int32, one entry an id, contents
    unused) keeps one place of each id, and only the distinct ids are sorted."""
    flat = ids.ravel()
    places = np.arange(flat.size, dtype=np.int32)
    scratch[flat] = places  # of an id's places, one is kept (whichever: each id is then taken once)
    distinct = np.sort(flat[scratch[flat] == places])
    scratch[distinct] = places[: len(distinct)]
    length = flat.size
    if negative_pool and len(distinct) <= len(ids) + negative_pool:
        length = min(length, len(ids) + negative_pool)
    padded = np.full(length, spare_row, dtype=np.int32)
    padded[: len(distinct)] = distinct
    return padded, scratch[flat].reshape(ids.shape)


def grid_shape(negative_ratio: int) -> tuple[int, int]:
    """(A, B): the smallest near-square grid with two spare cells beyond the ratio."""
    a = math.ceil(math.sqrt(negative_ratio + 2))
    return a, math.ceil((negative_ratio + 2) / a)


# Negatives are drawn for this many batches at a time: an epoch is never held whole.
CHUNK_BATCHES = 16
# Negatives are checked against the true pairs where at least this share of random grid cells is
# one: at a million films 3 cells in 100,000 are, and the check was most of the sampler's time
# (docs/scale.md); on the 36k-film file, 1 in 200.
CHECKED_FROM = 1e-4
# A grid drawn from its batch's negative pool that still has too few free cells after this many
# redraws is drawn from the whole catalogue (only a tiny catalogue's pool can be that full).
POOL_REDRAWS = 8


def true_share(true_keys: np.ndarray, n_movies: int, n_links: int, link_cdf: np.ndarray | None,
               rng: np.random.Generator, cells: int = 1 << 20) -> float:
    """The share of `cells` random grid cells, drawn as the sampler draws them (movies uniform,
    links uniform or by `link_cdf`), that are true pairs."""
    movies = rng.integers(0, n_movies, cells).astype(np.int64)
    return float(contains(true_keys, movies * n_links + _draw_links(rng, (cells,), n_links, link_cdf)).mean())


def epoch_batches(
    train_pairs: np.ndarray,
    true_keys: np.ndarray,
    n_movies: int,
    n_links: int,
    *,
    negative_ratio: int,
    positives_per_batch: int,
    rng: np.random.Generator,
    link_cdf: np.ndarray | None = None,
    pair_weights: np.ndarray | None = None,
    negative_pool: int = 0,
) -> Iterator[Batch]:
    """One epoch: every training pair once, in a random order, each with exactly
    `negative_ratio` (>= 1) random negative pairs, none in `true_keys` (sorted).
    Negative movies are uniform; negative links uniform too, or drawn by `link_cdf`
    (float64 [n_links], the cumulative distribution `popularity_cdf` gives).

    With `pair_weights` (float [len(train_pairs)], >= 0: trainer.vocab's pair_weights) a
    pair is trained on floor(w) times in the epoch and once more with probability w - floor(w):
    its expected share of the epoch's loss is w times an unweighted pair's (weight 0: never).

    With `negative_pool` > 0 each batch draws that many movies and links (as above), and its
    positives' grids pick their cells among those (Batch): the step touches at most P + pool
    rows of each table, not P x (1 + A). 0: every grid drawn from the whole catalogue.

    A generator: negatives are drawn CHUNK_BATCHES batches at a time, so memory is
    the order of the pairs plus a few batches, whatever the epoch's size. Raises
    ValueError for a ratio below 1, a negative pool below 0 or when every pair is a true pair.
    """
    if negative_ratio < 1:
        raise ValueError(f"negative_ratio must be at least 1, got {negative_ratio}")
    if negative_pool < 0:
        raise ValueError(f"negative_pool must be 0 (none) or more, got {negative_pool}")
    if every_pair_is_true(true_keys, n_movies, n_links):
        raise ValueError("every (movie, link) pair is a true pair: there is nothing to sample negatives from")
    order = rng.permutation(len(train_pairs))
    if pair_weights is not None:
        order = weighted_order(rng, order, pair_weights)
    chunk = positives_per_batch * CHUNK_BATCHES
    scratch = (np.empty(n_movies + 1, np.int32), np.empty(n_links + 1, np.int32))
    for start in range(0, len(order), chunk):
        positives = train_pairs[order[start : start + chunk]]
        grid_movies, grid_links, negative_index = _grids(rng, len(positives), n_movies, n_links, negative_ratio,
                                                         true_keys, link_cdf,
                                                         (positives_per_batch, negative_pool) if negative_pool else None)
        for s in range(0, len(positives), positives_per_batch):
            part = slice(s, s + positives_per_batch)
            movies, links = positives[part, 0], positives[part, 1]
            yield Batch(movies, links, grid_movies[part], grid_links[part], negative_index[part],
                        batch_rows(movies, grid_movies[part], links, grid_links[part], n_movies, n_links,
                                   negative_pool, scratch))


def weighted_order(rng: np.random.Generator, order: np.ndarray, pair_weights: np.ndarray) -> np.ndarray:
    """`order` (a permutation of the pairs) with pair i repeated floor(w) times and once more
    with probability w - floor(w), w = pair_weights[i]; repeats stay adjacent."""
    weights = pair_weights[order]
    whole = np.floor(weights)
    times = whole.astype(np.int64) + (rng.random(len(order)) < weights - whole)
    return np.repeat(order, times)


def popularity_cdf(train_pairs: np.ndarray, n_links: int, power: float) -> np.ndarray | None:
    """Cumulative distribution of links drawn with probability proportional to (films linking
    to them) ** power, as word2vec draws its negatives (power 0.75); None for power 0 (uniform).

    A link with no training pair counts as one film, so that every link can be drawn (the
    sampler's "some pair is free" check is over all links)."""
    if power == 0:
        return None
    weights = np.maximum(np.bincount(train_pairs[:, 1], minlength=n_links), 1).astype(np.float64) ** power
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _draw_links(rng: np.random.Generator, shape: tuple[int, ...], n_links: int, link_cdf: np.ndarray | None) -> np.ndarray:
    if link_cdf is None:
        return rng.integers(0, n_links, shape).astype(np.int32)
    # Looked up in their own sorted order, as `contains` does: at a million links the
    # distribution is far bigger than the caches. The same links as searching them as drawn.
    draws = rng.random(shape).ravel()
    order = np.argsort(draws)
    links = np.empty(draws.size, dtype=np.int32)
    links[order] = np.searchsorted(link_cdf, draws[order], side="right").clip(max=n_links - 1)
    return links.reshape(shape)


def _grids(
    rng: np.random.Generator, n: int, n_movies: int, n_links: int, negative_ratio: int, true_keys: np.ndarray,
    link_cdf: np.ndarray | None = None, pool: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid_movies [n, A], grid_links [n, B], negative_index [n, ratio]) for n positives; with `pool`
    (positives a batch, pool size) each batch's grids are drawn from a pool of its own."""
    a, b = grid_shape(negative_ratio)
    anywhere = _catalogue_draw(rng, n_movies, n_links, link_cdf)
    draw = _pool_draw(rng, n, n_movies, n_links, link_cdf, *pool) if pool else anywhere
    grid_movies, grid_links = draw(np.arange(n), a, b)
    clash = _grid_clashes(grid_movies, grid_links, n_links, true_keys)
    # Rows with fewer free cells than the ratio are redrawn whole, in rounds.
    redo, rounds = np.flatnonzero(clash.sum(axis=1) > a * b - negative_ratio), 0
    while len(redo):
        rounds += 1
        grid_movies[redo], grid_links[redo] = (draw if rounds <= POOL_REDRAWS else anywhere)(redo, a, b)
        clash[redo] = _grid_clashes(grid_movies[redo], grid_links[redo], n_links, true_keys)
        redo = redo[clash[redo].sum(axis=1) > a * b - negative_ratio]
    if not clash.any():  # what the stable sort below gives then
        return grid_movies, grid_links, np.tile(np.arange(negative_ratio, dtype=np.int32), (n, 1))
    negative_index = np.argsort(clash, axis=1, kind="stable")[:, :negative_ratio].astype(np.int32)
    return grid_movies, grid_links, negative_index


Draw = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


def _catalogue_draw(rng: np.random.Generator, n_movies: int, n_links: int, link_cdf: np.ndarray | None) -> Draw:
    """draw(rows, A, B): A random movies and B random links for each of `rows`, from the whole catalogue."""
    def draw(rows: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        return (rng.integers(0, n_movies, (len(rows), a)).astype(np.int32),
                _draw_links(rng, (len(rows), b), n_links, link_cdf))
    return draw


def _pool_draw(rng: np.random.Generator, n: int, n_movies: int, n_links: int, link_cdf: np.ndarray | None,
               positives_per_batch: int, size: int) -> Draw:
    """draw(rows, A, B) as _catalogue_draw's, each row's picked from its batch's pool: `size` random
    movies and links (drawn as the catalogue's are) for every `positives_per_batch` rows of the n."""
    n_batches = -(-n // positives_per_batch)
    movies = rng.integers(0, n_movies, (n_batches, size)).astype(np.int32)
    links = _draw_links(rng, (n_batches, size), n_links, link_cdf)

    def draw(rows: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        batch = (rows // positives_per_batch)[:, None]
        return movies[batch, rng.integers(0, size, (len(rows), a))], links[batch, rng.integers(0, size, (len(rows), b))]
    return draw


def _grid_clashes(grid_movies: np.ndarray, grid_links: np.ndarray, n_links: int, true_keys: np.ndarray) -> np.ndarray:
    """Boolean [P, A * B]: which grid cells are true pairs."""
    if len(true_keys) == 0:  # none, or not checked (CHECKED_FROM)
        return np.zeros((len(grid_movies), grid_movies.shape[1] * grid_links.shape[1]), dtype=bool)
    keys = grid_movies[:, :, None].astype(np.int64) * n_links + grid_links[:, None, :]
    # The cells in the order of their movie are nearly in key order (a movie's B cells lie together
    # among the true pairs): ordering the P * A movies is cheaper than the P * A * B keys.
    links_a_movie = grid_links.shape[1]
    by_movie = np.argsort(grid_movies.ravel())
    order = (by_movie[:, None] * links_a_movie + np.arange(links_a_movie)).ravel()
    return contains(true_keys, keys.ravel(), order).reshape(len(grid_movies), -1)
