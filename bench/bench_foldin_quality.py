"""Folded-in films against the same films trained: neighbour quality, and the speed of `indexer update`.

    python -m bench.bench_foldin_quality                                    # the 36k-film file, 10% held out
    python -m bench.bench_foldin_quality --data ../shared/data/wp_movies_oscars.ndjson --settings "--epochs 5"
    python -m bench.bench_foldin_quality --speed-only --speed-index work/index    # 10,000 films on the 36k index (make demo builds it)

Quality: a seeded slice of the films (`--holdout`, 10%) is held out of training entirely;
one run trains on the rest and its index gets the held-out films by `indexer update`
(folded in: search/foldin), another run trains on every film (`--settings` go to both
`trainer train` processes, the default seed). For the held-out films only, in each
catalogue: franchise hit@10 (another film of its franchise among its 10 nearest),
genre agreement@10 (where the data has genres) and the recommendation check (like the film
and another of its franchise, dislike three random films, the linear SVM of
trainer.evaluate: how many of the franchise's other films reach the top 10), each with
trainer.evaluate's own functions. Target: folded-in films reach at least 90% of the
trained figures.

Speed: `--speed-films` (10,000) films of the speed index's own catalogue, renamed and
with their kept links, folded in and published by `indexer update` on a copy of that
index root, timed in this process (target <= 60 s on the 36k index).

Every figure is measured here, in this run, and printed with the command's settings; the
machine must be otherwise idle for the timing to mean anything.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from movielinks.common.franchises import film_identity, franchise_groups
from movielinks.indexer.root import load_current
from movielinks.indexer.update import update_index
from movielinks.trainer.data import read_dataset
from movielinks.trainer.evaluate import NEIGHBOURS_K, RECOMMEND_DISLIKES, genre_agreement, recommendation_recall, top_neighbours
from movielinks.trainer.groups import dataset_genres

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TARGET_SHARE = 0.9
TARGET_SECONDS = 60.0
MEASURES = ("franchise_hit_at_10", "genre_agreement_at_10", "recommendation_recall_at_10")


def held_out_split(titles: list[str], share: float, seed: int) -> set[str]:
    """A seeded `share` of the titles, held out of training entirely."""
    rng = np.random.default_rng([seed, 0xF01D1])
    return set(np.array(titles, dtype=object)[rng.random(len(titles)) < share].tolist())


def run(command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def train_and_index(data: Path, work: Path, name: str, settings: str) -> Path:
    """`trainer train` then `indexer build` (exact, as `auto` chooses below 200,000 films); the index root."""
    run(["movielinks.trainer", "train", "--data", str(data), "--out", str(work / f"run-{name}"), "--quiet",
         *shlex.split(settings)])
    run(["movielinks.indexer", "build", str(work / f"run-{name}"), "--out", str(work / f"index-{name}"), "--quiet"])
    return work / f"index-{name}"


def measure(root: Path, held_out: set[str], genres_of: dict[str, frozenset[str]] | None, seed: int) -> dict:
    """The three measures for the held-out films of the CURRENT version of `root`, by its own vectors;
    `genres_of` each title's genres as the dataset gives them (None: the data has none)."""
    v = load_current(root)
    titles = list(v.movie_names)
    vectors = np.asarray(v.movie_vectors)
    records = [v.movies[i] for i in range(len(titles))]
    groups = franchise_groups(titles, [film_identity(r.infobox) for r in records])
    queries = np.array(sorted(i for i, t in enumerate(titles) if t in held_out), dtype=np.int64)
    group_of = np.full(len(titles), -1, dtype=np.int64)
    for g, ids in enumerate(groups):
        group_of[ids] = g
    scores = lambda ids: vectors[ids] @ vectors.T  # noqa: E731 - top_neighbours' scoring callback
    members = queries[group_of[queries] >= 0]
    result: dict = {"films": int(len(queries)), "franchise_films": int(len(members))}
    top = top_neighbours(scores, members, len(titles), NEIGHBOURS_K) if len(members) else None
    result["franchise_hit_at_10"] = (float(np.mean((group_of[top] == group_of[members][:, None]).any(axis=1)))
                                     if top is not None else None)
    genres = None if genres_of is None else [genres_of.get(title, frozenset()) for title in titles]
    result["genre_agreement_at_10"] = (genre_agreement(top_neighbours(scores, queries, len(titles), NEIGHBOURS_K),
                                                       queries, genres) if genres is not None else None)
    result["recommendation_recall_at_10"] = recommendation_recall(vectors, _checks(members, groups, group_of, seed),
                                                                  NEIGHBOURS_K)
    return result


def _checks(members: np.ndarray, groups: list[np.ndarray], group_of: np.ndarray, seed: int) -> list:
    """trainer.evaluate's recommendation checks, each liking a held-out film and another of its franchise."""
    rng = np.random.default_rng([seed, 0xC4EC])
    checks = []
    for film in members.tolist():
        group = groups[group_of[film]]
        if len(group) < 3:
            continue
        liked = np.array([film, rng.choice(group[group != film])])
        disliked = rng.choice(len(group_of), RECOMMEND_DISLIKES + len(group), replace=False)
        checks.append((liked, disliked[~np.isin(disliked, group)][:RECOMMEND_DISLIKES], np.setdiff1d(group, liked)))
    return checks


