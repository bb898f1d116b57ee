"""The index version: the artifact contract between the indexer and the server.

One version is an immutable directory (`indexer.root` says where versions live and
which one is published):

    versions/<name>/
      manifest.json           IndexManifest: format, version name, created_at, source run
                              (path, checksum), dataset, trainer metrics, params and objective
                              (learned scale and bias, for fold-in; older versions: none), indexes
                              {movies, links: IndexDescription}, files {name: sha256}, the films
                              folded in by `indexer update` and from which file (folded_in)
      movies.faiss            FAISS inner-product index over movie_vectors
      links.faiss             FAISS inner-product index over link_vectors
      movie_vectors.npy       float32 [n_movies, dim], unit rows, row i = movie id i
      link_vectors.npy        float32 [n_links, dim], unit rows
      movies.jsonl            MovieRecord per line, in movie id order
      links.json              link names in link id order
      attribute_models.json   {name: AttributeModel}
      movie_neighbours.npz    optional: each movie's K most similar movies, itself excluded, best
                              first: ids int32 [n, K] padded with -1; scales float32 [n], each
                              movie's local scale (search.recommend.local_scales of its list's
                              scores, found at build time)
      link_movies.npz         optional: each link's K nearest movies (its vector asking the movie
                              index, as LinkMovies asks it), best first: ids int32 [n_links, K]
                              padded with -1
      movie_links.npz         optional (from a run that has it): each movie's kept links, CSR
                              offsets int64, link_ids int32, and the films of each link, CSR
                              link_offsets int64, movies_by_link int32 (common.movie_links;
                              versions written before lack these two: the server sorts them at start)
      movie_records.npz       optional: offsets int64 [n + 1] of each movie's line in movies.jsonl
                              (records are read on demand), years int16 [n] (release year, 0 unknown),
                              prominence float32 [n] (how well known and reviewed, 0..1: the
                              neighbours recommendation's prior, common.records.prominence), and
                              the facts an answer shows of each movie without reading its record
                              (FactColumns: director, IMDb id, Wikidata item, each a UTF-8 blob
                              {column}_blob uint8 and {column}_offsets int64 [n + 1])
      movie_titles.npz        optional: the movie titles' common.title_index.TitleIndex arrays, with
                              the films' IMDb and Wikidata ids (a version without them knows none)
      link_titles.npz         optional: the link names' TitleIndex arrays

The stored lists keep no scores: a score is the inner product of the row's own vector
(movie_vectors[row], link_vectors[row]) and the listed movie's, computed for the rows a
query asks for (search.neighbours.NeighbourLists), so the server maps half the bytes.
Versions written before kept scores float32 [n, K] (-inf padding) beside the ids and no
scales: they still load, their scores are served as stored and the scales computed from them.

The last three are derived from movies.jsonl and links.json: a version without them
(written before they existed) still loads, and builds them in memory (slowly: half a
minute at a million movies; the server logs it).

This module imports neither TensorFlow nor the trainer, so the server stays small.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
import zipfile
from pathlib import Path
from typing import Any, Sequence

import faiss
import numpy as np

from movielinks.common import artifacts, mapped, movie_links as movie_links_file, npz
from movielinks.common.artifacts import ArtifactError, MovieRecordFile
from movielinks.common.files import sha256_file
from movielinks.common.records import AttributeModel, MovieRecord
from movielinks.common.franchises import franchise_groups
from movielinks.common.external_ids import IMDB, WIKIDATA
from movielinks.common.title_index import NameTable, TitleIndex
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.validate import validate_version
from movielinks.search.neighbours import NeighbourLists

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
LINK_MOVIES = "link_movies.npz"
MOVIE_LINKS = movie_links_file.FILE
MOVIE_RECORDS = "movie_records.npz"
MOVIE_TITLES = "movie_titles.npz"
LINK_TITLES = "link_titles.npz"
REQUIRED_FILES = (MOVIE_INDEX, LINK_INDEX, MOVIE_VECTORS, LINK_VECTORS, MOVIES, LINKS, ATTRIBUTE_MODELS)
# Read when the manifest lists them.
OPTIONAL_FILES = (MOVIE_NEIGHBOURS, LINK_MOVIES, MOVIE_LINKS, MOVIE_RECORDS, MOVIE_TITLES, LINK_TITLES)
LOOKUP_FILES = (MOVIE_RECORDS, MOVIE_TITLES, LINK_TITLES)  # derived from movies.jsonl and links.json

log = logging.getLogger(__name__)


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
    # The same for as many queries by the other kind's vectors (links asking the movie
    # index, as LinkMovies does; movies asking the link index). None: exact, or older.
    cross_recall_at_10: float | None = None
    # The cheaper setting that is enough for queries by the index's own rows, and their
    # recall@10 with it: the stored movie neighbours were searched so. {}: search_params.
    own_search_params: dict[str, int] = dataclasses.field(default_factory=dict)
    own_recall_at_10: float | None = None

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
    # The run's objective and what it learned ({"name", "scale", "bias"}): search.foldin's
    # Objective.from_manifest reads it; {} in versions built before runs recorded it.
    objective: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Films whose vectors were folded in by `indexer update` rather than trained (indexer.update):
    # {"films": {title: the update that folded it in, an index of "updates"}, "updates": [{"file",
    # "sha256", "applied_to" (the version it was applied to), "new", "changed", "removed",
    # "unknown_links"}]}; {} for a version built from a run alone.
    folded_in: dict[str, Any] = dataclasses.field(default_factory=dict)
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
            (all(isinstance(getattr(self, f), dict)
                 for f in ("source_run", "files", "dataset", "metrics", "params", "objective", "folded_in")),
             "'source_run', 'files', 'dataset', 'metrics', 'params', 'objective' and 'folded_in' must be objects"),
            (all(isinstance(d.size, int) and isinstance(d.dim, int) for d in self.indexes.values()),
             "index sizes and dimensions must be integers"),
        ]
        for ok, problem in checks:
            if not ok:
                raise IndexerError(f"{directory / MANIFEST}: {problem}")


@dataclasses.dataclass(frozen=True)
class FactColumns:
    """What an answer shows of each movie besides its title and year, by movie id ("" where
    unknown), kept beside the records: parsing a movie's record from movies.jsonl was most of a
    similar-movies answer's own time when its movies were not asked for lately (docs/speed.md)."""

    directors: NameTable  # common.records.director
    imdb_ids: NameTable  # "tt0034583"
    wikidata_ids: NameTable  # "Q132689"

    COLUMNS = ("director", IMDB, WIKIDATA)

    @classmethod
    def build(cls, directors: Sequence[str], ids: Sequence[dict[str, str]]) -> FactColumns:
        return cls(NameTable.from_names(directors), *(NameTable.from_names(i.get(scheme, "") for i in ids)
                                                      for scheme in (IMDB, WIKIDATA)))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FactColumns:
        return cls(*(NameTable(arrays[f"{c}_blob"], arrays[f"{c}_offsets"]) for c in cls.COLUMNS))

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        tables = (self.directors, self.imdb_ids, self.wikidata_ids)
        return {f"{c}_{part}": getattr(t, part) for c, t in zip(self.COLUMNS, tables) for part in ("blob", "offsets")}


