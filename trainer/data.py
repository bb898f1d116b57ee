"""Readers for film datasets: one `Film` per film, bad records reported, never a crash.

Three formats:

- ``ndjson``: film records, one JSON array a line (``.ndjson.gz``: gzipped), as the
  collector writes them and common.film_record defines them: the notebook's
  ``[page_title, infobox, outgoing_links, rotten_tomatoes_percent, rating_out_of_10]``,
  with an optional sixth element, the kind of each link (infobox, body, references...), and
  an optional seventh, the film's IMDb and Wikidata ids.
- ``wikipedia``: the raw ``wikipedia-movie-data`` files (a JSON array of objects with
  title, year, cast, genres, href); a directory of them or one file. Links are the
  cast and genres; the title is the page the ``href`` names, as the shared data does.
- ``edges``: a plain ``movie<TAB>link`` list, one pair a line; a movie's lines need
  not be adjacent.
"""
from __future__ import annotations

import array
import collections.abc
import dataclasses
import hashlib
import itertools
import json
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Sequence
from urllib.parse import unquote

import numpy as np
import orjson

from movielinks.common.files import sha256_file
from movielinks.common.film_record import (CITATION_BITS, KIND_BITS, FilmRecord, film_attributes,  # noqa: F401
                                           film_problem, from_record, named_problem, of_kinds, open_text,
                                           parse_dollars, parse_percent, record_problem)
from movielinks.trainer.arrays import distinct_sorted
from movielinks.trainer.errors import TrainerError

FORMATS = ("ndjson", "wikipedia", "edges")


# One film as read from a dataset, before any vocabulary is applied.
Film = FilmRecord


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """A record that was skipped, with where it is and what is wrong with it."""

    file: str
    line: int  # 1-based line number; for ``wikipedia`` files, the 1-based record number
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}"


@dataclasses.dataclass(frozen=True)
class LinkTable:
    """Every film's outgoing links, compactly: one int32 per link occurrence, no Python
    object per link or per pair, so that a million films fit in memory.

    Film i's links are `link_names[link_ids[offsets[i]:offsets[i + 1]]]`, repeats
    included; `link_names` are the distinct names in order of first appearance. A table
    read with a minimum count holds only the links in that many films (see read_dataset).
    `kinds` holds each occurrence's kind as its bit (common.film_record's KIND_BITS; 0 for a
    record without kinds); None when no record says its links' kinds.
    """

    titles: list[str]
    link_names: list[str]
    offsets: np.ndarray  # int64 [n_films + 1]
    link_ids: np.ndarray  # int32 [n_occurrences]
    kinds: np.ndarray | None = None  # uint8 [n_occurrences]

    @property
    def cited(self) -> np.ndarray | None:
        """bool [n_occurrences]: the occurrence is in a citation or navigation box
        (common.film_record's CITATION_KINDS); None when no record says its links' kinds."""
        return None if self.kinds is None else (self.kinds & CITATION_BITS) != 0

    @classmethod
    def from_films(cls, films: Sequence[Film]) -> LinkTable:
        builder = _LinkTableBuilder()
        for film in films:
            builder.add(film.title, film.links, film.kinds)
        return builder.table()

    def links_of(self, i: int) -> list[str]:
        return [self.link_names[j] for j in self.link_ids[self.offsets[i] : self.offsets[i + 1]].tolist()]


# str.translate's table from a kind code to its bit, as a character: one C call a record.
_KIND_BIT_CHARS = {ord(code): chr(bit) for code, bit in KIND_BITS.items()}


class _KindOccurrences:
    """Each link occurrence's kind bit, one byte each, kept only once a record has kinds."""

    def __init__(self) -> None:
        self.kinds = bytearray()
        self.known = False

    def add_kinds(self, n_links: int, kinds: str | None) -> None:
        self.known = self.known or kinds is not None
        self.kinds += kinds.translate(_KIND_BIT_CHARS).encode("latin-1") if kinds is not None else bytes(n_links)

    def array(self) -> np.ndarray | None:
        return np.frombuffer(self.kinds, dtype=np.uint8) if self.known else None


class _LinkTableBuilder(_KindOccurrences):
    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []
        self.name_ids: dict[str, int] = {}
        self.ids = array.array("i")
        self.offsets = array.array("q", [0])

    def add(self, title: str, links: Sequence[str], kinds: str | None = None) -> None:
        name_ids = self.name_ids
        self.titles.append(title)
        self.ids.extend([name_ids.setdefault(link, len(name_ids)) for link in links])
        self.offsets.append(len(self.ids))
        self.add_kinds(len(links), kinds)

    def table(self) -> LinkTable:
        return LinkTable(self.titles, list(self.name_ids), np.frombuffer(self.offsets, dtype=np.int64),
                         np.frombuffer(self.ids, dtype=np.int32), self.array())


