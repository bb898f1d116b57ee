"""Consistency of a loaded index version: sizes, dimensions, names, metrics agree.

Checksums say the files are the ones the indexer wrote; these checks say the files
agree with each other, so that a version the server swaps in answers every query.
They read no stored list whole (a million movies' lists are hundreds of MB): what needs
the lists' scores (ranked best first, finite) is checked where the indexer has them in
hand, before it writes them (ranked_lists_problem).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import faiss
import numpy as np

from movielinks.common import npz

from movielinks.indexer.errors import IndexerError

if TYPE_CHECKING:
    from movielinks.indexer.version import IndexVersion


def validate_version(v: IndexVersion) -> None:
    """Raise IndexerError naming the first inconsistency of `v`."""
    if v.movie_vectors.ndim != 2 or v.link_vectors.ndim != 2:
        raise IndexerError(f"{v.path}: vectors are not matrices")
    # Each record's fields and the titles' uniqueness are checked where the title index is
    # built from the records (indexer.version.build_lookups): at build time, or at load for
    # a version without it. Here: that the lookups cover the records they index.
    for what, index in (("movie", v.movie_titles), ("link", v.link_titles)):
        problem = index.problem()
        if problem is not None:
            raise IndexerError(f"{v.path}: {what} titles: {problem}")
    n_movies, n_links = v.movie_vectors.shape[0], v.link_vectors.shape[0]
    described = v.manifest.indexes
    checks = [
        (v.movie_vectors.shape[1] == v.link_vectors.shape[1], "movie and link dimensions differ"),
        (v.movie_index.d == v.dim and v.link_index.d == v.dim, "an index's dimension differs from the vectors'"),
        (v.movie_index.ntotal == len(v.movies) == len(v.movie_titles) == len(v.years) == n_movies,
         "movie index, vectors and names differ in size"),
        (len(v.facts.directors) == len(v.facts.imdb_ids) == len(v.facts.wikidata_ids) == n_movies,
         "movie facts (directors, ids) differ in size from the movies"),
        (int(v.movies.offsets[-1]) == v.movies.path.stat().st_size,
         "movie records differ in size from movies.jsonl (its line offsets do not end where the file does)"),
        (v.link_index.ntotal == len(v.links) == n_links, "link index, vectors and names differ in size"),
        (described["movies"].size == n_movies and described["links"].size == n_links,
         "the manifest's index sizes differ from the files'"),
        (described["movies"].dim == v.dim and described["links"].dim == v.dim,
         "the manifest's index dimensions differ from the files'"),
        (v.movie_index.metric_type == faiss.METRIC_INNER_PRODUCT, "movie index is not inner product"),
        (v.link_index.metric_type == faiss.METRIC_INNER_PRODUCT, "link index is not inner product"),
        (all(len(m.coef) == v.dim for m in v.attribute_models.values()), "an attribute model's dimension differs"),
    ]
    for lists, rows, what in ((v.movie_neighbours, n_movies, "movie neighbours"), (v.link_movies, n_links, "link movies")):
        if lists is not None:
            checks += _movie_list_checks(lists.ids, lists.scores, rows, n_movies, what)
    if v.movie_neighbours is not None:
        checks += [(v.movie_scales is not None or v.movie_neighbours.scores is not None,
                    "movie neighbours have neither local scales nor scores to compute them from"),
                    (v.movie_scales is None or v.movie_scales.shape == (n_movies,),
                     "movie neighbours' local scales have the wrong shape")]
    if v.movie_links is not None:
        problem = v.movie_links.problem(n_movies, n_links)
        checks.append((problem is None, problem or ""))
    for ok, problem in checks:
        if not ok:
            raise IndexerError(f"{v.path}: {problem}")


def _movie_list_checks(ids: np.ndarray, scores: np.ndarray | None, rows: int, n_movies: int, what: str
                       ) -> list[tuple[bool, str]]:
    """Checks of stored lists of movie ids (ids [rows, K] padded with -1; scores alike in versions
    written before they were dropped). The ids' range is read through the page cache in blocks
    (common.npz.value_range), not through the mapping, which would make the whole file resident."""
    low, high = npz.value_range(ids) if ids.size else (-1, -1)
    shaped = ids.ndim == 2 and ids.shape[0] == rows and (scores is None or ids.shape == scores.shape)
    return [(shaped, f"{what} have the wrong shape"), (low >= -1 and high < n_movies, f"{what} name unknown movies")]


_CHECKED_ROWS = 1 << 16  # rows of lists checked at a time by ranked_lists_problem
# Scores found by another float32 summation than FAISS's (an update scores the old lists again
# from the vectors) may order two near-equal neighbours the other way by this much.
_RANK_TOLERANCE = 1e-5


def ranked_lists_problem(ids: np.ndarray, scores: np.ndarray) -> str | None:
    """What is wrong with lists of movies as the indexer found them, before only their ids are
    written (ids int [n, K] padded with -1 at the end, scores float32 [n, K]), None if nothing:
    a listed movie's score must be finite and no higher than the one before it (but for float32
    rounding)."""
    if ids.ndim != 2 or ids.shape != scores.shape:
        return f"ids {ids.shape} and scores {scores.shape} differ in shape"
    for start in range(0, len(ids), _CHECKED_ROWS):
        block_ids, block = ids[start:start + _CHECKED_ROWS], scores[start:start + _CHECKED_ROWS]
        listed = block_ids >= 0
        bad = np.flatnonzero(((block_ids < -1) | (listed & ~np.isfinite(block))).any(axis=1))
        if len(bad):
            return f"row {start + int(bad[0])} has an id below -1 or a score that is not finite"
        ranked = np.where(listed, block, -np.inf)
        unsorted = np.flatnonzero((ranked[:, 1:] > ranked[:, :-1] + _RANK_TOLERANCE).any(axis=1))
        if len(unsorted):
            return f"row {start + int(unsorted[0])} is not ranked best first (or has padding before a movie)"
    return None
