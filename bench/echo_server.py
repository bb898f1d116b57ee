"""The serving floor: a bare Python gRPC server that answers every unary call with its request bytes.

    python -m bench.echo_server                 # prints "listening on 127.0.0.1:PORT", serves until SIGTERM
    python -m bench.echo_server --threads 8     # the pool the server had before (8 threads, concurrent.futures)

The same grpcio and the same thread pool as the movielinks server (server.workers, its default
--workers), and no work at all: bench_server.py times it with the same client beside the service,
so the service's latency and throughput are stated as ratios to this floor, measured in the same run
on the same machine.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import signal
import sys
import threading

import grpc

from movielinks.server.serve import ServeConfig
from movielinks.server.workers import CallWorkers

METHOD = "/bench.Echo/Echo"


class _Echo(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        if handler_call_details.method != METHOD:
            return None
        return grpc.unary_unary_rpc_method_handler(lambda request, context: request)


def main() -> int:
    parser = argparse.ArgumentParser(description="The serving floor: a bare gRPC echo server.")
    parser.add_argument("--threads", type=int, help="a plain thread pool of this many threads instead of the server's")
    threads = parser.parse_args().threads
    pool = (concurrent.futures.ThreadPoolExecutor(max_workers=threads) if threads
            else CallWorkers(ServeConfig.workers, name="rpc"))
    server = grpc.server(pool, handlers=[_Echo()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
