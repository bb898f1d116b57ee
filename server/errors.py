"""The server's one error type, mapped to a gRPC status in exactly one place (servicer)."""
from __future__ import annotations

import enum


class Kind(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"


class ServiceError(Exception):
    """A request the service cannot answer, with what the caller can do about it."""

    def __init__(self, kind: Kind, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def invalid(message: str) -> ServiceError:
    return ServiceError(Kind.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(Kind.NOT_FOUND, message)