@dataclasses.dataclass(frozen=True)
class Lookups:
    """What a version's titles and records are looked up by (the LOOKUP_FILES)."""

    record_offsets: np.ndarray  # int64 [n_movies + 1]: each movie's line in movies.jsonl
    years: np.ndarray  # int16 [n_movies], release year, 0 unknown
    prominence: np.ndarray  # float32 [n_movies], 0..1 (common.records.prominence)
    facts: FactColumns
    movie_titles: TitleIndex
    link_titles: TitleIndex


def build_lookups(directory: Path) -> Lookups:
    """The LOOKUP_FILES' contents, from movies.jsonl and links.json (every record checked)."""
    scanned = artifacts.scan_movie_records(directory / MOVIES)
    titles = scanned.titles
    if len(set(titles)) != len(titles):
        raise IndexerError(f"{directory}: duplicate movie titles")
    links = artifacts.read_link_names(directory)
    if len(set(links)) != len(links):
        raise IndexerError(f"{directory}: duplicate link names")
    franchises = franchise_groups(titles, scanned.films)
    movie_titles = TitleIndex.build(titles, franchises=franchises, external=scanned.ids)
    return Lookups(scanned.offsets, scanned.years, scanned.prominence, FactColumns.build(scanned.directors, scanned.ids),
                   movie_titles, TitleIndex.build(links))


