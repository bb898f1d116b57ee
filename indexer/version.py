"""The index version: the artifact contract between the indexer and the server.

An index root holds immutable versions and a pointer to the published one:

    INDEX_ROOT/
      CURRENT                   the published version's name, one line, replaced atomically
      versions/<name>/
        manifest.json           format, version name, created_at, source run (path, checksum),
                                dataset, trainer metrics, indexes {movies, links: type, factory,
                                size, dim}, files {name: sha256}
        movies.faiss            FAISS inner-product index over movie_vectors
        links.faiss             FAISS inner-product index over link_vectors
        movie_vectors.npy       float32 [n_movies, dim], unit rows, row i = movie id i
        link_vectors.npy        float32 [n_links, dim], unit rows
        movies.jsonl            MovieRecord per line, in movie id order
        links.json              link names in link id order
        attribute_models.json   {name: AttributeModel}

Version names sort by creation time. This module imports neither TensorFlow nor the
trainer, so the server stays small.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from common.files import atomic_write_bytes, sha256_file
from common.records import AttributeModel, MovieRecord

INDEX_FORMAT = "movielinks.index/1"
CURRENT = "CURRENT"
VERSIONS = "versions"
MANIFEST = "manifest.json"
MOVIE_INDEX = "movies.faiss"
LINK_INDEX = "links.faiss"
MOVIE_VECTORS = "movie_vectors.npy"
LINK_VECTORS = "link_vectors.npy"
MOVIES = "movies.jsonl"
LINKS = "links.json"
ATTRIBUTE_MODELS = "attribute_models.json"


class IndexVersionError(Exception):
    """An index root or version is missing, incomplete, corrupt or inconsistent."""


@dataclasses.dataclass(frozen=True)
class IndexVersion:
    """A loaded, validated index version."""

    path: Path
    manifest: dict[str, Any]
    movie_index: faiss.Index
    link_index: faiss.Index
    movie_vectors: np.ndarray
    link_vectors: np.ndarray
    movies: list[MovieRecord]
    links: list[str]
    attribute_models: dict[str, AttributeModel]

    @property
    def name(self) -> str:
        return str(self.manifest["version"])

    @property
    def dim(self) -> int:
        return int(self.movie_vectors.shape[1])


def versions_dir(root: str | Path) -> Path:
    return Path(root) / VERSIONS


def list_versions(root: str | Path) -> list[str]:
    """Names of the complete versions under `root`, oldest first (staging dirs excluded)."""
    directory = versions_dir(root)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_version_name(root: str | Path) -> str:
    """The published version's name, read from CURRENT."""
    pointer = Path(root) / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexVersionError(f"{pointer}: no published index version; run `indexer build RUN --out {root}`") from None
    except OSError as e:
        raise IndexVersionError(f"{pointer}: unreadable: {e}") from e
    if not name or "/" in name or name.startswith("."):
        raise IndexVersionError(f"{pointer}: invalid version name {name!r}")
    return name


def publish(root: str | Path, name: str) -> None:
    """Point CURRENT at version `name` (which must already be complete), atomically."""
    if not (versions_dir(root) / name / MANIFEST).is_file():
        raise IndexVersionError(f"{versions_dir(root) / name}: not a complete index version")
    atomic_write_bytes(Path(root) / CURRENT, (name + "\n").encode("utf-8"))


def load_current(root: str | Path) -> IndexVersion:
    """Load and validate the version CURRENT points to."""
    return load_version(versions_dir(root) / current_version_name(root))


