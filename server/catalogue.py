"""The catalogue: every query the service answers, over one index version, by id.

Batch-first, as implicit's `similar_items` / `recommend`: movie or link ids in (a
numpy array; a single query is a batch of one), (ids, scores) out, each [n, k],
best first, padded with id -1 where fewer than k exist. No titles, no limits, no
gRPC here: server.service resolves titles and checks limits above it.

A Catalogue is immutable, so a request that started on one version finishes on it
even if the server swaps in another meanwhile.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from movielinks.search.neighbours import all_similar_rows, search, similar_rows, stored_rows
from movielinks.indexer.version import IndexVersion
from movielinks.server.errors import check_alive
from movielinks.search.filters import best_allowed, filtered_search, from_stored, row_products
from movielinks.search.diversity import candidates_for, diversify
from movielinks.search.recommend import (DEFAULT_STRATEGY, NEIGHBOURS_DIVERSITY, NEIGHBOURS_PER_EXAMPLE,
                                          average_vector_query, best_scores, era_affinity, era_years, local_scales,
                                          neighbours_scores, stand_in_dislike_ids, svm_scores)

Ranked = tuple[np.ndarray, np.ndarray]  # (ids int64 [n, k], scores float32 [n, k])
# recommend's answer: (best, worst), each (ids int64 [k], scores float32 [k]) ranked by the
# strategy's score, best highest first, worst lowest first (server.service names and completes it).
BestAndWorst = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class Catalogue:
    """Nearest neighbours, recommendations and predictions over one IndexVersion, by id."""

    def __init__(self, version: IndexVersion):
        self.version = version
        self._movie_scales: np.ndarray | None = None

    @property
    def movie_scales(self) -> np.ndarray | None:
        """Each movie's local scale (search.recommend.local_scales), as the version stores it beside
        its neighbour lists; for a version written before, computed on first use from the lists'
        stored scores. None for a version without stored neighbours (no local scaling)."""
        v = self.version
        if self._movie_scales is None and v.movie_neighbours is not None:
            self._movie_scales = v.movie_scales if v.movie_scales is not None else local_scales(v.movie_neighbours.scores)
        return self._movie_scales

    @property
    def name(self) -> str:
        return self.version.name

    def similar_movies(self, movie_ids: np.ndarray, k: int, allowed: np.ndarray | None = None,
                       excluded: list[np.ndarray] | None = None) -> Ranked:
        """Each movie's k most similar movies, itself excluded (stored neighbours where they reach k).

        With `allowed` (bool [n_movies]) only those movies, and each row's `excluded` ids
        left out too (search.filters): from the stored neighbours where at least k of them
        pass, else by scoring every allowed movie."""
        v = self.version
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        if allowed is None:
            return similar_rows(v.movie_index, v.movie_vectors, movie_ids, k, v.movie_neighbours)
        excluded = excluded or [np.empty(0, np.int64)] * len(movie_ids)
        excluded = [np.append(extra, q).astype(np.int64) for q, extra in zip(movie_ids.tolist(), excluded)]
        if v.movie_neighbours is None or k > v.movie_neighbours.k:
            return filtered_search(v.movie_vectors, v.movie_vectors[movie_ids], allowed, excluded, k)
        ids, scores, answered = from_stored(v.movie_neighbours, movie_ids, allowed, excluded, k)
        rest = np.flatnonzero(~answered)
        if len(rest):
            ids[rest], scores[rest] = filtered_search(v.movie_vectors, v.movie_vectors[movie_ids[rest]], allowed,
                                                      [excluded[i] for i in rest.tolist()], k)
        return ids, scores

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
        """The k movies nearest to each link's vector: from the lists stored at build time where they
        reach k (a link's vector asks the movie index at a costly setting), else by a search."""
        v = self.version
        link_ids = np.asarray(link_ids, dtype=np.int64)
        found = stored_rows(v.link_movies, link_ids, k)
        return found if found is not None else search(v.movie_index, v.link_vectors[link_ids], k)

    def vector_movies(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Ranked:
        """The k movies nearest to each unit query vector [n, dim] (only `allowed` ones, when given)."""
        queries = np.asarray(queries, dtype=np.float32)
        if allowed is None:
            return search(self.version.movie_index, queries, k)
        return filtered_search(self.version.movie_vectors, queries, allowed, [np.empty(0, np.int64)] * len(queries), k)

    def recommend(self, liked_ids: np.ndarray, disliked_ids: np.ndarray, k: int, worst_k: int = 0, *,
                  strategy: str = DEFAULT_STRATEGY, liked_links: np.ndarray | None = None,
                  disliked_links: np.ndarray | None = None, allowed: np.ndarray | None = None,
                  alive: Callable[[], bool] = lambda: True, liked_vectors: np.ndarray | None = None,
                  disliked_vectors: np.ndarray | None = None) -> BestAndWorst:
        """Every movie ranked by `strategy` (search.recommend) over the liked (+) and disliked (-)
        movies and links (and unit vectors: films folded in, callers' own); the input movies are excluded, and with `allowed` every movie it
        leaves out. average_vector without a filter searches the movie index with its
        query vector (-query for the worst); the other strategies, and any filtered query,
        score every movie. Once `alive()` is False, checked before each step, the work
        stops with ServiceError STOPPED."""
        v = self.version
        vectors = np.asarray(v.movie_vectors)  # not np.memmap: see search.filters.filtered_search
        liked_extra = _example_vectors(v.link_vectors, liked_links, liked_vectors)
        disliked_extra = _example_vectors(v.link_vectors, disliked_links, disliked_vectors)
        inputs = np.concatenate([liked_ids, disliked_ids]).astype(np.int64)
        check_alive(alive, "Recommend")
        if strategy == "neighbours":
            scores = neighbours_scores(self._example_neighbours(liked_ids, liked_extra),
                                       self._example_neighbours(disliked_ids, disliked_extra),
                                       v.years, era_years(v.years, liked_ids, disliked_ids), v.prominence,
                                       self.movie_scales)
            (best_ids, best), worst = self._ranked(scores, inputs, candidates_for(k, len(scores) - 1), worst_k,
                                                   allowed, alive)
            return diversify(best_ids, best, k, vectors, weight=NEIGHBOURS_DIVERSITY), worst
        if strategy == "best_score":
            positives = np.concatenate([vectors[liked_ids], liked_extra])
            negatives = np.concatenate([vectors[disliked_ids], disliked_extra])
            return self._ranked(best_scores(vectors, positives, negatives), inputs, k, worst_k, allowed, alive)
        if strategy == "svm":
            scores = self._svm_scores(liked_ids, disliked_ids, liked_extra, disliked_extra, liked_links, disliked_links)
            check_alive(alive, "Recommend")
            return self._ranked(scores, inputs, k, worst_k, allowed, alive)
        query = average_vector_query(np.concatenate([vectors[liked_ids], liked_extra]),
                                     np.concatenate([vectors[disliked_ids], disliked_extra]))
        check_alive(alive, "Recommend")
        if allowed is not None:
            return self._ranked(row_products(query[None, :], vectors)[0], inputs, k, worst_k, allowed, alive)
        exclude = [set(inputs.tolist())]
        best_ids, best_scores_ = search(v.movie_index, query[None, :], k, exclude)
        worst_ids, worst_scores = np.empty((1, 0), np.int64), np.empty((1, 0), np.float32)
        if worst_k:
            check_alive(alive, "Recommend")
            worst_ids, worst_scores = search(v.movie_index, -query[None, :], worst_k, exclude)
            worst_scores = -worst_scores
        return (best_ids[0], best_scores_[0]), (worst_ids[0], worst_scores[0])

    def _svm_scores(self, liked_ids: np.ndarray, disliked_ids: np.ndarray, liked_extra: np.ndarray,
                    disliked_extra: np.ndarray, liked_links: np.ndarray | None,
                    disliked_links: np.ndarray | None) -> np.ndarray:
        """search.recommend.svm_scores of every movie, with the era of the liked films' years and,
        where extra examples (links, vectors) are liked, a seeded sample of the other links."""
        v = self.version
        era = era_affinity(v.years, era_years(v.years, liked_ids, disliked_ids))
        links = np.concatenate([[] if ids is None else ids for ids in (liked_links, disliked_links)]).astype(np.int64)
        stand_in_links = (np.asarray(v.link_vectors[stand_in_dislike_ids(len(v.link_vectors), links, len(liked_extra))],
                                     dtype=np.float32)
                          if len(liked_extra) else None)
        return svm_scores(np.asarray(v.movie_vectors), v.prominence, era, liked_ids, disliked_ids, liked_extra,
                          disliked_extra, stand_in_links)

    def _example_neighbours(self, movie_ids: np.ndarray, link_vectors: np.ndarray) -> Ranked:
        """The NEIGHBOURS_PER_EXAMPLE nearest movies of each example movie (stored lists where
        they reach that far) and of each example link vector, one row per example."""
        v = self.version
        k = min(NEIGHBOURS_PER_EXAMPLE, len(v.movie_vectors) - 1)
        ids, scores = np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        if len(movie_ids):
            ids, scores = similar_rows(v.movie_index, v.movie_vectors, np.asarray(movie_ids, dtype=np.int64), k,
                                       v.movie_neighbours)
        if len(link_vectors):
            link_ids, link_scores = search(v.movie_index, np.asarray(link_vectors, dtype=np.float32), k)
            ids, scores = np.concatenate([ids, link_ids]), np.concatenate([scores, link_scores])
        return ids, scores

    @staticmethod
    def _ranked(scores: np.ndarray, inputs: np.ndarray, k: int, worst_k: int, allowed: np.ndarray | None,
                alive: Callable[[], bool]) -> BestAndWorst:
        """The best and worst movies by every movie's score, inputs and disallowed movies left out."""
        allowed = np.ones(len(scores), dtype=bool) if allowed is None else allowed
        scores = scores.astype(np.float32)[None, :]
        best_ids, best = best_allowed(scores, allowed, [inputs], k)
        worst_ids, worst = np.empty((1, 0), np.int64), np.empty((1, 0), np.float32)
        if worst_k:
            check_alive(alive, "Recommend")
            worst_ids, worst = best_allowed(-scores, allowed, [inputs], worst_k)
            worst = -worst
        return (best_ids[0], best[0]), (worst_ids[0], worst[0])

    def predict(self, movie_ids: np.ndarray, attribute: str) -> np.ndarray:
        """The attribute model's prediction for each movie (KeyError for an attribute it has no model of)."""
        return self.version.attribute_models[attribute].predict(self.version.movie_vectors[np.asarray(movie_ids)])


def _example_vectors(link_vectors: np.ndarray, link_ids: np.ndarray | None, vectors: np.ndarray | None) -> np.ndarray:
    """The vectors of some links, then some vectors given as they are: a recommendation's extra examples."""
    # float32 whatever the version stores (float16 link vectors beyond 200,000 links: indexer.version).
    linked = np.asarray(link_vectors[np.asarray(link_ids if link_ids is not None else [], dtype=np.int64)], np.float32)
    if vectors is None or not len(vectors):
        return linked
    return np.concatenate([linked, np.asarray(vectors, dtype=linked.dtype)])

