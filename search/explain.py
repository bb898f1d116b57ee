"""Why two movies are alike: the links they share, ranked by how much each contributes.

Pure numpy. With the films' links (an index version built from a run that has
movie_links.npz) a shared link's contribution is its term of the TF-IDF cosine of
the two films' link sets: idf^2 / (|a| |b|), idf = ln((1 + films) / (1 + films
linking to it)) + 1 (scikit-learn's smoothed idf, binary term frequency). The
terms of every shared link sum to that cosine, so a rare link (the director)
outweighs a common one (the country), and the sum is the plain-overlap similarity
a person could check by reading the two articles. The server passes each film's links
outside its citations and navigation boxes (common.movie_links `reasons_of`), so a
publisher or a film database cited by both is no reason. Links of equal idf are ordered by
the product of the link vector's cosines to the two movies (how strongly the model
ties the link to both).

Without them (older versions), the links whose vectors are closest to both movies
stand in, scored by the smaller of the two cosines: the model's associations, not
links read from the articles. Up to EXACT_ASSOCIATION_LINKS links every link is
scored; beyond (1.3 M links: a second a call), only the ASSOCIATION_CANDIDATES links
nearest to each of the two vectors in the link index (a link close to both is close
to each, so the best ones are usually among them; not always: it is the model's
association, ranked within a bounded set, a few milliseconds a call).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import faiss
import numpy as np

from movielinks.common.movie_links import MovieLinks
from movielinks.search.neighbours import search

EXACT_ASSOCIATION_LINKS = 100_000
ASSOCIATION_CANDIDATES = 256
ARTICLE_LINKS = "article_links"
MODEL_ASSOCIATIONS = "model_associations"


@dataclasses.dataclass(frozen=True)
class Shared:
    """Shared links of two movies (or a movie and a set of liked examples), best first."""

    link_ids: np.ndarray  # int64 [n]
    contributions: np.ndarray  # float32 [n]
    total: int  # links shared in all (the n returned are the largest)
    overlap_cosine: float  # the sum of every shared link's contribution (article links), else 0


def idf(links: MovieLinks, n_links: int) -> np.ndarray:
    """Smoothed inverse document frequency of every link, float64 [n_links]."""
    return np.log((1.0 + links.n_movies) / (1.0 + links.films_per_link(n_links))) + 1.0


def shared_article_links(a: np.ndarray, b: np.ndarray, weights: np.ndarray, n: int,
                         tiebreak: Callable[[np.ndarray], np.ndarray] | None = None) -> Shared:
    """The n shared links of link sets `a` and `b` (sorted distinct ids) with the largest
    TF-IDF cosine terms; `weights` is `idf`. Links of equal weight (many rare links share
    the largest idf) are ordered by `tiebreak(link ids)`, larger first."""
    common = np.intersect1d(a, b, assume_unique=True)
    norm = float(np.sqrt((weights[a] ** 2).sum() * (weights[b] ** 2).sum()))
    if not len(common) or norm == 0:
        return Shared(np.empty(0, np.int64), np.empty(0, np.float32), 0, 0.0)
    terms = weights[common] ** 2 / norm
    second = tiebreak(common) if tiebreak is not None else np.zeros(len(common))
    order = np.lexsort((-second, -np.round(terms, 9)))[:n]
    return Shared(common[order].astype(np.int64), terms[order].astype(np.float32), len(common), float(terms.sum()))


def shared_associations(link_vectors: np.ndarray, a: np.ndarray, b: np.ndarray, n: int,
                        candidates: np.ndarray | None = None) -> Shared:
    """The n links whose smaller cosine to vectors `a` and `b` is largest, among the
    `candidates` link ids if given (see `association_candidates`), else every link."""
    link_vectors = np.asarray(link_vectors)  # not np.memmap: see search.filters.filtered_search
    ids = np.arange(len(link_vectors)) if candidates is None else np.unique(candidates[candidates >= 0])
    chosen = link_vectors if candidates is None else link_vectors[ids]
    both = np.minimum(chosen @ a, chosen @ b)
    n = min(n, len(both))
    if n == 0:
        return Shared(np.empty(0, np.int64), np.empty(0, np.float32), 0, 0.0)
    top = np.argpartition(-both, n - 1)[:n]
    top = top[np.lexsort((ids[top], -both[top]))]  # equal scores: the lower link id first, as a full scan
    return Shared(ids[top].astype(np.int64), both[top].astype(np.float32), n, 0.0)


def association_candidates(link_index: faiss.Index, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Link ids worth scoring for `shared_associations` of `a` and `b`: None (every link) up to
    EXACT_ASSOCIATION_LINKS, else the ASSOCIATION_CANDIDATES nearest links to each of them."""
    if link_index.ntotal <= EXACT_ASSOCIATION_LINKS:
        return None
    ids, _ = search(link_index, np.stack([a, b]), ASSOCIATION_CANDIDATES)
    return ids.ravel()
