"""The server's own time in one call, in-process, without the network.

    python -m bench.bench_servicer --index work/index [--method SimilarMovies] [--calls 5000] [--profile 30]

Builds the servicer and the interceptors as the server process does (server.app,
server.cli), then, for random catalogue titles (SimilarMovies; Recommend: three liked
titles each, the default strategy) or links (LinkMovies), runs what a gRPC worker
thread runs for one call: parse the request bytes, the interceptors, the servicer method,
serialize the response. Prints the per-call time (median of 5 rounds) and, with
`--profile N`, cProfile's N costliest functions. What the real server adds on top is
gRPC's own work (HTTP/2, the completion queue, the thread hand-off), which the bare
echo server of bench/bench_server.py measures.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import grpc
import numpy as np
import threadpoolctl

from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.search.neighbours import use_one_core_per_thread
from movielinks.server.admission import DEFAULT_SLOTS, AdmissionInterceptor
from movielinks.server.app import load_service
from movielinks.server.observability import Metrics, MetricsInterceptor
from movielinks.server.security import MalformedRequestInterceptor
from movielinks.server.servicer import MovielinksServicer
from movielinks.server.versions import ServiceHolder

METHODS = ("SimilarMovies", "LinkMovies", "Recommend")
LIKED_PER_RECOMMEND = 3


class _Context:
    """The part of grpc.ServicerContext a successful call touches."""

    def code(self):
        return None

    def is_active(self):
        return True

    def time_remaining(self):
        return None


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str):
        self.method, self.invocation_metadata = method, ()


class _Registry:
    """Stands in for grpc.Server to collect the generic handler the generated code adds."""

    def add_generic_rpc_handlers(self, handlers):
        self.handlers = handlers

    def add_registered_method_handlers(self, service, handlers):
        pass


def servicer_call(index: str, method: str = "SimilarMovies"):
    """(call(request bytes) -> response bytes, the service) for one method, as a worker thread runs it."""
    # One core per call, as server.app gives each worker thread (FAISS) and the process (BLAS).
    threadpoolctl.threadpool_limits(1, user_api="blas")
    use_one_core_per_thread()
    holder = ServiceHolder(load_service(index))
    registry = _Registry()
    pb_grpc.add_MovielinksServicer_to_server(MovielinksServicer(holder.current, holder.refused), registry)
    interceptors = [MetricsInterceptor(Metrics()), MalformedRequestInterceptor(),
                    AdmissionInterceptor(DEFAULT_SLOTS, DEFAULT_SLOTS)]
    details = _Details(f"/movielinks.v1.Movielinks/{method}")

    def continuation(position: int):
        def next_handler(call_details):
            if position == len(interceptors):
                return registry.handlers[0].service(call_details)
            return interceptors[position].intercept_service(continuation(position + 1), call_details)
        return next_handler

    handler = continuation(0)(details)
    context = _Context()

    def call(data: bytes) -> bytes:
        return handler.response_serializer(handler.unary_unary(handler.request_deserializer(data), context))

    return call, holder.current()


def requests_for(method: str, service, calls: int, k: int) -> list[bytes]:
    """`calls` serialized requests of `method` over random titles or links (seeded)."""
    rng = np.random.default_rng(0)
    titles, links = service.version.movie_names, service.version.links
    if method == "LinkMovies":
        return [pb.LinkMoviesRequest(link=links[i], k=k).SerializeToString()
                for i in rng.integers(0, len(links), calls)]
    if method == "Recommend":
        return [pb.RecommendRequest(liked=[titles[i] for i in rng.choice(len(titles), LIKED_PER_RECOMMEND, False)],
                                    k=k).SerializeToString() for _ in range(calls)]
    return [pb.SimilarMoviesRequest(title=titles[i], k=k).SerializeToString()
            for i in rng.integers(0, len(titles), calls)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="an index root")
    parser.add_argument("--method", choices=METHODS, default="SimilarMovies")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's N costliest functions")
    args = parser.parse_args()
    call, service = servicer_call(args.index, args.method)
    requests = requests_for(args.method, service, args.calls, args.k)
    for data in requests[:200]:
        call(data)
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for data in requests:
            call(data)
        rounds.append((time.perf_counter() - started) / len(requests))
    print(f"{args.method} in-process, k={args.k}: {statistics.median(rounds) * 1e6:.1f} us a call "
          f"(median of 5 rounds of {len(requests)}; rounds {', '.join(f'{r * 1e6:.1f}' for r in rounds)})")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [call(data) for data in requests])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
