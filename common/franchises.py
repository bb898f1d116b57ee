"""Franchises from titles: one rule for the trainer's evaluation and the server's filters.

A title's key is the title without its Wikipedia qualifier ("(2009 film)"), cut at a
subtitle (": ...", " - ...") and without a trailing sequel number (2-12, II-XII,
"Part 2"), case-folded. Films that share a key form a franchise when there are at
least two of them, at least one title was cut (a subtitle or a number), they have at
least two different titles once the qualifier is removed, and they are at least two
films (two records with the same infobox name and release year are one film). So "Toy
Story" / "Toy Story 2" / "Toy Story 3" and "Star Wars (film)" / "Star Wars: The Force
Awakens" are franchises, while two unrelated films both called "Alone" are not, nor
two films of one play ("Henry V" of 1944 and of 1989: a king's number, not a sequel's),
nor one film under two titles ("Il Postino" and "Il Postino: The Postman", both "Il
Postino: The Postman", 1994, in their infoboxes). It is a rule, not a catalogue:
"Apollo 13"-like numbers past 12 are kept in the key, and "Ocean's Eleven" / "Ocean's
Twelve" are missed.

Pure Python and numpy: the server imports it, and serving needs no TensorFlow.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from movielinks.common.records import release_year

_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
_SUBTITLE = re.compile(r"\s*(?::|\s[-\u2013\u2014]\s)\s*")
_SEQUEL = re.compile(r"\s+(?:part\s+)?(?:[2-9]|1[0-2]|ii|iii|iv|v|vi|vii|viii|ix|x|xi|xii)$", re.IGNORECASE)


def franchise_key(title: str) -> tuple[str, bool]:
    """(key, cut): the title's franchise key and whether a subtitle or sequel number was removed."""
    name = _QUALIFIER.sub("", title).strip() or title.strip()
    head = _SUBTITLE.split(name, maxsplit=1)[0].strip()
    cut = bool(head) and head != name
    head = head or name
    sequel = _SEQUEL.search(head)
    if sequel and sequel.start() > 0:
        head, cut = head[: sequel.start()].strip(), True
    return head.casefold(), cut


def franchise_groups(titles: Sequence[str], films: Sequence[str | None] | None = None) -> list[np.ndarray]:
    """Movie ids (positions in `titles`) of each franchise, as the module docstring defines it;
    groups in order of their first member, ids ascending. With `films` (each record's
    `film_identity`), two records of the same film count as one."""
    members: dict[str, list[int]] = {}
    cut_any: dict[str, bool] = {}
    names: dict[str, set[str]] = {}
    distinct: dict[str, set[str]] = {}  # the films of each key
    for i, title in enumerate(titles):
        key, cut = franchise_key(title)
        if len(key) < 2:
            continue
        members.setdefault(key, []).append(i)
        cut_any[key] = cut_any.get(key, False) or cut
        name = _QUALIFIER.sub("", title).strip().casefold()
        names.setdefault(key, set()).add(name)
        distinct.setdefault(key, set()).add((films[i] if films is not None else None) or name)
    return [np.array(ids, dtype=np.int64) for key, ids in members.items()
            if len(ids) >= 2 and cut_any[key] and len(names[key]) >= 2 and len(distinct[key]) >= 2]


def film_identity(infobox: Mapping[str, str]) -> str | None:
    """What identifies a film beyond its page title: its infobox name and release year, when both are known."""
    name, year = infobox.get("name"), release_year(infobox)
    return f"{name.strip().casefold()} ({year})" if isinstance(name, str) and name.strip() and year else None