def save_lookups(directory: Path, lookups: Lookups) -> None:
    """Write the LOOKUP_FILES (uncompressed, so the server memory-maps them), each with the
    SHA-256 of the file it was derived from (`_SOURCE`)."""
    source = {name: _digest_array(sha256_file(directory / name)) for name in (MOVIES, LINKS)}
    np.savez(directory / MOVIE_RECORDS, offsets=lookups.record_offsets, years=lookups.years,
             prominence=lookups.prominence, **lookups.facts.arrays, source_sha256=source[MOVIES])
    np.savez(directory / MOVIE_TITLES, **lookups.movie_titles.arrays, source_sha256=source[MOVIES])
    np.savez(directory / LINK_TITLES, **lookups.link_titles.arrays, source_sha256=source[LINKS])


# The file each lookup file is derived from: one derived from another copy of it (a
# movies.jsonl replaced, its checksum updated) is not used, and the lookups are built again.
_SOURCE = {MOVIE_RECORDS: MOVIES, MOVIE_TITLES: MOVIES, LINK_TITLES: LINKS}


def _digest_array(hex_digest: str) -> np.ndarray:
    return np.frombuffer(hex_digest.encode("ascii"), dtype=np.uint8)


def _read_lookups(path: Path, manifest: IndexManifest) -> Lookups:
    """The lookup files, memory-mapped; built in memory (one warning line) where a version
    has none or has ones derived from other records than its own."""
    why = f"has no {', '.join(LOOKUP_FILES)} (written before they existed)"
    if all(name in manifest.files for name in LOOKUP_FILES):
        arrays = {name: npz.read_arrays(path / name) for name in LOOKUP_FILES}
        stale = [name for name in LOOKUP_FILES if bytes(arrays[name].get("source_sha256", np.empty(0, np.uint8)))
                 != manifest.files.get(_SOURCE[name], "").encode("ascii")]
        records = arrays[MOVIE_RECORDS]
        if not stale and "prominence" in records and "director_blob" in records:
            return Lookups(records["offsets"], records["years"], records["prominence"], FactColumns.from_arrays(records),
                           TitleIndex(arrays[MOVIE_TITLES]), TitleIndex(arrays[LINK_TITLES]))
        why = (f"has {', '.join(stale)} derived from other records than its own" if stale
               else f"has no films' prominence or facts in {MOVIE_RECORDS} (written before they existed)")
    started = time.monotonic()
    lookups = build_lookups(path)
    log.warning("index version %s %s: built them in memory in %.1f s; rebuild it with `indexer build` to start "
                "faster", path.name, why, time.monotonic() - started)
    return lookups


