"""Training speed and quality on the real data, printed as the table of docs/speed.md.

    python bench/bench_train.py [--data ../shared/data/wp_movies_us.ndjson] [--epochs 15]

Runs `trainer train` in fresh processes (default objective, then --objective mse,
same split and seed), each measured for samples/s (steady state: epochs after the
first, which includes XLA compilation), seconds per epoch, held-out link AUC,
recall@10 and peak memory (the process's max RSS). Then times the notebook's own
pipeline (a Python batch generator feeding Keras `fit` on a per-pair model) for a
few hundred steps, for reference. Every figure is measured here, now.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_once(data: str, out: Path, epochs: int, objective: str) -> dict:
    command = [sys.executable, "-m", "movielinks.trainer", "train", "--data", data, "--out", str(out), "--epochs", str(epochs),
               "--objective", objective, "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"training failed:\n{output}")
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    steady = metrics["epoch_seconds"][1:] or metrics["epoch_seconds"]
    seconds_per_epoch = statistics.median(steady)
    return {
        "objective": objective,
        "samples_per_second": metrics["samples_per_epoch"] / seconds_per_epoch,
        "seconds_per_epoch": seconds_per_epoch,
        "samples_per_epoch": metrics["samples_per_epoch"],
        "first_epoch_seconds": metrics["epoch_seconds"][0],
        "link_auc": metrics["link_auc"],
        "recall_at_10": metrics["recall_at_10"],
        "rt_mse_ratio": _ratio(metrics, "rotten_tomatoes"),
        "gross_mse_ratio": _ratio(metrics, "gross"),
        "peak_rss_gb": usage.ru_maxrss / 1024**2,
    }


def _ratio(metrics: dict, name: str) -> float:
    a = metrics["attributes"].get(name)
    return a["heldout_mse"] / a["baseline_mse"] if a else float("nan")


def notebook_pipeline_samples_per_second(data: str, steps: int) -> float:
    """The notebook's method as it wrote it: random.sample + a Python loop per negative,
    Keras fit on a per-pair cosine model, 512 positives x 11 per batch."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import random
    from collections import Counter

    import keras
    import numpy as np

    movies = [json.loads(line) for line in open(data, encoding="utf-8")]
    counts = Counter(link for m in movies for link in m[2])
    top_links = [link for link, c in counts.items() if c >= 3]
    link_to_idx = {link: i for i, link in enumerate(top_links)}
    movie_to_idx = {m[0]: i for i, m in enumerate(movies)}
    pairs = [(link_to_idx[l], movie_to_idx[m[0]]) for m in movies for l in m[2] if l in link_to_idx]
    pairs_set = set(pairs)

    link = keras.Input(name="link", shape=(1,))
    movie = keras.Input(name="movie", shape=(1,))
    link_embedding = keras.layers.Embedding(len(top_links), 50)(link)
    movie_embedding = keras.layers.Embedding(len(movie_to_idx), 50)(movie)
    dot = keras.layers.Dot(normalize=True, axes=2)([link_embedding, movie_embedding])
    model = keras.Model(inputs=[link, movie], outputs=[keras.layers.Reshape((1,))(dot)])
    model.compile(optimizer="nadam", loss="mse")

    def batchifier(positive_samples=512, negative_ratio=10):
        batch_size = positive_samples * (1 + negative_ratio)
        batch = np.zeros((batch_size, 3))
        while True:
            for idx, (link_id, movie_id) in enumerate(random.sample(pairs, positive_samples)):
                batch[idx, :] = (link_id, movie_id, 1)
            idx = positive_samples
            while idx < batch_size:
                movie_id = random.randrange(len(movie_to_idx))
                link_id = random.randrange(len(top_links))
                if (link_id, movie_id) not in pairs_set:
                    batch[idx, :] = (link_id, movie_id, -1)
                    idx += 1
            np.random.shuffle(batch)
            yield (batch[:, 0], batch[:, 1]), batch[:, 2]

    generator = batchifier()
    model.fit(generator, epochs=1, steps_per_epoch=20, verbose=0)  # warm-up (graph building)
    started = time.perf_counter()
    model.fit(generator, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * 512 * 11 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "wp_movies_us.ndjson"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--notebook-steps", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = [train_once(args.data, Path(tmp) / name, args.epochs, name) for name in ("logistic", "mse")]
    notebook = notebook_pipeline_samples_per_second(args.data, args.notebook_steps)

    print(f"\nreal data: {args.data}, 50 dims, 10 negatives per positive, {args.epochs} epochs, cores: {os.cpu_count()}")
    print("| objective | samples/s | s/epoch (first, with compile) | held-out link AUC | recall@10 | RT MSE / mean | gross MSE / mean | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['objective']}{' (default)' if r['objective'] == 'logistic' else ''} | {r['samples_per_second']:,.0f} | "
              f"{r['seconds_per_epoch']:.2f} ({r['first_epoch_seconds']:.2f}) | {r['link_auc']:.4f} | {r['recall_at_10']:.4f} | "
              f"{r['rt_mse_ratio']:.3f} | {r['gross_mse_ratio']:.3f} | {r['peak_rss_gb']:.2f} GB |")
    speedup = results[0]["samples_per_second"] / notebook
    print(f"| notebook pipeline (Python generator + Keras fit, {args.notebook_steps} steps) | {notebook:,.0f} | "
          f"{results[0]['samples_per_epoch'] / notebook:.2f} (same samples per epoch) | | | | | |")
    print(f"\nspeed-up of the default trainer over the notebook pipeline on this machine: {speedup:.1f}x")


if __name__ == "__main__":
    main()
