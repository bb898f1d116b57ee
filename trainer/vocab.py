"""Vocabulary: which links are kept, movie and link ids, and the (movie, link) pairs.

Computed with numpy over the dataset's LinkTable, never a Python object per link or
pair, so that it takes seconds and little memory for a million films.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from movielinks.common.film_record import CITATION_BITS, KIND_BITS
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
    # uint8 [n_pairs]: the KIND_BITS of every kind the film has the link as (0: not recorded); None when unknown
    kinds: np.ndarray | None = None

    @property
    def cited(self) -> np.ndarray | None:
        """bool [n_pairs]: the film has the link only in citations or navigation boxes; None when unknown."""
        if self.kinds is None:
            return None
        return (self.kinds != 0) & ((self.kinds & ~np.uint8(CITATION_BITS)) == 0)

    def pair_weights(self, weights: dict[str, float]) -> np.ndarray | None:
        """float64 [n_pairs]: each pair's training weight, that of the best-weighted kind it has
        (`weights`: kind code -> weight, common.film_record.kind_weights; a kind not named and a
        pair of unknown kinds weigh 1); None when every pair weighs 1."""
        if self.kinds is None or not any(w != 1.0 for w in weights.values()):
            return None
        by_bits = np.zeros(256)
        for bits in range(1, 256):
            by_bits[bits] = max((weights.get(code, 1.0) for code, bit in KIND_BITS.items() if bits & bit), default=1.0)
        by_bits[0] = 1.0
        return by_bits[self.kinds]

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
    kinds = None if table.kinds is None else _pair_kinds(keys, table.kinds, distinct)
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
        None if kinds is None else kinds[keep],
    )
    return vocab, kept_films


def _pair_kinds(keys: np.ndarray, kinds: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """uint8 [len(distinct)]: the OR of the kind bits of each distinct key's occurrences."""
    # (key, bits) once each, sorted: a key's rows are adjacent, so one reduceat ORs them.
    both = distinct_sorted(keys * 256 + kinds)
    starts = np.flatnonzero(np.concatenate([[True], both[1:] // 256 != both[:-1] // 256]))
    return np.bitwise_or.reduceat((both % 256).astype(np.uint8), starts) if len(both) else np.zeros(0, np.uint8)

