"""What other people's taste adds to the served recommendations: the content-only model
against the same model trained with other people's likes as links (`trainer train
--ratings`), and against a collaborative ceiling (implicit's ALS), on MovieLens 100K.

    python -m bench.bench_taste [--work DIR] [--epochs N] [--heldout-people 0.2] [--seed 0]

Needs implicit, a bench-only dependency: `pip install -c requirements.lock -e ".[bench]"`.

People are split before anything is trained: a seeded share of MovieLens's people is
held out and never trained on. The taste model is trained on the 36k file plus the
other people's ratings, written as a `user,title,rating` file into --work (outside the
repository: MovieLens's licence allows evaluation only). Each held-out person with at
least 10 liked films the catalogue holds gives a seeded half of their likes (with
their dislikes, or not) and keeps the rest held out (bench.movielens); every strategy
of search.recommend.STRATEGIES ranks every served film through the served code
(server.catalogue.Catalogue.recommend) on both index versions. The ALS is fitted on
the training people's likes plus the held-out people's given likes and ranks the films
someone liked; so does a popularity baseline (the films the training people liked most),
and each strategy is also measured with only those films as candidates (`allowed`), so
that a gain is not only a smaller candidate set. Runs and index versions in --work are reused when present (same
settings); only aggregate figures are printed.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.movielens import LIKED_AT_LEAST, Ratings, read_movielens, scores_of, split_people

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MOVIES = DATA / "wp_movies_us.ndjson"
MOVIELENS = DATA / "ml-100k"
MEASURES = ("hit@10", "recall@10", "recall@100", "ndcg@10")


def trained_version(work: Path, name: str, settings: list[str]):
    """The index version of the run WORK/NAME-run trained with `settings` (trained and built if absent)."""
    from movielinks.indexer.build import build_index
    from movielinks.indexer.root import load_current

    run, index = work / f"{name}-run", work / f"{name}-index"
    if not run.exists():
        started = time.perf_counter()
        command = [sys.executable, "-m", "movielinks.trainer", "train", "--data", str(MOVIES), "--out", str(run),
                   "--quiet", *settings]
        print(f"training {name}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    if not index.exists():
        build_index(run, index, progress=False)
    return load_current(index)


def held_out_people(ratings: Ratings, share: float, seed: int) -> np.ndarray:
    """A seeded `share` of the people who rated a matched film."""
    users = np.unique(ratings.users)
    return np.sort(np.random.default_rng([seed, 0x7A57E]).choice(users, int(round(share * len(users))), replace=False))


def write_training_ratings(path: Path, ratings: Ratings, names, keep: np.ndarray) -> int:
    """The `keep` rows of `ratings` as a `user,title,rating` file with catalogue titles; how many rows."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user", "title", "rating"])
        for user, movie, rating in zip(ratings.users[keep].tolist(), ratings.movie_ids[keep].tolist(),
                                       ratings.ratings[keep].tolist()):
            out.writerow([user, names[movie], rating])
    return int(keep.sum())


def strategy_scores(version, people, id_of, strategy: str, with_dislikes: bool,
                    allowed: np.ndarray | None = None) -> dict[str, float]:
    """Mean measures of `strategy` on `version` over `people` (movie ids mapped by `id_of`);
    with `allowed` (bool, by this version's ids) only those films are candidates."""
    from movielinks.server.catalogue import Catalogue

    catalogue = Catalogue(version)
    rows = []
    for person in people:
        disliked = id_of[person.disliked] if with_dislikes else np.zeros(0, dtype=np.int64)
        (best_ids, _), _ = catalogue.recommend(id_of[person.liked], disliked, 100, strategy=strategy, allowed=allowed)
        rows.append(scores_of(np.asarray(best_ids), id_of[person.held_out]))
    return {m: float(np.mean([r[m] for r in rows])) for m in MEASURES}


def liked_in_training(ratings: Ratings, train_rows: np.ndarray) -> np.ndarray:
    """How many training people liked each film (by movie id of the content version)."""
    liked = train_rows & (ratings.ratings >= LIKED_AT_LEAST)
    return np.bincount(ratings.movie_ids[liked], minlength=int(ratings.movie_ids.max()) + 1)


def popularity_scores(likes: np.ndarray, people, with_dislikes: bool) -> dict[str, float]:
    """The films most liked by the training people, the given ones left out."""
    results = []
    for person in people:
        scores = likes.astype(np.float64)
        scores[person.liked] = -np.inf
        if with_dislikes:
            scores[person.disliked] = -np.inf
        results.append(scores_of(np.argsort(-scores, kind="stable")[:100], person.held_out))
    return {m: float(np.mean([r[m] for r in results])) for m in MEASURES}


