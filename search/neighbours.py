"""Nearest neighbours over a FAISS inner-product index: one search, one "every movie's top k".

Short functions over numpy arrays, as in FAISS's contrib/: ids in, (ids, scores)
out, rows padded with id -1 and score -inf where fewer than k were found. Used by
the indexer (stored neighbours at build time, exports) and by the server.

Lists found beforehand (an index version's movie neighbours and link movies) keep ids
only: each score is the inner product of the row's own vector and the listed movie's,
computed (pair_scores) for the rows a query asks for.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from collections.abc import Collection, Sequence
from typing import Iterator

import faiss
import numpy as np

from movielinks.common.answers import Neighbours

# FAISS's flat search takes its BLAS path, several times faster, from about
# 128000 / dim queries a call: batches of this many rows get there.
BATCH_ROWS = 4096
# A batch never holds more than this many result rows (batches shrink for a large
# k), which bounds the memory of an all-movies pass at a few tens of MB.
MAX_RESULTS_PER_BATCH = 1 << 17
# Pairs scored at a time by pair_scores: their gathered vectors stay a few tens of MB.
SCORED_PAIRS_PER_BLOCK = 1 << 17
# From this many queries on, one call is worth an OpenMP team of every core; a
# single query costs less than starting the team.
ALL_CORES_FROM_ROWS = 64


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner-product neighbours of each query row, skipping ids in `exclude[i]`.

    Returns (ids int64, scores float32), each [n_queries, k], best first; rows with
    fewer than k results (a tiny catalogue, or an approximate index that found
    fewer) are padded with id -1 and score -inf. Raises ValueError for k < 1,
    queries of the wrong dimension, or an `exclude` whose length differs from the
    number of queries.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if queries.ndim != 2 or queries.shape[1] != index.d:
        raise ValueError(f"queries have shape {queries.shape}; the index expects rows of dimension {index.d}")
    if exclude is not None and len(exclude) != len(queries):
        raise ValueError(f"{len(exclude)} exclude sets for {len(queries)} queries; pass one set per query")
    n_skip = max((len(e) for e in exclude), default=0) if exclude is not None else 0
    fetch = min(k + n_skip, index.ntotal)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    if fetch == 0 or len(queries) == 0:
        return out_ids, out_scores
    with _cores_for(len(queries)):
        scores, ids = index.search(queries, fetch)
    keep = ids >= 0
    if n_skip:
        keep &= ~_excluded(ids, exclude)
    # Move each row's kept hits to its front without reordering them (they are best first).
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(keep, order, axis=1)
    width = order.shape[1]
    out_ids[:, :width] = np.where(kept, np.take_along_axis(ids, order, axis=1), -1)
    out_scores[:, :width] = np.where(kept, np.take_along_axis(scores, order, axis=1), -np.inf)
    return out_ids, out_scores


def exhaustive_top(queries: np.ndarray, vectors: np.ndarray, k: int, block: int = 1 << 18) -> np.ndarray:
    """Each query's k rows of `vectors` with the largest inner products, exactly: ids int64 [n, k],
    best first, by FAISS's exhaustive search (BLAS, then a heap: no partition of every product;
    `vectors` may be a version's unaligned rows). Rows of another type than float32 (a version's
    float16 link codes: indexer.version) are searched `block` at a time as float32, so that they are
    not all copied at once (at a million links 335 MB)."""
    queries, vectors = np.ascontiguousarray(queries, np.float32), np.asarray(vectors)
    if vectors.dtype == np.float32:
        return faiss.knn(queries, np.ascontiguousarray(vectors), k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    k = min(k, len(vectors))
    best, ids = np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(vectors), block):
        rows = np.ascontiguousarray(vectors[start:start + block], np.float32)
        scores, found = faiss.knn(queries, rows, min(k, len(rows)), metric=faiss.METRIC_INNER_PRODUCT)
        scores, found = np.concatenate([best, scores], axis=1), np.concatenate([ids, found + start], axis=1)
        # The best k of both, the earlier row first among equal scores (as one search over every row).
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best, ids = np.take_along_axis(scores, order, axis=1), np.take_along_axis(found, order, axis=1)
    return ids


def pair_scores(row_vectors: np.ndarray, movie_vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """float32 [n, m]: the inner product of row_vectors[i] and movie_vectors[ids[i, j]] (their
    cosine: both unit rows), -inf where ids[i, j] is -1 (padding), computed in float32."""
    ids = np.asarray(ids)
    # Plain ndarray views: np.memmap indexes through Python code.
    row_vectors, movie_vectors = np.asarray(row_vectors), np.asarray(movie_vectors)
    scores = np.empty(ids.shape, dtype=np.float32)
    step = max(1, SCORED_PAIRS_PER_BLOCK // max(1, ids.shape[1]))
    for start in range(0, len(ids), step):
        gathered = movie_vectors[np.maximum(ids[start:start + step], 0)]  # [rows, m, dim]
        scores[start:start + step] = np.matmul(gathered, row_vectors[start:start + step, :, None])[..., 0]
    scores[ids < 0] = -np.inf
    return scores


@dataclasses.dataclass(frozen=True)
class NeighbourLists:
    """Each row's K nearest movies found beforehand (an index version's movie neighbours or link
    movies): ids int32 [n, K], best first, padded with -1. A list's scores are not stored: they
    are the inner products of the row's vector and its movies', computed for the rows asked."""

    ids: np.ndarray  # int32 [n, K]
    row_vectors: np.ndarray  # [n, dim]: each row's own vector (the movie's, or the link's)
    movie_vectors: np.ndarray  # [n_movies, dim]
    # float32 [n, K]: the scores of a version written before they were dropped, served as they
    # are (as before); None: computed from the vectors.
    scores: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def first(self, row_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first k (<= K) entries of the lists of `row_ids`: (ids int64, scores float32) [n, k]."""
        ids = np.asarray(self.ids)[row_ids, :k].astype(np.int64)
        return ids, self._scored(row_ids, ids, None if self.scores is None else np.asarray(self.scores)[row_ids, :k])

    def chosen(self, row_ids: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entries at `columns` (int [n, m]: positions in each list, -1 for none) of the lists
        of `row_ids`: (ids int64, scores float32) [n, m], id -1 and score -inf where none."""
        at = np.maximum(columns, 0)
        ids = np.where(columns >= 0, np.take_along_axis(np.asarray(self.ids)[row_ids], at, axis=1), -1)
        stored = None if self.scores is None else np.take_along_axis(np.asarray(self.scores)[row_ids], at, axis=1)
        return ids.astype(np.int64), self._scored(row_ids, ids, stored)

    def _scored(self, row_ids: np.ndarray, ids: np.ndarray, stored: np.ndarray | None) -> np.ndarray:
        if stored is None:
            return pair_scores(np.asarray(self.row_vectors)[row_ids], self.movie_vectors, ids)
        return np.where(ids >= 0, stored, -np.inf).astype(np.float32)


def similar_rows(
    index: faiss.Index,
    vectors: np.ndarray,
    row_ids: np.ndarray,
    k: int,
    stored: NeighbourLists | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of `index` to each of `vectors[row_ids]`, the row itself excluded.

    `stored` are the lists [n, K] found beforehand with the same index (an index
    version's movie neighbours): when k <= K they answer without a search.
    """
    row_ids = np.asarray(row_ids, dtype=np.int64)
    found = stored_rows(stored, row_ids, k)
    return found if found is not None else search(index, vectors[row_ids], k, row_ids[:, None])


def stored_rows(
    stored: NeighbourLists | None, row_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The first k of the stored lists of `row_ids`, as search returns them (scores computed
    from the vectors); None where nothing is stored or the lists are shorter than k (the caller searches)."""
    if stored is None or k > stored.k:
        return None
    return stored.first(np.asarray(row_ids, dtype=np.int64), k)


def all_similar_rows(
    index: faiss.Index,
    vectors: np.ndarray,
    k: int,
    stored: NeighbourLists | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every row's k nearest rows (itself excluded), in row order, a batch at a time:
    yields (row_ids, ids, scores). Memory stays flat however many rows there are."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    size = max(1, min(batch_rows, MAX_RESULTS_PER_BATCH // k))
    for start in range(0, len(vectors), size):
        row_ids = np.arange(start, min(start + size, len(vectors)))
        yield (row_ids, *similar_rows(index, vectors, row_ids, k, stored))


def named(ids: np.ndarray, scores: np.ndarray, names: Sequence[str]) -> Neighbours:
    """One result row as (name, score) pairs, padding dropped."""
    return [(names[i], float(s)) for i, s in zip(ids.tolist(), scores.tolist()) if i >= 0]


def use_one_core_per_thread() -> None:
    """Make FAISS searches of the calling thread single-threaded (a thread pool's initializer).

    OpenMP settings are per thread: a server thread answering one small query at a
    time would pay more for a team of threads than for the search.
    """
    faiss.omp_set_num_threads(1)


@contextlib.contextmanager
def _cores_for(n_queries: int) -> Iterator[None]:
    """Every core for a batch of queries; the thread's own setting otherwise."""
    if n_queries < ALL_CORES_FROM_ROWS:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _excluded(ids: np.ndarray, exclude: Sequence[Collection[int]]) -> np.ndarray:
    """Boolean mask, shaped like `ids`, of the hits listed in their row's exclude set.

    One vectorised membership test over (row, id) keys instead of a Python loop per
    row: the server excludes each query itself for batches of thousands of titles.
    """
    sizes = np.fromiter((len(e) for e in exclude), dtype=np.int64, count=len(exclude))
    rows = np.repeat(np.arange(len(exclude), dtype=np.int64), sizes)
    excluded = np.fromiter(itertools.chain.from_iterable(exclude), dtype=np.int64, count=int(sizes.sum()))
    valid = excluded >= 0
    rows, excluded = rows[valid], excluded[valid]
    hits = np.maximum(ids, 0)  # padding (-1) is dropped by the caller; keep keys non-negative
    stride = int(max(hits.max(), excluded.max(initial=0))) + 1
    hit_keys = np.arange(len(ids), dtype=np.int64)[:, None] * stride + hits
    return np.isin(hit_keys, rows * stride + excluded)
