"""The index version: the artifact contract between the indexer and the server.

An index root holds immutable versions and a pointer to the published one:

    INDEX_ROOT/
      CURRENT                   the published version's name, one line, replaced atomically
      versions/<name>/
        manifest.json           format, version name, created_at, source run (path, checksum),
                                dataset, trainer metrics and params, indexes {movies, links: type,
                                factory, size, dim, search_params}, files {name: sha256}
        movies.faiss            FAISS inner-product index over movie_vectors
        links.faiss             FAISS inner-product index over link_vectors
        movie_vectors.npy       float32 [n_movies, dim], unit rows, row i = movie id i
        link_vectors.npy        float32 [n_links, dim], unit rows
        movies.jsonl            MovieRecord per line, in movie id order
        links.json              link names in link id order
        attribute_models.json   {name: AttributeModel}

Version names sort by creation time (UTC, to the microsecond). This module imports
neither TensorFlow nor the trainer, so the server stays small.
"""
from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
from collections.abc import Collection, Sequence
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
MOVIE_NEIGHBOURS = "movie_neighbours.npz"  # optional: ids int32 [n, K], scores float32 [n, K]


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
    # Each movie's K most similar movies (itself excluded), found with movie_index at
    # build time: (ids int32 [n, K] padded with -1, scores float32 [n, K]). None if not built.
    movie_neighbours: tuple[np.ndarray, np.ndarray] | None = None

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


