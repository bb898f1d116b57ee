"""The index root: where versions live and which one is published (part of the server's contract).

    INDEX_ROOT/
      CURRENT             the published version's name, one line, replaced atomically
      versions/<name>/    one immutable index version each (indexer.version)

Version names sort by creation time (UTC, to the microsecond). The indexer
publishes by replacing CURRENT; the server follows it.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path

from movielinks.common.files import atomic_write_bytes
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.version import MANIFEST, IndexVersion, load_version

CURRENT = "CURRENT"
VERSIONS = "versions"


def versions_dir(root: str | Path) -> Path:
    return Path(root) / VERSIONS


def version_dir(root: str | Path, name: str) -> Path:
    return versions_dir(root) / name


def list_versions(root: str | Path) -> list[str]:
    """Names of the complete versions under `root`, oldest first (staging dirs excluded)."""
    directory = versions_dir(root)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_version_name(root: str | Path) -> str:
    """The published version's name, read from CURRENT."""
    pointer = Path(root) / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexerError(f"{pointer}: no published index version; run `indexer build RUN --out {root}`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise IndexerError(f"{pointer}: unreadable: {e}") from e
    if not name or "/" in name or name.startswith("."):
        raise IndexerError(f"{pointer}: invalid version name {name!r}")
    return name


def publish(root: str | Path, name: str) -> None:
    """Point CURRENT at version `name` (which must already be complete), atomically."""
    if not (version_dir(root, name) / MANIFEST).is_file():
        raise IndexerError(f"{version_dir(root, name)}: not a complete index version")
    atomic_write_bytes(Path(root) / CURRENT, (name + "\n").encode("utf-8"))


def load_named(root: str | Path, name: str) -> IndexVersion:
    """Load and validate version `name` of `root`: a directory under versions/, not a link out of it."""
    path = version_dir(root, name)
    if path.is_symlink():
        raise IndexerError(f"{path}: a link (to {os.readlink(path)}); a version is a directory inside "
                           f"{versions_dir(root)}, written there by `indexer build`")
    return load_version(path)


def load_current(root: str | Path) -> IndexVersion:
    """Load and validate the version CURRENT points to."""
    return load_named(root, current_version_name(root))


def load_index(path: str | Path) -> IndexVersion:
    """Load `path`: an index root (its CURRENT version) or one version directory."""
    path = Path(path)
    if (path / CURRENT).exists() or (path / VERSIONS).is_dir():
        return load_current(path)
    if (path / MANIFEST).is_file():
        return load_version(path)
    raise IndexerError(
        f"{path}: neither an index root (no {CURRENT}) nor an index version (no {MANIFEST}); "
        "pass the directory `indexer build --out` wrote, or one of its versions"
    )


def new_version_name(created_at: datetime.datetime, source_checksum: str) -> str:
    """A name that sorts by creation time: fixed-width UTC time to the microsecond,
    then the start of the source run's checksum (e.g. 20250102T030405123456Z-1a2b3c4d).

    Two builds within one second still get distinct, ordered names; the builder
    picks a new time if a name is already taken.
    """
    stamp = created_at.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{source_checksum[:8]}"
