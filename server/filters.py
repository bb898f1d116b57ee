"""Filtered queries: which movies may be returned, and the best of them by a score.

Pure numpy over ids. A filter becomes a boolean mask over the catalogue; a query's
scores are computed for every movie (one matrix product: about 2 M multiply-adds
for 36k movies x 50 dims, well under a millisecond), the masked ones set to -inf
and the top k taken with argpartition. Exact, whatever the index type.
"""
from __future__ import annotations

import dataclasses

import numpy as np

ROWS_PER_PRODUCT = 256  # queries scored in one matrix product: 256 x 36k floats is 37 MB


@dataclasses.dataclass(frozen=True)
class MovieFilter:
    """A filter with its names resolved to ids (server.service does that)."""

    min_year: int = 0  # 0: no bound
    max_year: int = 0
    must_link_to: tuple[int, ...] = ()  # link ids, every one required
    exclude_ids: tuple[int, ...] = ()
    exclude_franchise: bool = False

    @property
    def empty(self) -> bool:
        return self == MovieFilter()


def allowed_movies(f: MovieFilter, years: np.ndarray, movies_of_link) -> np.ndarray:
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
    """best_allowed of the inner products of `queries` [n, dim] with every row of `vectors`, a chunk of rows at a time."""
    parts = [best_allowed(queries[start:start + ROWS_PER_PRODUCT] @ vectors.T, allowed,
                          excluded[start:start + ROWS_PER_PRODUCT], k)
             for start in range(0, len(queries), ROWS_PER_PRODUCT)]
    if not parts:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclasses.dataclass(frozen=True)
class FilterRequest:
    """A filter as a request states it, with names (server.service resolves them into a MovieFilter)."""

    min_year: int = 0
    max_year: int = 0
    must_link_to: tuple[str, ...] = ()
    exclude_titles: tuple[str, ...] = ()
    exclude_franchise: bool = False

    @property
    def empty(self) -> bool:
        return self == FilterRequest()
