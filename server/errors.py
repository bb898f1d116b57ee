"""The server's one error type. Its kind is mapped once to a gRPC status (server.servicer)
and once to the command's exit code (server.cli)."""
from __future__ import annotations

import enum
from typing import Callable


class Kind(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"  # the request is fine; what it asks for is not served (a useless model)
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    STOPPED = "STOPPED"  # the caller cancelled or its deadline passed: the work stopped before its end
    CANNOT_START = "CANNOT_START"  # a bad index, TLS or token file, a port in use: the process exits 2


class ServiceError(Exception):
    """A request the service cannot answer, or a server that cannot start, with what the caller can do about it."""

    def __init__(self, kind: Kind, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def invalid(message: str) -> ServiceError:
    return ServiceError(Kind.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(Kind.NOT_FOUND, message)


def cannot_start(message: str) -> ServiceError:
    return ServiceError(Kind.CANNOT_START, message)


def check_alive(alive: Callable[[], bool], call: str) -> None:
    """ServiceError STOPPED once `alive()` says the caller is gone (cancelled, or past its deadline)."""
    if not alive():
        raise ServiceError(Kind.STOPPED, f"{call} stopped: the call was cancelled or passed its deadline")
