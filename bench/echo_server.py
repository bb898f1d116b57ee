"""The serving floor: a bare Python gRPC server that answers every unary call with its request bytes.

    python -m bench.echo_server          # prints "listening on 127.0.0.1:PORT", serves until SIGTERM

The same grpcio and the same thread pool (8 workers) as the movielinks server, and no work at all:
bench_server.py times it with the same client beside the service, so the service's latency and
throughput are stated as ratios to this floor, measured in the same run on the same machine.
"""
from __future__ import annotations

import concurrent.futures
import signal
import sys
import threading

import grpc

METHOD = "/bench.Echo/Echo"


class _Echo(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        if handler_call_details.method != METHOD:
            return None
        return grpc.unary_unary_rpc_method_handler(lambda request, context: request)


def main() -> int:
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8), handlers=[_Echo()])
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
