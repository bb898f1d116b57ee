"""Other people's taste as links: a ratings file read, and each person's liked films
linked to one extra link of theirs, so that the objective that puts films sharing
actors near each other also puts films liked by the same people near each other.

Two formats:

- ``csv``: ``user,title,rating`` a line (a header line ``user,title,rating`` is
  optional); the title is the dataset's exact page title; a title holding commas may
  be quoted or not.
- ``movielens``: MovieLens 100K's files, a folder holding them or its ``u.data``
  (``user<TAB>item<TAB>rating<TAB>time``) with ``u.item`` beside it (``id|Title
  (year)|...``, Latin-1); items are matched to the dataset's films by title and year
  (common.movielens_titles), and a rating of an item that matches no film is an
  unknown title.

Ratings are stars on MovieLens's scale, 0.5 to 5. Bad lines (unparsable, unknown
title, rating out of that range) are skipped and listed, as the dataset reader lists
bad records; with `strict` the first one raises TrainerError.

A taste link's name starts with TASTE_LINK_PREFIX, a control character that
common.limits.name_problem refuses in every title and link the dataset readers
accept: it can never clash with a real link. Taste links train the movie
vectors and are never written into the run (trainer.train keeps them out), so no
answer can show them and no run holds anything about a person.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from movielinks.common.files import sha256_file
from movielinks.common.movielens_titles import match_titles
from movielinks.trainer.data import BadRecord, LinkTable
from movielinks.trainer.errors import TrainerError

TASTE_LINK_PREFIX = "\x1fliked by "
LOWEST_RATING, HIGHEST_RATING = 0.5, 5.0
RATINGS_FORMATS = ("csv", "movielens")
_EXAMPLES = 5  # bad lines named in the manifest and the log


@dataclasses.dataclass(frozen=True)
class TasteLikes:
    """The liked films of each person of a ratings file (dataset film positions), and the lines skipped."""

    path: str
    format: str
    sha256: str
    like_threshold: float
    likes: dict[str, np.ndarray]  # user -> distinct film positions they rated >= like_threshold
    ratings: int  # lines read and used, liked or not
    skipped: list[BadRecord]

    def summary(self) -> dict:
        """What the run manifest records about the file (before the vocabulary's min count)."""
        return {"path": str(Path(self.path).resolve()), "sha256": self.sha256, "format": self.format,
                "like_threshold": self.like_threshold, "ratings": self.ratings,
                "users_with_likes": len(self.likes), "likes": int(sum(len(f) for f in self.likes.values())),
                "skipped_lines": len(self.skipped), "skipped_examples": [str(b) for b in self.skipped[:_EXAMPLES]]}


def read_ratings(path: str | Path, titles: Sequence[str], years: np.ndarray, like_threshold: float = 4.0,
                 *, strict: bool = False) -> TasteLikes:
    """Read a ratings file (csv or movielens, told by its name and first line) against the
    dataset's film `titles` and release `years` (int, 0 unknown)."""
    path = Path(path)
    if not path.exists():
        raise TrainerError(f"{path}: no such ratings file or folder; check --ratings")
    if not LOWEST_RATING <= like_threshold <= HIGHEST_RATING:
        raise TrainerError(f"--like-threshold must be in [{LOWEST_RATING}, {HIGHEST_RATING}], got {like_threshold}")
    fmt = _ratings_format(path)
    if fmt == "movielens":
        data = path / "u.data" if path.is_dir() else path
        item_file = data.parent / "u.item"
        if not data.is_file() or not item_file.is_file():
            raise TrainerError(f"{path}: MovieLens ratings need u.data with u.item beside it")
        lines = _movielens_lines(data, item_file, titles, years)
        sha256 = _joint_checksum([data, item_file])
    else:
        lines, sha256 = _csv_lines(path, {title: i for i, title in enumerate(titles)}), sha256_file(path)
    likes: dict[str, set[int]] = {}
    used, skipped = 0, []
    for item in lines:
        if isinstance(item, BadRecord):
            if strict:
                raise TrainerError(f"{item} (run without --strict to skip bad lines)")
            skipped.append(item)
            continue
        user, film, rating = item
        used += 1
        if rating >= like_threshold:
            likes.setdefault(user, set()).add(film)
    return TasteLikes(str(path), fmt, sha256, like_threshold,
                      {user: np.array(sorted(films), dtype=np.int64) for user, films in likes.items()}, used, skipped)


def with_taste_links(table: LinkTable, taste: TasteLikes) -> LinkTable:
    """`table` with one more link a person, `TASTE_LINK_PREFIX + user`, on each film they liked.

    The new names come after every name of `table`, so the vocabulary numbers them after
    every content link (link ids keep the order of first appearance)."""
    users = list(taste.likes)
    films = [taste.likes[u] for u in users]
    taste_films = np.concatenate(films) if films else np.zeros(0, dtype=np.int64)
    taste_ids = np.repeat(np.arange(len(users), dtype=np.int64) + len(table.link_names), [len(f) for f in films])
    n_films = len(table.titles)
    film_of = np.concatenate([np.repeat(np.arange(n_films, dtype=np.int64), np.diff(table.offsets)), taste_films])
    ids = np.concatenate([table.link_ids.astype(np.int64), taste_ids])
    order = np.argsort(film_of, kind="stable")  # each film's own links first, in their order, then its people
    offsets = np.concatenate([[0], np.cumsum(np.bincount(film_of, minlength=n_films))]).astype(np.int64)
    kinds = None if table.kinds is None else np.concatenate([table.kinds, np.zeros(len(taste_ids), np.uint8)])[order]
    return LinkTable(table.titles, list(table.link_names) + [TASTE_LINK_PREFIX + u for u in users], offsets,
                     ids[order].astype(np.int32), kinds)


def is_taste_link(name: str) -> bool:
    return name.startswith(TASTE_LINK_PREFIX)


def _ratings_format(path: Path) -> str:
    if path.is_dir() or path.name == "u.data":
        return "movielens"
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    return "movielens" if "\t" in first and "," not in first else "csv"


def _rating(text: str) -> float | str:
    """The rating in `text`, or why it is not one."""
    try:
        rating = float(text)
    except ValueError:
        return f"rating {text.strip()[:40]!r} is not a number"
    if not LOWEST_RATING <= rating <= HIGHEST_RATING:
        return f"rating {rating:g} is outside {LOWEST_RATING:g}..{HIGHEST_RATING:g}"
    return rating


def _csv_lines(path: Path, film_of_title: dict[str, int]):
    """(user, film position, rating) or a BadRecord for each non-blank line of a csv file."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        first = True
        for number, fields in enumerate(csv.reader(f), 1):
            if not fields or not "".join(fields).strip():
                continue
            if first and [x.strip().lower() for x in fields] == ["user", "title", "rating"]:
                first = False
                continue
            first = False
            if len(fields) < 3 or not fields[0].strip():
                yield BadRecord(str(path), number, "expected 'user,title,rating'")
                continue
            user, title, rating = fields[0].strip(), ",".join(fields[1:-1]).strip(), _rating(fields[-1])
            if isinstance(rating, str):
                yield BadRecord(str(path), number, rating)
            elif title not in film_of_title:
                yield BadRecord(str(path), number, f"unknown title {title[:80]!r}: not a page title of the dataset")
            else:
                yield user, film_of_title[title], rating


def _movielens_lines(data: Path, item_file: Path, titles: Sequence[str], years: np.ndarray):
    """(user, film position, rating) or a BadRecord for each non-blank line of u.data."""
    items = {}
    for line in item_file.read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        if len(fields) > 2 and fields[0].strip().isdigit():
            items[int(fields[0])] = fields[1]
    matched = match_titles(items, titles, years)
    with open(data, encoding="latin-1") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 3 or not fields[0].strip() or not fields[1].strip().isdigit():
                yield BadRecord(str(data), number, "expected 'user<TAB>item<TAB>rating<TAB>time'")
                continue
            item, rating = int(fields[1]), _rating(fields[2])
            if isinstance(rating, str):
                yield BadRecord(str(data), number, rating)
            elif item not in matched:
                problem = (f"unknown title: item {item} ({items[item][:80]!r}) matches no film of the dataset"
                           if item in items else f"unknown title: item {item} is not in u.item")
                yield BadRecord(str(data), number, problem)
            else:
                yield fields[0].strip(), matched[item], rating


def _joint_checksum(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()
