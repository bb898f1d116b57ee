"""The index version: the artifact contract between the indexer and the server.

One version is an immutable directory (`indexer.root` says where versions live and
which one is published):

    versions/<name>/
      manifest.json           IndexManifest: format, version name, created_at, source run
                              (path, checksum), dataset, trainer metrics and params, indexes
                              {movies, links: IndexDescription}, files {name: sha256}
      movies.faiss            FAISS inner-product index over movie_vectors
      links.faiss             FAISS inner-product index over link_vectors
      movie_vectors.npy       float32 [n_movies, dim], unit rows, row i = movie id i
      link_vectors.npy        float32 [n_links, dim], unit rows
      movies.jsonl            MovieRecord per line, in movie id order
      links.json              link names in link id order
      attribute_models.json   {name: AttributeModel}
      movie_neighbours.npz    optional: each movie's K most similar movies, itself excluded,
                              ids int32 [n, K] padded with -1, scores float32 [n, K]
      movie_links.npz         optional (copied from a run that has it): each movie's kept
                              links, CSR offsets int64, link_ids int32 (common.movie_links)

This module imports neither TensorFlow nor the trainer, so the server stays small.
"""
from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from common import artifacts, movie_links as movie_links_file
from common.artifacts import ArtifactError, Records, WithRecords
from indexer.errors import IndexerError
from indexer.validate import validate_version

INDEX_FORMAT = "movielinks.index/1"
MANIFEST = artifacts.MANIFEST
MOVIE_INDEX = "movies.faiss"
LINK_INDEX = "links.faiss"
MOVIE_VECTORS = "movie_vectors.npy"
LINK_VECTORS = "link_vectors.npy"
MOVIES = artifacts.MOVIES
LINKS = artifacts.LINKS
ATTRIBUTE_MODELS = artifacts.ATTRIBUTE_MODELS
MOVIE_NEIGHBOURS = "movie_neighbours.npz"
MOVIE_LINKS = movie_links_file.FILE
REQUIRED_FILES = (MOVIE_INDEX, LINK_INDEX, MOVIE_VECTORS, LINK_VECTORS, MOVIES, LINKS, ATTRIBUTE_MODELS)
OPTIONAL_FILES = (MOVIE_NEIGHBOURS, MOVIE_LINKS)  # read when the manifest lists them


@dataclasses.dataclass(frozen=True)
class IndexDescription:
    """One FAISS index of a version, as its manifest describes it."""

    type: str  # the FAISS class, e.g. IndexFlatIP
    factory: str  # the index-factory string it was built from
    size: int
    dim: int
    search_params: dict[str, int] = dataclasses.field(default_factory=dict)
    # Settings the index was built with beyond its factory string, e.g. HNSW's efConstruction.
    build_params: dict[str, int] = dataclasses.field(default_factory=dict)
    # Approximate indexes: recall@10 against exact search with search_params, measured at
    # build time over recall_queries sampled rows (indexer.calibrate). None: exact, or older.
    recall_at_10: float | None = None
    recall_queries: int = 0

    @property
    def label(self) -> str:
        return f"{self.type} ({self.factory})" if self.factory else self.type


