"""A published index of the real catalogue's size from clustered random vectors,
for bench_server.py where no trained run exists.

    python -m bench.make_synthetic_index --out work/synthetic-index [--neighbours-k 100]

Writes a training run with trainer.run.save_run (36,038 movies, 9,421 links,
50 dims, as the real data) and builds a Flat index version from it with the
indexer, so the server reads exactly what it would read after real training.
No TensorFlow is needed.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from movielinks.indexer.build import DEFAULT_NEIGHBOURS_K, build_index
from tests.fixtures import make_run

REAL_MOVIES = 36_038  # films in wp_movies_us.ndjson
REAL_LINKS = 9_421  # links kept at min count 3
REAL_DIM = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="index root to create or add a version to")
    parser.add_argument("--movies", type=int, default=REAL_MOVIES)
    parser.add_argument("--links", type=int, default=REAL_LINKS)
    parser.add_argument("--dim", type=int, default=REAL_DIM)
    parser.add_argument("--neighbours-k", type=int, default=DEFAULT_NEIGHBOURS_K,
                        help="movie neighbours stored with the version (0: the server searches every query)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run = make_run(Path(scratch) / "run", args.seed, n_movies=args.movies, n_links=args.links, dim=args.dim,
                       n_clusters=200)
        name = build_index(run, args.out, neighbours_k=args.neighbours_k, progress=False)
    print(f"{args.out}: published {name} ({args.movies:,} movies, {args.links:,} links, {args.dim} dims, Flat, "
          f"{args.neighbours_k} stored neighbours)")


if __name__ == "__main__":
    main()
