"""The worker pool: a few threads compute calls, a waiting call steps aside (server.workers)."""
from __future__ import annotations

import threading
import time

import pytest

from movielinks.server.workers import CallWorkers, stepping_aside


def _busy_threads(pool: CallWorkers, calls: int) -> set[str]:
    """The names of the threads that ran `calls` calls submitted at once, each a short computation."""
    names: set[str] = set()

    def call():
        names.add(threading.current_thread().name)
        sum(range(20_000))

    for future in [pool.submit(call) for _ in range(calls)]:
        future.result(10)
    return names


def test_calls_run_on_as_many_threads_as_computing_and_return_their_results():
    pool = CallWorkers(2)
    try:
        assert [f.result(10) for f in [pool.submit(pow, 2, n) for n in range(50)]] == [2 ** n for n in range(50)]
        assert len(_busy_threads(pool, 200)) <= 2 and pool.counts() == (2, 0)
        failed = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result(10)
    finally:
        pool.shutdown()


def test_a_waiting_call_steps_aside_and_another_thread_takes_the_queue():
    pool = CallWorkers(1)
    release = threading.Event()
    try:
        def waiting():
            with stepping_aside():
                release.wait(30)
            return "came back"

        held = pool.submit(waiting)
        time.sleep(0.05)
        # The only computing thread waits aside: calls behind it are answered meanwhile.
        assert [f.result(5) for f in [pool.submit(pow, 3, n) for n in range(20)]] == [3 ** n for n in range(20)]
        assert pool.counts() == (2, 1) and not held.done()
        release.set()
        assert held.result(10) == "came back"
        # One thread too many after it came back: it ends after its next call.
        _busy_threads(pool, 20)
        deadline = time.monotonic() + 5
        while pool.counts() != (1, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.counts() == (1, 0)
    finally:
        release.set()
        pool.shutdown()


def test_calls_queue_once_the_threads_aside_reach_their_limit():
    pool = CallWorkers(1, aside=2)
    release = threading.Event()
    try:
        def waiting():
            with stepping_aside():
                release.wait(30)

        held = [pool.submit(waiting) for _ in range(3)]
        time.sleep(0.1)
        queued = pool.submit(pow, 2, 10)
        time.sleep(0.1)
        assert pool.counts() == (3, 3) and not queued.done()  # 1 computing + 2 aside at most: all 3 wait
        release.set()
        assert queued.result(10) == 1024 and all(f.result(10) is None for f in held)
    finally:
        release.set()
        pool.shutdown()


def test_stepping_aside_elsewhere_does_nothing_and_a_shut_pool_takes_no_calls():
    with stepping_aside():  # not a pool thread: a test calling a handler directly
        pass
    pool = CallWorkers(2)
    assert pool.submit(len, "abc").result(10) == 3
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(len, "abc")
    with pytest.raises(ValueError, match="at least one"):
        CallWorkers(0)
