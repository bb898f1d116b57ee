"""Bounds on the HTTP port's connections, against clients that open many and never finish a request.

uvicorn holds a connection for as long as its client takes to send a request's head (it times out
only idle keep-alive connections), so 1,100 connections that each send half a head took every file
descriptor of a process limited to 1,024: gRPC, health and the reload watcher failed with them. Here:

- a request's head must arrive within `head_timeout_s` of the connection (or of the previous
  response), its body within `body_timeout_s` after that, or the connection is closed;
- a client that stops reading its answer for `stall_timeout_s` (the socket's buffers full) is
  disconnected: an export it never reads ends there, and frees its stream slot, as a gRPC
  stream's deadline does;
- at most `max_connections` are open at once; past them a new one is closed as soon as it is
  accepted, so the process keeps RESERVED_DESCRIPTORS descriptors for gRPC, the watcher and the
  index files whatever the HTTP port receives (connection_limit);
- a storm is logged once when it begins and once when it ends, with its counts, never a line a
  connection.
"""
from __future__ import annotations

import asyncio
import logging
import resource
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("movielinks.gateway")

HEAD_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0  # a 16 MB body at 300 kB/s
STALL_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 1000
RESERVED_DESCRIPTORS = 256  # gRPC's connections, the watcher, index and log files
STORM_QUIET_S = 2.0  # a storm has ended once nothing was refused or timed out for this long


def connection_limit(wanted: int = MAX_CONNECTIONS) -> int:
    """How many HTTP connections this process may hold: `wanted`, less when the descriptor limit
    (raised to its hard limit first) would otherwise leave fewer than RESERVED_DESCRIPTORS free."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_DESCRIPTORS, soft // 2))


class ConnectionGuard:
    """The HTTP port's open connections, counted, and what was refused or cut, logged per storm."""

    def __init__(self, max_connections: int, head_timeout_s: float = HEAD_TIMEOUT_S,
                 body_timeout_s: float = BODY_TIMEOUT_S, stall_timeout_s: float = STALL_TIMEOUT_S):
        self.max_connections = max_connections
        self.head_timeout_s = head_timeout_s
        self.body_timeout_s = body_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.open = 0
        self.refused = 0  # in the storm going on (0: none)
        self.timed_out = 0
        self._last_event = 0.0
        self._watching: asyncio.TimerHandle | None = None

    def admit(self, loop: asyncio.AbstractEventLoop) -> bool:
        if self.open >= self.max_connections:
            self._storm(loop, refused=1)
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def too_slow(self, loop: asyncio.AbstractEventLoop) -> None:
        self._storm(loop, timed_out=1)

    def _storm(self, loop: asyncio.AbstractEventLoop, refused: int = 0, timed_out: int = 0) -> None:
        if self._watching is None:
            log.warning("HTTP port: %s; closing connections over %d, slower than %g s to send a request head or "
                        "not reading for %g s (one line when this ends)", "connections at the limit" if refused else
                        "clients too slow to send or read", self.max_connections, self.head_timeout_s,
                        self.stall_timeout_s)
            self._watching = loop.call_later(STORM_QUIET_S, self._check_end, loop)
        self.refused += refused
        self.timed_out += timed_out
        self._last_event = time.monotonic()

    def _check_end(self, loop: asyncio.AbstractEventLoop) -> None:
        quiet_s = time.monotonic() - self._last_event
        if quiet_s < STORM_QUIET_S:
            self._watching = loop.call_later(STORM_QUIET_S - quiet_s, self._check_end, loop)
            return
        log.warning("HTTP port: the storm is over: %d connections refused at the limit of %d, %d closed for "
                    "sending or reading too slowly; %d open now", self.refused, self.max_connections, self.timed_out,
                    self.open)
        self.refused = self.timed_out = 0
        self._watching = None


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with `guard`'s limit on connections and time limits on requests
    (`bounded_h11(guard)` makes the class for one guard)."""

    guard: ConnectionGuard
    _admitted = False
    _deadline: asyncio.TimerHandle | None = None
    _stalled: asyncio.TimerHandle | None = None
    _waiting_for: object = None  # the h11 state of the peer the deadline is about

    def connection_made(self, transport) -> None:  # type: ignore[override]
        if not self.guard.admit(self.loop):
            transport.abort()  # the descriptor is free at once; no answer to write
            return
        self._admitted = True
        super().connection_made(transport)
        self._arm(h11.IDLE, self.guard.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self.guard.release()
        self._disarm()
        self._cancel_stall()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._waiting_for is h11.IDLE:
            self._arm(h11.SEND_BODY, self.guard.body_timeout_s)
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()  # the request is in; answering it has the gateway's own deadlines

    def on_response_complete(self) -> None:
        # Armed first: a pipelined request that super() goes on to read disarms it again.
        self._arm(h11.IDLE, self.guard.head_timeout_s)
        super().on_response_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._admitted and self._stalled is None:
            self._stalled = self.loop.call_later(self.guard.stall_timeout_s, self._too_slow)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_stall()

    def _cancel_stall(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _arm(self, waiting_for: object, timeout_s: float) -> None:
        self._disarm()
        self._waiting_for = waiting_for
        self._deadline = self.loop.call_later(timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _too_slow(self) -> None:
        self._disarm()
        self._cancel_stall()
        if self.transport.is_closing():
            return
        self.guard.too_slow(self.loop)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.abort()


def bounded_h11(guard: ConnectionGuard) -> type[H11Protocol]:
    """BoundedH11Protocol bound to `guard`: a class, since uvicorn makes one protocol a connection from it."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"guard": guard})
