"""Vocabulary: which links are kept, movie and link ids, and the (movie, link) pairs."""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Sequence

import numpy as np

from trainer.data import Film


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

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    @property
    def n_links(self) -> int:
        return len(self.links)


def build_vocabulary(films: Sequence[Film], min_link_count: int) -> tuple[Vocabulary, list[Film]]:
    """Keep links that occur in at least `min_link_count` films; keep films with a kept link.

    Returns the vocabulary and the kept films in movie id order; both are empty
    when no link occurs often enough.
    """
    film_counts = Counter(link for film in films for link in set(film.links))
    link_ids: dict[str, int] = {}
    for film in films:
        for link in film.links:
            if film_counts[link] >= min_link_count and link not in link_ids:
                link_ids[link] = len(link_ids)
    kept_films: list[Film] = []
    movie_col: list[int] = []
    link_col: list[int] = []
    for film in films:
        ids = {link_ids[link] for link in film.links if link in link_ids}
        if not ids:
            continue
        movie_col.extend([len(kept_films)] * len(ids))
        link_col.extend(ids)
        kept_films.append(film)
    pairs = np.unique(np.column_stack([movie_col, link_col]).astype(np.int32).reshape(-1, 2), axis=0)
    vocab = Vocabulary([f.title for f in kept_films], list(link_ids), pairs, len(films) - len(kept_films))
    return vocab, kept_films
