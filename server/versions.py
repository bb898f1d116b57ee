"""Following the published index version while serving.

A watcher checks the index root's CURRENT every few seconds (and at once on
SIGHUP). A new version is loaded and validated beside the one being served, then
swapped in with one assignment; a version that cannot be loaded is refused, logged
and remembered, and the old one keeps serving.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from indexer.version import IndexVersionError, current_version_name, load_version, version_dir
from server.catalogue import Catalogue
from server.titles import shown

log = logging.getLogger("movielinks.server")

MAX_REFUSALS_KEPT = 20


class CatalogueHolder:
    """The catalogue being served. A swap is one assignment; a request reads it once."""

    def __init__(self, catalogue: Catalogue):
        self._catalogue = catalogue
        self._refused: list[tuple[str, str]] = []  # (version name, reason), newest last

    def current(self) -> Catalogue:
        return self._catalogue

    def swap(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue

    def refuse(self, name: str, reason: str) -> None:
        self._refused = [*self._refused, (name, reason)][-MAX_REFUSALS_KEPT:]

    def refused(self) -> list[str]:
        return [f"{name}: {reason}" for name, reason in self._refused]

    def was_refused(self, name: str) -> bool:
        return any(refused == name for refused, _ in self._refused)


class VersionWatcher:
    """Takes the version CURRENT names when it changes; see the module docstring."""

    def __init__(self, index_root: str | Path, holder: CatalogueHolder, *,
                 on_taken: Callable[[Catalogue], None] = lambda catalogue: None,
                 on_refused: Callable[[str, str], None] = lambda name, reason: None):
        self.index_root = Path(index_root)
        self.holder = holder
        self.on_taken = on_taken
        self.on_refused = on_refused
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def check(self) -> None:
        """Load and swap in CURRENT's version if it is new and good; refuse it otherwise."""
        with self._lock:
            try:
                name = current_version_name(self.index_root)
            except IndexVersionError as e:
                log.warning("reload skipped: %s", e)
                return
            if name == self.holder.current().name or self.holder.was_refused(name):
                return
            try:
                catalogue = Catalogue(load_version(version_dir(self.index_root, name)))
            except IndexVersionError as e:
                reason = str(e)
                self.holder.refuse(name, reason)
                self.on_refused(name, reason)
                log.warning("reload refused: version=%s reason=%s; still serving %s", name, shown(reason, 300),
                            self.holder.current().name)
                return
            previous = self.holder.current().name
            self.holder.swap(catalogue)
            self.on_taken(catalogue)
            log.info("reload taken: version=%s previous=%s movies=%d links=%d", name, previous,
                     len(catalogue.version.movies), len(catalogue.version.links))

    def wake(self) -> None:
        """Check now (from a signal handler: it only sets an event)."""
        self._wake.set()

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Check every `interval_s` (0: only when woken) until `stop` is set."""
        while not stop.is_set():
            self._wake.wait(interval_s if interval_s > 0 else None)
            self._wake.clear()
            if not stop.is_set():
                self.check()
