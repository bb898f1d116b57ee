"""Neighbour quality of trained runs against the TF-IDF reference, printed as the tables of docs/quality.md.

    python bench/bench_quality.py                                   # the defaults, on both shared datasets
    python bench/bench_quality.py --settings "--epochs 30" --settings "--negative-power 0.75"
    python bench/bench_quality.py --examples "Interstellar (film)" --examples "Toy Story 3"

Each settings string is passed to `trainer train` (a fresh process, the default seed and
split) on each dataset; the row shows the trainer's own evaluation (trainer.evaluate):
held-out link AUC, recall@10, franchise hit@10, genre agreement@10 and the
recommendation check, for the learned vectors and the TF-IDF kNN reference, and the
mean cosine of 20,000 random pairs of movies. Every figure is measured here, now.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = {"us": DATA / "wp_movies_us.ndjson", "oscars": DATA / "wp_movies_oscars.ndjson"}
EXAMPLES = ("Interstellar (film)", "Toy Story 3", "The Godfather", "Star Wars (film)")


def train_once(data: Path, out: Path, settings: str) -> tuple[dict, float]:
    command = [sys.executable, "-m", "movielinks.trainer", "train", "--data", str(data), "--out", str(out), "--quiet",
               *shlex.split(settings)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({settings!r} on {data}):\n{done.stdout}\n{done.stderr}")
    return json.loads((out / "manifest.json").read_text())["metrics"], time.perf_counter() - started


def mean_random_cosine(vectors: np.ndarray, pairs: int = 20_000) -> float:
    ids = np.random.default_rng(0).integers(0, len(vectors), (pairs, 2))
    ids = ids[ids[:, 0] != ids[:, 1]]
    return float(np.mean(np.einsum("ij,ij->i", vectors[ids[:, 0]], vectors[ids[:, 1]])))


def nearest(run, title: str, k: int = 8) -> list[str] | None:
    titles = [m.title for m in run.movies]
    if title not in titles:
        return None
    i = titles.index(title)
    scores = run.movie_vectors @ run.movie_vectors[i]
    scores[i] = -np.inf
    return [f"{titles[j]} ({scores[j]:.2f})" for j in np.argsort(-scores)[:k]]


def row(settings: str, name: str, m: dict, cosine: float, seconds: float) -> str:
    q = m["neighbours"]

    def pair(key: str) -> str:
        learned, tfidf = q["learned"][key], q["tfidf"][key]
        return "-" if learned is None else f"{learned:.3f} / {tfidf:.3f}"

    return (f"| {settings or '(defaults)'} | {name} | {m['link_auc']:.4f} | {m['recall_at_10']:.4f} | "
            f"{pair('franchise_hit_at_10')} | {pair('genre_agreement_at_10')} | {pair('recommendation_recall_at_10')} | "
            f"{cosine:.3f} | {seconds:.0f} |")


def main() -> None:
    from movielinks.trainer.run import load_run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", action="append", help="trainer train options (repeatable; default: none)")
    parser.add_argument("--datasets", default="us,oscars", help="comma-separated: us, oscars")
    parser.add_argument("--examples", action="append", help="titles whose nearest films to print")
    args = parser.parse_args()
    runs = args.settings or [""]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, settings in enumerate(runs):
            for name in args.datasets.split(","):
                out = Path(tmp) / f"{n}-{name}"
                metrics, seconds = train_once(DATASETS[name], out, settings)
                run = load_run(out)
                rows.append(row(settings, name, metrics, mean_random_cosine(run.movie_vectors), seconds))
                print(rows[-1], flush=True)
                for title in args.examples or EXAMPLES:
                    found = nearest(run, title)
                    if found:
                        print(f"    {name} {title!r}: {', '.join(found)}", flush=True)
    print("\n| settings | data | held-out link AUC | recall@10 | franchise hit@10 (learned / TF-IDF) | "
          "genre agreement@10 (learned / TF-IDF) | recommendation check (learned / TF-IDF) | mean cosine, random movies | s (train + eval) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
