"""The service: every query the server answers, by title, over one index version.

A thin layer over the id-based server.catalogue: it checks each request against
server.limits, resolves titles and link names to ids (server.titles), asks the
catalogue, and names the results. No gRPC here (the servicer maps requests and
errors). Immutable, like the catalogue: the server swaps whole services.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Sequence

import numpy as np

from common.neighbours import BATCH_ROWS, named
from common.records import Neighbours, Prediction
from indexer.version import IndexVersion
from server import limits
from server.catalogue import Catalogue, Ranked
from server.errors import invalid, not_found
from server.titles import TitleResolver, shown


@dataclasses.dataclass(frozen=True)
class Recommendation:
    best: Neighbours  # (title, decision value), highest first
    worst: Neighbours  # lowest first


class MovieService:
    """Queries by title over one IndexVersion; each method raises ServiceError for a bad request."""

    def __init__(self, version: IndexVersion):
        self.catalogue = Catalogue(version)
        self.movie_titles = TitleResolver([m.title for m in version.movies], "movie")
        self.link_names = TitleResolver(version.links, "link")

    @property
    def version(self) -> IndexVersion:
        return self.catalogue.version

    @property
    def name(self) -> str:
        return self.catalogue.name

    def resolve_title(self, title: str) -> tuple[str, str]:
        """(catalogue title, how it matched)."""
        limits.check_string("title", title)
        movie_id, match = self.movie_titles.resolve(title)
        return self.movie_titles.names[movie_id], match

    def similar_movies(self, title: str, k: int) -> tuple[str, Neighbours]:
        return self.similar_movies_batch([title], k)[0]

    def similar_movies_batch(self, titles: Sequence[str], k: int) -> list[tuple[str, Neighbours]]:
        limits.check_count("titles", titles, minimum=1)
        limits.check_k(k)
        limits.check_batch_neighbours(len(titles), k)
        ids = self._movie_ids(titles)
        return self._named_rows(ids, self.catalogue.similar_movies(ids, k), self.movie_titles, self.movie_titles)

    def similar_links(self, link: str, k: int) -> tuple[str, Neighbours]:
        ids = self._link_ids(link)
        limits.check_k(k)
        return self._named_rows(ids, self.catalogue.similar_links(ids, k), self.link_names, self.link_names)[0]

    def movie_links(self, title: str, k: int) -> tuple[str, Neighbours]:
        ids = self._movie_ids([title])
        limits.check_k(k)
        return self._named_rows(ids, self.catalogue.movie_links(ids, k), self.movie_titles, self.link_names)[0]

    def link_movies(self, link: str, k: int) -> tuple[str, Neighbours]:
        ids = self._link_ids(link)
        limits.check_k(k)
        return self._named_rows(ids, self.catalogue.link_movies(ids, k), self.link_names, self.movie_titles)[0]

    def recommend(self, liked: Sequence[str], disliked: Sequence[str], k: int, worst_k: int = 0, *,
                  alive: Callable[[], bool] = lambda: True) -> Recommendation:
        """Movies ranked by a linear SVM fitted on liked (+) and disliked (-) movies.

        `alive` is asked between the steps (titles, fit, searches): once it says False (the
        caller cancelled or passed its deadline) the work stops with ServiceError STOPPED.
        """
        limits.check_count("liked", liked, minimum=1)
        limits.check_count("disliked", disliked, minimum=0)
        limits.check_recommend_titles(len(liked), len(disliked))
        limits.check_k(k)
        limits.check_k(worst_k, "worst_k", minimum=0)
        liked_ids = _unique(self._movie_ids(liked))
        disliked_ids = _unique(self._movie_ids(disliked))
        both = np.intersect1d(liked_ids, disliked_ids)
        if len(both):
            names = ", ".join(shown(self.movie_titles.names[i]) for i in both[:5])
            raise invalid(f"a movie cannot be both liked and disliked: {names}")
        if len(liked_ids) >= len(self.movie_titles.names):
            raise invalid("every movie is liked: nothing is left to recommend")
        found = self.catalogue.recommend(liked_ids, disliked_ids, k, worst_k, alive=alive)
        titles = self.movie_titles.names
        return Recommendation(named(found.best_ids, found.best_scores, titles),
                              named(found.worst_ids, found.worst_scores, titles))

    def predict_attribute(self, title: str, attribute: str) -> Prediction:
        ids = self._movie_ids([title])
        limits.check_string("attribute", attribute)
        model = self.version.attribute_models.get(attribute)
        if model is None:
            known = ", ".join(sorted(self.version.attribute_models)) or "none"
            raise not_found(f"unknown attribute {shown(attribute)}; this index predicts: {known}")
        movie = self.version.movies[int(ids[0])]
        predicted = float(self.catalogue.predict(ids, attribute)[0])
        return Prediction(movie.title, attribute, model.unit, predicted, movie.attributes.get(attribute),
                          model.heldout_mse, model.baseline_mse, self.name)

    def export_neighbours(self, k: int, chunk_size: int = 0) -> Iterator[list[tuple[str, Neighbours]]]:
        """Every movie's top-k similar movies, in movie id order, in chunks of at most
        `chunk_size` movies (0: the default) and EXPORT_NEIGHBOURS_PER_CHUNK neighbours."""
        limits.check_k(k)
        limits.check_chunk_size(chunk_size)
        size = max(1, min(chunk_size or BATCH_ROWS, limits.EXPORT_NEIGHBOURS_PER_CHUNK // k))
        titles = self.movie_titles
        for movie_ids, ids, scores in self.catalogue.all_similar_movies(k, size):
            yield self._named_rows(movie_ids, (ids, scores), titles, titles)

    def info(self) -> dict:
        manifest = self.version.manifest
        return {
            "index_version": self.name,
            "movies": len(self.version.movies),
            "links": len(self.version.links),
            "dim": self.version.dim,
            "movie_index_type": manifest.indexes["movies"].label,
            "link_index_type": manifest.indexes["links"].label,
            "dataset": manifest.dataset,
            "metrics": manifest.metrics,
            "attributes": sorted(self.version.attribute_models),
            "max_k": limits.MAX_K,
            "max_batch": limits.MAX_BATCH,
            "max_string_chars": limits.MAX_STRING_CHARS,
            "default_k": limits.DEFAULT_K,
        }

    def _movie_ids(self, titles: Sequence[str]) -> np.ndarray:
        """Ids of many titles: each distinct title resolved once, at most MAX_CLOSE_MATCHES by close match."""
        resolved: dict[str, int] = {}
        close_left = limits.MAX_CLOSE_MATCHES
        for title in dict.fromkeys(titles):
            limits.check_string("title", title)
            resolved[title], match = self.movie_titles.resolve(title, close=close_left > 0)
            close_left -= match == "close"
        return np.array([resolved[t] for t in titles], dtype=np.int64)

    def _link_ids(self, link: str) -> np.ndarray:
        limits.check_string("link", link)
        return np.array([self.link_names.resolve(link, fuzzy=False)[0]], dtype=np.int64)

    @staticmethod
    def _named_rows(
        query_ids: np.ndarray, ranked: Ranked, queries: TitleResolver, results: TitleResolver
    ) -> list[tuple[str, Neighbours]]:
        ids, scores = ranked
        return [(queries.names[q], named(i, s, results.names)) for q, i, s in zip(query_ids.tolist(), ids, scores)]


def _unique(ids: np.ndarray) -> np.ndarray:
    """`ids` without repeats, in the order of first appearance."""
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)]
