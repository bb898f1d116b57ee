"""The server's own time in one SimilarMovies call, in-process, without the network.

    python -m bench.bench_servicer --index work/index [--calls 5000] [--profile 30]

Builds the servicer and the interceptors as the server process does (server.app,
server.cli), then, for random catalogue titles, runs what a gRPC worker thread runs
for one call: parse the request bytes, the interceptors, the servicer method,
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

from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server.admission import AdmissionInterceptor, default_slots
from movielinks.server.app import load_service
from movielinks.server.observability import Metrics, MetricsInterceptor
from movielinks.server.security import MalformedRequestInterceptor
from movielinks.server.servicer import MovielinksServicer
from movielinks.server.versions import ServiceHolder

METHOD = "/movielinks.v1.Movielinks/SimilarMovies"


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


def similar_movies_call(index: str):
    """(call(request bytes) -> response bytes, catalogue titles) as a worker thread runs it."""
    holder = ServiceHolder(load_service(index))
    registry = _Registry()
    pb_grpc.add_MovielinksServicer_to_server(MovielinksServicer(holder.current, holder.refused), registry)
    interceptors = [MetricsInterceptor(Metrics()), MalformedRequestInterceptor(),
                    AdmissionInterceptor(default_slots(8), default_slots(8))]
    details = _Details(METHOD)

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

    return call, holder.current().version.movie_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="an index root")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's N costliest functions")
    args = parser.parse_args()
    call, names = similar_movies_call(args.index)
    rng = np.random.default_rng(0)
    requests = [pb.SimilarMoviesRequest(title=names[i], k=args.k).SerializeToString()
                for i in rng.integers(0, len(names), args.calls)]
    for data in requests[:200]:
        call(data)
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for data in requests:
            call(data)
        rounds.append((time.perf_counter() - started) / len(requests))
    print(f"SimilarMovies in-process, k={args.k}: {statistics.median(rounds) * 1e6:.1f} us a call "
          f"(median of 5 rounds of {len(requests)}; rounds {', '.join(f'{r * 1e6:.1f}' for r in rounds)})")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [call(data) for data in requests])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
