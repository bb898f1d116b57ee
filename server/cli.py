"""`server` command: serve a published index over gRPC until SIGTERM or SIGINT.

    server --index INDEX_ROOT [--host 127.0.0.1] [--port 50051] [--metrics-port 9090] [--http-port 8080]
           [--tls-cert C --tls-key K [--tls-client-ca CA]] [--token-file F]
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time

from movielinks.common.commands import closed_pipe_is_a_normal_end, command_parser
from movielinks.server.heap import bound_malloc
from movielinks.server.observability import configure_logging
from movielinks.server.serve import ServeConfig, Serving, serve

DEFAULTS = ServeConfig(index="")  # the flags' defaults are the library's

EPILOG = """\
Binds 127.0.0.1 unless --host says otherwise; --port 0 picks a free port (the start
log line names it). The server follows the index root's CURRENT: a new version is
loaded and validated beside the served one, then swapped in (every --reload-interval
seconds, and at once on SIGHUP); a bad version is refused and the old one keeps serving.
A refused version is tried again when CURRENT names it anew, or on SIGHUP.
SIGTERM or SIGINT: health turns NOT_SERVING, new calls are refused, calls in flight
get --grace seconds, then the process exits 0, at most --grace + 1 s after the signal.
With --processes N, N - 1 more processes serve the same port and stop with this one.
Exit code 2 (one line on stderr): the index is missing or bad, a TLS or token file is
bad, or the port is taken.
"""


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("server", "Serve movielinks queries over gRPC.", epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    for add_options in (_serving_options, _http_options, _log_options, _security_options):
        add_options(parser)
    return parser


def _serving_options(parser: argparse.ArgumentParser) -> None:
    """What is served and where, by how many threads, how it reloads and stops, and its metrics port."""
    parser.add_argument("--index", required=True, help="index root written by `indexer build --out`")
    parser.add_argument("--host", default=DEFAULTS.host, help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULTS.port, help="port (0: a free one)")
    parser.add_argument("--workers", type=int, default=DEFAULTS.workers,
                        help="threads computing calls at once; a stream or an expensive call waiting for its thread "
                             "steps aside and another thread takes its place (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=DEFAULTS.processes,
                        help="serving processes sharing --port (SO_REUSEPORT), each with --workers threads: one "
                             "process computes on one core at a time; the first also serves --http-port, process n "
                             "its metrics on --metrics-port + n (default: %(default)s)")
    parser.add_argument("--max-concurrent", type=int, default=DEFAULTS.max_concurrent,
                        help="calls in progress at most; more get RESOURCE_EXHAUSTED at once")
    parser.add_argument("--stream-slots", type=int, default=DEFAULTS.stream_slots,
                        help="ExportNeighbours streams at once; more get RESOURCE_EXHAUSTED (default: %(default)s)")
    parser.add_argument("--heavy-slots", type=int, default=DEFAULTS.heavy_slots,
                        help="expensive calls (large Recommend or batch) at once, at low CPU priority; more get "
                             "RESOURCE_EXHAUSTED (default: %(default)s)")
    parser.add_argument("--grace", type=float, default=DEFAULTS.grace, help="seconds calls in flight get at shutdown")
    parser.add_argument("--reload-interval", type=float, default=DEFAULTS.reload_interval,
                        help="seconds between checks of CURRENT (0: only on SIGHUP)")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on --host at this port (0: free)")


def _http_options(parser: argparse.ArgumentParser) -> None:
    """The HTTP gateway (JSON API and web explorer) and its bounds on slow or many clients."""
    parser.add_argument("--http-port", type=int,
                        help="also serve every RPC as JSON over HTTP, /openapi.json and the web explorer (/) on "
                             "--host at this port (0: free); HTTPS with the --tls-* files")
    parser.add_argument("--http-max-connections", type=int, default=DEFAULTS.http_max_connections,
                        help="HTTP connections open at once at most; more are closed at once (default 1000, fewer "
                             "when the descriptor limit would leave under 256 for gRPC and the reload watcher)")
    parser.add_argument("--http-head-timeout", type=float, default=DEFAULTS.http_head_timeout,
                        help="seconds an HTTP client gets to send a request's head (and again after each answer); "
                             "a slower one is disconnected (default 10)")
    parser.add_argument("--http-stall-timeout", type=float, default=DEFAULTS.http_stall_timeout,
                        help="seconds an HTTP client may leave its answer unread (an export's slot is held meanwhile) "
                             "before it is disconnected (default 30)")
    parser.add_argument("--http-allowed-hosts",
                        help="comma-separated host names HTTP requests may name in their Host header, '*' for any "
                             "(default: localhost, 127.0.0.1, ::1 and --host): a DNS-rebinding page names its own")


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="least severe events logged (default INFO)")
    parser.add_argument("--log-format", default="text", choices=("text", "json"), help="one line an event, either way")


def _security_options(parser: argparse.ArgumentParser) -> None:
    """TLS (mutual with --tls-client-ca) and the bearer token."""
    parser.add_argument("--tls-cert", help="PEM server certificate: the port speaks TLS only (needs --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", help="PEM CA: require client certificates signed by it (mutual TLS)")
    parser.add_argument("--token-file", help="file holding the bearer token every call must carry "
                                             "(default: $MOVIELINKS_TOKEN; neither: no token)")


@closed_pipe_is_a_normal_end
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    config = ServeConfig(**{k: v for k, v in vars(args).items() if k in fields}, exit_at_deadline=True)
    problem = config.problem()
    if problem:
        parser.error(problem)
    bound_malloc()  # the process is the server's: before its threads allocate
    configure_logging(args.log_level, args.log_format)
    stop, signalled = threading.Event(), []

    def on_stop(*_) -> None:
        signalled.append(time.monotonic())
        stop.set()

    def on_ready(serving: Serving) -> None:  # the signals are ours once serving, as before it they end the process
        signal.signal(signal.SIGHUP, lambda *_: serving.reload())
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_stop)

    return serve(config, stop, on_ready, stopped_at=lambda: signalled[0] if signalled else time.monotonic())


if __name__ == "__main__":
    sys.exit(main())
