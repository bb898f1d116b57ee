"""How an HNSW graph's build setting trades against recall and query time, on a version's vectors.

    python bench/bench_hnsw.py --index bench/work/index-1m [--rows 250000] [--queries 500]

Takes the first `--rows` movie vectors of the index's CURRENT version, finds the exact top 10
of `--queries` sampled rows by a scan, then for HNSW32 built with each efConstruction prints
the recall@10 (the query itself left out) and the time a query takes on one thread at each
efSearch. This is what the "Choosing the graph" table of docs/scale.md was measured with.
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np


from movielinks.indexer.root import load_current  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index root (indexer build --out)")
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef-construction", default="40,80,120,200")
    parser.add_argument("--ef-search", default="64,128,256,512")
    args = parser.parse_args()
    vectors = np.ascontiguousarray(load_current(args.index).movie_vectors[: args.rows], dtype=np.float32)
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), args.queries, replace=False))
    _, exact = faiss.knn(vectors[rows], vectors, 11, faiss.METRIC_INNER_PRODUCT)
    truth = [set(found[found != row][:10].tolist()) for found, row in zip(exact, rows)]
    for ef_construction in map(int, args.ef_construction.split(",")):
        index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        faiss.omp_set_num_threads(2)
        started = time.perf_counter()
        index.add(vectors)
        built_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        for ef_search in map(int, args.ef_search.split(",")):
            index.hnsw.efSearch = ef_search
            started = time.perf_counter()
            _, found = index.search(vectors[rows], 11)
            ms = (time.perf_counter() - started) / len(rows) * 1000
            recall = np.mean([len(set(f[f != r][:10].tolist()) & t) / 10 for f, r, t in zip(found, rows, truth)])
            print(f"HNSW32 efConstruction {ef_construction} (built in {built_s:.0f} s): "
                  f"efSearch {ef_search} recall@10 {recall:.3f}, {ms:.2f} ms a query", flush=True)


if __name__ == "__main__":
    main()
