"""Following the published index version while serving.

A watcher checks the index root's CURRENT every few seconds (and at once on
SIGHUP). A new version is loaded and validated beside the one being served, then
swapped in with one assignment; a version that cannot be loaded (whatever the loader
raises) is refused, logged, counted and remembered, the old one keeps serving, and
the watcher goes on watching.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from movielinks.indexer.errors import IndexerError
from movielinks.indexer.root import current_version_name, load_named
from movielinks.server.service import MovieService
from movielinks.server.titles import shown

log = logging.getLogger("movielinks.server")

MAX_REFUSALS_KEPT = 20


class ServiceHolder:
    """The service being served. A swap is one assignment; a request reads it once."""

    def __init__(self, service: MovieService):
        self._service = service
        self._refused: list[tuple[str, str]] = []  # (version name, reason), newest last

    def current(self) -> MovieService:
        return self._service

    def swap(self, service: MovieService) -> None:
        self._service = service

    def refuse(self, name: str, reason: str) -> None:
        self._refused = [*self._refused, (name, reason)][-MAX_REFUSALS_KEPT:]

    def refused(self) -> list[str]:
        return [f"{name}: {reason}" for name, reason in self._refused]


class VersionWatcher:
    """Takes the version CURRENT names when it changes; see the module docstring.

    A refused version is not loaded again while CURRENT keeps naming it: polling would
    otherwise re-read (and re-log) the same broken files every interval. It is tried
    again when CURRENT names it anew, or on `wake(retry=True)` (SIGHUP: the operator
    may have repaired it in place).
    """

    def __init__(self, index_root: str | Path, holder: ServiceHolder, *,
                 on_taken: Callable[[MovieService], None] = lambda service: None,
                 on_refused: Callable[[str, str], None] = lambda name, reason: None):
        self.index_root = Path(index_root)
        self.holder = holder
        self.on_taken = on_taken
        self.on_refused = on_refused
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._retry = False
        self._last_seen: str | None = None  # what CURRENT named (or why it could not be read) last time

    def check(self, *, retry: bool = False) -> None:
        """Load and swap in CURRENT's version if it is new and good; refuse it otherwise.

        With `retry` a version refused before is loaded again.
        """
        with self._lock:
            try:
                name = current_version_name(self.index_root)
            except IndexerError as e:
                if self._last_seen != str(e):  # once per problem, not once per poll
                    log.warning("reload skipped: %s; still serving %s", e, self.holder.current().name)
                self._last_seen = str(e)
                return
            seen_before, self._last_seen = self._last_seen, name
            if name == self.holder.current().name:
                return
            if name == seen_before and not retry:  # refused already while CURRENT kept naming it
                return
            try:
                service = MovieService(load_named(self.index_root, name))
            except Exception as e:  # noqa: BLE001 - whatever a loader raises refuses the version, never ends the thread
                reason = str(e) if isinstance(e, IndexerError) else f"cannot load: {type(e).__name__}: {e}"
                if not isinstance(e, IndexerError):
                    log.warning("reload: unexpected error loading version %s", name, exc_info=True)
                self.holder.refuse(name, reason)
                self.on_refused(name, reason)
                log.warning("reload refused: version=%s reason=%s; still serving %s", name, shown(reason, 300),
                            self.holder.current().name)
                return
            previous = self.holder.current().name
            self.holder.swap(service)
            self.on_taken(service)
            log.info("reload taken: version=%s previous=%s movies=%d links=%d", name, previous,
                     len(service.version.movies), len(service.version.links))

    def wake(self, *, retry: bool = False) -> None:
        """Check now (callable from a signal handler: it only sets flags)."""
        self._retry = self._retry or retry
        self._wake.set()

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Check every `interval_s` (0: only when woken) until `stop` is set."""
        while not stop.is_set():
            self._wake.wait(interval_s if interval_s > 0 else None)
            self._wake.clear()
            retry, self._retry = self._retry, False
            if stop.is_set():
                return
            try:
                self.check(retry=retry)
            except Exception:  # noqa: BLE001 - e.g. a failing callback: the watcher must keep watching
                log.exception("reload: unexpected error while checking %s; will check again", self.index_root)