@dataclasses.dataclass(frozen=True)
class IndexVersion:
    """A loaded, validated index version."""

    path: Path
    manifest: IndexManifest
    movie_index: faiss.Index
    link_index: faiss.Index
    movie_vectors: np.ndarray  # float32 [n_movies, dim], unit rows
    # float32 [n_links, dim], unit rows; float16 where the link index keeps float16 codes (auto beyond
    # 200,000 links: indexer.build): compute with them in float32 (numpy does, beside float32 operands).
    link_vectors: np.ndarray
    movies: Sequence[MovieRecord]  # by movie id, each read from movies.jsonl when asked for
    movie_titles: TitleIndex
    link_titles: TitleIndex
    years: np.ndarray  # int16 [n_movies], release year from the infobox, 0 unknown
    prominence: np.ndarray  # float32 [n_movies], how well known and reviewed, 0..1 (common.records.prominence)
    facts: FactColumns  # each movie's director and ids, without reading its record
    attribute_models: dict[str, AttributeModel]
    # Each movie's K most similar movies (itself excluded), found with movie_index at
    # build time (ids int32 [n, K] padded with -1; scores from the vectors). None if not built.
    movie_neighbours: NeighbourLists | None = None
    # Each movie's kept links (the articles' links in the vocabulary). None if the run had none.
    movie_links: movie_links_file.MovieLinks | None = None
    # Each link's K nearest movies, found with movie_index at build time (ids int32 [n_links, K]
    # padded with -1; scores from the vectors). None if not built (or dropped by an update).
    link_movies: NeighbourLists | None = None
    # float32 [n_movies]: each movie's local scale (search.recommend.local_scales), stored at build
    # time beside its neighbours. None without stored neighbours, or for a version written before
    # (its stored scores give them: server.catalogue).
    movie_scales: np.ndarray | None = None

    @property
    def links(self) -> Sequence[str]:
        """Link names by link id."""
        return self.link_titles.names

    @property
    def movie_names(self) -> Sequence[str]:
        """Movie titles by movie id (without reading the records)."""
        return self.movie_titles.names

    @property
    def name(self) -> str:
        """The version's name: the directory it is served from (a copied version keeps its own)."""
        return self.path.name

    @property
    def dim(self) -> int:
        return int(self.movie_vectors.shape[1])


def load_version(path: str | Path) -> IndexVersion:
    """Load one version directory, verifying every checksum, size and dimension.

    The checksums are verified in background threads while the files are opened; the
    version is returned only once every file matched its checksum. Any failure, of
    whatever kind, raises IndexerError naming the version and the problem.
    """
    path = Path(path)
    manifest = IndexManifest.load(path)
    try:
        # Before any file is opened: the files are plain files of this directory, not too big to hash.
        artifacts.check_files(path, manifest.files, REQUIRED_FILES)
    except ArtifactError as e:
        raise IndexerError(str(e)) from e
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        verified = pool.submit(artifacts.verify_files, path, manifest.files, REQUIRED_FILES)
        try:
            try:
                version = _open_version(path, manifest)
            finally:
                verified.result()  # a corrupt or missing file is the error to report, before any other
        except ArtifactError as e:
            raise IndexerError(str(e)) from e
        except (OSError, RuntimeError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise IndexerError(f"{path}: cannot read index version: {type(e).__name__}: {e}") from e
    validate_version(version)
    return version


def _open_version(path: Path, manifest: IndexManifest) -> IndexVersion:
    lookups = _read_lookups(path, manifest)
    movie_index, link_index = _read_index(path / MOVIE_INDEX), _read_index(path / LINK_INDEX)
    movie_vectors = _vectors(movie_index, path / MOVIE_VECTORS)
    link_vectors = _vectors(link_index, path / LINK_VECTORS, half=True)
    neighbours, scales = (_read_neighbours(path / MOVIE_NEIGHBOURS, movie_vectors, movie_vectors)
                          if MOVIE_NEIGHBOURS in manifest.files else (None, None))
    return IndexVersion(
        path, manifest, movie_index, link_index, movie_vectors, link_vectors,
        MovieRecordFile(path / MOVIES, lookups.record_offsets), lookups.movie_titles, lookups.link_titles,
        lookups.years, lookups.prominence, lookups.facts, artifacts.read_attribute_models(path),
        neighbours,
        movie_links_file.load(path / MOVIE_LINKS) if MOVIE_LINKS in manifest.files else None,
        _read_neighbours(path / LINK_MOVIES, link_vectors, movie_vectors)[0] if LINK_MOVIES in manifest.files else None,
        scales,
    )


def _read_index(path: Path) -> faiss.Index:
    """A FAISS index whose vectors are memory-mapped, not read: a version of a million
    movies starts serving in seconds, and pages come into memory as searches touch them.

    FAISS reads every neighbour id of an HNSW graph to check it: those pages are given back
    (common.mapped) where the file is one mapping that holds the vectors, so that a graph the
    stored lists answer for (at a million films 256 MB) is not resident until a search reads it."""
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    rows = _stored_rows(index)
    if rows is not None and rows[0].ntotal:
        mapped.release(path, rows[1])
    return index


def _vectors(index: faiss.Index, path: Path, *, half: bool = False) -> np.ndarray:
    """The rows of the .npy at `path`, read from `index`'s own storage where it keeps them.

    An exact index and an HNSW graph over flat storage hold every vector, in id order,
    in the index file: serving them from there keeps one copy of the vectors in memory
    instead of two (at a million movies, 592 MB of the server's resident pages). With
    `half`, a graph over float16 codes (the link index beyond EXACT_MAX_VECTORS,
    indexer.build) serves its codes as float16 rows (the .npy's rounded to 11 bits: a cosine
    within 0.002 of float32's), half the bytes. The .npy stays in the version (its checksum
    is verified like every file's) and is used whenever the index stores something else
    (IVF lists, 8-bit codes, float16 codes without `half`), and by `indexer export`.
    """
    mapped = np.load(path, mmap_mode="r")
    rows = _stored_rows(index)
    if rows is None or mapped.dtype != np.float32 or mapped.shape != (rows[0].ntotal, rows[0].d) or not len(mapped):
        return mapped
    storage, address = rows
    dtype = np.float32 if isinstance(storage, faiss.IndexFlat) else np.float16
    if dtype == np.float16 and not half:
        return mapped
    stored = np.asarray(_IndexMemory(index, address, mapped.shape, dtype))
    # Both files are checksummed; a storage out of id order is what this guards against.
    if not (np.array_equal(stored[0], mapped[0].astype(dtype)) and np.array_equal(stored[-1], mapped[-1].astype(dtype))):
        return mapped
    return stored


def _stored_rows(index: faiss.Index) -> tuple[faiss.Index, int] | None:
    """(the storage, the address of its first row) of an index that keeps every row in id order,
    as float32 (an exact index, or an HNSW graph over flat storage) or float16 codes (an HNSW
    graph over them: `HNSW32,SQfp16`); None for other indexes."""
    flat = _flat_storage(index)
    if flat is not None:
        return flat, int(flat.get_xb())
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSWSQ):
        storage = faiss.downcast_index(index.storage)
        if isinstance(storage, faiss.IndexScalarQuantizer) and storage.sq.qtype == faiss.ScalarQuantizer.QT_fp16:
            return storage, int(storage.codes.data())
    return None


