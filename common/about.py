"""The movielinks package version, for every command's --version and GetInfo."""
from __future__ import annotations

import importlib.metadata

PACKAGE = "movielinks"


def package_version() -> str:
    """The installed package's version ("unknown" when run from a tree that was never installed)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
