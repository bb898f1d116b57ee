"""Arrays of an .npz memory-mapped, not read, and scanned without making them resident.

    read_arrays(path) -> {name: array}   # np.memmap where the member is stored uncompressed (np.savez)
    value_range(array) -> (min, max)     # read through the page cache, not the mapping

A million-film index version keeps hundreds of megabytes in .npz files (stored
neighbours, movie links, title indexes). Mapped, they cost the server only the pages
its queries touch; a check that scanned the mapping would make every page resident.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

_READ_VALUES = 1 << 21  # values read at a time by value_range (8 MB of int32)


def read_arrays(path: Path, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz (or those of `names`), memory-mapped where stored uncompressed."""
    with zipfile.ZipFile(path) as archive:
        members = archive.namelist() if names is None else [f"{name}.npy" for name in names]
        return {name.removesuffix(".npy"): _mapped_member(path, archive, name) for name in members}


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
    if not np.prod(shape, dtype=np.int64):  # nothing to map (mmap refuses an empty range)
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def value_range(values: np.ndarray) -> tuple[int, int]:
    """The smallest and largest of non-empty integer `values`, read from its file where it is memory-mapped.

    Scanning the mapping itself would make every page of it resident for one check (at a
    million movies, 400 MB of stored neighbour ids before the first query); read() goes
    through the shared page cache instead, and the mapping's pages come in only as queries
    touch them.
    """
    if not isinstance(values, np.memmap) or values.filename is None:
        return int(values.min()), int(values.max())
    low, high = None, None
    with open(values.filename, "rb") as f:
        f.seek(values.offset)
        left = values.size
        while left:
            piece = np.fromfile(f, dtype=values.dtype, count=min(left, _READ_VALUES))
            if not len(piece):
                raise ValueError(f"{values.filename}: ends inside its array")
            low = int(piece.min()) if low is None else min(low, int(piece.min()))
            high = int(piece.max()) if high is None else max(high, int(piece.max()))
            left -= len(piece)
    return low, high
