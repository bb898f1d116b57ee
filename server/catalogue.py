"""The catalogue: every query the service answers, over one index version.

Plain Python and numpy in, plain Python out; no gRPC here. A Catalogue is
immutable, so a request that started on one version finishes on it even if the
server swaps in another meanwhile.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Iterator, Sequence

import faiss
import numpy as np

from indexer.version import IndexVersion, search
from server.errors import invalid, not_found
from server.recommend import fit_svm, random_negative_ids
from server.titles import TitleResolver, shown

MAX_K = 1000  # largest k (and worst_k) any request may ask for
MAX_BATCH = 10_000  # most titles in one batch or list field
MAX_STRING_CHARS = 500  # longest title or link name accepted
MAX_CLOSE_MATCHES = 20  # misspelt titles one request may ask to resolve (each scans the catalogue)
EXPORT_NEIGHBOURS_PER_CHUNK = 40_000  # keeps each streamed message well under gRPC's 4 MB
DEFAULT_EXPORT_CHUNK = 4096  # FAISS's BLAS path needs a few thousand queries per search

Neighbours = list[tuple[str, float]]


@dataclasses.dataclass(frozen=True)
class Prediction:
    title: str
    attribute: str
    unit: str
    predicted: float
    known: float | None
    heldout_mse: float
    baseline_mse: float


@dataclasses.dataclass(frozen=True)
class Recommendation:
    best: list[tuple[str, float]]  # (title, decision value), highest first
    worst: list[tuple[str, float]]  # lowest first


class Catalogue:
    """Nearest neighbours, recommendations and predictions over one IndexVersion."""

    def __init__(self, version: IndexVersion):
        self.version = version
        self.movie_titles = TitleResolver([m.title for m in version.movies], "movie")
        self.link_names = TitleResolver(version.links, "link")

    @property
    def name(self) -> str:
        return self.version.name

    def resolve_title(self, title: str) -> tuple[str, str]:
        """(catalogue title, how it matched)."""
        movie_id, match = self._movie(title)
        return self.version.movies[movie_id].title, match

    def similar_movies(self, title: str, k: int) -> tuple[str, Neighbours]:
        movie_id, _ = self._movie(title)
        _check_k(k)
        return self.version.movies[movie_id].title, self._movie_neighbours([movie_id], k)[0]

    def similar_movies_batch(self, titles: Sequence[str], k: int) -> list[tuple[str, Neighbours]]:
        _check_count("titles", titles, minimum=1)
        _check_k(k)
        ids = self._movie_ids(titles)
        return [(self.version.movies[i].title, n) for i, n in zip(ids, self._movie_neighbours(ids, k))]

    def similar_links(self, link: str, k: int) -> tuple[str, Neighbours]:
        link_id = self._link(link)
        _check_k(k)
        ids, scores = search(self.version.link_index, self.version.link_vectors[[link_id]], k, [[link_id]])
        return self.version.links[link_id], self._named(ids[0], scores[0], self.version.links)

    def movie_links(self, title: str, k: int) -> tuple[str, Neighbours]:
        movie_id, _ = self._movie(title)
        _check_k(k)
        ids, scores = search(self.version.link_index, self.version.movie_vectors[[movie_id]], k)
        return self.version.movies[movie_id].title, self._named(ids[0], scores[0], self.version.links)

    def link_movies(self, link: str, k: int) -> tuple[str, Neighbours]:
        link_id = self._link(link)
        _check_k(k)
        ids, scores = search(self.version.movie_index, self.version.link_vectors[[link_id]], k)
        return self.version.links[link_id], self._named(ids[0], scores[0], self._titles)

    def recommend(self, liked: Sequence[str], disliked: Sequence[str], k: int, worst_k: int = 0) -> Recommendation:
        """Movies ranked by a linear SVM fitted on liked (+) and disliked (-) movies."""
        _check_count("liked", liked, minimum=1)
        _check_count("disliked", disliked, minimum=0)
        _check_k(k)
        if not 0 <= worst_k <= MAX_K:
            raise invalid(f"worst_k must be between 0 and {MAX_K}, got {worst_k}")
        liked_ids = list(dict.fromkeys(self._movie_ids(liked)))
        disliked_ids = list(dict.fromkeys(self._movie_ids(disliked)))
        both = set(liked_ids) & set(disliked_ids)
        if both:
            names = ", ".join(shown(self.version.movies[i].title) for i in sorted(both)[:5])
            raise invalid(f"a movie cannot be both liked and disliked: {names}")
        if len(liked_ids) >= len(self.version.movies):
            raise invalid("every movie is liked: nothing is left to recommend")
        negatives = disliked_ids or random_negative_ids(len(self.version.movies), liked_ids).tolist()
        vectors = self.version.movie_vectors
        w, b = fit_svm(vectors[liked_ids], vectors[negatives])
        exclude = [set(liked_ids) | set(disliked_ids)]
        query = w.astype(np.float32)[None, :]
        best_ids, best_scores = search(self.version.movie_index, query, k, exclude)
        best = self._named(best_ids[0], best_scores[0] + b, self._titles)
        worst: list[tuple[str, float]] = []
        if worst_k:
            worst_ids, worst_scores = search(self.version.movie_index, -query, worst_k, exclude)
            worst = self._named(worst_ids[0], b - worst_scores[0], self._titles)
        return Recommendation(best, worst)

    def predict_attribute(self, title: str, attribute: str) -> Prediction:
        movie_id, _ = self._movie(title)
        _check_string("attribute", attribute)
        model = self.version.attribute_models.get(attribute)
        if model is None:
            known = ", ".join(sorted(self.version.attribute_models)) or "none"
            raise not_found(f"unknown attribute {shown(attribute)}; this index predicts: {known}")
        movie = self.version.movies[movie_id]
        predicted = float(model.predict(self.version.movie_vectors[movie_id]))
        return Prediction(movie.title, attribute, model.unit, predicted, movie.attributes.get(attribute),
                          model.heldout_mse, model.baseline_mse)

    def export_neighbours(self, k: int, chunk_size: int = 0) -> Iterator[list[tuple[str, Neighbours]]]:
        """Every movie's top-k similar movies, in movie id order, in chunks."""
        _check_k(k)
        if not 0 <= chunk_size <= MAX_BATCH:
            raise invalid(f"chunk_size must be between 0 and {MAX_BATCH}, got {chunk_size}")
        size = max(1, min(chunk_size or DEFAULT_EXPORT_CHUNK, EXPORT_NEIGHBOURS_PER_CHUNK // k))
        n = len(self.version.movies)
        for start in range(0, n, size):
            ids = list(range(start, min(start + size, n)))
            yield [(self.version.movies[i].title, nb) for i, nb in zip(ids, self._movie_neighbours(ids, k))]

    def info(self) -> dict:
        manifest = self.version.manifest
        indexes = manifest.get("indexes", {})
        return {
            "index_version": self.name,
            "movies": len(self.version.movies),
            "links": len(self.version.links),
            "dim": self.version.dim,
            "movie_index_type": _index_type(indexes.get("movies", {})),
            "link_index_type": _index_type(indexes.get("links", {})),
            "dataset_json": json.dumps(manifest.get("dataset", {})),
            "metrics_json": json.dumps(manifest.get("metrics", {})),
            "attributes": sorted(self.version.attribute_models),
            "max_k": MAX_K,
            "max_batch": MAX_BATCH,
            "max_string_chars": MAX_STRING_CHARS,
        }

    @property
    def _titles(self) -> list[str]:
        return self.movie_titles.names

    def _movie_neighbours(self, ids: list[int], k: int) -> list[Neighbours]:
        stored = self.version.movie_neighbours
        if stored is not None and k <= stored[0].shape[1]:  # found at build time with the same index
            return [self._named(stored[0][i, :k], stored[1][i, :k], self._titles) for i in ids]
        ids_array = np.asarray(ids, dtype=np.int64)
        with _all_cores():
            found, scores = search(self.version.movie_index, self.version.movie_vectors[ids_array], k, ids_array[:, None])
        return [self._named(f, s, self._titles) for f, s in zip(found, scores)]

    def _movie_ids(self, titles: Sequence[str]) -> list[int]:
        """Ids of many titles: each distinct title resolved once, at most MAX_CLOSE_MATCHES by close match."""
        resolved: dict[str, int] = {}
        close_left = MAX_CLOSE_MATCHES
        for title in dict.fromkeys(titles):
            _check_string("title", title)
            resolved[title], match = self.movie_titles.resolve(title, close=close_left > 0)
            close_left -= match == "close"
        return [resolved[t] for t in titles]

    def _movie(self, title: str) -> tuple[int, str]:
        _check_string("title", title)
        return self.movie_titles.resolve(title)

    def _link(self, link: str) -> int:
        _check_string("link", link)
        return self.link_names.resolve(link, fuzzy=False)[0]

    @staticmethod
    def _named(ids: np.ndarray, scores: np.ndarray, names: list[str]) -> Neighbours:
        return [(names[i], float(s)) for i, s in zip(ids.tolist(), scores.tolist()) if i >= 0]


@contextlib.contextmanager
def _all_cores() -> Iterator[None]:
    """Let FAISS use every core for a batch search in this thread (single queries use one)."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise invalid(f"k must be between 1 and {MAX_K}, got {k}")


def _check_string(field: str, value: str) -> None:
    if not value or not value.strip():
        raise invalid(f"{field} is empty")
    if len(value) > MAX_STRING_CHARS:
        raise invalid(f"{field} is {len(value)} characters long; the limit is {MAX_STRING_CHARS}")


def _check_count(field: str, values: Sequence[str], minimum: int) -> None:
    if len(values) < minimum:
        raise invalid(f"{field} needs at least {minimum} title{'s' if minimum > 1 else ''}")
    if len(values) > MAX_BATCH:
        raise invalid(f"{field} has {len(values)} titles; the limit is {MAX_BATCH}")


def _index_type(description: dict) -> str:
    kind, factory = description.get("type", "?"), description.get("factory", "")
    return f"{kind} ({factory})" if factory else kind
