"""Stored movie neighbours kept right when films are folded in, changed or removed (indexer update).

Every movie's K nearest were found at build time (movie_neighbours.npz). After an update
most lists are still right but for the *fresh* movies (new, or changed: their vectors
moved): an old movie's list gains a fresh movie that is now closer than its K-th, and
loses the removed and changed ones. So, with one exact search of the old movies against
the fresh ones only:

- a fresh movie's own list is searched in the new index;
- an old movie whose list lost an entry (a removed or changed neighbour, or padding where
  the catalogue was smaller than K + 1) is searched again: what its K-th now is is unknown;
- every other old movie keeps its list, merged with its nearest fresh movies.

The result equals a full recomputation with the same index (tests/indexer/test_update.py
compares them), at the cost of the fresh rows' searches plus old x fresh scores. The kept
lists' scores, which the merge ranks by, are computed from the old version's vectors (a
version written before scores were dropped from its file gives its stored ones).
"""
from __future__ import annotations

import faiss
import numpy as np
from tqdm import tqdm

from movielinks.search.neighbours import BATCH_ROWS, NeighbourLists, search, similar_rows


def refreshed_neighbours(stored: NeighbourLists, remap: np.ndarray, fresh: np.ndarray,
                         index: faiss.Index, vectors: np.ndarray, *, progress: bool = False
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Every movie's K nearest in the new catalogue (ids int32, scores float32 [n, K]).

    `stored`: the old version's lists [n_old, K]; `remap` int64 [n_old]: each old
    movie's id in the new catalogue, -1 if removed; `fresh` bool [n]: the new catalogue's
    new and changed movies; `index` and `vectors` the new catalogue's.
    """
    old_ids = np.asarray(stored.ids)
    n, k = len(vectors), old_ids.shape[1]
    ids, scores = np.full((n, k), -1, dtype=np.int32), np.full((n, k), -np.inf, dtype=np.float32)
    kept_old = np.flatnonzero(remap >= 0)
    rows = remap[kept_old]
    mapped = np.where(old_ids[kept_old] >= 0, remap[np.maximum(old_ids[kept_old], 0)], -1)
    lost = (mapped < 0) | fresh[np.maximum(mapped, 0)]
    whole = ~lost.any(axis=1) & ~fresh[rows]
    kept, kept_new = kept_old[whole], rows[whole]
    ids[kept_new] = mapped[whole]
    for start in range(0, len(kept), BATCH_ROWS):  # a batch at a time: the scores are computed
        scores[kept_new[start:start + BATCH_ROWS]] = stored.first(kept[start:start + BATCH_ROWS], k)[1]
    _merge_fresh(ids, scores, kept_new, np.flatnonzero(fresh), vectors, progress)
    again = np.setdiff1d(np.arange(n), kept_new)
    with tqdm(total=len(again), unit="movie", desc="neighbours searched again", disable=not progress or None) as bar:
        for start in range(0, len(again), BATCH_ROWS):
            batch = again[start:start + BATCH_ROWS]
            found, found_scores = similar_rows(index, vectors, batch, k)
            ids[batch], scores[batch] = found, found_scores
            bar.update(len(batch))
    return ids, scores


def _merge_fresh(ids: np.ndarray, scores: np.ndarray, rows: np.ndarray, fresh_ids: np.ndarray, vectors: np.ndarray,
                 progress: bool) -> None:
    """Merge into `rows`' lists (in place) their nearest fresh movies, by one exact search over the fresh ones."""
    if not len(fresh_ids) or not len(rows):
        return
    k = ids.shape[1]
    fresh_index = faiss.IndexFlatIP(vectors.shape[1])
    fresh_index.add(np.ascontiguousarray(vectors[fresh_ids], dtype=np.float32))
    with tqdm(total=len(rows), unit="movie", desc="neighbours merged", disable=not progress or None) as bar:
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start:start + BATCH_ROWS]
            near, near_scores = search(fresh_index, vectors[batch], k)
            near = np.where(near >= 0, fresh_ids[np.maximum(near, 0)], -1)
            both_ids = np.concatenate([ids[batch], near], axis=1)
            both_scores = np.concatenate([scores[batch], near_scores], axis=1)
            order = np.argsort(-both_scores, axis=1, kind="stable")[:, :k]
            ids[batch] = np.take_along_axis(both_ids, order, axis=1)
            scores[batch] = np.take_along_axis(both_scores, order, axis=1)
            bar.update(len(batch))
