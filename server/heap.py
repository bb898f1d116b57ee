"""glibc malloc settings for a long-running server process.

glibc gives each thread that allocates its own arena (up to 8 a core), keeps the
memory freed in an arena for reuse, and raises its threshold for returning freed
blocks to the kernel to the largest block freed so far (up to 32 MiB): a server
whose worker threads make passing arrays of a few MB (a Recommend's scores over
every film, a filtered search's candidates) keeps them resident in every arena.
Measured on the 36k-film index after the bench's load (1 and 8 clients):
RssAnon 161-165 MB with glibc's defaults, 121-130 MB with two arenas, 117-118 MB with two
arenas and fixed 256 KiB thresholds (docs/operations.md).

Settings an operator gives through glibc's own environment variables
(MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) are kept.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
# (mallopt option, value, the glibc environment variable that sets it)
SETTINGS = (
    (_M_ARENA_MAX, 2, "MALLOC_ARENA_MAX"),
    # Fixed, so that glibc does not raise them: blocks of 256 KiB and more are mapped apart and
    # unmapped when freed; the top of an arena is given back once 256 KiB of it are free.
    (_M_MMAP_THRESHOLD, 256 * 1024, "MALLOC_MMAP_THRESHOLD_"),
    (_M_TRIM_THRESHOLD, 256 * 1024, "MALLOC_TRIM_THRESHOLD_"),
)


def bound_malloc() -> list[str]:
    """Apply SETTINGS (those whose environment variable is unset) to this process's glibc malloc,
    before the server's threads start; the names of those applied ([] where the C library is not
    glibc's)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt (musl)
        return []
    return [name for option, value, name in SETTINGS if name not in os.environ and mallopt(option, value) == 1]
