"""The server process as a library call: `serve(config, stop)` serves an index root until `stop`
is set, then shuts down within the grace period, and returns the exit code.

What it runs: the gRPC server (metrics, token, malformed-request and admission
interceptors), the optional HTTP gateway on a private Unix socket, the optional
Prometheus port, the reload watcher that follows CURRENT, and the background import of
scikit-learn. `server/cli.py` is the command over it (flags, logging, signals); tests
call it directly.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from movielinks.search.recommend import load_svm
from movielinks.server.admission import DEFAULT_SLOTS, AdmissionInterceptor
from movielinks.server.app import RunningServer, load_service, start
from movielinks.server.errors import ServiceError
from movielinks.server.observability import Metrics, MetricsInterceptor
from movielinks.server.processes import ProcessOf, ServingProcesses
from movielinks.server.security import MalformedRequestInterceptor, TokenInterceptor, load_token, server_credentials
from movielinks.server.service import MovieService
from movielinks.server.versions import ServiceHolder, VersionWatcher

log = logging.getLogger("movielinks.server")

# At a stop the process ends at most this long after the grace period, whatever still runs
# (with ServeConfig.exit_at_deadline): a handler that ignores cancellation (one SVM fit, one
# batch search) or a call gRPC itself never lets go of must not keep a replaced server alive.
EXIT_MARGIN_S = 1.0


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """What `serve` serves and how; the `server` command's flags, same names and defaults."""

    index: str
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 2  # threads computing calls at once (server.workers)
    processes: int = 1  # gRPC servers on the port, one a process (server.processes)
    max_concurrent: int = 64
    stream_slots: int = DEFAULT_SLOTS
    heavy_slots: int = DEFAULT_SLOTS
    grace: float = 10.0
    reload_interval: float = 1.0
    metrics_port: int | None = None
    http_port: int | None = None
    http_max_connections: int = 1000
    http_head_timeout: float = 10.0
    http_stall_timeout: float = 30.0
    http_allowed_hosts: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    token_file: str | None = None
    log_level: str = "INFO"  # how the other serving processes log, as the command configured its own logging
    log_format: str = "text"
    exit_at_deadline: bool = False  # end the whole process EXIT_MARGIN_S after the grace period (the command does)

    def problem(self) -> str | None:
        """What is wrong with these settings, in the flags' words, or None."""
        if (self.tls_cert is None) != (self.tls_key is None):
            return "--tls-cert and --tls-key go together"
        if self.tls_client_ca and not self.tls_cert:
            return "--tls-client-ca needs --tls-cert and --tls-key"
        if min(self.max_concurrent, self.workers, self.processes, self.http_max_connections) < 1:
            return "--workers, --processes, --max-concurrent and --http-max-connections must be at least 1"
        if not (self.http_head_timeout > 0 and self.http_stall_timeout > 0):
            return "--http-head-timeout and --http-stall-timeout must be more than 0 seconds"
        if min(self.stream_slots, self.heavy_slots) < 1:
            return "--stream-slots and --heavy-slots must be at least 1"
        return None


@dataclasses.dataclass(frozen=True)
class Serving:
    """A serving process's ports (0 where not served), its reload watcher and its other processes."""

    port: int
    http_port: int
    metrics_port: int
    watcher: VersionWatcher
    processes: ServingProcesses

    def reload(self) -> None:
        """Look at CURRENT now, and try a refused version again (what SIGHUP does), in the other processes too."""
        self.watcher.wake(retry=True)
        self.processes.signal(signal.SIGHUP)


def serve(config: ServeConfig, stop: threading.Event, on_ready: Callable[[Serving], None] = lambda serving: None,
          stopped_at: Callable[[], float] = time.monotonic, process_of: ProcessOf | None = None) -> int:
    """Serve until `stop` is set, then stop within config.grace; 0, or 2 with one line on
    stderr when the index, a TLS or token file or a port is bad. `on_ready` gets the ports
    once serving; `stopped_at()` says when the stop was asked for (the grace counts from it).
    With config.processes > 1 it starts the other processes once serving; `process_of` is what one
    of those is told by the first (server.processes)."""
    problem = config.problem()
    if problem:
        print(f"server: error: {problem}", file=sys.stderr)
        return 2
    started, metrics = time.monotonic(), Metrics()
    gateway_dir = Path(tempfile.mkdtemp(prefix="movielinks-")) if config.http_port is not None else None
    try:
        credentials = (server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
                       if config.tls_cert else None)
        token = load_token(config.token_file)
        # Metrics first, so that refused calls are counted too.
        interceptors = [MetricsInterceptor(metrics), *([TokenInterceptor(token)] if token else []),
                        MalformedRequestInterceptor(), AdmissionInterceptor(config.stream_slots, config.heavy_slots)]
        holder = ServiceHolder(load_service(config.index, process_of.version if process_of else None))
        # The gateway reaches the service through a socket only this user can open.
        local = f"unix:{gateway_dir / 'grpc.sock'}" if gateway_dir else None
        running = start(holder, config.host, config.port, max_workers=config.workers,
                        max_concurrent_rpcs=config.max_concurrent, credentials=credentials,
                        interceptors=interceptors, local_address=local,
                        reuse_port=config.processes > 1 or process_of is not None, check_port=process_of is None)
        metrics_port = metrics.serve_http(config.host, config.metrics_port) if config.metrics_port is not None else None
        gateway = _gateway(config, local, holder, token) if local else None
    except (ServiceError, OSError) as e:
        if gateway_dir:
            shutil.rmtree(gateway_dir, ignore_errors=True)
        print(f"server: error: {_why(e, config)}", file=sys.stderr)
        return 2
    _log_start(config, holder.current(), running.port, metrics_port, gateway, credentials, token,
               time.monotonic() - started)
    metrics.serving(holder.current())
    # Serving already; the first Recommend then finds scikit-learn imported.
    svm_loader = threading.Thread(target=load_svm, name="load-svm")
    svm_loader.start()
    watcher = _watcher(config.index, holder, metrics)
    threading.Thread(target=watcher.run, args=(stop, config.reload_interval), name="reload", daemon=True).start()
    others = ServingProcesses(config, running.port, lambda: holder.current().name).start()
    on_ready(Serving(running.port, gateway.port if gateway else 0, metrics_port or 0, watcher, others))
    while not stop.wait(0.5):
        others.check()
    watcher.wake()
    exit_by = stopped_at() + config.grace + EXIT_MARGIN_S
    if config.exit_at_deadline:
        threading.Thread(target=_exit_at, args=(exit_by, metrics), name="exit-deadline", daemon=True).start()
    _shut_down(config.grace, exit_by, running, gateway, gateway_dir, others)
    svm_loader.join(max(0.0, exit_by - time.monotonic()))  # an import cut off at exit fails with a traceback
    _log_answered(metrics)
    return 0


