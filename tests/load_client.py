"""A bounded load process for the overload tests: `python -m tests.load_client ADDRESS KIND THREADS SECONDS`.

KIND is `similar` (SimilarMovies, k=10, random titles) or `recommend` (Recommend with
RECOMMEND_LIKED random liked titles by the svm strategy, the expensive call: a fit over
thousands of vectors). Each thread calls until
SECONDS have passed, backing off 20 ms after RESOURCE_EXHAUSTED as a client should;
at the end one JSON line on stdout: {"ok": N, "codes": {"CODE": n, ...}, "seconds": S}.
Separate processes keep the load's Python work off the measuring process's GIL.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import grpc
import numpy as np

from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc

RECOMMEND_LIKED = 500


def titles(n_movies: int) -> list[str]:
    """The synthetic titles of tests.fixtures.make_run after the shared four (tests.ops_support.TITLES)."""
    return [f'Movie {i:03d}, part "{i % 7}"' for i in range(4, n_movies)]


def run(address: str, kind: str, threads: int, seconds: float, n_movies: int = 3000) -> dict:
    names = titles(n_movies)
    codes: dict[str, int] = {}
    lock = threading.Lock()
    ends = time.monotonic() + seconds

    def call_until_the_end(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with grpc.insecure_channel(address) as channel:
            service = pb_grpc.MovielinksStub(channel)
            while time.monotonic() < ends:
                try:
                    if kind == "similar":
                        service.SimilarMovies(pb.SimilarMoviesRequest(title=names[rng.integers(len(names))], k=10),
                                              timeout=10)
                    else:
                        liked = [names[i] for i in rng.choice(len(names), RECOMMEND_LIKED, replace=False)]
                        service.Recommend(pb.RecommendRequest(liked=liked, k=10, strategy="svm"), timeout=30)
                    code = "OK"
                except grpc.RpcError as e:
                    code = e.code().name
                with lock:
                    codes[code] = codes.get(code, 0) + 1
                if code == "RESOURCE_EXHAUSTED":
                    time.sleep(0.02)

    workers = [threading.Thread(target=call_until_the_end, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in workers:
        t.start()
    for t in workers:
        t.join(seconds + 40)
    return {"ok": codes.get("OK", 0), "codes": codes, "seconds": time.monotonic() - started}


if __name__ == "__main__":
    address, kind, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(run(address, kind, threads, seconds)))
