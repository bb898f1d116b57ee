"""Filtered queries: which movies may be returned, and the best of them by a score.

Pure numpy over ids. A filter becomes a boolean mask over the catalogue; a query's
scores are computed for every movie (one matrix product: about 2 M multiply-adds
for 36k movies x 50 dims; docs/api.md), the masked ones set to -inf
and the top k taken with argpartition. Exact, whatever the index type.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    from movielinks.search.neighbours import NeighbourLists

# Scores held at once by filtered_search: 256 queries x 36k movies (37 MB); at a million movies, 9 queries.
SCORES_PER_PRODUCT = 256 * 36_000
# Rows multiplied at a time by row_products and row_maxima (4 MB of rows at 64 dims).
ALIGNED_BLOCK_ROWS = 1 << 14


def aligned_blocks(vectors: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of `vectors`, ALIGNED_BLOCK_ROWS at a time, each block aligned for BLAS.

    A version serves its vectors from inside the FAISS index file (indexer.version), where
    FAISS's format puts them 1 or 2 bytes past a multiple of 4. numpy's matrix product does not
    hand unaligned rows to BLAS but multiplies them in a loop: at a million movies one query
    took 50 ms, against 8.5 ms for the same rows aligned. Unaligned rows are copied into one
    aligned buffer a block at a time (the buffer is reused: use a block before the next)."""
    vectors = np.asarray(vectors)
    buffer = None if vectors.flags.aligned else np.empty((min(ALIGNED_BLOCK_ROWS, len(vectors)), vectors.shape[1]),
                                                          vectors.dtype)
    for start in range(0, len(vectors), ALIGNED_BLOCK_ROWS):
        rows = vectors[start:start + ALIGNED_BLOCK_ROWS]
        if buffer is not None:
            buffer[:len(rows)] = rows
            rows = buffer[:len(rows)]
        yield start, rows