# A link's hash while a dataset is read: Python's own string hash (64 bits, C speed).
# It is never stored and ids follow first appearance, not hash order; two names that
# share a hash are found by a CRC-32 of every occurrence's name (read_dataset then reads
# by name; a silent merge needs both to collide: about 1e-15 for a million films), so
# runs do not depend on the process's hash seed. Tests replace it to force collisions.
_link_hash = hash


class _HashedTableBuilder(_KindOccurrences):
    """A LinkTable's films and offsets, with a 64-bit hash per link occurrence instead of
    a name: a million films' millions of once-seen names never become Python strings."""

    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []
        self.hashes = array.array("q")
        self.offsets = array.array("q", [0])

    def add(self, title: str, links: Sequence[str], kinds: str | None = None) -> None:
        self.titles.append(title)
        self.hashes.extend(map(_link_hash, links))
        self.offsets.append(len(self.hashes))
        self.add_kinds(len(links), kinds)

    def frequent(self, min_link_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For the links in >= min_link_count films, in order of first appearance: (where each
        first occurs, which occurrences are theirs: both among all occurrences; offsets and
        link ids of a table of only those links)."""
        _, first, inverse = np.unique(np.frombuffer(self.hashes, dtype=np.int64), return_index=True,
                                      return_inverse=True)
        order = np.argsort(first)
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        ids = rank[inverse.reshape(-1)]
        del inverse
        kept, offsets, kept_ids = _frequent_links(np.frombuffer(self.offsets, dtype=np.int64), ids, len(order),
                                                  min_link_count)
        return first[order[kept]], kept[ids], offsets, kept_ids


def _frequent_links(offsets: np.ndarray, ids: np.ndarray, n_names: int, min_link_count: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of `n_names` links occur in at least `min_link_count` films (counted once a
    film), and the table's offsets and ids with only those, renumbered in the same order."""
    n_films = len(offsets) - 1
    film_of = np.repeat(np.arange(n_films, dtype=np.int64), np.diff(offsets))
    distinct = distinct_sorted(film_of * n_names + ids)
    kept = np.bincount(distinct % n_names, minlength=n_names) >= min_link_count
    del distinct
    keep = kept[ids]
    new_id = (np.cumsum(kept) - 1).astype(np.int32)
    counts = np.bincount(film_of[keep], minlength=n_films)
    return kept, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), new_id[ids[keep]]


def _rare_links_dropped(table: LinkTable, min_link_count: int) -> LinkTable:
    """`table` with only the links in at least `min_link_count` films."""
    kept, offsets, ids = _frequent_links(table.offsets, table.link_ids, len(table.link_names), min_link_count)
    kinds = None if table.kinds is None else table.kinds[kept[table.link_ids]]
    return LinkTable(table.titles, [table.link_names[i] for i in np.flatnonzero(kept).tolist()], offsets, ids, kinds)


def _names_of(first: np.ndarray, kept: np.ndarray, ids: np.ndarray, films_links: Iterable[Sequence[str]]
              ) -> list[str] | None:
    """Each kept link's name, read at its `first` occurrence, or None when an occurrence
    counted as that link (`kept`, `ids`) has another name: two names share a hash.

    Occurrences are compared by a CRC-32 of their names, computed in C and compared with
    numpy: a dict or set of a million names, probed 30 M times, is several times slower."""
    names: list[str] = []
    checks = array.array("I")
    firsts = iter(first.tolist())
    next_first, start = next(firsts, -1), 0
    for links in films_links:
        checks.extend(map(zlib.crc32, map(str.encode, links, _UTF8, _SURROGATES)))
        end = start + len(links)
        while start <= next_first < end:
            names.append(links[next_first - start])
            next_first = next(firsts, -1)
        start = end
    checks = np.frombuffer(checks, dtype=np.uint32)
    return names if np.array_equal(checks[kept], checks[first][ids]) else None


# str.encode's arguments for map(): a lone surrogate (json reads them) encodes too.
_UTF8, _SURROGATES = itertools.repeat("utf-8"), itertools.repeat("surrogatepass")


@dataclasses.dataclass(frozen=True)
class FilmInfo:
    """A film's record besides its links, with each link occurrence's kind (None when the
    record has none) and its ids in other catalogues (common.external_ids)."""

    infobox: dict[str, str]
    rotten_tomatoes: str | None
    rating: str | None
    kinds: str | None = None
    ids: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FilmDataset:
    """The films read from `path` (links in a LinkTable), and the records skipped on the way.

    With `min_link_count` above 1, `links` holds only the links in that many films;
    `all_links` reads the others back from the file.
    """

    path: str
    format: str
    sha256: str
    links: LinkTable
    info: list[FilmInfo]
    skipped: list[BadRecord]
    min_link_count: int = 1
    accepted: np.ndarray | None = None  # each film's position among the films its reader yields
    link_kinds: str = ""  # the kind codes of the links read ("": every link)

    @property
    def films(self) -> Sequence[Film]:
        """The films as Film records, built on access (memory stays compact)."""
        return _Films(self)

    def all_links(self, positions: Sequence[int]) -> Iterator[list[str]]:
        """Every link of the films at `positions` (ascending), rare ones included, in order."""
        if self.min_link_count <= 1:
            return (self.links.links_of(i) for i in positions)
        wanted = set(positions)
        links = _accepted_links(Path(self.path), self.format, self.accepted, self.link_kinds)
        return (film_links for i, film_links in enumerate(links) if i in wanted)


