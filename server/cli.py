"""`server` command: serve a published index over gRPC until SIGTERM or SIGINT.

    server --index INDEX_ROOT [--host 127.0.0.1] [--port 50051] [--metrics-port 9090] [--http-port 8080]
           [--tls-cert C --tls-key K [--tls-client-ca CA]] [--token-file F]
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from movielinks.common.commands import closed_pipe_is_a_normal_end, command_parser
from movielinks.server.admission import AdmissionInterceptor, default_slots
from movielinks.server.app import load_service, start
from movielinks.server.errors import ServiceError
from movielinks.server.service import MovieService
from movielinks.server.observability import Metrics, MetricsInterceptor, configure_logging
from movielinks.search.recommend import load_svm
from movielinks.server.security import MalformedRequestInterceptor, TokenInterceptor, load_token, server_credentials
from movielinks.server.versions import ServiceHolder, VersionWatcher

log = logging.getLogger("movielinks.server")

# At SIGTERM the process exits at most this long after --grace, whatever still runs:
# a handler that ignores cancellation (one SVM fit, one batch search) or a call gRPC
# itself never lets go of must not keep a replaced server alive.
EXIT_MARGIN_S = 1.0

EPILOG = """\
Binds 127.0.0.1 unless --host says otherwise; --port 0 picks a free port (the start
log line names it). The server follows the index root's CURRENT: a new version is
loaded and validated beside the served one, then swapped in (every --reload-interval
seconds, and at once on SIGHUP); a bad version is refused and the old one keeps serving.
A refused version is tried again when CURRENT names it anew, or on SIGHUP.
SIGTERM or SIGINT: health turns NOT_SERVING, new calls are refused, calls in flight
get --grace seconds, then the process exits 0, at most --grace + 1 s after the signal.
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
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=50051, help="port (0: a free one)")
    parser.add_argument("--workers", type=int, default=8, help="threads answering calls")
    parser.add_argument("--max-concurrent", type=int, default=64,
                        help="calls in progress at most; more get RESOURCE_EXHAUSTED at once")
    parser.add_argument("--stream-slots", type=int,
                        help="ExportNeighbours streams at once; more get RESOURCE_EXHAUSTED (default: workers/4, >= 1)")
    parser.add_argument("--heavy-slots", type=int,
                        help="expensive calls (large Recommend or batch) at once, at low CPU priority; more get "
                             "RESOURCE_EXHAUSTED (default: workers/4, >= 1)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds calls in flight get at shutdown")
    parser.add_argument("--reload-interval", type=float, default=1.0,
                        help="seconds between checks of CURRENT (0: only on SIGHUP)")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on --host at this port (0: free)")


