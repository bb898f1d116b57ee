"""MovieLens film titles ("Godfather, The (1972)") matched to catalogue films by title and year.

Shared by the trainer (a ratings file in MovieLens's format) and bench/movielens.py
(measuring recommendations), so that both match films the same way. A film matches
only when exactly one catalogue film has its normalised title (or its alternative
title) within a year of it: no match is better than a wrong one.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

from movielinks.common.title_index import normalised

_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
_ALTERNATIVE = re.compile(r"\s*\(([^()]*)\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$")


def _title_forms(movielens_title: str) -> tuple[list[str], int | None]:
    """The normalised forms of "Godfather, The (1972)" ("godfather") and its year."""
    title = movielens_title.strip()
    found = _YEAR.search(title)
    year = int(found.group(1)) if found else None
    title = _YEAR.sub("", title)
    forms = [title]
    alternative = _ALTERNATIVE.search(title)
    if alternative:  # "Shanghai Triad (Yao a yao yao dao waipo qiao)": either name
        forms = [_ALTERNATIVE.sub("", title), alternative.group(1)]
    out = []
    for form in forms:
        moved = _TRAILING_ARTICLE.match(form)
        out.append(normalised(f"{moved.group(2)} {moved.group(1)}" if moved else form))
    return [f for f in out if f], year


def match_titles(movielens_titles: Mapping[int, str], movie_names: Sequence[str], years: np.ndarray) -> dict[int, int]:
    """MovieLens item id -> catalogue movie id (a position in `movie_names`), for the items
    exactly one film matches; `years` is int [n_movies], 0 where unknown."""
    by_name: dict[str, list[int]] = defaultdict(list)
    for movie_id, name in enumerate(movie_names):
        by_name[normalised(name)].append(movie_id)
    matched = {}
    for item, title in movielens_titles.items():
        forms, year = _title_forms(title)
        candidates = set()
        for form in forms:
            candidates.update(m for m in by_name.get(form, ())
                              if year is None or (years[m] and abs(int(years[m]) - year) <= 1))
        if len(candidates) == 1:
            matched[item] = candidates.pop()
    return matched
