"""Metrics (Prometheus, on a port of their own) and one-line structured logs.

Metrics, all prefixed movielinks_:
    requests_total{rpc, code}         calls answered, by RPC and gRPC status; a call the client
                                      cancelled or let pass its deadline counts as CANCELLED or
                                      DEADLINE_EXCEEDED. Calls gRPC turns away before any handler
                                      (past --max-concurrent, or during shutdown) are not counted.
                                      `rpc` comes from a closed set (KNOWN_RPCS): every other
                                      method name, invented by a caller, counts as "unknown".
    request_seconds{rpc}              latency histogram
    index_info{version}               1 for the version being served
    index_movies, index_links, index_dim
    reloads_total{result}             result = "taken" | "refused"
"""
from __future__ import annotations

import datetime
import json
import logging
import re
import time
from typing import Callable

import grpc
import prometheus_client as prom

from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from movielinks.proto import movielinks_pb2
from movielinks.server.service import MovieService

# Full method name -> its `rpc` label. A label value made from a caller's method name
# would let anyone (even without the token) add metric series without limit.
KNOWN_RPCS = {
    f"/{service.full_name}/{method.name}": method.name
    for file in (movielinks_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR)
    for service in file.services_by_name.values()
    for method in service.methods
}
UNKNOWN_RPC = "unknown"

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The server's metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter("movielinks_requests", "Calls answered, by RPC and gRPC status code.",
                                     ["rpc", "code"], registry=self.registry)
        self.latency = prom.Histogram("movielinks_request_seconds", "Time to answer a call, by RPC.", ["rpc"],
                                      buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.index_info = prom.Gauge("movielinks_index_info", "1 for the index version being served.", ["version"],
                                     registry=self.registry)
        self.movies = prom.Gauge("movielinks_index_movies", "Movies in the served index.", registry=self.registry)
        self.links = prom.Gauge("movielinks_index_links", "Links in the served index.", registry=self.registry)
        self.dim = prom.Gauge("movielinks_index_dim", "Embedding dimensions of the served index.",
                              registry=self.registry)
        self.reloads = prom.Counter("movielinks_reloads", "Index versions taken or refused while serving.", ["result"],
                                    registry=self.registry)
        for result in ("taken", "refused"):
            self.reloads.labels(result)
        # labels() takes a lock and builds a key on every call; the children, looked up
        # once, keep the per-call cost to two dict reads.
        self._answered: dict[tuple[str, str], prom.Counter] = {}
        self._latency: dict[str, prom.Histogram] = {}

    def answered(self, rpc: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count one call of `rpc` that ended with `code` after `seconds`."""
        counter = self._answered.get((rpc, code.name))
        if counter is None:
            counter = self._answered[rpc, code.name] = self.requests.labels(rpc, code.name)
        latency = self._latency.get(rpc)
        if latency is None:
            latency = self._latency[rpc] = self.latency.labels(rpc)
        counter.inc()
        latency.observe(seconds)

    def serving(self, service: MovieService) -> None:
        """Record the version now served (and only it)."""
        self.index_info.clear()
        self.index_info.labels(service.name).set(1)
        self.movies.set(len(service.version.movies))
        self.links.set(len(service.version.links))
        self.dim.set(service.version.dim)

    def answered_by_code(self, rpcs: Callable[[str], bool] = lambda rpc: True) -> dict[str, int]:
        """Calls answered since start (of the RPCs `rpcs` accepts), by status code name."""
        totals: dict[str, int] = {}
        for metric in self.requests.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and rpcs(sample.labels["rpc"]):
                    code = sample.labels["code"]
                    totals[code] = totals.get(code, 0) + int(sample.value)
        return totals

    def serve_http(self, host: str, port: int) -> int:
        """Expose /metrics on host:port (0: a free port); returns the port."""
        server, _ = prom.start_http_server(port, addr=host, registry=self.registry)
        return server.server_port


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every call by RPC and final status code, and times it."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        rpc = KNOWN_RPCS.get(handler_call_details.method, UNKNOWN_RPC)
        if handler.unary_unary:
            return handler._replace(unary_unary=self._unary(handler.unary_unary, rpc))
        if handler.unary_stream and getattr(handler.unary_stream, "experimental_non_blocking", False):
            return handler._replace(unary_stream=self._non_blocking(handler.unary_stream, rpc))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._streaming(handler.unary_stream, rpc))
        return handler

    def _unary(self, behaviour: Callable, rpc: str) -> Callable:
        def measured(request, context):
            started = time.perf_counter()
            try:
                return behaviour(request, context)
            finally:
                self._record(rpc, context, started)
        return measured

    def _streaming(self, behaviour: Callable, rpc: str) -> Callable:
        def measured(request, context):
            started = time.perf_counter()
            try:
                yield from behaviour(request, context)
            finally:
                self._record(rpc, context, started)
        return measured

    def _non_blocking(self, behaviour: Callable, rpc: str) -> Callable:
        """A handler that sends through a callback (the health Watch) holds no worker
        thread while it waits; wrapped as a generator it would hold one for its whole life."""
        def measured(request, context, send_response_callback):
            started = time.perf_counter()
            context.add_callback(lambda: self._record(rpc, context, started))
            return behaviour(request, context, send_response_callback)
        return non_blocking(measured, behaviour)

    def _record(self, rpc: str, context: grpc.ServicerContext, started: float) -> None:
        self.metrics.answered(rpc, final_code(context), time.perf_counter() - started)


def non_blocking(wrapper: Callable, behaviour: Callable) -> Callable:
    """`wrapper` marked, as `behaviour` is, for gRPC's callback (non-blocking) streaming."""
    wrapper.experimental_non_blocking = True
    wrapper.experimental_thread_pool = getattr(behaviour, "experimental_thread_pool", None)
    return wrapper


def final_code(context: grpc.ServicerContext) -> grpc.StatusCode:
    """The status a call ended with, as its handler returns or its stream closes."""
    code = context.code()
    if code is not None:  # set by an abort (the servicer's errors, the security interceptors)
        return code
    if context.is_active():
        return grpc.StatusCode.OK
    # Ended before an answer: the client cancelled it, or its deadline passed.
    return grpc.StatusCode.DEADLINE_EXCEEDED if context.time_remaining() <= 0 else grpc.StatusCode.CANCELLED


_FIELD = re.compile(r"^([a-z][a-z0-9_]*)=(\S*)$")


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC, ISO 8601 with Z), level, logger, msg, and the
    message's trailing key=value words as fields of their own (numbers as numbers)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        message, fields = split_fields(record.getMessage())
        entry = {
            "ts": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
            **{k: v for k, v in fields.items() if k not in ("ts", "level", "logger", "msg", "exception")},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def split_fields(message: str) -> tuple[str, dict]:
    """("listening on h:1", {"version": "v", "movies": 3}) from "listening on h:1 version=v movies=3"."""
    words = message.split(" ")
    fields: dict = {}
    while words and (match := _FIELD.match(words[-1])):
        fields[match.group(1)] = _number(match.group(2))
        words.pop()
    return " ".join(words), dict(reversed(fields.items()))


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def configure_logging(level: str, fmt: str) -> None:
    """Log to stderr, one line an event: `text` (time level logger message) or `json`."""
    handler = logging.StreamHandler()
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    text.converter = time.gmtime  # UTC, as the JSON lines, and said so
    text.default_time_format, text.default_msec_format = "%Y-%m-%dT%H:%M:%S", "%s.%03dZ"
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else text)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
