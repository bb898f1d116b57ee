"""The serving floor: a bare Python gRPC server that answers every unary call with its request bytes.

    python -m bench.echo_server                 # prints "listening on 127.0.0.1:PORT", serves until SIGTERM
    python -m bench.echo_server --threads 8     # the pool the server had before (8 threads, concurrent.futures)
    python -m bench.echo_server --processes 2   # two processes on the port, as `server --processes 2`

The same grpcio and the same thread pool as the movielinks server (server.workers, its default
--workers), and no work at all: bench_server.py times it with the same client beside the service,
so the service's latency and throughput are stated as ratios to this floor, measured in the same run
on the same machine.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import signal
import subprocess
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
    parser.add_argument("--processes", type=int, default=1,
                        help="processes serving the port (SO_REUSEPORT), as the server's --processes")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)  # another process's: the first one's port
    args = parser.parse_args()
    pool = (concurrent.futures.ThreadPoolExecutor(max_workers=args.threads) if args.threads
            else CallWorkers(ServeConfig.workers, name="rpc"))
    shared = args.processes > 1 or args.port > 0
    server = grpc.server(pool, handlers=[_Echo()], options=[("grpc.so_reuseport", int(shared))])
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    threads = ["--threads", str(args.threads)] if args.threads else []
    others = [subprocess.Popen([sys.executable, "-m", "bench.echo_server", "--port", str(port), *threads],
                              stderr=subprocess.PIPE, text=True) for _ in range(args.processes - 1)]
    for other in others:  # each serves before the port is announced
        other.stderr.readline()
    print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    for other in others:
        other.terminate()
    server.stop(1).wait()
    for other in others:
        other.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
