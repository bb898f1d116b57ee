"""Service speed on a real index, printed as the README's table.

    python bench/bench_server.py --index work/index [--seconds 5]

(Without a trained run, `python bench/make_synthetic_index.py --out work/synthetic-index`
publishes an index of the real catalogue's size from random vectors.)

Starts the real server process on a free loopback port and measures, with real
gRPC clients: start to serving, similar-movies latency for one client (random
titles), throughput with 8 client processes, the batch RPC in titles/s, Recommend
latency; and in-process, FAISS search against the notebook's numpy argsort.
Every loop is bounded in count and time; the server is stopped at the end.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_server(index: str) -> tuple[subprocess.Popen, str, float]:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "server", "--index", index, "--port", "0"], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        match = re.search(r"listening on (\S+:\d+)", line)
        if match:
            address = match.group(1)
            break
    else:
        raise SystemExit("server did not start")
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=10)
    return process, address, time.perf_counter() - started


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.array(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def client_loop(address: str, titles: list[str], seconds: float, seed: int, results) -> None:
    import grpc

    from proto import movielinks_pb2 as pb
    from proto import movielinks_pb2_grpc as pb_grpc

    rng = np.random.default_rng(seed)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.MovielinksStub(channel)
        stub.SimilarMovies(pb.SimilarMoviesRequest(title=titles[0], k=10), wait_for_ready=True)
        count, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline and count < 1_000_000:
            stub.SimilarMovies(pb.SimilarMoviesRequest(title=titles[rng.integers(len(titles))], k=10))
            count += 1
    results.put(count)


def main() -> None:
    """Every measurement of the README's service-speed table, in its order: one linear script, kept whole so
    that it reads as the table does."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index root (indexer build --out)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the concurrent-clients phase")
    parser.add_argument("--queries", type=int, default=3000, help="single-client queries")
    args = parser.parse_args()

    import faiss
    import grpc

    from indexer.root import load_current
    from proto import movielinks_pb2 as pb
    from proto import movielinks_pb2_grpc as pb_grpc

    version = load_current(args.index)
    titles = [m.title for m in version.movies]
    rng = np.random.default_rng(0)
    rows = []

    faiss.omp_set_num_threads(1)
    queries = version.movie_vectors[rng.integers(len(titles), size=300)]
    started = time.perf_counter()
    for q in queries:
        version.movie_index.search(q[None, :], 11)
    rows.append(("in-process FAISS search, one query (k=10)", f"{(time.perf_counter() - started) / len(queries) * 1000:.3f} ms"))
    started = time.perf_counter()
    for q in queries:
        np.argsort(version.movie_vectors @ q)[-11:]
    rows.append(("in-process numpy argsort (the notebook's way), one query", f"{(time.perf_counter() - started) / len(queries) * 1000:.3f} ms"))

    process, address, start_s = start_server(args.index)
    try:
        rows.append(("server start to serving (process spawn to health SERVING)", f"{start_s:.2f} s"))
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.MovielinksStub(channel)
            # The server imports scikit-learn in the background once serving: the first
            # Recommend may wait for it.
            t = time.perf_counter()
            stub.Recommend(pb.RecommendRequest(liked=titles[:3], k=10))
            rows.append(("first Recommend, right after start", f"{(time.perf_counter() - t) * 1000:.0f} ms"))
            for title in titles[:200]:  # warm-up
                stub.SimilarMovies(pb.SimilarMoviesRequest(title=title, k=10))
            latencies = []
            for i in rng.integers(len(titles), size=args.queries):
                t = time.perf_counter()
                stub.SimilarMovies(pb.SimilarMoviesRequest(title=titles[i], k=10))
                latencies.append(time.perf_counter() - t)
            p50, p99 = percentiles(latencies)
            rows.append(("SimilarMovies over gRPC, one client, p50 / p99", f"{p50:.3f} / {p99:.3f} ms"))

            batch = [titles[i] for i in rng.integers(len(titles), size=5000)]
            t = time.perf_counter()
            for _ in range(4):
                stub.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=batch, k=10))
            rows.append(("BatchSimilarMovies, 5,000 titles a call, k=10", f"{4 * len(batch) / (time.perf_counter() - t):,.0f} titles/s"))

            latencies = []
            for _ in range(100):
                picks = [titles[i] for i in rng.choice(len(titles), 5, replace=False)]
                t = time.perf_counter()
                stub.Recommend(pb.RecommendRequest(liked=picks[:3], disliked=picks[3:], k=10))
                latencies.append(time.perf_counter() - t)
            p50, p99 = percentiles(latencies)
            rows.append(("Recommend (3 liked, 2 disliked), p50 / p99", f"{p50:.2f} / {p99:.2f} ms"))
            latencies = []
            for _ in range(100):
                picks = [titles[i] for i in rng.choice(len(titles), 3, replace=False)]
                t = time.perf_counter()
                stub.Recommend(pb.RecommendRequest(liked=picks, k=10))
                latencies.append(time.perf_counter() - t)
            p50, p99 = percentiles(latencies)
            rows.append(("Recommend (3 liked, random negatives), p50 / p99", f"{p50:.2f} / {p99:.2f} ms"))

        results = multiprocessing.Queue()
        clients = [multiprocessing.Process(target=client_loop, args=(address, titles, args.seconds, seed, results))
                   for seed in range(8)]
        for c in clients:
            c.start()
        counts = [results.get(timeout=args.seconds + 60) for _ in clients]
        for c in clients:
            c.join()
        rows.append(("SimilarMovies, 8 concurrent client processes", f"{sum(counts) / args.seconds:,.0f} queries/s"))
    finally:
        process.terminate()
        process.wait(timeout=30)

    print(f"\nindex: {args.index} ({len(titles):,} movies x {version.dim} dims, {type(version.movie_index).__name__}), "
          f"cores: {os.cpu_count()}")
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
