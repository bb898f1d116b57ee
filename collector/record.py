"""What the collector finds: film records (the format is common.film_record's, which the
trainer reads), and the problems a page can have, reported with where the page is.
"""
from __future__ import annotations

import dataclasses
import re

from movielinks.common.film_record import FilmRecord


class CollectorError(Exception):
    """A problem the user can act on: unreadable input, a bad page under --strict, a failed fetch."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """A page or stream that was skipped as bad input: why, and where (title and/or byte offset)."""

    reason: str
    where: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


# The sentence that names Rotten Tomatoes: "... holds an approval rating of 99% based on
# 80 reviews, with an average rating of 9.2/10."
_ROTTEN_TOMATOES = re.compile(r"Rotten Tomatoes[^.%]{0,300}?(\d{1,3})\s?%")
_AVERAGE = re.compile(r"(\d{1,2}(?:\.\d+)?)\s?(?:/|out of)\s?10\b")
_SENTENCES_AFTER = 300


def ratings_from_text(text: str) -> tuple[str | None, str | None]:
    """The Rotten Tomatoes percent ("87%") and the x/10 average ("7.2/10") from plain article text.

    Both are read only near a mention of Rotten Tomatoes; either may be None.
    """
    match = _ROTTEN_TOMATOES.search(text)
    if not match:
        return None, None
    window = text[match.end(): match.end() + _SENTENCES_AFTER]
    paragraph_end = window.find("\n\n")
    average = _AVERAGE.search(window if paragraph_end < 0 else window[:paragraph_end])
    return match.group(1) + "%", average.group(1) + "/10" if average else None


@dataclasses.dataclass
class ChunkResult:
    """What one unit of work (a run of dump blocks, a byte range, a batch of HTML pages) found, in page order."""

    films: list[FilmRecord] = dataclasses.field(default_factory=list)
    redirects: dict[str, str] = dataclasses.field(default_factory=dict)  # redirect page title -> its target
    pages: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> pages
    problems: list[Problem] = dataclasses.field(default_factory=list)  # bad input, also counted in `skipped`

    def skip(self, reason: str, pages: int = 1) -> None:
        if pages:
            self.skipped[reason] = self.skipped.get(reason, 0) + pages

    def bad(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.skip(problem.reason)