def _flat_storage(index: faiss.Index) -> faiss.IndexFlat | None:
    """The float32 rows of an exact index or of an HNSW graph's flat storage; None for other indexes."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSW) and not isinstance(index, faiss.IndexHNSW2Level):
        index = faiss.downcast_index(index.storage)
    return index if type(index) in (faiss.IndexFlat, faiss.IndexFlatIP, faiss.IndexFlatL2) else None


class _IndexMemory:
    """Rows inside a FAISS index as a read-only numpy array that keeps the index alive."""

    def __init__(self, index: faiss.Index, address: int, shape: tuple[int, int], dtype: type = np.float32):
        self.index = index
        self.__array_interface__ = {"shape": shape, "typestr": np.dtype(dtype).str, "data": (address, True),
                                    "version": 3}


def _read_neighbours(path: Path, row_vectors: np.ndarray, movie_vectors: np.ndarray
                     ) -> tuple[NeighbourLists, np.ndarray | None]:
    """Stored lists of movies, memory-mapped where the .npz holds them uncompressed (as `np.savez`
    writes), scored with `row_vectors` (each row's own) and `movie_vectors`; and the rows' stored
    local scales (None where the file has none). A version's file written before scores were
    dropped keeps them: they are served as stored."""
    arrays = npz.read_arrays(path)
    scales = arrays.get("scales")
    # The scales are read once (4 MB at a million movies) and indexed by every recommendation.
    return (NeighbourLists(arrays["ids"], row_vectors, movie_vectors, arrays.get("scores")),
            None if scales is None else np.array(scales))


