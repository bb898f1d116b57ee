"""Where a training step's time goes, at two (or more) table sizes: issue 23's profile.

    python -m bench.bench_step bench/work/run-reference-STAMP-1 bench/work/run-1m-STAMP [--rounds 8]

For each run (a `trainer train` output: its films' links are the pairs), in one process: the
trainer's pairs split as `trainer train` splits them, a few batches drawn by the trainer's own
sampler (the default settings: 4,096 positives, 10 negatives each, links by popularity ** 0.5),
then, in alternated rounds over the same batches, ms a batch of:

- the step: the trainer's XLA-compiled step (gradients, then the row-wise Adam update);
- its gradients half alone (gathers of the rows, the scores, the loss, its gradients);
- the update's row traffic alone: a gather and a scatter of the batch's rows of each table
  (dim columns) and of its Adam moments (2 x dim), on variables of the tables' sizes;
- the step as training runs it: fed by the trainer's sampler thread (trainer.loop.prefetched),
  which draws the next batches on the same 2 cores meanwhile.

The step less its gradients half is the update. What grows with the tables is the rows read and
written at random (docs/scale.md, "Where the 1M step's time goes now"). Prints a markdown table
row a run, the median round of each part. Run it alone on the machine; name the runs more than
once (A B A B) to see how much the machine's speed moves between them.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

POSITIVES, NEGATIVES, POWER, DIM = 4096, 10, 0.5, 64  # the trainer's defaults (--dim 64: the 1M bench's)


def run_pairs(run: Path) -> tuple[np.ndarray, int, int]:
    """(pairs int32 [n, 2], movies, links) of a run's movie_links.npz: every film's kept links."""
    from movielinks.common import movie_links

    links = movie_links.load(run / movie_links.FILE)
    movies = np.repeat(np.arange(links.n_movies, dtype=np.int32), links.counts())
    n_links = np.load(run / "link_vectors.npy", mmap_mode="r").shape[0]
    return np.column_stack([movies, links.link_ids]).astype(np.int32), links.n_movies, n_links


def sampler(run: Path) -> tuple[Callable[[int], Iterator], int, int]:
    """(epoch -> that epoch's batches as the trainer draws them, movies, links) of a run's pairs."""
    from movielinks.trainer.loop import _checked_keys
    from movielinks.trainer.sampler import epoch_batches, popularity_cdf, split_pairs

    pairs, n_movies, n_links = run_pairs(run)
    train_pairs, _ = split_pairs(pairs, 0.1, 0)
    cdf = popularity_cdf(train_pairs, n_links, POWER)
    keys = _checked_keys(train_pairs, n_movies, n_links, cdf, 0, lambda _: None)

    def epoch(number: int) -> Iterator:
        return (batch for batch in epoch_batches(train_pairs, keys, n_movies, n_links, negative_ratio=NEGATIVES,
                                                 positives_per_batch=POSITIVES, rng=np.random.default_rng([0, number]),
                                                 link_cdf=cdf)
                if len(batch.movies) == POSITIVES)  # full batches only: one compiled shape

    return epoch, n_movies, n_links


def measured_parts(n_movies: int, n_links: int) -> dict:
    """The three functions timed, each of a batch: the step, its gradients half, the row traffic."""
    import tensorflow as tf

    from movielinks.trainer.loop import _step_parts, _train_step
    from movielinks.trainer.model import LinkEmbeddingModel
    from movielinks.trainer.objectives import OBJECTIVES
    from movielinks.trainer.optimizer import OPTIMIZERS

    model = LinkEmbeddingModel(n_movies, n_links, DIM, seed=0)
    objective = OBJECTIVES["logistic"]()
    objective.build(None)
    optimizer = OPTIMIZERS["adam"](0.005, tables=[model.movie_table.value, model.link_table.value],
                                   dense=[v.value for v in objective.trainable_variables])
    compiled = lambda f: tf.function(f, jit_compile=True, reduce_retracing=True)  # noqa: E731
    step, gradients = compiled(_train_step(model, objective, optimizer)), compiled(_step_parts(model, objective, optimizer)[0])
    tables = [tf.Variable(tf.zeros([rows + 1, width])) for rows in (n_movies, n_links) for width in (DIM, 2 * DIM)]

    def row_traffic(movie_rows, link_rows):
        for table, rows in zip(tables, (movie_rows, movie_rows, link_rows, link_rows)):
            table.scatter_update(tf.IndexedSlices(tf.gather(table, rows) + 1.0, rows))
        return tf.constant(0.0)

    traffic = compiled(row_traffic)
    every = lambda b: (b.rows.movie_rows, b.rows.movie_slots, b.rows.link_rows, b.rows.link_slots, b.negative_index)  # noqa: E731
    return {"step": lambda b: step(*every(b)), "gradients": lambda b: gradients(*every(b))[0],
            "row traffic": lambda b: traffic(b.rows.movie_rows, b.rows.link_rows)}


def timed_rounds(parts: dict, batches: list, drawing: Iterator, rounds: int) -> dict[str, list[float]]:
    """ms a batch of each part, `rounds` times, the parts' order alternated round by round: the parts
    over `batches` (drawn beforehand), and the step over as many batches from `drawing` (the sampler
    thread's: "as in training")."""
    parts = parts | {"as in training": parts["step"]}
    for part in parts.values():  # compiled, and the tables' pages touched, before any round
        for batch in batches[:3]:
            float(part(batch))
    times = {name: [] for name in parts}
    for r in range(rounds):
        for name in (list(parts) if r % 2 == 0 else list(reversed(parts))):
            if name == "as in training":
                time.sleep(0.5)  # the sampler's queue full again, as after a step that waited on nothing
            fed = (next(drawing) for _ in batches) if name == "as in training" else iter(batches)
            started = time.perf_counter()
            for batch in fed:
                last = parts[name](batch)
            float(last)
            times[name].append((time.perf_counter() - started) / len(batches) * 1e3)
    return times


def measured(run: Path, count: int, rounds: int) -> tuple[dict[str, float], list[float], int, int]:
    """(the median ms a batch of each part, the distinct movie and link rows a batch, movies, links)."""
    from movielinks.trainer.loop import PREFETCH_BATCHES, prefetched

    epoch, n_movies, n_links = sampler(run)
    batches = [batch for batch, _ in zip(epoch(0), range(count))]
    parts = measured_parts(n_movies, n_links)
    with prefetched(((number, epoch(number)) for number in range(1, 1 << 20)), PREFETCH_BATCHES) as sampled:
        drawing = (batch for one_epoch in sampled for batch in one_epoch)
        times = timed_rounds(parts, batches, drawing, rounds)
    distinct = [float(np.mean([np.sum(getattr(b.rows, what) < limit) for b in batches]))
                for what, limit in (("movie_rows", n_movies), ("link_rows", n_links))]
    return {name: float(np.median(each)) for name, each in times.items()}, distinct, n_movies, n_links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trainer runs (their films' links are the pairs)")
    parser.add_argument("--batches", type=int, default=39, help="batches drawn, each timed once a round (default 39)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds over them, alternated (default 8)")
    args = parser.parse_args()
    for run in args.runs:
        missing = [name for name in ("movie_links.npz", "link_vectors.npy") if not (run / name).is_file()]
        if missing:
            parser.error(f"{run}: not a trainer run with its films' links (no {', '.join(missing)})")
    if args.batches < 1 or args.rounds < 1:
        parser.error("--batches and --rounds must be at least 1")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| tables (movies x links, dim 64) | distinct movie / link rows a batch | step | gradients half | "
          "update (step less gradients) | the update's row traffic alone | step as in training (sampler beside) | "
          "samples/s: step / as in training |")
    print("|---|---|---|---|---|---|---|---|")
    samples = POSITIVES * (1 + NEGATIVES)
    for run in args.runs:
        times, distinct, n_movies, n_links = measured(run, args.batches, args.rounds)
        print(f"| {n_movies:,} x {n_links:,} | {distinct[0]:,.0f} / {distinct[1]:,.0f} | {times['step']:.2f} ms | "
              f"{times['gradients']:.2f} ms | {times['step'] - times['gradients']:.2f} ms | {times['row traffic']:.2f} ms | "
              f"{times['as in training']:.2f} ms | {samples / times['step'] / 1e3:.2f} / "
              f"{samples / times['as in training'] / 1e3:.2f} M |", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
