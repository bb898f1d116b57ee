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
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from common.files import sha256_file
from common.records import AttributeModel, MovieRecord

MANIFEST = "manifest.json"
MOVIES = "movies.jsonl"
LINKS = "links.json"
ATTRIBUTE_MODELS = "attribute_models.json"


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


def verify_files(directory: str | Path, files: dict[str, str], required: Iterable[str]) -> None:
    """Check that every `required` file and every file `files` lists exists with its listed SHA-256.

    Files are hashed in parallel threads, largest first (a million-film index version holds
    2.7 GB: about 4 s on one core here, half that on two; docs/operations.md).
    """
    directory = Path(directory)
    for name in required:
        if name not in files:
            raise ArtifactError(f"{directory / MANIFEST}: lists no checksum for {name}")
    for name in files:
        if not (directory / name).is_file():
            raise ArtifactError(f"{directory / name}: missing (listed in the manifest)")
    by_size = sorted(files, key=lambda name: -(directory / name).stat().st_size)
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
            f.write(json.dumps(dataclasses.asdict(movie), ensure_ascii=False) + "\n")
    write_json(directory / LINKS, records.links)
    write_json(directory / ATTRIBUTE_MODELS, {k: dataclasses.asdict(m) for k, m in records.attribute_models.items()})


def read_records(directory: Path) -> Records:
    """Read the files `write_records` wrote; ArtifactError if one is unreadable or malformed."""
    return _reading(directory, lambda: Records(
        [MovieRecord(**json.loads(line)) for line in _lines(directory / MOVIES)],
        _string_list(json.loads((directory / LINKS).read_text(encoding="utf-8")), directory / LINKS),
        {k: AttributeModel(**v) for k, v in json.loads((directory / ATTRIBUTE_MODELS).read_text(encoding="utf-8")).items()},
    ))


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
