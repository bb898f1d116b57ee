"""Clusters of similar movies, each named by the links that mark it.

Shared by the trainer's map (`trainer plot`) and the web explorer's map (the
server), so both name a region of the movie space the same way: k-means on the
movie vectors, a cluster named by the links that are nearest its films more often
than they are for the whole map (for the 36k file these are genres: "Western",
"Silent", "Animated"). numpy and scikit-learn (the server passes FAISS's search in).
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

NAME_TOP_LINKS = 5  # a film's nearest links that count towards naming its cluster

_FILM_SUFFIX = re.compile(r"\s*\([^()]*\bfilm\)$")


def name_clusters(
    vectors: np.ndarray, link_vectors: np.ndarray, links: list[str], n_clusters: int, seed: int, n_names: int = 2,
    left_out: np.ndarray | None = None, nearest: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """(cluster of each movie [n], a name per cluster): k-means on the unit vectors, clusters ordered
    by size. A cluster is named by the `n_names` links that are most often among its films'
    NAME_TOP_LINKS nearest links, beyond how often they are for the whole map (what marks the
    cluster, not what every film has). Links marked in `left_out` (bool [n_links]: e.g. the
    citation links of common.movie_links, Internet Movie Database, AllMovie) never name one.
    `nearest(vectors, link_vectors, top)` finds each film's nearest links (nearest_links if None)."""
    from sklearn.cluster import KMeans

    if left_out is not None and left_out.any():
        kept = np.flatnonzero(~np.asarray(left_out, dtype=bool))
        link_vectors, links = np.asarray(link_vectors)[kept], [links[j] for j in kept.tolist()]

    k = max(1, min(n_clusters, len(vectors)))
    found = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(vectors)
    by_size = np.argsort(-np.bincount(found, minlength=k), kind="stable")
    cluster = np.argsort(by_size)[found]
    if not len(links):
        return cluster, [f"cluster {c + 1}" for c in range(k)]
    nearest = (nearest or nearest_links)(vectors, link_vectors, min(NAME_TOP_LINKS, len(links)))
    overall = np.bincount(nearest.ravel(), minlength=len(links)) / len(vectors)
    names = []
    for c in range(k):
        members = nearest[cluster == c]
        lift = np.bincount(members.ravel(), minlength=len(links)) / max(1, len(members)) - overall
        names.append(", ".join(short_title(links[j]) for j in np.argsort(-lift, kind="stable")[:n_names]))
    return cluster, names


def nearest_links(vectors: np.ndarray, link_vectors: np.ndarray, top: int) -> np.ndarray:
    """Each vector's `top` nearest links by inner product: ids int64 [n, top], in no set order;
    numpy, 16 M products at a time. The server passes search.neighbours.exhaustive_top instead
    (FAISS; at a million links 107 s in numpy, 9 s in FAISS, for the explorer's 1,000 films)."""
    chunk = max(1, 16_000_000 // len(link_vectors))
    return np.concatenate([np.argpartition(-(vectors[i : i + chunk] @ link_vectors.T), top - 1, axis=1)[:, :top]
                           for i in range(0, len(vectors), chunk)])


def short_title(title: str) -> str:
    """'Avatar (2009 film)' -> 'Avatar'; Wikipedia's disambiguation suffix says nothing on a film map."""
    return _FILM_SUFFIX.sub("", title) or title