class _Films(collections.abc.Sequence):
    def __init__(self, dataset: FilmDataset):
        self._dataset = dataset

    def __len__(self) -> int:
        return len(self._dataset.info)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        info, table = self._dataset.info[i], self._dataset.links
        # A table without the rare links has fewer links than kinds: they are read only whole.
        kinds = info.kinds if self._dataset.min_link_count <= 1 else None
        return Film(table.titles[i], info.infobox, table.links_of(i), info.rotten_tomatoes, info.rating, kinds, info.ids)


def detect_format(path: str | Path) -> str:
    """Guess a dataset's format from its name, or from its first line."""
    path = Path(path)
    if path.is_dir():
        return "wikipedia"
    suffix = path.suffix.lower()
    if suffix in (".ndjson", ".jsonl") or path.name.lower().endswith((".ndjson.gz", ".jsonl.gz")):
        return "ndjson"
    if suffix == ".json":
        return "wikipedia"
    if suffix in (".tsv", ".edges"):
        return "edges"
    with open_text(path) as f:
        first = next((line for line in f if line.strip()), "")
    if first.lstrip().startswith("["):
        return "ndjson"
    if "\t" in first:
        return "edges"
    raise TrainerError(f"{path}: cannot tell the dataset format; pass --format with one of {', '.join(FORMATS)}")


def read_dataset(path: str | Path, fmt: str = "auto", *, strict: bool = False,
                 min_link_count: int = 1, link_kinds: str = "") -> FilmDataset:
    """Read every film of a dataset.

    Bad records (not JSON, wrong shape, empty title, duplicate title, a title or
    link name past `common.limits`: too long, or with a control character) are
    skipped and listed in `FilmDataset.skipped`; with `strict` the first one raises
    TrainerError. A UTF-8 byte order mark at the start of a file is not data.

    With `min_link_count` above 1 the link table keeps only the links in at least that
    many films (counted once a film), as the vocabulary would: links are counted by
    hash, and only the kept ones are named, in a second pass over the file.

    With `link_kinds` (kind codes, common.film_record) a film keeps only its links of those
    kinds; films whose records say no kinds keep every link.
    """
    path = Path(path)
    if not path.exists():
        raise TrainerError(f"{path}: no such dataset file or directory; check --data (or `trainer fetch` it)")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in _READERS:
        raise TrainerError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)} or auto")
    links = _HashedTableBuilder() if min_link_count > 1 else _LinkTableBuilder()
    info: list[FilmInfo] = []
    skipped: list[BadRecord] = []
    accepted = array.array("q")
    seen: set[str] = set()
    for position, item in enumerate(_READERS[fmt](path)):
        if isinstance(item, tuple):
            film, file, line = item
            film = of_kinds(film, link_kinds)
            problem = film_problem(film) or (f"duplicate title {film.title!r}" if film.title in seen else None)
            if not problem:
                seen.add(film.title)
                links.add(film.title, film.links, film.kinds)
                info.append(FilmInfo(film.infobox, film.rotten_tomatoes, film.rating, film.kinds, film.ids))
                accepted.append(position)
                continue
            item = BadRecord(file, line, problem)
        if strict:
            raise TrainerError(f"{item} (run without --strict to skip bad records)")
        skipped.append(item)
    if not info:
        raise TrainerError(f"{path}: no valid films in this {fmt} dataset ({len(skipped)} bad records)")
    del seen
    accepted = np.frombuffer(accepted, dtype=np.int64)
    if isinstance(links, _HashedTableBuilder):
        table = _named_table(links, min_link_count, path, fmt, accepted, link_kinds)
    else:
        table = links.table()
    return FilmDataset(str(path), fmt, _checksum(path), table, info, skipped, min_link_count, accepted, link_kinds)


