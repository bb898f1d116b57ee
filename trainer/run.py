"""The training run: the artifact contract between the trainer and the indexer.

A run directory holds:

    manifest.json           format, dataset (path, sha256, format, counts), params,
                            vocabulary sizes, metrics, library versions, files {name: sha256}
    movie_vectors.npy       float32 [n_movies, dim], rows L2-normalised, row i = movie id i
    link_vectors.npy        float32 [n_links, dim], rows L2-normalised, row i = link id i
    movies.jsonl            one JSON object a line, in movie id order:
                            {"title", "infobox": {str: str}, "attributes": {name: float}}
                            attributes are the parsed numeric ones the data has
                            (rotten_tomatoes in 0..1, gross and budget in dollars)
    links.json              link names in link id order
    attribute_models.json   {name: AttributeModel as a dict}: the linear regressions
                            from a movie vector to that attribute, with held-out errors

This module imports neither TensorFlow nor the rest of the trainer, so the indexer
can read runs cheaply.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_directory, sha256_file
from common.records import AttributeModel, MovieRecord

RUN_FORMAT = "movielinks.run/1"
MANIFEST = "manifest.json"
MOVIE_VECTORS = "movie_vectors.npy"
LINK_VECTORS = "link_vectors.npy"
MOVIES = "movies.jsonl"
LINKS = "links.json"
ATTRIBUTE_MODELS = "attribute_models.json"


class RunError(Exception):
    """A run directory is missing, incomplete, or does not match its manifest."""


@dataclasses.dataclass(frozen=True)
class Run:
    """A loaded training run."""

    path: Path
    manifest: dict[str, Any]
    movie_vectors: np.ndarray
    link_vectors: np.ndarray
    movies: list[MovieRecord]
    links: list[str]
    attribute_models: dict[str, AttributeModel]

    @property
    def dim(self) -> int:
        return int(self.movie_vectors.shape[1])

    @property
    def checksum(self) -> str:
        """SHA-256 of the manifest, which itself pins every file's checksum."""
        return sha256_file(self.path / MANIFEST)


def save_run(
    path: str | Path,
    *,
    manifest: dict[str, Any],
    movie_vectors: np.ndarray,
    link_vectors: np.ndarray,
    movies: list[MovieRecord],
    links: list[str],
    attribute_models: dict[str, AttributeModel],
) -> Path:
    """Write a complete run directory atomically; returns its path.

    `manifest` is completed with the format and the checksum of every file.
    """
    path = Path(path)
    _check_shapes(movie_vectors, link_vectors, len(movies), len(links))
    with atomic_directory(path) as staging:
        np.save(staging / MOVIE_VECTORS, np.ascontiguousarray(movie_vectors, dtype=np.float32))
        np.save(staging / LINK_VECTORS, np.ascontiguousarray(link_vectors, dtype=np.float32))
        with open(staging / MOVIES, "w", encoding="utf-8") as f:
            for movie in movies:
                f.write(json.dumps(dataclasses.asdict(movie), ensure_ascii=False) + "\n")
        _write_json(staging / LINKS, links)
        _write_json(staging / ATTRIBUTE_MODELS, {k: dataclasses.asdict(m) for k, m in attribute_models.items()})
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
        _write_json(staging / MANIFEST, {**manifest, "format": RUN_FORMAT, "files": files})
    return path


def load_run(path: str | Path, *, verify: bool = True) -> Run:
    """Load a run directory, checking its format and (by default) every file's checksum."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise RunError(f"{path}: not a training run (no {MANIFEST}); pass the directory `trainer train --out` wrote")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunError(f"{manifest_path}: unreadable manifest: {e}") from e
    if manifest.get("format") != RUN_FORMAT:
        raise RunError(f"{manifest_path}: format {manifest.get('format')!r}, expected {RUN_FORMAT!r}")
    if verify:
        for name, expected in manifest.get("files", {}).items():
            file = path / name
            if not file.is_file():
                raise RunError(f"{file}: missing (listed in the manifest)")
            if sha256_file(file) != expected:
                raise RunError(f"{file}: checksum mismatch; the run is corrupt, retrain it")
    try:
        movie_vectors = np.load(path / MOVIE_VECTORS)
        link_vectors = np.load(path / LINK_VECTORS)
        with open(path / MOVIES, encoding="utf-8") as f:
            movies = [MovieRecord(**json.loads(line)) for line in f]
        links = json.loads((path / LINKS).read_text(encoding="utf-8"))
        models = {
            k: AttributeModel(**v)
            for k, v in json.loads((path / ATTRIBUTE_MODELS).read_text(encoding="utf-8")).items()
        }
    except (OSError, ValueError, TypeError) as e:
        raise RunError(f"{path}: cannot read run: {e}") from e
    _check_shapes(movie_vectors, link_vectors, len(movies), len(links))
    return Run(path, manifest, movie_vectors, link_vectors, movies, links, models)


def _check_shapes(movie_vectors: np.ndarray, link_vectors: np.ndarray, n_movies: int, n_links: int) -> None:
    if movie_vectors.ndim != 2 or link_vectors.ndim != 2 or movie_vectors.shape[1] != link_vectors.shape[1]:
        raise RunError(f"vector shapes disagree: movies {movie_vectors.shape}, links {link_vectors.shape}")
    if movie_vectors.shape[0] != n_movies or link_vectors.shape[0] != n_links:
        raise RunError(
            f"{movie_vectors.shape[0]} movie vectors for {n_movies} movies, "
            f"{link_vectors.shape[0]} link vectors for {n_links} links"
        )


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