def load_index(path: str | Path) -> IndexVersion:
    """Load `path`: an index root (its CURRENT version) or one version directory."""
    path = Path(path)
    if (path / CURRENT).exists() or (path / VERSIONS).is_dir():
        return load_current(path)
    if (path / MANIFEST).is_file():
        return load_version(path)
    raise IndexVersionError(
        f"{path}: neither an index root (no {CURRENT}) nor an index version (no {MANIFEST}); "
        "pass the directory `indexer build --out` wrote, or one of its versions"
    )


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the version directory `path`, with its format checked (files are not hashed)."""
    manifest_path = Path(path) / MANIFEST
    if not manifest_path.is_file():
        raise IndexVersionError(f"{manifest_path}: missing; the version is incomplete")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IndexVersionError(f"{manifest_path}: unreadable manifest: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise IndexVersionError(f"{manifest_path}: format {found!r}, expected {INDEX_FORMAT!r}")
    return manifest


def load_version(path: str | Path) -> IndexVersion:
    """Load one version directory, verifying every checksum, size and dimension."""
    path = Path(path)
    manifest_path = path / MANIFEST
    manifest = read_manifest(path)
    files = manifest.get("files") or {}
    optional = [MOVIE_NEIGHBOURS] if MOVIE_NEIGHBOURS in files else []
    for name in [MOVIE_INDEX, LINK_INDEX, MOVIE_VECTORS, LINK_VECTORS, MOVIES, LINKS, ATTRIBUTE_MODELS] + optional:
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
        models_json = json.loads((path / ATTRIBUTE_MODELS).read_text(encoding="utf-8"))
        attribute_models = {k: AttributeModel(**v) for k, v in models_json.items()}
        movie_neighbours = None
        if optional:
            with np.load(path / MOVIE_NEIGHBOURS) as saved:
                movie_neighbours = (saved["ids"], saved["scores"])
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise IndexVersionError(f"{path}: cannot read index version: {e}") from e
    version = IndexVersion(
        path, manifest, movie_index, link_index, movie_vectors, link_vectors, movies, links, attribute_models,
        movie_neighbours,
    )
    _validate(version)
    return version


def _validate(v: IndexVersion) -> None:
    if v.movie_vectors.ndim != 2 or v.link_vectors.ndim != 2:
        raise IndexVersionError(f"{v.path}: vectors are not matrices")
    n_movies, n_links = v.movie_vectors.shape[0], v.link_vectors.shape[0]
    checks = [
        (v.movie_vectors.shape[1] == v.link_vectors.shape[1], "movie and link dimensions differ"),
        (v.movie_index.d == v.dim and v.link_index.d == v.dim, "an index's dimension differs from the vectors'"),
        (v.movie_index.ntotal == len(v.movies) == n_movies, "movie index, vectors and names differ in size"),
        (v.link_index.ntotal == len(v.links) == n_links, "link index, vectors and names differ in size"),
        (len(set(m.title for m in v.movies)) == len(v.movies), "duplicate movie titles"),
        (len(set(v.links)) == len(v.links), "duplicate link names"),
        (v.movie_index.metric_type == faiss.METRIC_INNER_PRODUCT, "movie index is not inner product"),
        (v.link_index.metric_type == faiss.METRIC_INNER_PRODUCT, "link index is not inner product"),
        (all(len(m.coef) == v.dim for m in v.attribute_models.values()), "an attribute model's dimension differs"),
    ]
    if v.movie_neighbours is not None:
        ids, scores = v.movie_neighbours
        checks += [
            (ids.ndim == 2 and ids.shape == scores.shape and ids.shape[0] == n_movies, "movie neighbours have the wrong shape"),
            (ids.size == 0 or (int(ids.min()) >= -1 and int(ids.max()) < n_movies), "movie neighbours name unknown movies"),
        ]
    for ok, problem in checks:
        if not ok:
            raise IndexVersionError(f"{v.path}: {problem}")


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner-product neighbours of each query row, skipping ids in `exclude[i]`.

    Returns (ids, scores), each [n_queries, k], best first; rows with fewer than k
    results (a tiny catalogue, or an approximate index that found fewer) are padded
    with id -1 and score -inf. Raises ValueError for k < 1, queries of the wrong
    dimension, or an `exclude` whose length differs from the number of queries.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if queries.ndim != 2 or queries.shape[1] != index.d:
        raise ValueError(f"queries have shape {queries.shape}; the index expects rows of dimension {index.d}")
    if exclude is not None and len(exclude) != len(queries):
        raise ValueError(f"{len(exclude)} exclude sets for {len(queries)} queries; pass one set per query")
    n_skip = max((len(e) for e in exclude), default=0) if exclude is not None else 0
    fetch = min(k + n_skip, index.ntotal)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    if fetch == 0 or len(queries) == 0:
        return out_ids, out_scores
    scores, ids = index.search(queries, fetch)
    keep = ids >= 0
    if n_skip:
        keep &= ~_excluded(ids, exclude)
    # Move each row's kept hits to its front without reordering them (they are best first).
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(keep, order, axis=1)
    width = order.shape[1]
    out_ids[:, :width] = np.where(kept, np.take_along_axis(ids, order, axis=1), -1)
    out_scores[:, :width] = np.where(kept, np.take_along_axis(scores, order, axis=1), -np.inf)
    return out_ids, out_scores


def _excluded(ids: np.ndarray, exclude: Sequence[Collection[int]]) -> np.ndarray:
    """Boolean mask, shaped like `ids`, of the hits listed in their row's exclude set.

    One vectorised membership test over (row, id) keys instead of a Python loop per
    row: the server excludes each query itself for batches of thousands of titles.
    """
    sizes = np.fromiter((len(e) for e in exclude), dtype=np.int64, count=len(exclude))
    rows = np.repeat(np.arange(len(exclude), dtype=np.int64), sizes)
    excluded = np.fromiter(itertools.chain.from_iterable(exclude), dtype=np.int64, count=int(sizes.sum()))
    valid = excluded >= 0
    rows, excluded = rows[valid], excluded[valid]
    hits = np.maximum(ids, 0)  # padding (-1) is dropped by the caller; keep keys non-negative
    stride = int(max(hits.max(), excluded.max(initial=0))) + 1
    hit_keys = np.arange(len(ids), dtype=np.int64)[:, None] * stride + hits
    return np.isin(hit_keys, rows * stride + excluded)


def version_dir(root: str | Path, name: str) -> Path:
    return versions_dir(root) / name


def new_version_name(created_at: datetime.datetime, source_checksum: str) -> str:
    """A name that sorts by creation time: fixed-width UTC time to the microsecond,
    then the start of the source run's checksum (e.g. 20250102T030405123456Z-1a2b3c4d).

    Two builds within one second still get distinct, ordered names; the builder
    picks a new time if a name is already taken.
    """
    stamp = created_at.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{source_checksum[:8]}"
