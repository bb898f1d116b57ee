"""Export from an index version: every movie's nearest movies to a neighbour file, or the
unit vectors themselves (movies' or links') for batch users.

Neighbours stream: movies are searched a batch at a time and each batch is written
before the next is searched, so memory stays flat however large the catalogue. The file
layout is described in common.neighbour_files.

Vector files, by suffix (row i is movie or link id i of the version):

    .npy      float32 [n, dim], unit rows; beside it FILE.json: {"version", "what", "dim",
              "names": [row i's title or link name]}
    .parquet  columns name: string, vector: fixed_size_list<float32>[dim]; the version's
              name and what it holds in the schema's metadata (pyarrow: the parquet extra)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from movielinks.common.files import atomic_file, atomic_write_bytes
from movielinks.common.limits import MAX_NEIGHBOURS_K
from movielinks.common.neighbour_files import NeighbourWriter, pyarrow_modules
from movielinks.search.neighbours import BATCH_ROWS, all_similar_rows, named
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.version import LINK_VECTORS, MOVIE_VECTORS, IndexVersion


def export_neighbours(
    version: IndexVersion,
    k: int,
    out_path: str | Path,
    *,
    batch_size: int = BATCH_ROWS,
    progress: bool = True,
) -> int:
    """Write each movie's top-k most similar movies (itself excluded) to `out_path`; return the row count.

    The format follows the suffix (.csv, .jsonl, .parquet). The file appears only
    once complete. A catalogue of k movies or fewer gives each movie fewer than k
    rows. `batch_size` movies are searched at a time (fewer for a large k, see
    search.neighbours). Raises IndexerError for k outside 1..1000, batch_size < 1 or an
    unknown suffix.
    """
    if not 1 <= k <= MAX_NEIGHBOURS_K:
        raise IndexerError(f"k must be between 1 and {MAX_NEIGHBOURS_K} (as the server's limit), got {k}")
    if batch_size < 1:
        raise IndexerError(f"batch_size must be at least 1, got {batch_size}")
    try:
        writer = NeighbourWriter(out_path)
    except ValueError as e:
        raise IndexerError(str(e)) from e
    titles = version.movie_names
    batches = all_similar_rows(version.movie_index, version.movie_vectors, k, version.movie_neighbours, batch_size)
    with writer, tqdm(total=len(titles), desc="exporting neighbours", unit="movies", disable=not progress or None) as bar:
        for rows, ids, scores in batches:
            writer.write([titles[i] for i in rows], [named(i, s, titles) for i, s in zip(ids, scores)])
            bar.update(len(rows))
    return writer.rows_written


VECTOR_FORMATS = (".npy", ".parquet")
VECTOR_KINDS = ("movies", "links")
# Rows written to a vector file at a time: the vectors are memory-mapped, so memory stays flat.
_VECTOR_ROWS = 65536


def export_vectors(version: IndexVersion, what: str, out_path: str | Path) -> int:
    """Write the version's unit vectors of `what` ("movies" or "links") to `out_path` (.npy with
    its .json of names beside it, or .parquet; see the module docstring); return the row count.

    Files appear only once complete. Raises IndexerError for an unknown kind or suffix,
    or .parquet without pyarrow.
    """
    if what not in VECTOR_KINDS:
        raise IndexerError(f"unknown vectors {what!r}; choose one of {', '.join(VECTOR_KINDS)}")
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in VECTOR_FORMATS:
        raise IndexerError(f"{out_path}: unknown vector file type {out_path.suffix!r}; use one of {', '.join(VECTOR_FORMATS)}")
    vectors = version.movie_vectors if what == "movies" else version.link_vectors
    if vectors.dtype != np.float32:  # served from float16 codes (indexer.version): the version's exact file
        vectors = np.load(version.path / (MOVIE_VECTORS if what == "movies" else LINK_VECTORS), mmap_mode="r")
    names = version.movie_names if what == "movies" else version.links
    about = {"version": version.name, "what": what, "dim": int(vectors.shape[1])}
    if suffix == ".npy":
        _write_npy(out_path, vectors, names, about)
    else:
        _write_parquet(out_path, vectors, names, about)
    return len(vectors)


def vector_names_path(npy_path: str | Path) -> Path:
    """The .json of names written beside a .npy vector file."""
    return Path(npy_path).with_suffix(".json")


def _write_npy(path: Path, vectors: np.ndarray, names, about: dict) -> None:
    with atomic_file(path) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": vectors.shape})
        for start in range(0, len(vectors), _VECTOR_ROWS):
            f.write(np.ascontiguousarray(vectors[start:start + _VECTOR_ROWS], dtype="<f4").tobytes())
    atomic_write_bytes(vector_names_path(path), json.dumps(about | {"names": list(names)}).encode("utf-8"))


def _write_parquet(path: Path, vectors: np.ndarray, names, about: dict) -> None:
    try:
        pa, pq = pyarrow_modules()
    except ValueError as e:
        raise IndexerError(str(e)) from e
    dim = int(vectors.shape[1])
    schema = pa.schema([("name", pa.string()), ("vector", pa.list_(pa.float32(), dim))],
                       metadata={"movielinks": json.dumps(about)})
    with atomic_file(path) as f, pq.ParquetWriter(f, schema) as writer:
        for start in range(0, len(vectors), _VECTOR_ROWS):
            rows = np.ascontiguousarray(vectors[start:start + _VECTOR_ROWS], dtype=np.float32)
            flat = pa.array(rows.reshape(-1), type=pa.float32())
            writer.write_table(pa.table({"name": pa.array([names[i] for i in range(start, start + len(rows))],
                                                          pa.string()),
                                         "vector": pa.FixedSizeListArray.from_arrays(flat, dim)}, schema=schema))
