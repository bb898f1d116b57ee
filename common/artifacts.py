"""Checksummed artifact directories: one reader and one writer for runs and index versions.

An artifact (a training run, an index version) is a directory holding data files
and a `manifest.json` that names its format (e.g. "movielinks.run/1") and the
SHA-256 of every file. Both stages write it with `write_artifact` and read it back
with `read_manifest` + `verify_files`; the stage's own module (trainer.run,
indexer.version) says which files it holds and what the manifest's other fields mean.

The record files that travel unchanged from a run into an index version (movie
records, link names, attribute models) are read and written here too, once.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import mmap
import os
import stat
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import numpy as np

from movielinks.common.external_ids import ids_problem
from movielinks.common.files import sha256_file
from movielinks.common.franchises import film_identity
from movielinks.common.records import AttributeModel, MovieRecord, director, prominence, release_year
from movielinks.common.title_index import ById

MANIFEST = "manifest.json"
MOVIES = "movies.jsonl"
LINKS = "links.json"
ATTRIBUTE_MODELS = "attribute_models.json"


# What the files of one artifact may hold together, checked before any is read: a million-film
# index version holds 2.7 GB. A manifest that lists more (a huge or sparse file) is refused at
# once instead of being hashed for minutes.
MAX_ARTIFACT_BYTES = 32 << 30


class ArtifactError(Exception):
    """An artifact directory is missing, incomplete, of another format, or does not match its manifest.

    Each stage turns it into its own error type where it reads an artifact.
    """


def read_manifest(directory: str | Path, expected_format: str, what: str) -> dict[str, Any]:
    """The manifest of `directory` as a dict, its format checked; files are not hashed.

    `what` names the artifact in errors (e.g. "training run").
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {Path(directory)} is not a complete {what}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: unreadable manifest: {e}") from e
    found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
    if found != expected_format:
        raise ArtifactError(f"{path}: format {found!r}, expected {expected_format!r}")
    return manifest


def check_files(directory: str | Path, files: dict[str, str], required: Iterable[str],
                max_bytes: int = MAX_ARTIFACT_BYTES) -> dict[str, int]:
    """{name: size} of the files `files` lists, each checked without reading it: every `required`
    one listed, each a plain file directly inside `directory` (no path, no link, no device), all
    together at most `max_bytes`. Raises ArtifactError."""
    directory = Path(directory)
    for name in required:
        if name not in files:
            raise ArtifactError(f"{directory / MANIFEST}: lists no checksum for {name}")
    sizes = {}
    for name in files:
        if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            raise ArtifactError(f"{directory / MANIFEST}: lists {name!r}, which is not the name of a file in "
                                f"{directory}; an artifact names only its own files: rebuild it")
        try:
            found = os.lstat(directory / name)
        except FileNotFoundError:
            raise ArtifactError(f"{directory / name}: missing (listed in the manifest)") from None
        except OSError as e:
            raise ArtifactError(f"{directory / name}: unreadable: {e}") from e
        if not stat.S_ISREG(found.st_mode):
            raise ArtifactError(f"{directory / name}: not a plain file (a link, a directory or a device); an "
                                f"artifact holds its own files only: rebuild it")
        sizes[name] = found.st_size
    total = sum(sizes.values())
    if total > max_bytes:
        raise ArtifactError(f"{directory}: its files hold {total:,} bytes, over the {max_bytes:,} an artifact may "
                            f"(docs/operations.md); not read")
    return sizes


def verify_files(directory: str | Path, files: dict[str, str], required: Iterable[str],
                 max_bytes: int = MAX_ARTIFACT_BYTES) -> None:
    """Check the files as check_files does, then that each has its listed SHA-256.

    Files are hashed in parallel threads, largest first: hashing is most of a version's load
    (a million-film index version holds 2.7 GB; docs/operations.md has the timings).
    """
    directory = Path(directory)
    sizes = check_files(directory, files, required, max_bytes)
    by_size = sorted(files, key=lambda name: -sizes[name])
    with concurrent.futures.ThreadPoolExecutor(min(len(by_size), os.cpu_count() or 1) or 1) as pool:
        found = dict(zip(by_size, pool.map(lambda name: sha256_file(directory / name), by_size)))
    for name in sorted(files):
        if found[name] != files[name]:
            raise ArtifactError(f"{directory / name}: checksum mismatch; the artifact is corrupt, rebuild it")


def file_checksums(directory: Path) -> dict[str, str]:
    """{file name: SHA-256} of every file in `directory`, in name order (the manifest's `files`)."""
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.name != MANIFEST}


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")


