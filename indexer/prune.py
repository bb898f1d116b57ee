"""Remove old index versions, keeping the newest ones and whatever CURRENT needs.

A version is removed by first renaming it to a hidden name (so it disappears from
`list_versions` at once and is never seen half-deleted), then deleting it. Hidden
leftovers of crashed builds or removals are swept once they are an hour old; a
younger one may belong to a build still running.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from movielinks.common.files import fsync_dir
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.root import CURRENT, VERSIONS, current_version_name, list_versions, versions_dir

STALE_STAGING_S = 3600


def versions_to_prune(versions: list[str], current: str, keep: int) -> list[str]:
    """The versions (oldest first) beyond the `keep` newest that are older than `current`.

    `versions` is sorted oldest first. CURRENT itself and any version newer than it
    (a build not yet published, or the versions after a rollback) are always kept.
    """
    return [name for name in versions[: max(len(versions) - keep, 0)] if name < current]


def prune(index_root: str | Path, keep: int) -> list[str]:
    """Delete the oldest versions of `index_root` beyond the `keep` newest; return their names.

    Never deletes the CURRENT version or one newer than it. Also removes hidden
    staging directories older than an hour. Raises IndexerError for keep < 1, a
    root that is not an index root, or a root with versions but no CURRENT.
    """
    index_root = Path(index_root)
    if keep < 1:
        raise IndexerError(f"keep must be at least 1 (the published version is always kept), got {keep}")
    if not versions_dir(index_root).is_dir():
        raise IndexerError(f"{index_root}: not an index root (no {VERSIONS}/ directory)")
    _sweep_stale_staging(index_root)
    versions = list_versions(index_root)
    if not versions:
        return []
    try:
        current = current_version_name(index_root)
    except IndexerError as e:
        raise IndexerError(f"{e}; without a published version nothing is pruned") from e
    removed = versions_to_prune(versions, current, keep)
    for name in removed:
        _remove_version(index_root, name)
    return removed


def _remove_version(index_root: Path, name: str) -> None:
    directory = versions_dir(index_root)
    doomed = directory / f".{name}.removing-{os.getpid()}"
    os.rename(directory / name, doomed)
    fsync_dir(directory)
    shutil.rmtree(doomed)


def _sweep_stale_staging(index_root: Path) -> None:
    """Delete hidden entries of versions/ (staged or half-removed versions) and
    leftover CURRENT temp files that are older than an hour."""
    cutoff = time.time() - STALE_STAGING_S
    stale = [*versions_dir(index_root).glob(".*"), *index_root.glob(f".{CURRENT}.partial-*")]
    for entry in stale:
        if entry.lstat().st_mtime >= cutoff:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
