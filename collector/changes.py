"""Only what changed: the films of a collection that are new or whose links changed.

An index is kept current without retraining (`indexer update`) by folding in the films
that are new or whose links changed since the data it was built from. `collector collect`
writes just those when given the older output (`--changed-since`) or a list of titles
(`--titles`): a film is *changed* when the set of its links differs (the trainer and the
fold-in read a film's distinct links, so repeats and order are no change). Films the older
output has and the newer input lacks are *removed*, written one title a line with
`--removed-out` for `indexer update --remove`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

from movielinks.collector.record import CollectorError
from movielinks.common.film_record import FilmRecord, read_films


@dataclasses.dataclass
class Changes:
    """What a selection kept and left out. Against an older output: `new`, `changed` (both
    written), `unchanged` and `removed`; with titles: `not_asked` and `missing` (asked for, and
    no film of the input)."""

    written: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: list[str] = dataclasses.field(default_factory=list)
    not_asked: int = 0
    missing: list[str] = dataclasses.field(default_factory=list)
    against_older: bool = False

    def lines(self) -> list[str]:
        rows = [f"written: {self.written:,} films; left out: {self.not_asked:,} not asked for"]
        if self.against_older:
            rows[0] = (f"written: {self.new:,} new films and {self.changed:,} whose links changed; left out: "
                       f"{self.unchanged:,} unchanged, {self.not_asked:,} not asked for; removed since the older "
                       f"output: {len(self.removed):,}")
        if self.missing:
            more = f" ... and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
            rows.append(f"asked for but not a film of the input: {'; '.join(self.missing[:10])}{more}")
        return rows


def read_link_sets(path: str | Path) -> dict[str, frozenset[str]]:
    """{title: its distinct links} of an older output (.ndjson or .ndjson.gz); raises CollectorError
    naming the first line that is no film record, or a title it has twice."""
    return {film.title: frozenset(film.links)
            for film in read_films(path, CollectorError, "the older output (a file `collector collect` wrote)")}


def select(films: Iterable[FilmRecord], *, titles: Iterable[str] | None = None,
           older: dict[str, frozenset[str]] | None = None) -> tuple[list[FilmRecord], Changes]:
    """The films to write: with `titles`, only those; with `older` ({title: links} of the older
    output), only the new ones and those whose link set differs. Neither: every film."""
    wanted = None if titles is None else set(titles)
    changes = Changes(against_older=older is not None)
    kept, seen = [], set()
    for film in films:
        seen.add(film.title)
        if wanted is not None and film.title not in wanted:
            changes.not_asked += 1
        elif older is not None and film.title in older and older[film.title] == frozenset(film.links):
            changes.unchanged += 1
        else:
            kept.append(film)
            if older is not None:
                changes.new += film.title not in older
                changes.changed += film.title in older
    changes.written = len(kept)
    if older is not None:
        changes.removed = [title for title in older if title not in seen]
    if wanted is not None:
        changes.missing = sorted(wanted - seen)
    return kept, changes
