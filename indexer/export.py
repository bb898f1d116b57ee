"""Export every movie's nearest movies from an index version to a neighbour file.

Streams: movies are searched a batch at a time and each batch is written before
the next is searched, so memory stays flat however large the catalogue. The file
layout is described in common.neighbour_files.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from common.neighbour_files import open_neighbour_writer
from indexer.build import IndexerError
from indexer.version import IndexVersion, search

# A batch never holds more rows than this (batches shrink for a large k), which
# bounds memory at a few tens of MB whatever the catalogue.
MAX_ROWS_PER_BATCH = 1 << 17


def export_neighbours(
    version: IndexVersion,
    k: int,
    out_path: str | Path,
    *,
    batch_size: int = 4096,
    progress: bool = True,
) -> int:
    """Write each movie's top-k most similar movies (itself excluded) to `out_path`; return the row count.

    The format follows the suffix (.csv, .jsonl, .parquet). The file appears only
    once complete. A catalogue of k movies or fewer gives each movie fewer than k
    rows. `batch_size` movies are searched at a time (fewer if that would exceed
    MAX_ROWS_PER_BATCH rows); FAISS's flat search switches to BLAS, several times
    faster, only for batches of about 128000 / dim queries or more (faiss 1.15), hence
    the default. Raises IndexerError for k or batch_size < 1 or an unknown suffix.
    """
    if k < 1:
        raise IndexerError(f"k must be at least 1, got {k}")
    if batch_size < 1:
        raise IndexerError(f"batch_size must be at least 1, got {batch_size}")
    try:
        writer = open_neighbour_writer(out_path)
    except ValueError as e:
        raise IndexerError(str(e)) from e
    batch_size = min(batch_size, max(1, MAX_ROWS_PER_BATCH // k))
    titles = [movie.title for movie in version.movies]
    with writer, tqdm(total=len(titles), desc="exporting neighbours", unit="movies", disable=not progress) as bar:
        for start in range(0, len(titles), batch_size):
            stop = min(start + batch_size, len(titles))
            ids, scores = search(
                version.movie_index,
                version.movie_vectors[start:stop],
                k,
                exclude=[(movie_id,) for movie_id in range(start, stop)],
            )
            writer.write(
                titles[start:stop],
                [
                    [(titles[i], s) for i, s in zip(row_ids.tolist(), row_scores.tolist()) if i >= 0]
                    for row_ids, row_scores in zip(ids, scores)
                ],
            )
            bar.update(stop - start)
    return writer.rows_written
