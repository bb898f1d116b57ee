"""Fold-in speed: one film folded in, in process, and SimilarToLinks over gRPC beside the bare echo.

    python -m bench.bench_foldin --index work/index [--seconds 5] [--films 200]

Each film is a real film of the index given by its own kept links (movie_links.npz; an
index without them cannot be measured). In process: search.foldin.fold_in for one film a
call (p50 / p99 ms; target <= 5 ms p50 at 36k films). Over gRPC: the real server process
answering SimilarToLinks (k=10) for one client (target <= 10 ms p50), then the bare Python
gRPC echo server (bench/echo_server.py) timed by the same kind of client, the floor, in the
same run (machines differ from day to day; the ratio measured in one run does not).
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np

from bench.bench_server import measure_echo, percentiles, start_server
from movielinks.indexer.root import load_index
from movielinks.search.foldin import fold_in, version_space


def sample_films(index: str, films: int, seed: int = 0) -> tuple[list[np.ndarray], list[list[str]], object]:
    """`films` random films of the index with at least one link: (link ids, link names) each, and the version."""
    version = load_index(index)
    if version.movie_links is None:
        raise SystemExit(f"{index}: the version has no movie_links.npz; rebuild it from a newer run")
    rng = np.random.default_rng(seed)
    ids = [version.movie_links.of(int(i)) for i in rng.permutation(len(version.movie_names))]
    ids = [film for film in ids if len(film)][:films]
    return ids, [[version.links[j] for j in film.tolist()] for film in ids], version


def measure_in_process(version, films: list[np.ndarray]) -> dict[str, float]:
    """One fold-in a call, every film once after one warm-up call."""
    space = version_space(version)
    fold_in(space, [films[0]])
    latencies = []
    for film in films:
        started = time.perf_counter()
        fold_in(space, [film])
        latencies.append(time.perf_counter() - started)
    p50, p99 = percentiles(latencies)
    return {"fold_in_p50_ms": p50, "fold_in_p99_ms": p99, "objective_recorded": float(space.objective.recorded)}


def measure_grpc(index: str, link_sets: list[list[str]], seconds: float) -> dict[str, float]:
    """SimilarToLinks for one client over `seconds` (the films in turn), on the real server process."""
    from movielinks.client import MovielinksClient

    process, address, _ = start_server(index)
    try:
        with MovielinksClient(address) as client:
            # The server imports scikit-learn in the background once serving, holding the GIL for most of
            # a second: an svm Recommend waits for the import to end, so that it is not measured.
            client.recommend([], strategy="svm", liked_films=[link_sets[0]])
            client.similar_to_links(link_sets[0], k=10)
            latencies, deadline = [], time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                client.similar_to_links(link_sets[len(latencies) % len(link_sets)], k=10)
                latencies.append(time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait(timeout=30)
    p50, p99 = percentiles(latencies)
    return {"similar_to_links_p50_ms": p50, "similar_to_links_p99_ms": p99, "similar_to_links_calls": len(latencies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="index root or version directory")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of gRPC calls, and of echo calls")
    parser.add_argument("--films", type=int, default=200, help="films folded in, in process and over gRPC")
    args = parser.parse_args(argv)
    multiprocessing.set_start_method("spawn", force=True)
    films, link_sets, version = sample_films(args.index, args.films)
    found = measure_in_process(version, films)
    found.update(measure_grpc(args.index, link_sets, args.seconds))
    found.update(measure_echo(b"x" * 600, seconds=args.seconds))
    found["similar_to_links_over_echo"] = found["similar_to_links_p50_ms"] / found["echo_p50_ms"]
    print(f"index {version.name}: {len(version.movie_names):,} films, {len(films)} folded in")
    for name, value in found.items():
        print(f"  {name:<28} {value:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