def manifest_fields(cls: type, manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    """The keys of `manifest` that dataclass `cls` declares, each required one present.

    Raises ArtifactError naming the first missing field, so that a manifest which
    lacks a field its readers need is refused when it is read, not when it is used.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, field in fields.items():
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and name not in manifest:
            raise ArtifactError(f"{path / MANIFEST}: has no {name!r} field")
    return {k: v for k, v in manifest.items() if k in fields}


@dataclasses.dataclass(frozen=True)
class Records:
    """What later stages know about movies and links besides their vectors."""

    movies: list[MovieRecord]
    links: list[str]
    attribute_models: dict[str, AttributeModel]


class WithRecords:
    """Mixin for a loaded artifact with a `records` field: its movies, links and models by name."""

    records: Records

    @property
    def movies(self) -> list[MovieRecord]:
        return self.records.movies

    @property
    def links(self) -> list[str]:
        return self.records.links

    @property
    def attribute_models(self) -> dict[str, AttributeModel]:
        return self.records.attribute_models


def write_records(directory: Path, records: Records) -> None:
    """Write movies.jsonl, links.json and attribute_models.json into `directory`."""
    with open(directory / MOVIES, "w", encoding="utf-8") as f:
        for movie in records.movies:
            f.write(movie_line(movie))
    write_json(directory / LINKS, records.links)
    write_json(directory / ATTRIBUTE_MODELS, {k: dataclasses.asdict(m) for k, m in records.attribute_models.items()})


def movie_line(movie: MovieRecord) -> str:
    """One line of movies.jsonl; `ids` only when the movie has some (older lines have none)."""
    fields = dataclasses.asdict(movie)
    if not fields["ids"]:
        del fields["ids"]
    return json.dumps(fields, ensure_ascii=False) + "\n"


def read_records(directory: Path) -> Records:
    """Read the files `write_records` wrote; ArtifactError if one is unreadable or malformed."""
    return _reading(directory, lambda: Records(
        [MovieRecord(**json.loads(line)) for line in _lines(directory / MOVIES)],
        read_link_names(directory), read_attribute_models(directory)))


def read_link_names(directory: Path) -> list[str]:
    """links.json; ArtifactError if it is unreadable or not a list of names."""
    return _reading(directory, lambda: _string_list(json.loads((directory / LINKS).read_text(encoding="utf-8")),
                                                    directory / LINKS))


def read_attribute_models(directory: Path) -> dict[str, AttributeModel]:
    """attribute_models.json; ArtifactError if it is unreadable or malformed."""
    return _reading(directory, lambda: {
        k: AttributeModel(**v) for k, v in json.loads((directory / ATTRIBUTE_MODELS).read_text(encoding="utf-8")).items()})


def _reading(directory: Path, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise ArtifactError(f"{directory}: cannot read its records: {e}") from e


def _lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line for line in f if line.strip()]


def _string_list(value: Any, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{path.name} is not a list of names")
    return value


class MovieRecordFile(ById[MovieRecord]):
    """movies.jsonl read on demand: record i is parsed from its line (`offsets` int64 [n + 1],
    byte offsets of each line) when asked for, so no Python object is kept per movie."""

    what = "movie id"

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path, self.offsets = Path(path), offsets
        with open(self.path, "rb") as f:
            # An empty file cannot be mapped; it holds no records anyway.
            self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if len(offsets) > 1 else b""

    def _item(self, i: int) -> MovieRecord:
        return movie_record(self._data[int(self.offsets[i]):int(self.offsets[i + 1])])


def movie_record(line: bytes | str) -> MovieRecord:
    """One line of movies.jsonl as a MovieRecord; ValueError if it is not one."""
    raw = json.loads(line)
    record = MovieRecord(**raw) if isinstance(raw, dict) else None
    if record is None or not isinstance(record.title, str) or not isinstance(record.infobox, dict) \
            or not isinstance(record.attributes, dict):
        raise ValueError("a movie record's title is not a string or its infobox or attributes not an object")
    if problem := ids_problem(record.ids):
        raise ValueError(f"a movie record's {problem}")
    return record


class ScannedRecords(NamedTuple):
    """What scan_movie_records reads of every movie."""

    offsets: np.ndarray  # int64 [n + 1]: where each movie's line starts, and the file's end
    titles: list[str]
    years: np.ndarray  # int16 [n], release year, 0 unknown
    prominence: np.ndarray  # float32 [n], common.records.prominence
    films: list[str | None]  # each record's film identity (common.franchises.film_identity)
    ids: list[dict[str, str]]  # each movie's ids in other catalogues (common.external_ids)
    directors: list[str]  # each movie's director as answers show it (common.records.director), "" if none


def scan_movie_records(path: Path) -> ScannedRecords:
    """Read movies.jsonl once, every record checked (movie_record); ArtifactError names the first bad line."""
    offsets, titles, years, known, films, ids, directors = [0], [], [], [], [], [], []
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        record = movie_record(line)
                    except (ValueError, TypeError) as e:
                        raise ArtifactError(f"{path}: line {number}: {e}") from e
                    titles.append(record.title)
                    years.append(release_year(record.infobox) or 0)
                    known.append(prominence(record.attributes))
                    films.append(film_identity(record.infobox))
                    ids.append(record.ids)
                    directors.append(director(record.infobox))
                    offsets.append(offsets[-1] + len(line))
                else:  # a blank line belongs to the record before it (or to none before the first)
                    offsets[-1] += len(line)
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e}") from e
    return ScannedRecords(np.array(offsets, dtype=np.int64), titles, np.array(years, dtype=np.int16),
                          np.array(known, dtype=np.float32), films, ids, directors)
