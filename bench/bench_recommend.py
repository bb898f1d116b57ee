"""Recommendations measured against what real people liked (MovieLens 100K).

    python -m bench.bench_recommend --index work/index [--ratings ../shared/data/ml-100k] [--als]

Per person with at least 10 liked films (rating >= 4) that the catalogue holds: a seeded
half of them given as likes, the rest held out; their films rated 2 or less given as
dislikes (or not: both are measured). Every served film is a candidate; hit@10,
recall@10/100 and NDCG@10 are averaged over people. The served strategies run through
the server's own Catalogue.recommend, so what is measured is what is served. Baselines:
popularity (kept links a film has), the prominence prior alone, TF-IDF kNN over the
same links, and with --als a collaborative ceiling that knows the other people's
ratings (implicit's ALS, a bench-only dependency: pip install implicit).

MovieLens's licence allows evaluation only: this prints aggregate figures (and writes
them with --json); it never writes the ratings, the matches or anything per person.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from bench.movielens import Person, read_movielens, scores_of, split_people
from movielinks.indexer.root import load_index
from movielinks.search.diversity import candidates_for, diversify
from movielinks.search.recommend import DEFAULT_STRATEGY, STRATEGIES
from movielinks.server.catalogue import Catalogue

DEFAULT_RATINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
TOP = 100
Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]


def top_ids(scores: np.ndarray, given: np.ndarray, k: int = TOP) -> np.ndarray:
    """The k best-scored ids, the given films left out."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    scores[given] = -np.inf
    best = np.argpartition(-scores, k)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


def tfidf_rows(version) -> sp.csr_matrix:
    """Each movie's kept links as an L2-normalised TF-IDF row."""
    links = version.movie_links
    n_movies, n_links = links.n_movies, len(version.link_vectors)
    rows = np.repeat(np.arange(n_movies), links.counts())
    counts = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, links.link_ids)), shape=(n_movies, n_links))
    films_per_link = np.bincount(links.link_ids, minlength=n_links)
    weighted = counts.multiply(np.log((1 + n_movies) / (1 + films_per_link)) + 1).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    return sp.diags(1 / np.maximum(norms, 1e-12)) @ weighted


def rankers(version, with_als: bool, people: list[Person], ratings) -> dict[str, Ranker]:
    """Every strategy the server offers, then the baselines."""
    catalogue = Catalogue(version)
    found: dict[str, Ranker] = {
        name: (lambda liked, disliked, s=name: catalogue.recommend(liked, disliked, TOP, strategy=s)[0][0])
        for name in STRATEGIES}
    for weight, cap in ((0.5, 0), (0.0, 2)):
        found[f"{DEFAULT_STRATEGY}, then diversity {weight:g}, at most {cap or 'any'} a franchise"] = diverse_ranker(
            catalogue, weight, cap)
    link_counts = version.movie_links.counts().astype(np.float64)
    found["baseline: popularity (links a film has)"] = lambda liked, disliked: top_ids(link_counts, np.r_[liked, disliked])
    prominence = np.asarray(version.prominence, dtype=np.float64)
    found["baseline: prominence alone"] = lambda liked, disliked: top_ids(prominence, np.r_[liked, disliked])
    tfidf = tfidf_rows(version)
    found["baseline: TF-IDF kNN over the links"] = lambda liked, disliked: top_ids(
        np.asarray((tfidf @ tfidf[liked].T).sum(axis=1)).ravel(), np.r_[liked, disliked])
    if with_als:
        found["ceiling: ALS on everyone's ratings (implicit)"] = als_ranker(people, ratings, len(version.movie_vectors))
    return found


def diverse_ranker(catalogue: Catalogue, weight: float, max_per_franchise: int) -> Ranker:
    """The default strategy's list made diverse as the server makes it for a request's filter
    (search.diversity: on top of the strategy's own MMR)."""
    version = catalogue.version

    def rank(liked: np.ndarray, disliked: np.ndarray) -> np.ndarray:
        (best_ids, best_scores), _ = catalogue.recommend(liked, disliked,
                                                         candidates_for(TOP, len(version.movie_vectors) - 1))
        return diversify(best_ids, best_scores, TOP, version.movie_vectors, weight=weight,
                         groups=version.movie_titles.franchises, max_per_group=max_per_franchise)[0]
    return rank


