"""A film's ids in other catalogues: its IMDb title id and its Wikidata item.

Services that call us keep their own catalogues keyed by these, so a film can be named by
them wherever a title is asked for ("imdb:tt0111161", "wikidata:Q172241"). The collector
finds them, the film record (common.film_record) and the movie records (common.records)
carry them as {scheme: canonical id}, and the title index (common.title_index) looks them up
by number. This module says once what a valid id is and how it is written.
"""
from __future__ import annotations

import re

IMDB, WIKIDATA = "imdb", "wikidata"
SCHEMES = (IMDB, WIKIDATA)
# An IMDb title id: "tt" and at least 7 digits (zero-padded; newer titles have 8).
_IMDB = re.compile(r"(?:tt)?(\d{1,10})")
# A Wikidata item: "Q" and a number with no leading zero.
_WIKIDATA = re.compile(r"[Qq]?([1-9]\d{0,11})")
_QUERY = re.compile(r"^\s*(imdb|wikidata)\s*:\s*(\S+)\s*$", re.IGNORECASE)
EXAMPLES = {IMDB: "imdb:tt0111161", WIKIDATA: "wikidata:Q172241"}


def canonical(scheme: str, value: str) -> str | None:
    """`value` written as the scheme writes it ("0111161" -> "tt0111161", "q42" -> "Q42"), or
    None when it is no id of `scheme`."""
    number = id_number(scheme, value)
    return None if number is None else id_text(scheme, number)


def id_number(scheme: str, value: str) -> int | None:
    """The number of an id ("tt0111161" -> 111161, "Q42" -> 42), or None when `value` is none of
    `scheme`'s ids (or the scheme is unknown). The title index keeps ids as these numbers."""
    if not isinstance(value, str):
        return None
    pattern = _IMDB if scheme == IMDB else _WIKIDATA if scheme == WIKIDATA else None
    match = pattern.fullmatch(value.strip()) if pattern else None
    number = int(match.group(1)) if match else 0
    return number or None


def id_text(scheme: str, number: int) -> str:
    """The id of a number as the scheme writes it: IMDb's zero-padded to 7 digits, Wikidata's Q42."""
    return f"tt{number:07d}" if scheme == IMDB else f"Q{number}"


def ids_problem(ids: object) -> str | None:
    """What is wrong with a record's ids ({scheme: id}), or None."""
    if not isinstance(ids, dict):
        return "ids must be an object {\"imdb\": \"tt...\", \"wikidata\": \"Q...\"}"
    for scheme, value in ids.items():
        if scheme not in SCHEMES:
            return f"unknown id scheme {scheme!r}; known: {', '.join(SCHEMES)}"
        if canonical(scheme, value) != value:
            return f"{scheme} id {value!r} is not one ({EXAMPLES[scheme].split(':', 1)[1]} is)"
    return None


def parse_query(text: str) -> tuple[str, str] | None:
    """(scheme, the id as written after it) when `text` names a film by an id ("imdb:tt0111161"),
    else None: the text is a title."""
    match = _QUERY.match(text)
    return (match.group(1).lower(), match.group(2)) if match else None
