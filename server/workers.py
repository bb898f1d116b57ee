"""gRPC's worker pool: a few threads compute calls; a call that waits steps aside.

On a 2-core machine, 2 worker threads answer 1.5-1.9x the single queries a second of 8
(docs/speed.md, "Fewer worker threads"): calls wait in the pool's queue and a busy thread
takes the next one without sleeping, instead of each call waking a thread of its own. But
some calls hold their thread without computing: a response stream whose client does not
read (flow control blocks the write), an expensive call waiting for its own low-priority
thread (server.admission), a reflection stream waiting for its client's next request. With
2 threads, two of those would leave no thread for health checks and single queries.

So `CallWorkers` runs `computing` threads, and a call that is about to wait says so with
`stepping_aside()`: while it waits it is not counted, and the pool starts another thread in
its place (at most `computing` + ASIDE_THREADS threads in all; past that, calls queue). When it
comes back the pool has a thread too many, which ends after its call.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import queue
import threading
from typing import Callable, Iterator

ASIDE_THREADS = 32  # threads beyond `computing`, for calls waiting aside; the budgets of server.admission keep them fewer

_here = threading.local()  # .pool: the CallWorkers whose thread this is


class CallWorkers(concurrent.futures.Executor):
    """An executor for grpc.server: `computing` threads take calls, and a thread inside
    `stepping_aside()` is replaced while it waits (module docstring)."""

    def __init__(self, computing: int, name: str = "rpc", initializer: Callable[[], None] | None = None,
                 aside: int = ASIDE_THREADS):
        if computing < 1:
            raise ValueError("a pool needs at least one computing thread")
        self.computing, self._most = computing, computing + aside
        self._name, self._initializer = name, initializer
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._aside = 0
        self._numbers = itertools.count()
        self._shut = False

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot take calls after shutdown")
            self._calls.put((future, fn, args, kwargs))
            self._start_one_if_short()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True
            threads = list(self._threads)
            if cancel_futures:
                self._cancel_queued()
            for _ in threads:
                self._calls.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def counts(self) -> tuple[int, int]:
        """(threads, threads waiting aside) now."""
        with self._lock:
            return len(self._threads), self._aside

    def _start_one_if_short(self) -> None:
        """A new thread, if fewer than `computing` are not aside (the lock is held)."""
        if len(self._threads) - self._aside < self.computing and len(self._threads) < self._most:
            thread = threading.Thread(target=self._work, name=f"{self._name}_{next(self._numbers)}", daemon=True)
            self._threads.add(thread)
            thread.start()

    def _work(self) -> None:
        _here.pool = self
        if self._initializer is not None:
            self._initializer()
        while True:
            call = self._calls.get()
            if call is None:
                return
            future, fn, args, kwargs = call
            del call
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as e:  # noqa: BLE001 - the future carries it, as ThreadPoolExecutor's does
                    future.set_exception(e)
            del future, fn, args, kwargs
            with self._lock:
                if len(self._threads) - self._aside > self.computing:  # one came back from aside: one goes
                    self._threads.discard(threading.current_thread())
                    return

    def _cancel_queued(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                call[0].cancel()

    def _step_aside(self) -> None:
        with self._lock:
            self._aside += 1
            if not self._calls.empty():
                self._start_one_if_short()

    def _step_back(self) -> None:
        with self._lock:
            self._aside -= 1


@contextlib.contextmanager
def stepping_aside() -> Iterator[None]:
    """Around a wait on a CallWorkers thread: another thread computes calls meanwhile.
    Anywhere else (another thread, a test calling a handler directly) it does nothing."""
    pool: CallWorkers | None = getattr(_here, "pool", None)
    if pool is None:
        yield
        return
    pool._step_aside()
    try:
        yield
    finally:
        pool._step_back()
