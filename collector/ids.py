"""A film's ids in other catalogues, as its article names them (common.external_ids).

- IMDb: the article's `{{IMDb title}}` call (wikitext, or its arguments in Parsoid HTML),
  or in rendered HTML the imdb.com/title/tt... link that call renders: "Casablanca at the
  Internet Movie Database" (later "... at IMDb"). IMDb links inside citations are left out:
  they are as often another film's page ("Casablanca (1955)", a television remake) as the
  film's own, and no id is better than a wrong one.
- Wikidata: the page's "Wikidata item" link, which rendered pages saved from the site carry
  (`<li id="t-wikibase">`). A dump's wikitext holds none.
"""
from __future__ import annotations

import itertools
import re

from movielinks.common.external_ids import IMDB, WIKIDATA, canonical

# The template and its redirects ("IMDb film", "IMDB title", "Imdb movie").
IMDB_TEMPLATES = frozenset(("imdb title", "imdb film", "imdb movie"))
_IMDB_CALL = re.compile(r"\{\{\s*imdb[ _]+(?:title|film|movie)\s*\|([^{}]*)\}\}", re.IGNORECASE)
_IMDB_HREF = re.compile(r"imdb\.com/title/(tt\d+)")
_WIKIDATA_HREF = re.compile(r"wikidata\.org/wiki/(Q\d+)")
_NAMES_IMDB = re.compile(r"\bimdb\b|internet movie database", re.IGNORECASE)


def imdb_from_template_params(params: dict[str, str]) -> str | None:
    """The IMDb id of an `{{IMDb title}}` call's arguments (`id=` or the first positional,
    "0034583" or "tt0034583"), canonical, or None when it names none (the template then reads
    Wikidata)."""
    value = params.get("id") or params.get("1") or ""
    return canonical(IMDB, value.strip()) if value.strip() else None


def imdb_from_wikitext(text: str, citations: list[tuple[int, int]]) -> str | None:
    """The id of the first `{{IMDb title}}` call of `text` outside the `citations` spans
    (start, end): a call inside a <ref> cites another film as often as this one."""
    for match in _IMDB_CALL.finditer(text):
        if any(start <= match.start() < end for start, end in citations):
            continue
        params, position = {}, 0
        for part in match.group(1).split("|"):
            name, equals, value = part.partition("=")
            if equals:
                params[name.strip().lower()] = value
            else:
                position += 1
                params[str(position)] = part
        found = imdb_from_template_params(params)
        if found:
            return found
    return None


def ids_from_rendered(document, content) -> dict[str, str]:
    """{scheme: id} of a rendered page: the IMDb link `{{IMDb title}}` renders (outside
    citations, in a line that names IMDb), and the page's Wikidata item link."""
    ids = {}
    for anchor in content.iter("a"):
        found = _IMDB_HREF.search(anchor.get("href") or "")
        if found and not _in_citation(anchor, content) and _NAMES_IMDB.search(_line_of(anchor).text_content()):
            imdb = canonical(IMDB, found.group(1))
            if imdb:
                ids[IMDB] = imdb
                break
    for anchor in document.xpath("//li[@id='t-wikibase']//a[@href]"):
        found = _WIKIDATA_HREF.search(anchor.get("href"))
        wikidata = canonical(WIKIDATA, found.group(1)) if found else None
        if wikidata:
            ids[WIKIDATA] = wikidata
            break
    return ids


def imdb_from_hrefs(element) -> str | None:
    """The first imdb.com/title link under `element` (what a Parsoid `{{IMDb title}}` call
    without an id rendered from Wikidata), canonical, or None."""
    for anchor in element.iter("a"):
        found = _IMDB_HREF.search(anchor.get("href") or "")
        imdb = canonical(IMDB, found.group(1)) if found else None
        if imdb:
            return imdb
    return None


_CITATION_CLASSES = frozenset(("reference", "references", "reflist", "refbegin", "citation", "mw-references",
                               "reference-text"))


def _in_citation(anchor, stop) -> bool:
    for element in itertools.chain((anchor,), anchor.iterancestors()):
        if element is stop:
            return False
        if element.tag == "cite" or set((element.get("class") or "").split()) & _CITATION_CLASSES:
            return True
    return False


def _line_of(anchor):
    """The list item (or paragraph) an external link is written in."""
    for element in anchor.iterancestors():
        if element.tag in ("li", "p", "dd", "td"):
            return element
    return anchor