def _http_options(parser: argparse.ArgumentParser) -> None:
    """The HTTP gateway (JSON API and web explorer) and its bounds on slow or many clients."""
    parser.add_argument("--http-port", type=int,
                        help="also serve every RPC as JSON over HTTP, /openapi.json and the web explorer (/) on "
                             "--host at this port (0: free); HTTPS with the --tls-* files")
    parser.add_argument("--http-max-connections", type=int, default=1000,
                        help="HTTP connections open at once at most; more are closed at once (default 1000, fewer "
                             "when the descriptor limit would leave under 256 for gRPC and the reload watcher)")
    parser.add_argument("--http-head-timeout", type=float, default=10.0,
                        help="seconds an HTTP client gets to send a request's head (and again after each answer); "
                             "a slower one is disconnected (default 10)")
    parser.add_argument("--http-stall-timeout", type=float, default=30.0,
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
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    if args.max_concurrent < 1 or args.workers < 1 or args.http_max_connections < 1:
        parser.error("--workers, --max-concurrent and --http-max-connections must be at least 1")
    if not (args.http_head_timeout > 0 and args.http_stall_timeout > 0):
        parser.error("--http-head-timeout and --http-stall-timeout must be more than 0 seconds")
    stream_slots = default_slots(args.workers) if args.stream_slots is None else args.stream_slots
    heavy_slots = default_slots(args.workers) if args.heavy_slots is None else args.heavy_slots
    if stream_slots < 1 or heavy_slots < 1:
        parser.error("--stream-slots and --heavy-slots must be at least 1")
    configure_logging(args.log_level, args.log_format)

    started = time.monotonic()
    metrics = Metrics()
    gateway_dir = None
    try:
        credentials = server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
        token = load_token(args.token_file)
        # Metrics first, so that refused calls are counted too.
        interceptors = [MetricsInterceptor(metrics), *([TokenInterceptor(token)] if token else []),
                        MalformedRequestInterceptor(), AdmissionInterceptor(stream_slots, heavy_slots)]
        holder = ServiceHolder(load_service(args.index))
        # The gateway reaches the service through a socket only this user can open.
        gateway_dir = Path(tempfile.mkdtemp(prefix="movielinks-")) if args.http_port is not None else None
        local = f"unix:{gateway_dir / 'grpc.sock'}" if gateway_dir else None
        running = start(holder, args.host, args.port, max_workers=args.workers,
                        max_concurrent_rpcs=args.max_concurrent, credentials=credentials, interceptors=interceptors,
                        local_address=local)
        metrics_port = metrics.serve_http(args.host, args.metrics_port) if args.metrics_port is not None else None
        gateway = _gateway(args, local, holder, token) if local else None
    except (ServiceError, OSError) as e:
        if gateway_dir:
            shutil.rmtree(gateway_dir, ignore_errors=True)
        if isinstance(e, ServiceError):
            print(f"server: error: {e}", file=sys.stderr)
            return 2
        # the metrics or the HTTP port
        what, port = ("HTTP", args.http_port) if e.filename == "HTTP" else ("metrics", args.metrics_port)
        reason = os.strerror(e.errno) if e.errno else str(e)
        print(f"server: error: cannot serve {what} on {args.host}:{port}: {reason}", file=sys.stderr)
        return 2
    service = holder.current()
    metrics.serving(service)
    log.info(
        "movielinks server listening on %s:%d version=%s movies=%d links=%d dim=%d tls=%s auth=%s metrics=%s "
        "http=%s workers=%d stream_slots=%d heavy_slots=%d start_ms=%.0f",
        args.host, running.port, service.name, len(service.version.movies), len(service.version.links),
        service.version.dim, "mutual" if args.tls_client_ca else "on" if credentials else "off",
        "token" if token else "none", f"{args.host}:{metrics_port}" if metrics_port else "off",
        f"{gateway.scheme}://{_url_host(args.host)}:{gateway.port}/" if gateway else "off",
        args.workers, stream_slots, heavy_slots, 1000 * (time.monotonic() - started),
    )
    # Serving already; the first Recommend then finds scikit-learn imported.
    svm_loader = threading.Thread(target=load_svm, name="load-svm")
    svm_loader.start()
    watcher = _watcher(args.index, holder, metrics)
    stop = threading.Event()
    watching = threading.Thread(target=watcher.run, args=(stop, args.reload_interval), name="reload", daemon=True)
    watching.start()
    signalled: list[float] = []

    def on_stop(*_) -> None:
        signalled.append(time.monotonic())
        stop.set()

    signal.signal(signal.SIGHUP, lambda *_: watcher.wake(retry=True))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_stop)
    while not stop.wait(0.5):
        pass
    watcher.wake()
    exit_by = signalled[0] + args.grace + EXIT_MARGIN_S
    threading.Thread(target=_exit_at, args=(exit_by, metrics), name="exit-deadline", daemon=True).start()
    log.info("shutting down: health NOT_SERVING, refusing new calls, %.1f s for calls in flight", args.grace)
    if gateway:
        gateway.begin_stop()
    running.stop(args.grace, wait_s=max(0.0, exit_by - time.monotonic()))
    if gateway:
        gateway.stop(timeout_s=max(0.0, exit_by - time.monotonic()))
        shutil.rmtree(gateway_dir, ignore_errors=True)
    svm_loader.join(max(0.0, exit_by - time.monotonic()))  # an import cut off at exit fails with a traceback
    _log_answered(metrics)
    return 0


def _log_answered(metrics: Metrics) -> None:
    answered = " ".join(f"{code}={n}" for code, n in sorted(metrics.answered_by_code(lambda rpc: rpc != "Watch").items()))
    # Every client channel keeps a health Watch open (it picks a serving replica by it) and
    # cancels it when it closes: a CANCELLED there is a client that went away, no error.
    watches = sum(metrics.answered_by_code(lambda rpc: rpc == "Watch").values())
    log.info("stopped: calls answered by status since start: %s; health watches closed by their clients: %d", answered or "none", watches)


def _exit_at(deadline: float, metrics: Metrics) -> None:
    """Ends the process at `deadline` (monotonic) if it is still running then.

    Threads still computing after the grace period (gRPC has cancelled their calls)
    would otherwise be joined at interpreter exit, for as long as they take.
    """
    time.sleep(max(0.0, deadline - time.monotonic()))
    log.warning("shutdown: %.1f s past the grace period something still runs (a call that ignored its "
                "cancellation); exiting now", EXIT_MARGIN_S)
    _log_answered(metrics)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(0)


def _watcher(index_root: str, holder: ServiceHolder, metrics: Metrics) -> VersionWatcher:
    """A watcher of the index root's CURRENT that counts what it takes and refuses."""

    def refused(name: str, reason: str) -> None:
        metrics.reloads.labels("refused").inc()

    def taken(new: MovieService) -> None:
        metrics.reloads.labels("taken").inc()
        metrics.serving(new)

    return VersionWatcher(index_root, holder, on_taken=taken, on_refused=refused)


def _gateway(args: argparse.Namespace, local: str, holder: ServiceHolder, token: str | None):
    """The HTTP gateway on --host:--http-port, started; OSError (filename "HTTP") when the port is taken."""
    from movielinks.server.gateway import GatewayServer, TlsFiles  # Starlette and uvicorn only when asked for

    tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    try:
        return GatewayServer(local, args.host, args.http_port, tls=tls, grace_s=args.grace,
                             max_connections=args.http_max_connections, head_timeout_s=args.http_head_timeout,
                             stall_timeout_s=args.http_stall_timeout, token=token,
                             hosts=args.http_allowed_hosts, current=holder.current).start()
    except OSError as e:
        e.filename = "HTTP"
        raise


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


if __name__ == "__main__":
    sys.exit(main())
