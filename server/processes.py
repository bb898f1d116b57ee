"""More serving processes on one port (`server --processes N`).

A Python process computes on one core at a time (the GIL): on a machine with more cores, one
server process leaves them idle however many threads it has (docs/scale.md). With N processes,
the first one (the `server` command's own) binds --port with SO_REUSEPORT and, once it serves,
starts processes 1 to N - 1: fresh interpreters (multiprocessing's "spawn": no gRPC state is
forked) that load the version the first one serves, bind the same port, and then follow CURRENT
themselves. The kernel spreads new connections over the processes; each connection is answered
by the process that accepted it, so one client channel stays with one process and many clients
spread over all of them. This is gRPC's own way for Python (its examples/python/multiprocessing).
(Not to be confused with replicas: separate servers, on other ports or machines, that the client
spreads its calls over, docs/operations.md.)

What stays with the first process: the HTTP gateway (its calls are answered there), and its
Prometheus port; process n serves its own metrics on --metrics-port + n (a free port with
--metrics-port 0; its start line names it). SIGHUP is passed on. At a stop every process gets
SIGTERM and the same grace; each also stops when the first process dies (even by SIGKILL), and
one that ends by itself is started again, at most once every RESTART_AFTER_S seconds.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from movielinks.server.serve import ServeConfig

log = logging.getLogger("movielinks.server")

RESTART_AFTER_S = 5.0


@dataclasses.dataclass(frozen=True)
class ProcessOf:
    """What process n is told by the first process: its number and the version the first one serves."""

    number: int
    version: str
    parent: int  # the first process's pid


class ServingProcesses:
    """The first process's other serving processes (none with config.processes 1): started, restarted when
    they end by themselves, signalled, stopped."""

    def __init__(self, config: ServeConfig, port: int, version: Callable[[], str]):
        """Processes serving `config` on `port`, each started with the version `version()` names then."""
        self._config, self._port, self._version = config, port, version
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, multiprocessing.process.BaseProcess | None] = {}  # None: ended
        self._started_at: dict[int, float] = {}
        self._stopping = False

    def start(self) -> ServingProcesses:
        for number in range(1, self._config.processes):
            self._start(number)
        return self

    def check(self) -> None:
        """Start again a process that ended (not at a stop), once RESTART_AFTER_S passed since its start."""
        if self._stopping:
            return
        for number, process in list(self._processes.items()):
            if process is not None and not process.is_alive():
                log.warning("serving process %d (pid %d) ended with exit code %s; starting it again", number,
                            process.pid, process.exitcode)
                self._processes[number] = process = None
            if process is None and time.monotonic() - self._started_at[number] >= RESTART_AFTER_S:
                self._start(number)

    def signal(self, signum: int) -> None:
        for process in self._running():
            os.kill(process.pid, signum)

    def begin_stop(self) -> None:
        """SIGTERM to every process: each stops as the first one does, with the same grace."""
        self._stopping = True
        self.signal(signal.SIGTERM)

    def join(self, deadline: float) -> None:
        """Wait for the processes until `deadline` (monotonic); kill the ones still running then."""
        for process in self._running():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("%s (pid %d) still runs past the grace period; killing it", process.name, process.pid)
                process.kill()
                process.join(1.0)

    def _running(self) -> list[multiprocessing.process.BaseProcess]:
        return [p for p in self._processes.values() if p is not None and p.is_alive()]

    def _start(self, number: int) -> None:
        metrics_port = self._config.metrics_port
        config = dataclasses.replace(
            self._config, port=self._port, processes=1, http_port=None, exit_at_deadline=True,
            metrics_port=None if metrics_port is None else metrics_port + number if metrics_port else 0)
        process = self._context.Process(
            target=process_main, name=f"serving process {number}",
            args=(config, ProcessOf(number, self._version(), os.getpid())))
        process.start()
        self._processes[number], self._started_at[number] = process, time.monotonic()


def process_main(config: ServeConfig, told: ProcessOf) -> None:
    """Process n: serve as `server` does until SIGTERM (or the first process's death), then exit."""
    stop, signalled = threading.Event(), []

    def on_stop(*_) -> None:
        signalled.append(time.monotonic())
        stop.set()

    threading.Thread(target=_stop_when_orphaned, args=(told.parent, on_stop), name="parent-watch", daemon=True).start()
    from movielinks.server.heap import bound_malloc
    from movielinks.server.observability import configure_logging
    from movielinks.server.serve import exit_now, serve

    bound_malloc()
    configure_logging(config.log_level, config.log_format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Prefix(f"process {told.number}: "))

    def on_ready(serving) -> None:
        signal.signal(signal.SIGHUP, lambda *_: serving.reload())
        signal.signal(signal.SIGTERM, on_stop)

    # A terminal's Ctrl-C reaches the whole group; the first process's SIGTERM is what stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = serve(config, stop, on_ready, stopped_at=lambda: signalled[0] if signalled else time.monotonic(),
                 process_of=told)
    # Served and stopped within the grace: nothing is left to do, so the interpreter's own ending
    # (joining threads, gRPC's and multiprocessing's exit hooks) is not waited for either.
    exit_now(code)


def _stop_when_orphaned(parent: int, stop: Callable[[], None], every_s: float = 0.2) -> None:
    """Call `stop` once the first process has ended, whatever ended it (SIGKILL too): this process's
    parent is then another (init, or a subreaper). Polled rather than asked of the kernel as a
    signal, which this process might not have been able to take yet, or at all."""
    while os.getppid() == parent:
        time.sleep(every_s)
    stop()


class _Prefix(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.prefix + str(record.msg)
        return True