def _named_table(links: _HashedTableBuilder, min_link_count: int, path: Path, fmt: str,
                 accepted: np.ndarray, link_kinds: str) -> LinkTable:
    """The table of the links in `min_link_count` films, named by a second pass over the
    file; by a third pass, by name, in the rare case that two names share a hash."""
    first, kept, offsets, ids = links.frequent(min_link_count)
    del links.hashes
    kinds = links.array()
    names = _names_of(first, kept, ids, _accepted_links(path, fmt, accepted, link_kinds))
    if names is not None:
        return LinkTable(links.titles, names, offsets, ids, None if kinds is None else kinds[kept])
    exact = _LinkTableBuilder()
    for title, film_links in zip(links.titles, _accepted_links(path, fmt, accepted, link_kinds)):
        exact.add(title, film_links)
    return _rare_links_dropped(dataclasses.replace(exact.table(), kinds=kinds), min_link_count)


def _accepted_links(path: Path, fmt: str, accepted: np.ndarray, link_kinds: str = "") -> Iterator[list[str]]:
    """The links (of the kinds `link_kinds`, if given) of the films read from `path` at the
    `accepted` positions, read again."""
    wanted = iter(accepted.tolist())
    next_wanted = next(wanted, -1)
    if fmt == "ndjson":  # its reader yields one item a non-blank line: parse only the accepted ones
        with open_text(path) as f:
            for position, line in enumerate(line for line in f if line.strip()):
                if position == next_wanted:
                    record = _loads(line)
                    kinds = record[5] if len(record) >= 6 and link_kinds else None  # a seventh element is ids
                    yield record[2] if kinds is None else [
                        link for link, kind in zip(record[2], kinds) if kind in link_kinds]
                    next_wanted = next(wanted, -1)
        return
    for position, item in enumerate(_READERS[fmt](path)):
        if position == next_wanted:
            yield item[0].links
            next_wanted = next(wanted, -1)


# A reader yields each good film with where it came from (file, 1-based line or
# record number), so that a duplicate can be reported there, or a BadRecord.
Located = tuple[Film, str, int]


def _read_ndjson(path: Path) -> Iterator[Located | BadRecord]:
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = _loads(line)
            except ValueError as e:
                yield BadRecord(str(path), number, f"not JSON ({e.msg})")
                continue
            problem = record_problem(record)
            if problem:
                yield BadRecord(str(path), number, problem)
                continue
            infobox = record[1] or {}
            if any(isinstance(v, float) for v in infobox.values()):  # orjson reads integers past 64 bits as floats
                infobox = json.loads(line)[1]
            yield from_record(record, {str(k): str(v) for k, v in infobox.items()}), str(path), number


def _loads(line: str) -> object:
    """json.loads at orjson's speed; the stdlib where orjson refuses what it accepts (lone
    surrogates, NaN, integers past 64 bits), and for the stdlib's words on a bad line."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def _read_wikipedia(path: Path) -> Iterator[Located | BadRecord]:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise TrainerError(f"{path}: no *.json files in this directory")
    for file in files:
        try:
            records = json.loads(file.read_text(encoding="utf-8-sig", errors="replace"))
        except ValueError as e:
            yield BadRecord(str(file), getattr(e, "lineno", 0), f"not JSON ({getattr(e, 'msg', e)})")
            continue
        if not isinstance(records, list):
            yield BadRecord(str(file), 1, "expected a JSON array of film objects")
            continue
        for number, record in enumerate(records, 1):
            film = _wikipedia_film(record)
            yield (film, str(file), number) if isinstance(film, Film) else BadRecord(str(file), number, film)


def _wikipedia_film(record: object) -> Film | str:
    if not isinstance(record, dict):
        return "expected a film object"
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        return "empty or non-string title"
    href = record.get("href")
    page = unquote(href).replace("_", " ").strip() if isinstance(href, str) and href.strip() else title.strip()
    cast = [c for c in record.get("cast") or [] if isinstance(c, str) and c.strip()]
    genres = [g for g in record.get("genres") or [] if isinstance(g, str) and g.strip()]
    infobox = {"name": title}
    if record.get("year") is not None:
        infobox["released"] = str(record["year"])
    if cast:
        infobox["starring"] = ", ".join(cast)
    return Film(page, infobox, cast + genres)


def _read_edges(path: Path) -> Iterator[Located | BadRecord]:
    links: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                yield BadRecord(str(path), number, "expected 'movie<TAB>link' with both non-empty")
                continue
            movie, link = fields[0].strip(), fields[1].strip()
            problem = named_problem("movie", movie) or named_problem("link", link)
            if problem:  # only this line: the movie's other links stay
                yield BadRecord(str(path), number, problem)
                continue
            first_line.setdefault(movie, number)
            links.setdefault(movie, []).append(link)
    for movie, movie_links in links.items():
        yield Film(movie, {"name": movie}, movie_links), str(path), first_line[movie]


_READERS = {"ndjson": _read_ndjson, "wikipedia": _read_wikipedia, "edges": _read_edges}


def _checksum(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    # A directory's checksum covers its files' names and contents, in name order.
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.json")):
        digest.update(file.name.encode() + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()