@dataclasses.dataclass(frozen=True)
class IndexManifest:
    """manifest.json of an index version."""

    version: str
    created_at: str
    source_run: dict[str, str]  # path, checksum
    indexes: dict[str, IndexDescription]  # "movies", "links"
    files: dict[str, str]
    dataset: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    format: str = INDEX_FORMAT

    def save(self, directory: Path) -> None:
        artifacts.write_json(directory / MANIFEST, dataclasses.asdict(self))

    @classmethod
    def load(cls, directory: str | Path) -> IndexManifest:
        """The manifest of a version directory, format and every field checked (files are not hashed).

        Raises IndexerError naming the file and the problem.
        """
        directory = Path(directory)
        try:
            raw = artifacts.read_manifest(directory, INDEX_FORMAT, "index version")
            fields = artifacts.manifest_fields(cls, raw, directory)
            indexes = fields.get("indexes")
            if not isinstance(indexes, dict) or set(indexes) != {"movies", "links"}:
                raise ArtifactError(f"{directory / MANIFEST}: 'indexes' must describe 'movies' and 'links'")
            fields["indexes"] = {what: IndexDescription(**d) for what, d in indexes.items()}
            manifest = cls(**fields)
        except TypeError as e:  # an index description with missing or unknown keys
            raise IndexerError(f"{directory / MANIFEST}: malformed index description: {e}") from e
        except ArtifactError as e:
            raise IndexerError(str(e)) from e
        manifest.validate(directory)
        return manifest

    def validate(self, directory: Path) -> None:
        """Types of the fields readers rely on; raises IndexerError."""
        checks = [
            (isinstance(self.version, str) and bool(self.version), "'version' must be a non-empty string"),
            (isinstance(self.created_at, str), "'created_at' must be a string"),
            (all(isinstance(getattr(self, f), dict) for f in ("source_run", "files", "dataset", "metrics", "params")),
             "'source_run', 'files', 'dataset', 'metrics' and 'params' must be objects"),
            (all(isinstance(d.size, int) and isinstance(d.dim, int) for d in self.indexes.values()),
             "index sizes and dimensions must be integers"),
        ]
        for ok, problem in checks:
            if not ok:
                raise IndexerError(f"{directory / MANIFEST}: {problem}")


@dataclasses.dataclass(frozen=True)
class IndexVersion(WithRecords):
    """A loaded, validated index version."""

    path: Path
    manifest: IndexManifest
    movie_index: faiss.Index
    link_index: faiss.Index
    movie_vectors: np.ndarray
    link_vectors: np.ndarray
    records: Records
    # Each movie's K most similar movies (itself excluded), found with movie_index at
    # build time: (ids int32 [n, K] padded with -1, scores float32 [n, K]). None if not built.
    movie_neighbours: tuple[np.ndarray, np.ndarray] | None = None
    # Each movie's kept links (the articles' links in the vocabulary). None if the run had none.
    movie_links: movie_links_file.MovieLinks | None = None

    @property
    def name(self) -> str:
        """The version's name: the directory it is served from (a copied version keeps its own)."""
        return self.path.name

    @property
    def dim(self) -> int:
        return int(self.movie_vectors.shape[1])


def load_version(path: str | Path) -> IndexVersion:
    """Load one version directory, verifying every checksum, size and dimension.

    Any failure, of whatever kind, raises IndexerError naming the version and the problem.
    """
    path = Path(path)
    manifest = IndexManifest.load(path)
    try:
        artifacts.verify_files(path, manifest.files, REQUIRED_FILES)
        version = IndexVersion(
            path, manifest,
            _read_index(path / MOVIE_INDEX), _read_index(path / LINK_INDEX),
            np.load(path / MOVIE_VECTORS, mmap_mode="r"), np.load(path / LINK_VECTORS, mmap_mode="r"),
            artifacts.read_records(path),
            _read_neighbours(path / MOVIE_NEIGHBOURS) if MOVIE_NEIGHBOURS in manifest.files else None,
            movie_links_file.load(path / MOVIE_LINKS) if MOVIE_LINKS in manifest.files else None,
        )
    except ArtifactError as e:
        raise IndexerError(str(e)) from e
    except (OSError, RuntimeError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise IndexerError(f"{path}: cannot read index version: {type(e).__name__}: {e}") from e
    validate_version(version)
    return version


def _read_index(path: Path) -> faiss.Index:
    """A FAISS index whose vectors are memory-mapped, not read: a version of a million
    movies starts serving in seconds, and pages come into memory as searches touch them."""
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def _read_neighbours(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The stored neighbours, memory-mapped where the .npz holds them uncompressed (as `np.savez` writes)."""
    with zipfile.ZipFile(path) as archive:
        arrays = [_mapped_member(path, archive, name) for name in ("ids.npy", "scores.npy")]
    return arrays[0], arrays[1]


def _mapped_member(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray:
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        with archive.open(info) as member:
            return np.lib.format.read_array(member)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local_header = f.read(30)
        if local_header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"{name}: bad local header")
        name_length = int.from_bytes(local_header[26:28], "little")
        extra_length = int.from_bytes(local_header[28:30], "little")
        f.seek(info.header_offset + 30 + name_length + extra_length)
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
