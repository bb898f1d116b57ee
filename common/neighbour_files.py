"""Neighbour files: every movie's most similar movies, as CSV, JSON Lines or Parquet.

Written by `indexer export` (from an index version) and by the client's streaming
export (from the server), so this module knows nothing of FAISS or the service.

All three formats hold the same rows, one per (movie, rank):

    movie       str    the query movie's title
    rank        int    1 for the most similar neighbour, then 2, 3, ...
    neighbour   str    the neighbour's title
    score       float  cosine similarity of the two movie vectors (float32 precision)

    .csv      a header line `movie,rank,neighbour,score`, then RFC 4180 rows (UTF-8)
    .jsonl    one object a line: {"movie": ..., "rank": ..., "neighbour": ..., "score": ...}
    .parquet  columns movie: string, rank: int32, neighbour: string, score: float32;
              one row group per `write` call

A movie's rows are contiguous and in rank order; a movie without neighbours has no
rows. Text formats write scores with 9 significant digits, which is enough to give
back the float32 score exactly. Files are written atomically (common.files.atomic_file):
the target appears only complete; after an error nothing partial stays behind. The
commands turn SIGTERM into an exit that deletes the temporary file at once
(common.signals); one whose writer was killed outright (SIGKILL) is deleted by the
next writer of the same target.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from movielinks.common.files import atomic_file, remove_orphaned_partials
from movielinks.common.answers import Neighbours

FORMATS = (".csv", ".jsonl", ".parquet")
COLUMNS = ("movie", "rank", "neighbour", "score")


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown neighbour file type {path.suffix!r}; use one of {', '.join(FORMATS)}")
    return suffix


def _score_text(score: float) -> str:
    return f"{score:.9g}"


class NeighbourWriter:
    """Streams rows into a neighbour file; use it as a context manager.

    Creating it checks the suffix (ValueError naming the choices) and the directory
    (FileNotFoundError) before anything is written. The target appears (or is
    replaced) only when the `with` block ends without an exception; otherwise the
    rows written so far are deleted (common.files.atomic_file).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.format = _format_of(self.path)
        self.rows_written = 0
        if not self.path.parent.is_dir():
            raise FileNotFoundError(
                f"{self.path.parent}: no such directory to write {self.path.name} in; create it first"
            )
        remove_orphaned_partials(self.path)  # left by an export killed outright (SIGKILL)
        self._stack = contextlib.ExitStack()
        file = self._stack.enter_context(
            atomic_file(self.path, "wb" if self.format == ".parquet" else "w", **_text_args(self.format))
        )
        try:
            self._sink = _SINKS[self.format](file)
        except BaseException as e:
            self._stack.__exit__(type(e), e, e.__traceback__)
            raise

    def write(self, movies: list[str], neighbours: list[Neighbours]) -> None:
        """Append the neighbours of `movies` (best first, as (title, score) pairs), one row per rank."""
        if len(movies) != len(neighbours):
            raise ValueError(f"{len(movies)} movies but {len(neighbours)} neighbour lists; pass one list per movie")
        self._sink.write(movies, neighbours)
        self.rows_written += sum(len(n) for n in neighbours)

    def __enter__(self) -> NeighbourWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            try:
                self._sink.close()  # a Parquet file's footer
            except BaseException as e:
                self._stack.__exit__(type(e), e, e.__traceback__)
                raise
            self._stack.close()
            return
        # The sink is finished only so that it lets go of the file (a Parquet writer
        # would otherwise write its footer when garbage-collected); its bytes are discarded.
        with contextlib.suppress(Exception):
            self._sink.close()
        self._stack.__exit__(exc_type, exc, tb)


def read_neighbour_file(path: str | os.PathLike) -> dict[str, Neighbours]:
    """{movie: [(neighbour, score), ...] in rank order} from a file any writer here made."""
    path = Path(path)
    rows = _READERS[_format_of(path)](path)
    by_movie: dict[str, list[tuple[int, str, float]]] = {}
    for movie, rank, neighbour, score in rows:
        by_movie.setdefault(movie, []).append((int(rank), neighbour, float(score)))
    return {movie: [(n, s) for _, n, s in sorted(ranked)] for movie, ranked in by_movie.items()}


def _text_args(fmt: str) -> dict[str, Any]:
    # newline="" lets the csv module write its own line endings and quote titles with newlines.
    return {} if fmt == ".parquet" else {"encoding": "utf-8", "newline": ""}


def _rows(movies: list[str], neighbours: list[Neighbours]):
    for movie, ranked in zip(movies, neighbours):
        for rank, (neighbour, score) in enumerate(ranked, start=1):
            yield movie, rank, neighbour, score


def pyarrow_modules():
    """pyarrow and pyarrow.parquet, or a ValueError saying how to get them."""
    # Imported here: pyarrow takes a noticeable time to import, and the
    # client pays that only when it writes Parquet (and installs without it).
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ValueError(".parquet files need pyarrow, which is not installed: pip install 'movielinks[parquet]', "
                         "or write .csv or .jsonl") from e
    return pa, pq


class _CsvSink:
    def __init__(self, file: TextIO) -> None:
        self._writer = csv.writer(file)
        self._writer.writerow(COLUMNS)

    def write(self, movies: list[str], neighbours: list[Neighbours]) -> None:
        self._writer.writerows((m, r, n, _score_text(s)) for m, r, n, s in _rows(movies, neighbours))

    def close(self) -> None:
        pass


class _JsonlSink:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def write(self, movies: list[str], neighbours: list[Neighbours]) -> None:
        for movie, rank, neighbour, score in _rows(movies, neighbours):
            row = {"movie": movie, "rank": rank, "neighbour": neighbour, "score": float(_score_text(score))}
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        pass


class _ParquetSink:
    def __init__(self, file: Any) -> None:
        pa, pq = pyarrow_modules()
        self._pa = pa
        self._schema = pa.schema(
            [("movie", pa.string()), ("rank", pa.int32()), ("neighbour", pa.string()), ("score", pa.float32())]
        )
        self._writer = pq.ParquetWriter(file, self._schema)

    def write(self, movies: list[str], neighbours: list[Neighbours]) -> None:
        columns = list(zip(*_rows(movies, neighbours)))
        if not columns:
            return  # no empty row groups
        arrays = [self._pa.array(values, type_) for values, type_ in zip(columns, self._schema.types)]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


_SINKS = {".csv": _CsvSink, ".jsonl": _JsonlSink, ".parquet": _ParquetSink}


def _read_csv(path: Path):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != COLUMNS:
            raise ValueError(f"{path}: header {header!r}, expected {COLUMNS!r}")
        yield from reader


def _read_jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            yield row["movie"], row["rank"], row["neighbour"], row["score"]


def _read_parquet(path: Path):
    _, pq = pyarrow_modules()
    table = pq.read_table(path, columns=list(COLUMNS))
    yield from zip(*(table.column(name).to_pylist() for name in COLUMNS))


_READERS = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": _read_parquet}
