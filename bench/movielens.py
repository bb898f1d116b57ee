"""Real people's ratings for measuring recommendations: MovieLens files read, matched to
an index version's films, and split into the films given and the films held out.

MovieLens's licence allows evaluation only: nothing read here is ever written into
the repository; the benchmark prints and saves aggregate figures only.

Titles are matched by title and year (common.movielens_titles, as the trainer matches
a ratings file): no match is better than a wrong one.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from movielinks.common.movielens_titles import match_titles

LIKED_AT_LEAST = 4  # a rating of 4 or 5 is a like
DISLIKED_AT_MOST = 2  # 1 or 2 is a dislike


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
