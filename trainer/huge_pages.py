"""Transparent huge pages for the trainer's tables.

A training step gathers and scatters the rows a batch touches of the embedding tables and of the
optimizer's moments. At a million films they are 3 GB in 4 KiB pages, and nearly every row read or
written misses the TLB as well as the caches; in 2 MiB pages the processor's TLB covers all of them
(docs/scale.md, "Huge pages for the tables"). Where the kernel gives huge pages only to memory that
asks for them (/sys/kernel/mm/transparent_hugepage/enabled: `madvise`, Debian's and most
distributions' default), glibc's malloc asks for them on the memory it maps when its tunable
`glibc.malloc.hugetlb` is 1 (glibc 2.35 and later). Tunables are read when a process starts, so the
`trainer` command starts itself again, once, with it set. An operator's own setting of that tunable
in GLIBC_TUNABLES (`glibc.malloc.hugetlb=0`: no huge pages) is kept, and nothing is done elsewhere.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")
FIRST_GLIBC = (2, 35)


def thp_mode(path: Path = THP_ENABLED) -> str | None:
    """The kernel's transparent huge page mode (always, madvise or never); None where there is none."""
    try:
        text = path.read_text()
    except OSError:
        return None
    chosen = [word[1:-1] for word in text.split() if word.startswith("[") and word.endswith("]")]
    return chosen[0] if chosen else None


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the C library where it is glibc; None elsewhere."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (ValueError, OSError, AttributeError):
        return None


def huge_pages_environment(environ: dict[str, str], mode: str | None,
                           glibc: tuple[int, int] | None) -> dict[str, str] | None:
    """`environ` with glibc's malloc asking for huge pages, or None where starting again would change
    nothing: the kernel gives them to every mapping (`always`) or none (`never`, no THP), the C library
    is not glibc 2.35 or later, or GLIBC_TUNABLES already sets the tunable."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if mode != "madvise" or glibc is None or glibc < FIRST_GLIBC or f"{TUNABLE}=" in tunables:
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, (tunables, f"{TUNABLE}=1")))}


def restart_with_huge_pages() -> None:
    """Replace this process by the same command with huge pages asked for (see the module), where
    that changes something; returns only where it does not (off Linux there is no THP mode, so nothing
    changes). Call it first, before threads start."""
    environ = huge_pages_environment(dict(os.environ), thp_mode(), glibc_version())
    if environ is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, environ)
