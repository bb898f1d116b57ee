"""Giving back the resident pages of a memory-mapped file that a process touched but does not read.

FAISS checks every neighbour id of an HNSW graph when it reads an index (`validate_HNSW` in
faiss/impl/index_read.cpp), memory-mapped or not: after a load the whole graph is resident in the
server (at a million films 256 MB of movies.faiss), though the stored neighbour lists answer most
queries without it. `release` advises the kernel that the pages of one read-only mapping are not
needed (madvise MADV_DONTNEED): they leave the process's resident set and stay in the page cache,
and a search that reads one maps it again. Read-only mappings only (their pages are the file's:
nothing can be lost), found by an address inside them that the caller holds alive, so that no other
thread can unmap the range meanwhile. Linux only; elsewhere nothing is done.
"""
from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

MADV_DONTNEED = 4  # Linux's value (asm-generic/mman-common.h)


def mapping_of(path: str | os.PathLike, address: int) -> tuple[int, int] | None:
    """(start, end) of this process's read-only mapping of `path` that holds `address`; None if none."""
    target = os.path.realpath(path)
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] != target or "w" in fields[1]:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < end:
            return start, end
    return None


def release(path: str | os.PathLike, address: int) -> int:
    """Drop the resident pages of the read-only mapping of `path` that holds `address` (the caller
    keeps the mapping alive); returns the bytes advised, 0 where nothing was (not Linux, not mapped)."""
    if not sys.platform.startswith("linux"):
        return 0
    found = mapping_of(path, address)
    if found is None:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.madvise.restype = ctypes.c_int
    start, end = found
    return end - start if libc.madvise(start, end - start, MADV_DONTNEED) == 0 else 0
