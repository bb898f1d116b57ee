"""Real people's ratings for measuring recommendations: MovieLens files read, matched to
an index version's films, and split into the films given and the films held out.

MovieLens's licence allows evaluation only: nothing read here is ever written into
the repository; the benchmark prints and saves aggregate figures only.

Titles are matched by title and year, and a film matches only when exactly one
catalogue film has its normalised title (or its alternative title) within a year of
it: no match is better than a wrong one.
"""
from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from movielinks.common.title_index import normalised

LIKED_AT_LEAST = 4  # a rating of 4 or 5 is a like
DISLIKED_AT_MOST = 2  # 1 or 2 is a dislike
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
_ALTERNATIVE = re.compile(r"\s*\(([^()]*)\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$")


@dataclasses.dataclass(frozen=True)
class Ratings:
    """Ratings by catalogue movie id: users, movie ids and ratings, int arrays of one length."""

    users: np.ndarray
    movie_ids: np.ndarray
    ratings: np.ndarray
    items: int  # MovieLens films
    matched_items: int  # of them, matched to one catalogue film


@dataclasses.dataclass(frozen=True)
class Person:
    """One person's split: given likes and dislikes, held-out likes (movie ids)."""

    user: int
    liked: np.ndarray
    disliked: np.ndarray
    held_out: np.ndarray


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


def match_titles(movielens_titles: dict[int, str], movie_names, years: np.ndarray) -> dict[int, int]:
    """MovieLens item id -> catalogue movie id, for the items exactly one film matches."""
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


def read_movielens(folder: Path, movie_names, years: np.ndarray) -> Ratings:
    """u.item and u.data of MovieLens 100K, keeping the ratings of matched films."""
    titles = {}
    for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        if len(fields) > 2:
            titles[int(fields[0])] = fields[1]
    matched = match_titles(titles, movie_names, years)
    table = np.loadtxt(folder / "u.data", dtype=np.int64, usecols=(0, 1, 2))
    keep = np.array([item in matched for item in table[:, 1].tolist()])
    table = table[keep]
    movie_ids = np.array([matched[item] for item in table[:, 1].tolist()], dtype=np.int64)
    return Ratings(table[:, 0], movie_ids, table[:, 2], len(titles), len(matched))


def split_people(ratings: Ratings, seed: int, min_liked: int = 10) -> list[Person]:
    """Per person with at least `min_liked` liked films: a seeded half of them given, the
    rest held out; every disliked film given as a dislike."""
    rng = np.random.default_rng(seed)
    people = []
    order = np.argsort(ratings.users, kind="stable")
    users, starts = np.unique(ratings.users[order], return_index=True)
    for user, rows in zip(users.tolist(), np.split(order, starts[1:])):
        movies, stars = ratings.movie_ids[rows], ratings.ratings[rows]
        liked = np.unique(movies[stars >= LIKED_AT_LEAST])
        if len(liked) < min_liked:
            continue
        liked = rng.permutation(liked)
        half = len(liked) // 2
        disliked = np.setdiff1d(np.unique(movies[stars <= DISLIKED_AT_MOST]), liked)
        people.append(Person(user, np.sort(liked[:half]), disliked, np.sort(liked[half:])))
    return people


def scores_of(ranked: np.ndarray, held_out: np.ndarray) -> dict[str, float]:
    """hit@10, recall@10, recall@100 and NDCG@10 of one ranked list (ids, best first)."""
    relevant = np.isin(ranked[:100], held_out)
    top = relevant[:10]
    ideal = (1 / np.log2(np.arange(2, 2 + min(10, len(held_out))))).sum()
    dcg = (top / np.log2(np.arange(2, 2 + len(top)))).sum()
    return {"hit@10": float(top.any()), "recall@10": float(top.sum() / min(10, len(held_out))),
            "recall@100": float(relevant.sum() / min(100, len(held_out))), "ndcg@10": float(dcg / ideal)}