def _shut_down(grace_s: float, exit_by: float, running: RunningServer, gateway, gateway_dir: Path | None,
               others: ServingProcesses) -> None:
    """Every serving process, the gRPC port and the gateway stopped: calls in flight get `grace_s`, and
    nothing waits past `exit_by` (monotonic)."""
    log.info("shutting down: health NOT_SERVING, refusing new calls, %.1f s for calls in flight", grace_s)
    others.begin_stop()
    if gateway:
        gateway.begin_stop()
    running.stop(grace_s, wait_s=max(0.0, exit_by - time.monotonic()))
    if gateway:
        gateway.stop(timeout_s=max(0.0, exit_by - time.monotonic()))
        shutil.rmtree(gateway_dir, ignore_errors=True)
    others.join(exit_by)


def _why(error: ServiceError | OSError, config: ServeConfig) -> str:
    """The one line a start failure gets."""
    if isinstance(error, ServiceError):
        return str(error)
    # the metrics or the HTTP port
    what, port = ("HTTP", config.http_port) if error.filename == "HTTP" else ("metrics", config.metrics_port)
    reason = os.strerror(error.errno) if error.errno else str(error)
    return f"cannot serve {what} on {config.host}:{port}: {reason}"


def _log_start(config: ServeConfig, service: MovieService, port: int, metrics_port: int | None, gateway,
               credentials, token: str | None, start_s: float) -> None:
    log.info(
        "movielinks server listening on %s:%d version=%s movies=%d links=%d dim=%d tls=%s auth=%s metrics=%s "
        "http=%s workers=%d processes=%d stream_slots=%d heavy_slots=%d start_ms=%.0f",
        config.host, port, service.name, len(service.version.movies), len(service.version.links),
        service.version.dim, "mutual" if config.tls_client_ca else "on" if credentials else "off",
        "token" if token else "none", f"{config.host}:{metrics_port}" if metrics_port else "off",
        f"{gateway.scheme}://{_url_host(config.host)}:{gateway.port}/" if gateway else "off",
        config.workers, config.processes, config.stream_slots, config.heavy_slots, 1000 * start_s,
    )


def _log_answered(metrics: Metrics) -> None:
    answered = " ".join(f"{code}={n}" for code, n in sorted(metrics.answered_by_code(lambda rpc: rpc != "Watch").items()))
    # Every client channel keeps a health Watch open (it picks a serving replica by it) and
    # cancels it when it closes: a CANCELLED there is a client that went away, no error.
    watches = sum(metrics.answered_by_code(lambda rpc: rpc == "Watch").values())
    log.info("stopped: calls answered by status since start: %s; health watches closed by their clients: %d",
             answered or "none", watches)


def _exit_at(deadline: float, metrics: Metrics) -> None:
    """Ends the process at `deadline` (monotonic) if it is still running then.

    Threads still computing after the grace period (gRPC has cancelled their calls)
    would otherwise be joined at interpreter exit, for as long as they take.
    """
    time.sleep(max(0.0, deadline - time.monotonic()))
    log.warning("shutdown: %.1f s past the grace period something still runs (a call that ignored its "
                "cancellation); exiting now", EXIT_MARGIN_S)
    _log_answered(metrics)
    exit_now(0)


def exit_now(code: int) -> None:
    """End the process with `code` at once, its log written out first: no thread is joined and no
    exit hook run (gRPC's and multiprocessing's included)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


def _watcher(index_root: str, holder: ServiceHolder, metrics: Metrics) -> VersionWatcher:
    """A watcher of the index root's CURRENT that counts what it takes and refuses."""

    def refused(name: str, reason: str) -> None:
        metrics.reloads.labels("refused").inc()

    def taken(new: MovieService) -> None:
        metrics.reloads.labels("taken").inc()
        metrics.serving(new)

    return VersionWatcher(index_root, holder, on_taken=taken, on_refused=refused)


def _gateway(config: ServeConfig, local: str, holder: ServiceHolder, token: str | None):
    """The HTTP gateway on host:http_port, started; OSError (filename "HTTP") when the port is taken."""
    from movielinks.server.gateway import GatewayServer, TlsFiles  # Starlette and uvicorn only when asked for

    tls = TlsFiles(config.tls_cert, config.tls_key, config.tls_client_ca) if config.tls_cert else None
    try:
        return GatewayServer(local, config.host, config.http_port, tls=tls, grace_s=config.grace,
                             max_connections=config.http_max_connections, head_timeout_s=config.http_head_timeout,
                             stall_timeout_s=config.http_stall_timeout, token=token,
                             hosts=config.http_allowed_hosts, current=holder.current).start()
    except OSError as e:
        e.filename = "HTTP"
        raise


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
