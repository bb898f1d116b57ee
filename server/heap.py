"""glibc malloc settings for a long-running server process.

glibc gives each thread that allocates its own arena (up to 8 a core), keeps the
memory freed in an arena for reuse, and raises its threshold for returning freed
blocks to the kernel to the largest block freed so far (up to 32 MiB): a server
whose worker threads make passing arrays of a few MB (a Recommend's scores over
every film, a filtered search's candidates) keeps them resident in every arena.
Measured on the 36k-film index after the bench's load (1 and 8 clients):
RssAnon 161-165 MB with glibc's defaults, 121-130 MB with two arenas, 117-118 MB with two
arenas and fixed 256 KiB thresholds (docs/operations.md).

An arena limit an operator gives through glibc's own MALLOC_ARENA_MAX is kept.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_ARENA_MAX = -8
ARENAS = 2
# Fixed 256 KiB mmap and trim thresholds as well took RssAnon to 117-118 MB on the demo index, but at
# 1M every array of a few MB was likely then a fresh mapping: Recommend 31 to 103 ms p50 in the
# 13:25 bench run (docs/scale.md). glibc's own, rising thresholds are kept.


def bound_malloc() -> bool:
    """Limit this process's glibc malloc to ARENAS arenas, before the server's threads start, unless
    MALLOC_ARENA_MAX is set; True where applied (False too where the C library is not glibc's)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt (musl)
        return False
    return mallopt(_M_ARENA_MAX, ARENAS) == 1
