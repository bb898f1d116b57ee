"""What one request may ask for; each violation is an INVALID_ARGUMENT naming the limit.

GetInfo reports these, and docs/operations.md lists them.
"""
from __future__ import annotations

from typing import Sequence

from common.limits import MAX_NAME_CHARS, MAX_NEIGHBOURS_K
from server.errors import invalid

MAX_K = MAX_NEIGHBOURS_K  # largest k (and worst_k) any request may ask for
DEFAULT_K = 10  # the k of a request that leaves it out (proto3 cannot tell 0 from absent)
MAX_BATCH = 10_000  # most titles in one batch or list field
MAX_BATCH_NEIGHBOURS = 100_000  # titles x k of one batch: ~3 MB of answer on real titles, ~0.1 s of work
MAX_RECOMMEND_TITLES = 1_000  # liked + disliked: one SVM fit grows with the square of them
MAX_STRING_CHARS = MAX_NAME_CHARS  # longest title or link name accepted, as the trainer lets in
MAX_CLOSE_MATCHES = 20  # misspelt titles one request may ask to resolve (each scans the catalogue)
EXPORT_NEIGHBOURS_PER_CHUNK = 40_000  # keeps each streamed message well under gRPC's 4 MB


def check_k(k: int, field: str = "k", minimum: int = 1) -> None:
    if not minimum <= k <= MAX_K:
        raise invalid(f"{field} must be between {minimum} and {MAX_K}, got {k}")


def check_string(field: str, value: str) -> None:
    if not value or not value.strip():
        raise invalid(f"{field} is empty")
    if len(value) > MAX_STRING_CHARS:
        raise invalid(f"{field} is {len(value)} characters long; the limit is {MAX_STRING_CHARS}")


def check_count(field: str, values: Sequence[str], minimum: int) -> None:
    if len(values) < minimum:
        raise invalid(f"{field} needs at least {minimum} title{'s' if minimum > 1 else ''}")
    if len(values) > MAX_BATCH:
        raise invalid(f"{field} has {len(values)} titles; the limit is {MAX_BATCH}")


def check_batch_neighbours(n_titles: int, k: int) -> None:
    """Titles x k of one batch, checked before any title is resolved."""
    if n_titles * k > MAX_BATCH_NEIGHBOURS:
        raise invalid(f"{n_titles:,} titles x k={k} asks for {n_titles * k:,} neighbours; the limit is "
                      f"{MAX_BATCH_NEIGHBOURS:,} a call: send fewer titles a call, or export")


def check_recommend_titles(n_liked: int, n_disliked: int) -> None:
    if n_liked + n_disliked > MAX_RECOMMEND_TITLES:
        raise invalid(f"liked and disliked have {n_liked + n_disliked:,} titles together; the limit is "
                      f"{MAX_RECOMMEND_TITLES:,} (an SVM fit grows with the square of them)")


def check_chunk_size(chunk_size: int) -> None:
    if not 0 <= chunk_size <= MAX_BATCH:
        raise invalid(f"chunk_size must be between 0 and {MAX_BATCH}, got {chunk_size}")