def als_ranker(people: list[Person], ratings, n_movies: int) -> Ranker:
    """implicit's ALS fitted once on every person's given likes and dislikes' absence (likes
    only, as implicit feedback) plus the likes of the people not scored; recommends by user."""
    from implicit.als import AlternatingLeastSquares
    scored = {p.user: p for p in people}
    rows, cols = [], []
    liked = ratings.ratings >= 4
    for user, movie in zip(ratings.users[liked].tolist(), ratings.movie_ids[liked].tolist()):
        person = scored.get(user)
        if person is None or movie in person.liked:  # a scored person's held-out likes stay out
            rows.append(user)
            cols.append(movie)
    n_users = int(ratings.users.max()) + 1
    user_items = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_movies))
    model = AlternatingLeastSquares(factors=64, regularization=0.05, iterations=15, random_state=0)
    model.fit(user_items, show_progress=False)
    by_liked = {tuple(p.liked.tolist()): p.user for p in people}

    def rank(given_liked: np.ndarray, disliked: np.ndarray) -> np.ndarray:
        user = by_liked[tuple(given_liked.tolist())]
        ids, _ = model.recommend(user, user_items[user], N=TOP, filter_already_liked_items=True)
        return np.asarray(ids)
    return rank


def measure(rank: Ranker, people: list[Person], with_dislikes: bool) -> dict[str, float]:
    """The mean of each measure over people, and the mean time of one ranking."""
    totals: dict[str, float] = {}
    started = time.perf_counter()
    for person in people:
        disliked = person.disliked if with_dislikes else np.empty(0, np.int64)
        for name, value in scores_of(rank(person.liked, disliked), person.held_out).items():
            totals[name] = totals.get(name, 0.0) + value
    row = {name: value / len(people) for name, value in totals.items()}
    row["ms_per_person"] = (time.perf_counter() - started) / len(people) * 1000
    return row


def table(rows: list[dict]) -> str:
    lines = ["| ranking (every served film a candidate) | dislikes given | hit@10 | recall@10 | recall@100 | NDCG@10 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['ranking']} | {'yes' if r['dislikes'] else 'no'} | {r['hit@10']:.3f} | {r['recall@10']:.3f} "
                     f"| {r['recall@100']:.3f} | {r['ndcg@10']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="an index root (its CURRENT version) or a version directory")
    parser.add_argument("--ratings", default=str(DEFAULT_RATINGS), help="the MovieLens 100K folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--als", action="store_true", help="also the collaborative ceiling (needs implicit)")
    parser.add_argument("--only", action="append", default=[], help="measure only rankings starting with this")
    parser.add_argument("--json", help="also write the aggregate rows here")
    args = parser.parse_args(argv)
    version = load_index(args.index)
    ratings = read_movielens(Path(args.ratings), version.movie_names, version.years)
    people = split_people(ratings, args.seed)
    print(f"index {version.name}: {len(version.movie_vectors):,} films; MovieLens films matched {ratings.matched_items:,} "
          f"of {ratings.items:,}; {len(people)} people with >= 10 liked films held; seed {args.seed}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for name, rank in rankers(version, args.als, people, ratings).items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        for with_dislikes in (True, False):
            row = {"ranking": name, "dislikes": with_dislikes, **measure(rank, people, with_dislikes)}
            rows.append(row)
            print(f"{name:48s} dislikes {'yes' if with_dislikes else 'no ':3s}  hit@10 {row['hit@10']:.3f}  "
                  f"recall@10 {row['recall@10']:.3f}  recall@100 {row['recall@100']:.3f}  NDCG@10 {row['ndcg@10']:.3f}  "
                  f"({row['ms_per_person']:.1f} ms a person)", flush=True)
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"index": version.name, "people": len(people),
                                               "matched": ratings.matched_items, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
