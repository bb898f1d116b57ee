"""The training run: the artifact contract between the trainer and the indexer.

A run directory holds:

    manifest.json           RunManifest: format, dataset (path, sha256, format, counts), params,
                            vocabulary sizes, metrics, library versions, files {name: sha256},
                            ratings (the ratings file trained with, if any: trainer.ratings),
                            objective (its name and learned scale and bias; older runs: none)
    movie_vectors.npy       float32 [n_movies, dim], rows L2-normalised, row i = movie id i
    link_vectors.npy        float32 [n_links, dim], rows L2-normalised, row i = link id i
    movies.jsonl            one JSON object a line, in movie id order:
                            {"title", "infobox": {str: str}, "attributes": {name: float}}
                            attributes are the parsed numeric ones the data has
                            (rotten_tomatoes in 0..1, gross and budget in dollars)
    links.json              link names in link id order
    attribute_models.json   {name: AttributeModel as a dict}: the linear regressions
                            from a movie vector to that attribute, with held-out errors
    movie_links.npz         optional (runs before it have none): each movie's kept links,
                            CSR offsets int64 [n_movies + 1], link_ids int32 (common.movie_links)

This module imports neither TensorFlow nor the rest of the trainer (but its error
type), so the indexer can read runs cheaply.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from movielinks.common import artifacts, movie_links as movie_links_file
from movielinks.common.artifacts import ArtifactError, Records, WithRecords
from movielinks.common.files import atomic_directory, sha256_file
from movielinks.trainer.errors import TrainerError

RUN_FORMAT = "movielinks.run/1"
MANIFEST = artifacts.MANIFEST
MOVIE_VECTORS = "movie_vectors.npy"
LINK_VECTORS = "link_vectors.npy"
MOVIES = artifacts.MOVIES
LINKS = artifacts.LINKS
ATTRIBUTE_MODELS = artifacts.ATTRIBUTE_MODELS
MOVIE_LINKS = movie_links_file.FILE
FILES = (MOVIE_VECTORS, LINK_VECTORS, MOVIES, LINKS, ATTRIBUTE_MODELS)
OPTIONAL_FILES = (MOVIE_LINKS,)  # checked when the manifest lists them


@dataclasses.dataclass(frozen=True)
class RunManifest:
    """manifest.json of a run. `files` is filled in by `save_run`."""

    dataset: dict[str, Any]  # path, sha256, format, films, skipped_records
    params: dict[str, Any]  # the TrainConfig
    metrics: dict[str, Any]  # the held-out evaluation (trainer.evaluate)
    created_at: str = ""
    vocabulary: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)  # library versions
    # the ratings file trained with (trainer.ratings): path, sha256, format, like_threshold,
    # ratings, users_with_likes, likes, skipped_lines, skipped_examples, users_used, likes_used; {} without one
    ratings: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the objective trained with and what it learned: {"name", "scale", "bias"} for the logistic
    # one (search.foldin fits new films with them); {} in runs written before it was recorded
    objective: dict[str, Any] = dataclasses.field(default_factory=dict)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    format: str = RUN_FORMAT

    def save(self, directory: Path) -> None:
        artifacts.write_json(directory / MANIFEST, dataclasses.asdict(self))

    @classmethod
    def load(cls, directory: Path) -> RunManifest:
        """The manifest of `directory`, format and fields checked (files are not hashed here)."""
        raw = artifacts.read_manifest(directory, RUN_FORMAT, "training run (the directory `trainer train --out` wrote)")
        manifest = cls(**artifacts.manifest_fields(cls, raw, directory))
        manifest.validate(directory)
        return manifest

    def validate(self, directory: Path) -> None:
        for name in ("dataset", "params", "metrics", "vocabulary", "versions", "files", "ratings", "objective"):
            if not isinstance(getattr(self, name), dict):
                raise ArtifactError(f"{directory / MANIFEST}: {name!r} is not an object")


@dataclasses.dataclass(frozen=True)
class Run(WithRecords):
    """A loaded training run."""

    path: Path
    manifest: RunManifest
    movie_vectors: np.ndarray
    link_vectors: np.ndarray
    records: Records
    movie_links: movie_links_file.MovieLinks | None = None  # None for a run written before movie_links.npz

    @property
    def checksum(self) -> str:
        """SHA-256 of the manifest, which itself pins every file's checksum."""
        return sha256_file(self.path / MANIFEST)


def save_run(
    path: str | Path,
    manifest: RunManifest,
    movie_vectors: np.ndarray,
    link_vectors: np.ndarray,
    records: Records,
    pairs: np.ndarray | None = None,
    cited: np.ndarray | None = None,
) -> Path:
    """Write a complete run directory atomically; returns its path.

    `pairs` (the vocabulary's (movie id, link id) pairs) are saved as movie_links.npz, with
    `cited` (bool per pair: the link only in the movie's citations) when the data has link kinds.
    The manifest is saved with the checksum of every file.
    """
    path = Path(path)
    _check_shapes(movie_vectors, link_vectors, records)
    links = None if pairs is None else movie_links_file.from_pairs(pairs, len(records.movies), cited)
    if links is not None and (problem := links.problem(len(records.movies), len(records.links))):
        raise TrainerError(problem)
    with atomic_directory(path) as staging:
        np.save(staging / MOVIE_VECTORS, np.ascontiguousarray(movie_vectors, dtype=np.float32))
        np.save(staging / LINK_VECTORS, np.ascontiguousarray(link_vectors, dtype=np.float32))
        artifacts.write_records(staging, records)
        if links is not None:
            movie_links_file.save(staging / MOVIE_LINKS, links)
        dataclasses.replace(manifest, files=artifacts.file_checksums(staging)).save(staging)
    return path


def load_run(path: str | Path) -> Run:
    """Load a run directory, checking its format, fields and every file's checksum.

    Raises TrainerError naming the file and the problem.
    """
    path = Path(path)
    try:
        manifest = RunManifest.load(path)
        artifacts.verify_files(path, manifest.files, FILES)
        movie_vectors = np.load(path / MOVIE_VECTORS)
        link_vectors = np.load(path / LINK_VECTORS)
        records = artifacts.read_records(path)
        links = movie_links_file.load(path / MOVIE_LINKS) if MOVIE_LINKS in manifest.files else None
    except (OSError, ValueError, KeyError) as e:
        raise TrainerError(f"{path}: cannot read run: {e}") from e
    except ArtifactError as e:
        raise TrainerError(str(e)) from e
    _check_shapes(movie_vectors, link_vectors, records)
    if links is not None and (problem := links.problem(len(records.movies), len(records.links))):
        raise TrainerError(f"{path / MOVIE_LINKS}: {problem}")
    return Run(path, manifest, movie_vectors, link_vectors, records, links)


def _check_shapes(movie_vectors: np.ndarray, link_vectors: np.ndarray, records: Records) -> None:
    n_movies, n_links = len(records.movies), len(records.links)
    if movie_vectors.ndim != 2 or link_vectors.ndim != 2 or movie_vectors.shape[1] != link_vectors.shape[1]:
        raise TrainerError(f"vector shapes disagree: movies {movie_vectors.shape}, links {link_vectors.shape}")
    if movie_vectors.shape[0] != n_movies or link_vectors.shape[0] != n_links:
        raise TrainerError(
            f"{movie_vectors.shape[0]} movie vectors for {n_movies} movies, "
            f"{link_vectors.shape[0]} link vectors for {n_links} links"
        )