def als_scores(ratings: Ratings, train_rows: np.ndarray, people, with_dislikes: bool, seed: int) -> dict[str, float]:
    """implicit's ALS on the training people's likes and the held-out people's given likes."""
    from implicit.als import AlternatingLeastSquares
    from scipy.sparse import csr_matrix
    from threadpoolctl import threadpool_limits

    liked = train_rows & (ratings.ratings >= LIKED_AT_LEAST)
    users = np.unique(ratings.users[liked])
    row_of = {u: i for i, u in enumerate(users.tolist())}
    rows = [row_of[u] for u in ratings.users[liked].tolist()]
    cols = ratings.movie_ids[liked].tolist()
    for i, person in enumerate(people):
        rows += [len(users) + i] * len(person.liked)
        cols += person.liked.tolist()
    n_movies = int(ratings.movie_ids.max()) + 1
    matrix = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users) + len(people), n_movies))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    model = AlternatingLeastSquares(factors=64, regularization=0.05, iterations=20, random_state=seed, num_threads=1)
    with threadpool_limits(1, "blas"):  # implicit's advice: its own loop, not BLAS's threads, runs in parallel
        model.fit(matrix, show_progress=False)
    anyone = np.asarray(matrix.sum(axis=0)).ravel() > 0
    results = []
    for i, person in enumerate(people):
        scores = np.asarray(model.item_factors) @ np.asarray(model.user_factors)[len(users) + i]
        scores[~anyone] = -np.inf
        scores[person.liked] = -np.inf
        if with_dislikes:
            scores[person.disliked] = -np.inf
        results.append(scores_of(np.argsort(-scores, kind="stable")[:100], person.held_out))
    return {m: float(np.mean([r[m] for r in results])) for m in MEASURES}


def main(argv: list[str] | None = None) -> None:
    """Train both models, score the held-out people, print (and with --json-out write) the table.

    Long because it is the measurement's linear script, step by step in the order it runs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "bench_taste",
                        help="runs, index versions and the training ratings file (never committed)")
    parser.add_argument("--epochs", type=int, help="passes of both trainings (default: the trainer's)")
    parser.add_argument("--heldout-people", type=float, default=0.2, help="share of people never trained on")
    parser.add_argument("--seed", type=int, default=0, help="fixes the people split and each person's half")
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    from movielinks.search.recommend import STRATEGIES

    try:
        import implicit  # noqa: F401  (checked before anything is trained)
    except ImportError:
        raise SystemExit("bench_taste needs implicit for its ALS ceiling: pip install -c requirements.lock -e '.[bench]'")

    args.work.mkdir(parents=True, exist_ok=True)
    settings = ["--epochs", str(args.epochs)] if args.epochs else []
    content = trained_version(args.work, "content", settings)
    ratings = read_movielens(MOVIELENS, content.movie_names, content.years)
    held = held_out_people(ratings, args.heldout_people, args.seed)
    train_rows = ~np.isin(ratings.users, held)
    ratings_file = args.work / "training-ratings.csv"
    n_training = write_training_ratings(ratings_file, ratings, content.movie_names, train_rows)
    taste = trained_version(args.work, "taste", settings + ["--ratings", str(ratings_file)])
    manifest = json.loads((args.work / "taste-run" / "manifest.json").read_text())
    people = split_people(Ratings(ratings.users[~train_rows], ratings.movie_ids[~train_rows],
                                  ratings.ratings[~train_rows], ratings.items, ratings.matched_items), args.seed)
    taste_id = {name: i for i, name in enumerate(taste.movie_names)}
    same_ids = np.arange(len(content.movie_names))
    to_taste = np.array([taste_id[name] for name in content.movie_names])  # every content film is in the taste run
    likes = liked_in_training(ratings, train_rows)
    # the films some training person liked: the ALS's and the popularity's candidates, also given to the models
    liked_by_someone = np.zeros(len(content.movie_names), dtype=bool)
    liked_by_someone[np.flatnonzero(likes)] = True
    in_taste = np.zeros(len(taste.movie_names), dtype=bool)
    in_taste[to_taste[liked_by_someone]] = True

    figures = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
               "load_average": os.getloadavg(), "command": "python -m bench.bench_taste " + " ".join(argv or sys.argv[1:]),
               "matched_films": ratings.matched_items, "movielens_films": ratings.items,
               "people": int(len(np.unique(ratings.users))), "heldout_people": int(len(held)),
               "scored_people": len(people), "training_ratings": n_training,
               "taste_links_used": manifest["ratings"]["users_used"], "likes_used": manifest["ratings"]["likes_used"],
               "films_liked_in_training": int(liked_by_someone.sum()), "served_films": len(content.movie_names),
               "rows": []}
    for with_dislikes in (True, False):
        given = "likes + dislikes" if with_dislikes else "likes only"
        for strategy in STRATEGIES:
            for model, version, id_of, allowed in (
                    ("content", content, same_ids, None), ("content + taste", taste, to_taste, None),
                    ("content, liked-in-training films only", content, same_ids, liked_by_someone),
                    ("content + taste, liked-in-training films only", taste, to_taste, in_taste)):
                figures["rows"].append({"ranking": f"{strategy}, {model}", "given": given,
                                        **strategy_scores(version, people, id_of, strategy, with_dislikes, allowed)})
                print(_row(figures["rows"][-1]), flush=True)
        figures["rows"].append({"ranking": "popularity: most liked by the training people", "given": given,
                                **popularity_scores(likes, people, with_dislikes)})
        print(_row(figures["rows"][-1]), flush=True)
        figures["rows"].append({"ranking": "ALS (implicit), ceiling", "given": given,
                                **als_scores(ratings, train_rows, people, with_dislikes, args.seed)})
        print(_row(figures["rows"][-1]), flush=True)
    print(json.dumps({k: v for k, v in figures.items() if k != "rows"}, indent=1))
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=1) + "\n")


def _row(row: dict) -> str:
    return f"| {row['ranking']} | {row['given']} | " + " | ".join(f"{row[m]:.3f}" for m in MEASURES) + " |"


if __name__ == "__main__":
    main()
