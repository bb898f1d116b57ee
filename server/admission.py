"""Admission by cost: cheap calls keep flowing while expensive ones wait their turn or are refused.

gRPC's worker threads are one pool for every call. A response stream whose client
does not read holds its worker (flow control blocks the write), and a long SVM fit or
a large batch holds one for its whole run, so a few such calls could otherwise take
every worker, health checks included. Two small budgets keep them apart:

- `ExportNeighbours` streams: at most `stream_slots` at once;
- expensive calls (`Recommend` with more than HEAVY_RECOMMEND_TITLES titles, a
  `BatchSimilarMovies` asking for more than HEAVY_NEIGHBOURS titles x k): at most
  `heavy_slots` at once, computed on threads of their own at a lower CPU priority
  (nice +10), so that cheap calls on the workers get the cores first.

A call past its budget gets RESOURCE_EXHAUSTED at once, naming the budget; every
other call (single queries, lookups, GetInfo, health, reflection) is admitted as
before. A stream (any response or request stream but the health Watch, which holds no
worker) and an expensive call waiting for its thread step aside from the worker pool
while they last (server.workers): `--workers` threads are always left computing the
others.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from typing import Callable

import faiss
import grpc

from movielinks.proto import SERVICE_NAME
from movielinks.server.workers import stepping_aside

log = logging.getLogger("movielinks.server")

HEAVY_RECOMMEND_TITLES = 100  # liked + disliked: past it, an SVM fit (growing with their square) is no cheap call
HEAVY_NEIGHBOURS = 20_000  # titles x k of one batch
HEAVY_NICE = 10  # the nice increment of the expensive-call threads

EXPORT = f"/{SERVICE_NAME}/ExportNeighbours"
RECOMMEND = f"/{SERVICE_NAME}/Recommend"
BATCH = f"/{SERVICE_NAME}/BatchSimilarMovies"


DEFAULT_SLOTS = 2  # each budget's default: streams and expensive calls at once


def is_heavy(method: str, request) -> bool:
    """Whether a (parsed) request is expensive enough to need a heavy slot."""
    if method == RECOMMEND:
        return len(request.liked) + len(request.disliked) > HEAVY_RECOMMEND_TITLES
    if method == BATCH:
        return len(request.titles) * max(request.k, 0) > HEAVY_NEIGHBOURS
    return False


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Applies the stream and heavy-call budgets of the module docstring.

    Put it after the interceptors that refuse calls (token, malformed requests):
    it sees parsed requests.
    """

    def __init__(self, stream_slots: int, heavy_slots: int):
        if stream_slots < 1 or heavy_slots < 1:
            raise ValueError("every budget needs at least one slot")
        self.stream_slots, self.heavy_slots = stream_slots, heavy_slots
        self._streams = threading.BoundedSemaphore(stream_slots)
        self._heavy = threading.BoundedSemaphore(heavy_slots)
        self._heavy_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=heavy_slots, thread_name_prefix="heavy", initializer=_low_priority)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return handler
        if method == EXPORT and handler.unary_stream:
            return handler._replace(unary_stream=self._budgeted_stream(handler.unary_stream))
        if handler.unary_unary:
            return (handler._replace(unary_unary=self._budgeted_unary(handler.unary_unary, method))
                    if method in (RECOMMEND, BATCH) else handler)
        return _aside_while_streaming(handler)

    def _budgeted_stream(self, behaviour: Callable) -> Callable:
        def admitted(request, context):
            if not self._streams.acquire(blocking=False):
                _refuse(context, f"all {self.stream_slots} export stream slots are in use (a stream holds its slot "
                                 "until it ends or its client cancels); retry later with a backoff")
            try:
                yield from _aside_stream(behaviour)(request, context)
            finally:
                self._streams.release()
        return admitted

    def _budgeted_unary(self, behaviour: Callable, method: str) -> Callable:
        def admitted(request, context):
            if not is_heavy(method, request):
                return behaviour(request, context)
            if not self._heavy.acquire(blocking=False):
                _refuse(context, f"all {self.heavy_slots} slots for expensive calls are in use (Recommend with more "
                                 f"than {HEAVY_RECOMMEND_TITLES} titles, batches of more than {HEAVY_NEIGHBOURS:,} "
                                 "titles x k); retry later with a backoff, or send smaller requests")
            try:
                # The worker waits without using a core, aside; the heavy thread's nice
                # value lets the cheap calls on the workers go first.
                with stepping_aside():
                    return self._heavy_pool.submit(behaviour, request, context).result()
            finally:
                self._heavy.release()
        return admitted


def _aside_while_streaming(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A streaming handler whose calls step aside from the worker pool while they last
    (they wait on their client); a non-blocking one (the health Watch) is left as it is."""
    if handler.unary_stream:
        if getattr(handler.unary_stream, "experimental_non_blocking", False):
            return handler
        return handler._replace(unary_stream=_aside_stream(handler.unary_stream))
    if handler.stream_stream:
        return handler._replace(stream_stream=_aside_stream(handler.stream_stream))
    if handler.stream_unary:
        return handler._replace(stream_unary=_aside_unary(handler.stream_unary))
    return handler


def _aside_stream(behaviour: Callable) -> Callable:
    def aside(request, context):
        with stepping_aside():
            yield from behaviour(request, context)
    return aside


def _aside_unary(behaviour: Callable) -> Callable:
    def aside(requests, context):
        with stepping_aside():
            return behaviour(requests, context)
    return aside


def _refuse(context: grpc.ServicerContext, message: str) -> None:
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def _low_priority() -> None:
    faiss.omp_set_num_threads(1)
    try:
        # Linux nice values are per thread: this lowers only the calling thread.
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + HEAVY_NICE))
    except (AttributeError, OSError) as e:  # not Linux, or not allowed
        log.warning("expensive calls run at normal CPU priority: cannot renice their threads (%s)", e)