def quality(data: Path, work: Path, share: float, settings: str, seed: int) -> tuple[dict, dict, float]:
    """(trained figures, folded-in figures, seconds `indexer update` took) for the held-out films."""
    films = read_dataset(data).films
    titles = [film.title for film in films]
    # Genres come from the dataset's cast-then-genres links (trainer.groups), which a catalogue's sorted links lose.
    genres = dataset_genres([film.infobox for film in films], (film.links for film in films))
    genres_of = None if genres is None else dict(zip(titles, genres))
    held_out = held_out_split(titles, share, seed)
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    kept, folded = work / "without-held-out.ndjson", work / "held-out.ndjson"
    kept.write_text("".join(line for line in lines if line.strip() and json.loads(line)[0] not in held_out))
    trained_root = train_and_index(data, work, "all", settings)
    folded_root = train_and_index(kept, work, "without", settings)
    # A held-out film none of whose links the reduced run kept cannot be folded in (indexer update
    # refuses it): it is left out of both measurements, and counted.
    known = set(load_current(folded_root).links)
    placeable = [line for line in lines if line.strip() and json.loads(line)[0] in held_out
                 and known.intersection(json.loads(line)[2])]
    folded.write_text("".join(placeable))
    print(f"held out {len(held_out):,} of {len(titles):,} films; {len(held_out) - len(placeable):,} of them have no "
          f"link the reduced run kept and are left out")
    started = time.perf_counter()
    update_index(folded_root, folded, progress=False)
    seconds = time.perf_counter() - started
    in_both = set(load_current(folded_root).movie_names) & set(load_current(trained_root).movie_names) & held_out
    return measure(trained_root, in_both, genres_of, seed), measure(folded_root, in_both, genres_of, seed), seconds


def speed(index_root: Path, films: int, work: Path) -> tuple[int, float]:
    """(films folded in, seconds) for `films` renamed copies of the index's own films, on a copy of its CURRENT."""
    source = load_current(index_root)
    root = work / "speed-index"
    shutil.copytree(source.path, root / "versions" / source.name)
    (root / "CURRENT").write_text(source.name + "\n")
    picked = np.random.default_rng(0).choice(len(source.movie_names), min(films, len(source.movie_names)), replace=False)
    update = work / "speed.ndjson"
    with open(update, "w", encoding="utf-8") as f:
        for i in picked.tolist():
            links = [source.links[j] for j in source.movie_links.of(i).tolist()]
            f.write(json.dumps([f"{source.movie_names[i]} (fold-in copy)", source.movies[i].infobox, links, None, None],
                               ensure_ascii=False) + "\n")
    started = time.perf_counter()
    update_index(root, update, progress=False)
    return len(picked), time.perf_counter() - started


def report(trained: dict, folded: dict, update_seconds: float) -> list[str]:
    rows = [f"held-out films in both catalogues: {trained['films']:,} ({trained['franchise_films']:,} in a franchise); "
            f"indexer update took {update_seconds:.1f} s",
            f"{'measure':<30} {'trained':>8} {'folded in':>10} {'share':>7}  target >= {TARGET_SHARE:.0%}"]
    for name in MEASURES:
        a, b = trained[name], folded[name]
        if a is None or b is None:
            rows.append(f"{name:<30} {'-':>8} {'-':>10} {'-':>7}  (not measurable on this data)")
            continue
        if not a:
            rows.append(f"{name:<30} {a:>8.3f} {b:>10.3f} {'-':>7}  (the trained figure is 0: no share)")
            continue
        share = b / a
        verdict = "met" if share >= TARGET_SHARE else f"missed by {(TARGET_SHARE - share) * 100:.0f} points"
        rows.append(f"{name:<30} {a:>8.3f} {b:>10.3f} {share:>7.1%}  {verdict}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "wp_movies_us.ndjson", help="film records to train on")
    parser.add_argument("--holdout", type=float, default=0.1, help="share of the films held out (default 0.1)")
    parser.add_argument("--settings", default="", help="`trainer train` options for both runs, e.g. \"--epochs 5\"")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-index", type=Path, default=Path("work/index"),
                        help="index root whose CURRENT the speed run updates (a copy of it)")
    parser.add_argument("--speed-films", type=int, default=10_000, help="films folded in for the timing (0: none)")
    parser.add_argument("--speed-only", action="store_true", help="only the timing")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if not args.speed_only:
            print("\n".join(report(*quality(args.data, work, args.holdout, args.settings, args.seed))))
        if args.speed_films:
            films, seconds = speed(args.speed_index, args.speed_films, work)
            verdict = "met" if seconds <= TARGET_SECONDS else f"missed by {seconds - TARGET_SECONDS:.1f} s"
            print(f"indexer update of {films:,} films on {args.speed_index}: {seconds:.1f} s (target <= "
                  f"{TARGET_SECONDS:.0f} s: {verdict})")


if __name__ == "__main__":
    main()
