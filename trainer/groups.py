"""What the evaluation compares neighbours against, derived from the records alone:
franchises from titles and genres from the records' links.

- **Franchise** (from titles): a title's key is the title without its Wikipedia
  qualifier ("(2009 film)"), cut at a subtitle (": ...", " - ...") and without a
  trailing sequel number (2-12, II-XII, "Part 2"), case-folded. Films that share a
  key form a franchise when there are at least two of them and at least one title
  was cut (a subtitle or a number), so "Toy Story" / "Toy Story 2" / "Toy Story 3"
  and "Star Wars (film)" / "Star Wars: The Force Awakens" are franchises, while two
  unrelated films both called "Alone" are not. It is a rule, not a catalogue:
  "Apollo 13"-like numbers past 12 are kept in the key, and "Ocean's Eleven" /
  "Ocean's Twelve" are missed.
- **Genres** (from links): in a file built like `wp_movies_us.ndjson` (see
  ../shared/data/build_wp_movies.py) a film's links are its cast (the infobox's
  "starring", in order), then its genres, then its director and distributor where
  known. A film's genres are the links after that cast prefix that are not its
  infobox director or distributor. They are known only when the dataset has this
  shape: at least GENRE_SHAPE_FRACTION of the films with a "starring" field have
  links that begin with exactly that cast. Files with every article link (the
  Oscars file) do not, and get no genre measure.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

import numpy as np

_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
_SUBTITLE = re.compile(r"\s*(?::|\s[-\u2013\u2014]\s)\s*")
_SEQUEL = re.compile(r"\s+(?:part\s+)?(?:[2-9]|1[0-2]|ii|iii|iv|v|vi|vii|viii|ix|x|xi|xii)$", re.IGNORECASE)
GENRE_SHAPE_FRACTION = 0.9


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


def franchise_groups(titles: Sequence[str]) -> list[np.ndarray]:
    """Movie ids (positions in `titles`) of each franchise, as the module docstring defines it;
    groups in order of their first member."""
    members: dict[str, list[int]] = {}
    cut_any: dict[str, bool] = {}
    for i, title in enumerate(titles):
        key, cut = franchise_key(title)
        if len(key) < 2:
            continue
        members.setdefault(key, []).append(i)
        cut_any[key] = cut_any.get(key, False) or cut
    return [np.array(ids, dtype=np.int64) for key, ids in members.items() if len(ids) >= 2 and cut_any[key]]


def film_genres(infobox: Mapping[str, str], links: Sequence[str]) -> list[str] | None:
    """The film's genres when its links have the cast-then-genres shape, else None."""
    starring = infobox.get("starring")
    start = 0
    if starring:
        joined = ""
        for i, link in enumerate(links):
            joined = link if i == 0 else f"{joined}, {link}"
            if joined == starring:
                start = i + 1
                break
            if len(joined) >= len(starring):
                return None
        else:
            return None
    extras = {infobox.get("director"), infobox.get("distributor")}
    return [link for link in links[start:] if link not in extras]


def dataset_genres(infoboxes: Iterable[Mapping[str, str]], links: Iterable[Sequence[str]]) -> list[frozenset[str]] | None:
    """Each film's genres (an empty set where none are known), or None when the dataset does not
    have the cast-then-genres shape (see the module docstring)."""
    genres, with_cast, shaped = [], 0, 0
    for infobox, film_links in zip(infoboxes, links):
        found = film_genres(infobox, film_links)
        if infobox.get("starring"):
            with_cast += 1
            shaped += found is not None
        genres.append(frozenset(found or ()))
    if with_cast == 0 or shaped < GENRE_SHAPE_FRACTION * with_cast:
        return None
    return genres
