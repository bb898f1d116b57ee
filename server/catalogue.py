"""The catalogue: every query the service answers, over one index version, by id.

Batch-first, as implicit's `similar_items` / `recommend`: movie or link ids in (a
numpy array; a single query is a batch of one), (ids, scores) out, each [n, k],
best first, padded with id -1 where fewer than k exist. No titles, no limits, no
gRPC here: server.service resolves titles and checks limits above it.

A Catalogue is immutable, so a request that started on one version finishes on it
even if the server swaps in another meanwhile.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from common.neighbours import all_similar_rows, search, similar_rows
from indexer.version import IndexVersion
from server.errors import Kind, ServiceError
from server.recommend import svm_direction

Ranked = tuple[np.ndarray, np.ndarray]  # (ids int64 [n, k], scores float32 [n, k])


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Movies ranked by the SVM's decision value w.x + b: `best` highest first, `worst` lowest first."""

    best_ids: np.ndarray
    best_scores: np.ndarray
    worst_ids: np.ndarray
    worst_scores: np.ndarray


class Catalogue:
    """Nearest neighbours, recommendations and predictions over one IndexVersion, by id."""

    def __init__(self, version: IndexVersion):
        self.version = version

    @property
    def name(self) -> str:
        return self.version.name

    def similar_movies(self, movie_ids: np.ndarray, k: int) -> Ranked:
        """Each movie's k most similar movies, itself excluded (stored neighbours where they reach k)."""
        v = self.version
        return similar_rows(v.movie_index, v.movie_vectors, movie_ids, k, v.movie_neighbours)

    def all_similar_movies(self, k: int, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every movie's k most similar movies, in id order: (movie_ids, ids, scores) a chunk at a time."""
        v = self.version
        return all_similar_rows(v.movie_index, v.movie_vectors, k, v.movie_neighbours, chunk_size)

    def similar_links(self, link_ids: np.ndarray, k: int) -> Ranked:
        """Each link's k most similar links, itself excluded."""
        return similar_rows(self.version.link_index, self.version.link_vectors, link_ids, k)

    def movie_links(self, movie_ids: np.ndarray, k: int) -> Ranked:
        """The k links nearest to each movie's vector: what characterises it."""
        return search(self.version.link_index, self.version.movie_vectors[np.asarray(movie_ids)], k)

    def link_movies(self, link_ids: np.ndarray, k: int) -> Ranked:
        """The k movies nearest to each link's vector."""
        return search(self.version.movie_index, self.version.link_vectors[np.asarray(link_ids)], k)

    def recommend(self, liked_ids: np.ndarray, disliked_ids: np.ndarray, k: int, worst_k: int = 0, *,
                  alive: Callable[[], bool] = lambda: True) -> Recommendation:
        """Every movie ranked by a linear SVM fitted on liked (+) and disliked (-) movies
        (server.recommend); the input movies are excluded. An inner-product search of w
        over the movie index finds the best, of -w the worst. Once `alive()` is False,
        checked before each step, the work stops with ServiceError STOPPED."""
        vectors = self.version.movie_vectors
        _still_wanted(alive)
        w, b = svm_direction(vectors, liked_ids, disliked_ids)
        _still_wanted(alive)
        exclude = [set(np.concatenate([liked_ids, disliked_ids]).tolist())]
        query = w.astype(np.float32)[None, :]
        best_ids, best_scores = search(self.version.movie_index, query, k, exclude)
        worst_ids, worst_scores = np.empty((1, 0), np.int64), np.empty((1, 0), np.float32)
        if worst_k:
            _still_wanted(alive)
            worst_ids, worst_scores = search(self.version.movie_index, -query, worst_k, exclude)
            worst_scores = b - worst_scores
        return Recommendation(best_ids[0], best_scores[0] + b, worst_ids[0], worst_scores[0])

    def predict(self, movie_ids: np.ndarray, attribute: str) -> np.ndarray:
        """The attribute model's prediction for each movie (KeyError for an attribute it has no model of)."""
        return self.version.attribute_models[attribute].predict(self.version.movie_vectors[np.asarray(movie_ids)])


def _still_wanted(alive: Callable[[], bool]) -> None:
    if not alive():
        raise ServiceError(Kind.STOPPED, "Recommend stopped: the call was cancelled or passed its deadline")
