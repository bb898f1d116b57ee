"""Export every movie's nearest movies from an index version to a neighbour file.

Streams: movies are searched a batch at a time and each batch is written before
the next is searched, so memory stays flat however large the catalogue. The file
layout is described in common.neighbour_files.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from movielinks.common.limits import MAX_NEIGHBOURS_K
from movielinks.common.neighbour_files import NeighbourWriter
from movielinks.search.neighbours import BATCH_ROWS, all_similar_rows, named
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.version import IndexVersion


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
