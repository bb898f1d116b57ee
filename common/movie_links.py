"""Each movie's kept links, as the run and the index version store them (movie_links.npz).

A CSR layout: movie i links to `link_ids[offsets[i]:offsets[i + 1]]`, sorted and
distinct; offsets int64 [n_movies + 1], link_ids int32. The trainer writes it from
its vocabulary's (movie, link) pairs, every pair (training and held out), since a
served explanation should name the links the articles have.

Optional `cited` (bool [n_pairs], beside link_ids; absent in files written before it or
from records without link kinds): True where the movie's article has the link only in
its citations or navigation boxes (common.film_record.CITATION_KINDS), which is no
reason a person accepts for two films being alike.

Optional `link_offsets` (int64 [n_links + 1]) and `movies_by_link` (int32 [n_pairs]) beside them
(an index version's file: the indexer writes them; runs have none): the inverse layout,
by_link's answer stored, so that a server maps it instead of sorting every pair at start
(at a million films 22 M pairs: 100 MB of its own memory and seconds of its start).
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
    cited: np.ndarray | None = None  # bool [n_pairs]: the link only in the movie's citations; None: not known
    # (offsets int64 [n_links + 1], movie ids int32 [n_pairs]): by_link's answer, stored; None: computed
    inverse: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_movies(self) -> int:
        return len(self.offsets) - 1

    def of(self, movie_id: int) -> np.ndarray:
        """The sorted link ids of one movie."""
        return self.link_ids[self.offsets[movie_id]:self.offsets[movie_id + 1]]

    def reasons_of(self, movie_id: int) -> np.ndarray:
        """The sorted link ids of one movie that its article has outside citations and navigation boxes."""
        ids = self.of(movie_id)
        if self.cited is None:
            return ids
        return ids[~self.cited[self.offsets[movie_id]:self.offsets[movie_id + 1]]]

    def by_link(self, n_links: int) -> tuple[np.ndarray, np.ndarray]:
        """The inverse layout: (offsets int64 [n_links + 1], movie ids int32 [n_pairs]); the movies
        that link to link l are `movies[offsets[l]:offsets[l + 1]]`, ascending. The stored one
        where the file has it (for as many links)."""
        if self.inverse is not None and len(self.inverse[0]) == n_links + 1:
            return self.inverse
        order = np.argsort(np.asarray(self.link_ids), kind="stable")
        movies = np.repeat(np.arange(self.n_movies, dtype=np.int32), self.counts())[order]
        return np.concatenate([[0], np.cumsum(self.films_per_link(n_links))]), movies

    def films_per_link(self, n_links: int) -> np.ndarray:
        """How many movies link to each of `n_links` links (int64 [n_links]): from the stored inverse
        layout's offsets where the file has it (at a million films 10 MB read, where counting reads
        every pair's link id: 90 MB more of the file resident in a server, for its idf at start)."""
        if self.inverse is not None and len(self.inverse[0]) == n_links + 1:
            return np.diff(np.asarray(self.inverse[0])).astype(np.int64)
        return np.bincount(np.asarray(self.link_ids), minlength=n_links).astype(np.int64)[:n_links]

    def citation_links(self, n_links: int, share: float = 0.5) -> np.ndarray:
        """Which links (bool [n_links]) are citation-only in at least `share` of the movies
        that link to them: the sources (Internet Movie Database, Box Office Mojo, a publisher)
        rather than what films are about. All False when `cited` is not known."""
        if self.cited is None:
            return np.zeros(n_links, dtype=bool)
        films = self.films_per_link(n_links)
        cited = np.bincount(self.link_ids, weights=self.cited, minlength=n_links)
        return (films > 0) & (cited >= share * films)

    def counts(self) -> np.ndarray:
        """Kept links per movie, int64 [n_movies]."""
        return np.diff(self.offsets)

    def problem(self, n_movies: int, n_links: int) -> str | None:
        """What is inconsistent with a catalogue of that size, or None."""
        ids = self.link_ids
        problem = _csr_problem(self.offsets, ids, n_movies, n_links, "movie links", "movies", "links")
        if problem is None and self.cited is not None and self.cited.shape != ids.shape:
            problem = f"movie links mark {len(self.cited)} pairs as cited or not, of {len(ids)}"
        if problem is None and self.inverse is not None:
            offsets, movies = self.inverse
            problem = (_csr_problem(offsets, movies, n_links, n_movies, "the films of each link", "links", "movies")
                       if len(movies) == len(ids) else f"the films of each link hold {len(movies)} pairs, of {len(ids)}")
        return problem


def _csr_problem(offsets: np.ndarray, values: np.ndarray, n_rows: int, n_values: int, name: str, rows: str,
                 items: str) -> str | None:
    """What is wrong with a CSR layout of `n_rows` rows (offsets from 0, never falling, to len(values))
    whose values are ids below `n_values`, None if nothing; `name`, `rows` and `items` word the answer."""
    if offsets.ndim != 1 or values.ndim != 1 or len(offsets) != n_rows + 1:
        return f"{name} hold {len(offsets) - 1} {rows}, the catalogue {n_rows}"
    if int(offsets[0]) != 0 or int(offsets[-1]) != len(values) or (len(offsets) > 1 and bool(np.any(np.diff(offsets) < 0))):
        return f"the offsets of {name} are not increasing from 0 to the number of {items}"
    low, high = npz.value_range(values) if len(values) else (0, -1)
    if low < 0 or high >= n_values:
        return f"{name} name unknown {items}"
    return None


def from_pairs(pairs: np.ndarray, n_movies: int, cited: np.ndarray | None = None) -> MovieLinks:
    """MovieLinks of (movie id, link id) pairs (any order, repeats dropped: a pair is cited
    only when every repeat is), each marked by `cited` (bool [n_pairs]) if given."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs, inverse = np.unique(pairs, axis=0, return_inverse=True)
    offsets = np.zeros(n_movies + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n_movies), out=offsets[1:])
    if cited is not None:
        elsewhere = np.bincount(inverse.reshape(-1), weights=~np.asarray(cited, dtype=bool), minlength=len(pairs))
        cited = elsewhere == 0
    return MovieLinks(offsets, pairs[:, 1].astype(np.int32), cited)


def save(path: Path, links: MovieLinks, n_links: int | None = None) -> None:
    """Write `links`; with `n_links` (an index version's file) its inverse layout too (by_link)."""
    cited = {} if links.cited is None else {"cited": links.cited.astype(bool)}
    inverse = {}
    if n_links is not None:
        link_offsets, movies_by_link = links.by_link(n_links)
        inverse = {"link_offsets": link_offsets, "movies_by_link": movies_by_link}
    np.savez(path, offsets=links.offsets, link_ids=links.link_ids, **cited, **inverse)


def load(path: Path) -> MovieLinks:
    """The file's arrays, memory-mapped (as np.savez stores them) where their types are the layout's."""
    saved = npz.read_arrays(path)
    if "offsets" not in saved or "link_ids" not in saved:
        raise KeyError(f"{path.name} lacks offsets or link_ids")
    cited = saved["cited"].astype(bool, copy=False) if "cited" in saved else None
    inverse = None
    if "link_offsets" in saved and "movies_by_link" in saved:
        inverse = (saved["link_offsets"].astype(np.int64, copy=False), saved["movies_by_link"].astype(np.int32, copy=False))
    return MovieLinks(saved["offsets"].astype(np.int64, copy=False), saved["link_ids"].astype(np.int32, copy=False),
                      cited, inverse)