def load_version(path: str | Path) -> IndexVersion:
    """Load one version directory, verifying every checksum, size and dimension."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise IndexVersionError(f"{manifest_path}: missing; the version is incomplete")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IndexVersionError(f"{manifest_path}: unreadable manifest: {e}") from e
    if manifest.get("format") != INDEX_FORMAT:
        raise IndexVersionError(f"{manifest_path}: format {manifest.get('format')!r}, expected {INDEX_FORMAT!r}")
    files = manifest.get("files") or {}
    for name in (MOVIE_INDEX, LINK_INDEX, MOVIE_VECTORS, LINK_VECTORS, MOVIES, LINKS, ATTRIBUTE_MODELS):
        file = path / name
        if name not in files:
            raise IndexVersionError(f"{manifest_path}: lists no checksum for {name}")
        if not file.is_file():
            raise IndexVersionError(f"{file}: missing")
        if sha256_file(file) != files[name]:
            raise IndexVersionError(f"{file}: checksum mismatch; the version is corrupt, rebuild it")
    try:
        movie_index = faiss.read_index(str(path / MOVIE_INDEX))
        link_index = faiss.read_index(str(path / LINK_INDEX))
        movie_vectors = np.load(path / MOVIE_VECTORS)
        link_vectors = np.load(path / LINK_VECTORS)
        with open(path / MOVIES, encoding="utf-8") as f:
            movies = [MovieRecord(**json.loads(line)) for line in f]
        links = json.loads((path / LINKS).read_text(encoding="utf-8"))
        attribute_models = {
            k: AttributeModel(**v) for k, v in json.loads((path / ATTRIBUTE_MODELS).read_text(encoding="utf-8")).items()
        }
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise IndexVersionError(f"{path}: cannot read index version: {e}") from e
    version = IndexVersion(path, manifest, movie_index, link_index, movie_vectors, link_vectors, movies, links, attribute_models)
    _validate(version)
    return version


def _validate(v: IndexVersion) -> None:
    checks = [
        (v.movie_vectors.ndim == 2 and v.link_vectors.ndim == 2, "vectors are not matrices"),
        (v.movie_vectors.shape[1] == v.link_vectors.shape[1], "movie and link dimensions differ"),
        (v.movie_index.d == v.dim and v.link_index.d == v.dim, "an index's dimension differs from the vectors'"),
        (v.movie_index.ntotal == len(v.movies) == v.movie_vectors.shape[0], "movie index, vectors and names differ in size"),
        (v.link_index.ntotal == len(v.links) == v.link_vectors.shape[0], "link index, vectors and names differ in size"),
        (len(set(m.title for m in v.movies)) == len(v.movies), "duplicate movie titles"),
        (len(set(v.links)) == len(v.links), "duplicate link names"),
        (v.movie_index.metric_type == faiss.METRIC_INNER_PRODUCT, "movie index is not inner product"),
        (v.link_index.metric_type == faiss.METRIC_INNER_PRODUCT, "link index is not inner product"),
        (all(len(m.coef) == v.dim for m in v.attribute_models.values()), "an attribute model's dimension differs"),
    ]
    for ok, problem in checks:
        if not ok:
            raise IndexVersionError(f"{v.path}: {problem}")


def search(index: faiss.Index, queries: np.ndarray, k: int, exclude: list[set[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner-product neighbours of each query row, skipping ids in `exclude[i]`.

    Returns (ids, scores), each [n_queries, k], best first; rows with fewer than k
    results (a tiny catalogue) are padded with id -1 and score -inf.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    n_skip = max((len(e) for e in exclude), default=0) if exclude else 0
    fetch = min(k + n_skip, index.ntotal)
    scores, ids = index.search(queries, fetch)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for row in range(len(queries)):
        keep = ids[row] >= 0
        if exclude and exclude[row]:
            keep &= ~np.isin(ids[row], list(exclude[row]))
        kept_ids, kept_scores = ids[row][keep][:k], scores[row][keep][:k]
        out_ids[row, : len(kept_ids)] = kept_ids
        out_scores[row, : len(kept_scores)] = kept_scores
    return out_ids, out_scores


def manifest_sha256(path: str | Path) -> str:
    """Checksum of a version's manifest, which pins every file's checksum."""
    return sha256_file(Path(path) / MANIFEST)


def version_dir(root: str | Path, name: str) -> Path:
    return versions_dir(root) / name


def new_version_name(created_at_utc: str, source_checksum: str) -> str:
    """A sortable, unique name: UTC time then the start of the source run's checksum."""
    stamp = created_at_utc.replace("-", "").replace(":", "").split(".")[0]
    return f"{stamp}-{source_checksum[:8]}-{os.getpid()}"
