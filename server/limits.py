"""What one request may ask for; each violation is an INVALID_ARGUMENT naming the limit.

GetInfo reports these, and docs/operations.md lists them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from movielinks.common.limits import MAX_NAME_CHARS, MAX_NEIGHBOURS_K
from movielinks.server.errors import invalid

MAX_K = MAX_NEIGHBOURS_K  # largest k (and worst_k) any request may ask for
DEFAULT_K = 10  # the k of a request that leaves it out (proto3 cannot tell 0 from absent)
MAX_BATCH = 10_000  # most titles in one batch or list field
MAX_BATCH_NEIGHBOURS = 100_000  # titles x k of one batch: ~3 MB of answer on real titles, and its work bounded alike
MAX_RECOMMEND_TITLES = 1_000  # liked + disliked: one SVM fit grows with the square of them
MAX_STRING_CHARS = MAX_NAME_CHARS  # longest title or link name accepted, as the trainer lets in
MAX_CLOSE_MATCHES = 20  # misspelt titles one request may ask to resolve (each scans the catalogue)
EXPORT_NEIGHBOURS_PER_CHUNK = 40_000  # keeps each streamed message well under gRPC's 4 MB
MAX_REASONS = 20  # shared links per result
MAX_REASONED_RESULTS = 10_000  # titles x k of one call that asks for reasons (each is a set intersection)
MAX_FILTER_LINKS = 20  # must_link_to links in one filter
MAX_YEAR = 9999  # release-year bounds are 0 (none) or 1..MAX_YEAR
MAX_FOLD_IN_LINKS = 1_000  # links of one film given by its links: an article keeps a few hundred at most
MAX_VECTOR_VALUES = 500_000  # vectors x dim of one GetVectors answer: 2 MB of floats, under gRPC's 4 MB


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


def check_reasons(reasons: int, n_results: int) -> None:
    if not 0 <= reasons <= MAX_REASONS:
        raise invalid(f"reasons must be between 0 and {MAX_REASONS}, got {reasons}")
    if reasons and n_results > MAX_REASONED_RESULTS:
        raise invalid(f"reasons for {n_results:,} results (titles x k); the limit is {MAX_REASONED_RESULTS:,} a call "
                      "when reasons are asked for")


def check_diversity(max_per_franchise: int, diversity: float) -> None:
    if not 0 <= max_per_franchise <= MAX_K:
        raise invalid(f"filter.max_per_franchise must be between 0 (no cap) and {MAX_K}, got {max_per_franchise}")
    if not 0.0 <= diversity <= 1.0:  # NaN fails both comparisons
        raise invalid(f"filter.diversity must be between 0 (none) and 1, got {diversity:g}")


def check_filter(min_year: int, max_year: int, must_link_to: Sequence[str], exclude_titles: Sequence[str]) -> None:
    for field, year in (("min_year", min_year), ("max_year", max_year)):
        if not 0 <= year <= MAX_YEAR:
            raise invalid(f"filter.{field} must be between 0 (no bound) and {MAX_YEAR}, got {year}")
    if min_year and max_year and min_year > max_year:
        raise invalid(f"filter.min_year {min_year} is after filter.max_year {max_year}")
    if len(must_link_to) > MAX_FILTER_LINKS:
        raise invalid(f"filter.must_link_to has {len(must_link_to)} links; the limit is {MAX_FILTER_LINKS}")
    check_count("filter.exclude_titles", exclude_titles, minimum=0)


def check_fold_in_links(field: str, links: Sequence[str]) -> None:
    """A film given by its links: 1..MAX_FOLD_IN_LINKS names, each a valid string."""
    if not links:
        raise invalid(f"{field} needs at least 1 link")
    if len(links) > MAX_FOLD_IN_LINKS:
        raise invalid(f"{field} has {len(links):,} links; the limit is {MAX_FOLD_IN_LINKS:,} for one film")
    for link in links:
        check_string(field, link)


def check_vector_values(n_vectors: int, dim: int) -> None:
    if n_vectors * dim > MAX_VECTOR_VALUES:
        raise invalid(f"{n_vectors:,} vectors x {dim} dimensions is {n_vectors * dim:,} values; the limit is "
                      f"{MAX_VECTOR_VALUES:,} a call: ask for fewer, or use `indexer export --vectors`")


def unit_vector(field: str, values: Sequence[float], dim: int) -> np.ndarray:
    """A caller's vector as float32 of unit length; INVALID_ARGUMENT for a wrong length, a value
    that is not finite, or all zeros."""
    vector = np.asarray(values, dtype=np.float32)
    if vector.shape != (dim,):
        raise invalid(f"{field} has {len(vector)} values; this index version's vectors have {dim}")
    if not np.isfinite(vector).all():
        raise invalid(f"{field} has a value that is not a finite number (NaN or infinity) at index "
                      f"{int(np.flatnonzero(~np.isfinite(vector))[0])}")
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    if norm == 0.0:
        raise invalid(f"{field} is all zeros: it has no direction to search")
    return (vector / norm).astype(np.float32)
