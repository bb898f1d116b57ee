"""Vocabulary: which links are kept, movie and link ids, and the (movie, link) pairs.

Computed with numpy over the dataset's LinkTable, never a Python object per link or
pair, so that it takes seconds and little memory for a million films.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from movielinks.trainer.arrays import distinct_sorted
from movielinks.trainer.data import LinkTable


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Ids are positions: movie id i is `movies[i]`, link id j is `links[j]`.

    Links keep the order of their first appearance in the dataset, movies the
    dataset's order, so the same data and min count always give the same ids.
    """

    movies: list[str]
    links: list[str]
    pairs: np.ndarray  # int32 [n_pairs, 2] of unique (movie id, link id), sorted
    dropped_movies: int  # films with no kept link: they get no vector
    # bool [n_pairs]: the film has the link only in citations or navigation boxes; None when unknown
    cited: np.ndarray | None = None

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    @property
    def n_links(self) -> int:
        return len(self.links)


def build_vocabulary(table: LinkTable, min_link_count: int) -> tuple[Vocabulary, np.ndarray]:
    """Keep links that occur in at least `min_link_count` films (counted once a film);
    keep films with a kept link.

    Returns the vocabulary and the kept films' positions in `table` (movie id i is
    film `kept[i]`); both are empty when no link occurs often enough.
    """
    n_films, n_names = len(table.titles), len(table.link_names)
    film_of = np.repeat(np.arange(n_films, dtype=np.int64), np.diff(table.offsets))
    keys = film_of * n_names + table.link_ids
    distinct = distinct_sorted(keys)  # (film, link) once, sorted by film
    # A pair is cited when none of its occurrences is outside a citation.
    cited = None if table.cited is None else ~np.isin(distinct, keys[~table.cited])
    del keys
    films, names = distinct // n_names, distinct % n_names
    kept_name = np.bincount(names, minlength=n_names) >= min_link_count
    # Names are numbered in order of first appearance, so kept links keep that order.
    link_id = np.cumsum(kept_name) - 1
    keep = kept_name[names]
    films, names = films[keep], names[keep]
    kept_films = distinct_sorted(films)
    movie_id = np.full(n_films, -1, dtype=np.int64)
    movie_id[kept_films] = np.arange(len(kept_films))
    # Sorted already: `distinct` is by (film, name), and both renumberings keep their order.
    pairs = np.column_stack([movie_id[films], link_id[names]]).astype(np.int32)
    vocab = Vocabulary(
        [table.titles[i] for i in kept_films.tolist()],
        [table.link_names[i] for i in np.flatnonzero(kept_name).tolist()],
        pairs.reshape(-1, 2),
        n_films - len(kept_films),
        None if cited is None else cited[keep],
    )
    return vocab, kept_films

