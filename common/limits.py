"""Limits every stage shares: a name the trainer lets into a run is one the server can be asked for."""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

MAX_NAME_CHARS = 500  # longest movie title or link name, in the trainer's input and in any request
MAX_NEIGHBOURS_K = 1000  # most neighbours a movie may be asked for: by a request, or by `indexer export --k`


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a movie title or link name, or None when it can.

    Empty, longer than MAX_NAME_CHARS, or holding a control character (a tab, a
    newline, NUL, ...): such a name could not be asked for, shown or exported cleanly.
    """
    if not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name):,} characters long; the limit is {MAX_NAME_CHARS}"
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"holds the control character U+{ord(control):04X}"
    return None


# The characters of Unicode category Cc, those name_problem refuses.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def names_are_fine(names: Sequence[str]) -> bool:
    """True when no name has a name_problem, found by a few C-speed passes over them all
    (a million films have 30 M link names); False: look at each name for the problem."""
    joined = "".join(names)
    return (all(map(str.strip, names))
            and (len(joined) <= MAX_NAME_CHARS or max(map(len, names)) <= MAX_NAME_CHARS)
            and (joined.isprintable() or not _CONTROL.search(joined)))