def row_products(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """queries @ vectors.T ([n_queries, n_rows]), fast whatever `vectors`' address (aligned_blocks:
    at a million movies one query 50 to about 17 ms)."""
    vectors, queries = np.asarray(vectors), np.asarray(queries)
    if vectors.flags.aligned:
        return queries @ vectors.T
    out = np.empty((len(queries), len(vectors)), np.result_type(queries, vectors))
    for start, rows in aligned_blocks(vectors):
        out[:, start:start + len(rows)] = queries @ rows.T
    return out


def row_maxima(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(queries @ vectors.T).max(axis=0): each row's largest product with a query, float32 [n_rows]
    (-inf without queries), a block of rows at a time, so that a thousand queries over a million
    rows hold 64 MB of products at once, not 4 GB."""
    vectors, queries = np.asarray(vectors), np.asarray(queries)
    out = np.full(len(vectors), -np.inf, np.float32)
    if not len(queries):
        return out
    for start, rows in aligned_blocks(vectors):
        out[start:start + len(rows)] = (rows @ queries.T).max(axis=1)
    return out


@dataclasses.dataclass(frozen=True)
class ResolvedFilter:
    """A filter with its names resolved to ids (server.service does that from a FilterRequest; the
    proto's and the client's MovieFilter hold names)."""

    min_year: int = 0  # 0: no bound
    max_year: int = 0
    must_link_to: tuple[int, ...] = ()  # link ids, every one required
    exclude_ids: tuple[int, ...] = ()
    exclude_franchise: bool = False

    @property
    def empty(self) -> bool:
        return self == ResolvedFilter()


def allowed_movies(f: ResolvedFilter, years: np.ndarray, movies_of_link) -> np.ndarray:
    """bool [n_movies]: the movies `f` lets through, but for the franchise (which depends on the query).

    `years` is int [n_movies] with 0 for unknown; `movies_of_link(link_id)` the ids of the
    movies linking to a link.
    """
    allowed = np.ones(len(years), dtype=bool)
    if f.min_year or f.max_year:
        allowed &= years > 0
        if f.min_year:
            allowed &= years >= f.min_year
        if f.max_year:
            allowed &= years <= f.max_year
    for link in f.must_link_to:
        linking = np.zeros(len(years), dtype=bool)
        linking[movies_of_link(link)] = True
        allowed &= linking
    allowed[list(f.exclude_ids)] = False
    return allowed


def best_allowed(scores: np.ndarray, allowed: np.ndarray, excluded: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k highest scores among the allowed columns, its own `excluded` ids left out:
    (ids int64 [n, k], scores float32 [n, k]), padded with id -1 where fewer are allowed."""
    scores = np.where(allowed[None, :], scores, -np.inf).astype(np.float32, copy=False)
    for row, ids in enumerate(excluded):
        scores[row, ids] = -np.inf
    n_rows, n = scores.shape
    k_found = min(k, n)
    ids = np.full((n_rows, k), -1, dtype=np.int64)
    best = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if k_found == 0:
        return ids, best
    top = np.argpartition(-scores, k_found - 1, axis=1)[:, :k_found]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
    keep = np.isfinite(top_scores)
    ids[:, :k_found] = np.where(keep, top, -1)
    best[:, :k_found] = np.where(keep, top_scores, -np.inf)
    return ids, best


def filtered_search(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray, excluded: list[np.ndarray],
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """best_allowed of the inner products of `queries` [n, dim] with every allowed row of `vectors`,
    a chunk of queries at a time. A selective filter (under half the catalogue) scores only
    the rows it allows, gathered once: the cost follows what the filter lets through."""
    # A memory-mapped version's vectors are np.memmap, whose matrix products take a much
    # slower path: multiply the plain array view instead.
    vectors = np.asarray(vectors)
    candidates = np.flatnonzero(allowed)
    if not len(candidates):  # the filter lets nothing through
        return np.full((len(queries), k), -1, dtype=np.int64), np.full((len(queries), k), -np.inf, dtype=np.float32)
    subset = len(candidates) < len(allowed) // 2
    matrix = vectors[candidates] if subset else vectors
    column_allowed = np.ones(len(candidates), dtype=bool) if subset else allowed
    parts = []
    step = max(1, SCORES_PER_PRODUCT // len(matrix))
    for start in range(0, len(queries), step):
        rows_excluded = excluded[start:start + step]
        if subset:
            rows_excluded = [_positions(candidates, ids) for ids in rows_excluded]
        ids, scores = best_allowed(row_products(queries[start:start + step], matrix), column_allowed,
                                   rows_excluded, k)
        if subset:
            ids = np.where(ids >= 0, candidates[np.maximum(ids, 0)], -1)
        parts.append((ids, scores))
    if not parts:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def from_stored(stored: NeighbourLists, query_ids: np.ndarray, allowed: np.ndarray,
                excluded: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first stage of a filtered similar-movies query: each query's stored neighbours (its
    K best, best first) that the filter lets through. Where at least k survive, they are the
    answer (the k best allowed movies are among the K best); the rest need a scan. Scores are
    computed only for the movies chosen.

    Returns (ids [n, k], scores [n, k], bool [n]: answered here)."""
    rows = np.asarray(stored.ids)[query_ids].astype(np.int64)
    keep = (rows >= 0) & allowed[np.maximum(rows, 0)]
    for row, ids in enumerate(excluded):
        if len(ids):
            keep[row] &= ~np.isin(rows[row], ids)
    answered = keep.sum(axis=1) >= k
    # Each row's kept entries moved to its front in list order: its first k are the answer.
    first_kept = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    ids, scores = stored.chosen(query_ids, np.where(answered[:, None], first_kept, -1))
    return ids, scores, answered


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions in `sorted_ids` of those `ids` it holds."""
    at = np.searchsorted(sorted_ids, ids)
    held = at < len(sorted_ids)
    held[held] = sorted_ids[at[held]] == ids[held]
    return at[held]


@dataclasses.dataclass(frozen=True)
class FilterRequest:
    """A filter as a request states it, with names (server.service resolves them into a ResolvedFilter)."""

    min_year: int = 0
    max_year: int = 0
    must_link_to: tuple[str, ...] = ()
    exclude_titles: tuple[str, ...] = ()
    exclude_franchise: bool = False
    max_per_franchise: int = 0  # 0: no cap (search.diversity)
    diversity: float = 0.0  # the MMR weight, 0..1 (search.diversity)

    @property
    def empty(self) -> bool:
        return self == FilterRequest()

    @property
    def shapes_the_list(self) -> bool:
        """Whether it asks for a diverse list (picked from a longer ranked one)."""
        return bool(self.max_per_franchise or self.diversity)

    @property
    def without_diversity(self) -> FilterRequest:
        return dataclasses.replace(self, max_per_franchise=0, diversity=0.0)
