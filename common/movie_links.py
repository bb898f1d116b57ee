"""Each movie's kept links, as the run and the index version store them (movie_links.npz).

A CSR layout: movie i links to `link_ids[offsets[i]:offsets[i + 1]]`, sorted and
distinct; offsets int64 [n_movies + 1], link_ids int32. The trainer writes it from
its vocabulary's (movie, link) pairs, every pair (training and held out), since a
served explanation should name the links the articles have.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from movielinks.common import npz

FILE = "movie_links.npz"


@dataclasses.dataclass(frozen=True)
class MovieLinks:
    offsets: np.ndarray  # int64 [n_movies + 1]
    link_ids: np.ndarray  # int32 [n_pairs]

    @property
    def n_movies(self) -> int:
        return len(self.offsets) - 1

    def of(self, movie_id: int) -> np.ndarray:
        """The sorted link ids of one movie."""
        return self.link_ids[self.offsets[movie_id]:self.offsets[movie_id + 1]]

    def counts(self) -> np.ndarray:
        """Kept links per movie, int64 [n_movies]."""
        return np.diff(self.offsets)

    def problem(self, n_movies: int, n_links: int) -> str | None:
        """What is inconsistent with a catalogue of that size, or None."""
        o, ids = self.offsets, self.link_ids
        if o.ndim != 1 or ids.ndim != 1 or len(o) != n_movies + 1:
            return f"movie links hold {len(o) - 1} movies, the catalogue {n_movies}"
        if int(o[0]) != 0 or int(o[-1]) != len(ids) or (len(o) > 1 and bool(np.any(np.diff(o) < 0))):
            return "movie link offsets are not increasing from 0 to the number of links"
        low, high = npz.value_range(ids) if len(ids) else (0, -1)
        if low < 0 or high >= n_links:
            return "movie links name unknown links"
        return None


def from_pairs(pairs: np.ndarray, n_movies: int) -> MovieLinks:
    """MovieLinks of (movie id, link id) pairs (any order, repeats dropped)."""
    pairs = np.unique(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=0)
    offsets = np.zeros(n_movies + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n_movies), out=offsets[1:])
    return MovieLinks(offsets, pairs[:, 1].astype(np.int32))


def save(path: Path, links: MovieLinks) -> None:
    np.savez(path, offsets=links.offsets, link_ids=links.link_ids)


def load(path: Path) -> MovieLinks:
    """The file's arrays, memory-mapped (as np.savez stores them) where their types are the layout's."""
    saved = npz.read_arrays(path, ("offsets", "link_ids"))
    return MovieLinks(saved["offsets"].astype(np.int64, copy=False), saved["link_ids"].astype(np.int32, copy=False))
