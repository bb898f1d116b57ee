"""Running units of work on local cores or a Dask cluster, results in submission order.

One worker: in this process, no cluster. More: a Dask `LocalCluster` of that many
single-threaded worker processes on 127.0.0.1, or the cluster whose scheduler
`scheduler` names (its workers must see the input at the same path). Results come
back in the order the units were given, whatever finished first, so the output
does not depend on the number of workers.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
from typing import Any, Callable, Iterable, Iterator

from movielinks.collector.record import CollectorError

CONNECT_TIMEOUT_S = 10  # to reach a --scheduler


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_in_order(function: Callable[..., Any], units: Iterable[Any], extra: tuple = (), workers: int | None = None,
                 scheduler: str | None = None) -> Iterator[Any]:
    """Yield function(unit, *extra) for each unit, in the order of `units`."""
    workers = workers or default_workers()
    if scheduler is None and workers == 1:
        for unit in units:
            yield function(unit, *extra)
        return
    with _dask_client(workers, scheduler) as client:
        # A bounded window of units in flight: a tarball's pages are read as the work goes.
        window = max(2, 3 * len(client.scheduler_info()["workers"]))
        pending: collections.deque = collections.deque()
        for unit in units:
            pending.append(client.submit(function, unit, *extra, pure=False))
            if len(pending) >= window:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


def _result(future) -> Any:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - a worker that died or a unit that raised
        raise CollectorError(f"a unit of work failed on the cluster: {type(e).__name__}: {e}") from e
    finally:
        future.release()


@contextlib.contextmanager
def _dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster  # imported only when a cluster is used: it takes a second

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except OSError as e:
            raise CollectorError(f"cannot reach the Dask scheduler at {scheduler} ({e}); start one with "
                                 f"`dask scheduler` or drop --scheduler to use local cores") from e
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client
