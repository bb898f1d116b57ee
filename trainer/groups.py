"""What the evaluation compares neighbours against, derived from the records alone: genres
from the records' links (franchises come from titles, common.franchises, the rule the
server's filters use too).

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

from typing import Iterable, Mapping, Sequence

GENRE_SHAPE_FRACTION = 0.9


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


def dataset_genres(infoboxes: Sequence[Mapping[str, str]], links: Iterable[Sequence[str]]) -> list[frozenset[str]] | None:
    """Each film's genres (an empty set where none are known), or None when the dataset does not
    have the cast-then-genres shape (see the module docstring). Without a "starring" field
    anywhere, `links` is not iterated (the trainer reads them back from the file for this)."""
    if not any(infobox.get("starring") for infobox in infoboxes):
        return None
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
