"""The film record: the collector's artifact and the trainer's ndjson input, one JSON array a line.

    [page_title, infobox, outgoing_links, rotten_tomatoes_percent, rating_out_of_10]
    [page_title, infobox, outgoing_links, rotten_tomatoes_percent, rating_out_of_10, link_kinds]
    [page_title, infobox, outgoing_links, rotten_tomatoes_percent, rating_out_of_10, link_kinds, ids]

The five-element record is the notebook's format and stays readable. The optional sixth
element says where in the article each link occurs: a string as long as the link list,
one kind code per link occurrence (LINK_KINDS), so "bbri" is two links of the prose, one
of a citation and one of the infobox. A record without it has links of unknown kinds
(null there when the seventh follows). The optional seventh is the film's ids in other
catalogues, {"imdb": "tt0034583", "wikidata": "Q132689"} (common.external_ids), either
key left out where the article does not name it; written only when the film has one.
"""
from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import math
import re
from pathlib import Path
from typing import IO, Any

from movielinks.common.external_ids import ids_problem
from movielinks.common.limits import name_problem, names_are_fine
INFOBOX, BODY, REFERENCE, NAVBOX, CATEGORY = "i", "b", "r", "n", "c"
LINK_KINDS = {INFOBOX: "infobox", BODY: "body", REFERENCE: "references", NAVBOX: "navbox", CATEGORY: "categories"}
# Where a link is no reason a person accepts: cite templates, reference lists, navigation boxes.
CITATION_KINDS = frozenset((REFERENCE, NAVBOX))
# One bit a kind, so that a (film, link) pair's kinds, over all its occurrences, are one byte; 0: not recorded.
KIND_BITS = {code: 1 << n for n, code in enumerate(LINK_KINDS)}
CITATION_BITS = sum(KIND_BITS[code] for code in CITATION_KINDS)

SHAPE = "expected a JSON array [title, infobox, links, rotten_tomatoes, rating(, link_kinds(, ids))]"


@dataclasses.dataclass
class FilmRecord:
    """One film: its page title, infobox fields, outgoing links (repeats included, in page
    order), Rotten Tomatoes percent ("87%"), x/10 average ("7.2/10"), each link's kind, and
    its ids in other catalogues ({"imdb": "tt0034583", "wikidata": "Q132689"}, common.external_ids)."""

    title: str
    infobox: dict[str, str]
    links: list[str]
    rotten_tomatoes: str | None = None
    rating: str | None = None
    kinds: str | None = None  # one LINK_KINDS code per link, or None: not recorded
    ids: dict[str, str] = dataclasses.field(default_factory=dict)  # scheme -> canonical id

    def to_json_line(self) -> str:
        row = [self.title, self.infobox, self.links, self.rotten_tomatoes, self.rating]
        if self.kinds is not None or self.ids:
            row.append(self.kinds)
        if self.ids:
            row.append(self.ids)
        return json.dumps(row, ensure_ascii=False) + "\n"

    def cited_only(self) -> set[str]:
        """The links that occur only in citations or navigation boxes (CITATION_KINDS) of
        this article; empty when the kinds are not recorded."""
        if self.kinds is None:
            return set()
        cited, elsewhere = set(), set()
        for link, kind in zip(self.links, self.kinds):
            (cited if kind in CITATION_KINDS else elsewhere).add(link)
        return cited - elsewhere


def kind_codes(names: str) -> str:
    """The kind codes of comma-separated kind names ("body,infobox" -> "bi"); "" for "".

    Raises ValueError naming the unknown ones."""
    codes = {name: code for code, name in LINK_KINDS.items()}
    wanted = [name.strip().lower() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in codes]
    if unknown:
        raise ValueError(f"unknown link kinds {', '.join(unknown)}; choose from {', '.join(LINK_KINDS.values())}")
    return "".join(codes[name] for name in wanted)


def kind_weights(spec: str) -> dict[str, float]:
    """Each kind code's training weight from "infobox=1,body=1,references=0.2" ({} for "");
    a kind not named weighs 1.

    Raises ValueError for an unknown kind, a kind named twice, a weight that is not a finite
    number >= 0, or every kind at 0 (nothing left to train on)."""
    codes = {name: code for code, name in LINK_KINDS.items()}
    weights: dict[str, float] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, equals, value = (part.strip() for part in item.partition("="))
        if not equals:
            raise ValueError(f"expected KIND=WEIGHT, got {item!r}")
        if name.lower() not in codes:
            raise ValueError(f"unknown link kind {name!r}; choose from {', '.join(LINK_KINDS.values())}")
        code = codes[name.lower()]
        if code in weights:
            raise ValueError(f"{name} is given twice")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{name}'s weight {value!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{name}'s weight must be a finite number >= 0, got {value}")
        weights[code] = weight
    if weights and not any(weights.get(code, 1.0) for code in LINK_KINDS):
        raise ValueError("every kind weighs 0: nothing would be trained on")
    return weights


def of_kinds(film: FilmRecord, codes: str) -> FilmRecord:
    """The film with only its links of the kinds `codes`; a film without kinds (or `codes`
    empty) keeps every link."""
    if not codes or film.kinds is None:
        return film
    kept = [i for i, kind in enumerate(film.kinds) if kind in codes]
    return dataclasses.replace(film, links=[film.links[i] for i in kept], kinds="".join(film.kinds[i] for i in kept))


def record_problem(record: object) -> str | None:
    """What is wrong with a parsed JSON line as a film record, or None."""
    if not isinstance(record, list) or len(record) not in (5, 6, 7):
        return SHAPE
    title, infobox, links, rotten, rating = record[:5]
    if not isinstance(title, str) or not title.strip():
        return "empty or non-string title"
    if infobox is not None and not isinstance(infobox, dict):
        return "infobox is not an object"
    if not isinstance(links, list) or not all(map(isinstance, links, itertools.repeat(str))):
        return "links is not a list of strings"
    if not all(v is None or isinstance(v, str) for v in (rotten, rating)):
        return "rotten_tomatoes and rating must be strings or null"
    if len(record) == 7 and (problem := ids_problem(record[6])):
        return problem
    if len(record) >= 6 and record[5] is not None:
        kinds = record[5]
        if not isinstance(kinds, str) or len(kinds) != len(links):
            return f"link_kinds must be a string of one kind code per link ({len(links)} links)"
        unknown = set(kinds) - LINK_KINDS.keys()
        if unknown:
            return f"unknown link kind codes {''.join(sorted(unknown))!r}; known: {''.join(LINK_KINDS)}"
    return None


def from_record(record: list, infobox: dict[str, str] | None = None) -> FilmRecord:
    """The FilmRecord of a parsed line that `record_problem` accepts; `infobox` replaces the
    line's own (already converted to strings) when given."""
    title, raw_infobox, links, rotten, rating = record[:5]
    if infobox is None:
        infobox = {str(k): str(v) for k, v in (raw_infobox or {}).items()}
    kinds = record[5] if len(record) >= 6 else None
    return FilmRecord(title.strip(), infobox, links, rotten, rating, kinds, dict(record[6]) if len(record) == 7 else {})


def film_from_line(line: str) -> FilmRecord | str:
    """The film of one ndjson line, or what is wrong with it (not JSON, or record_problem's words)."""
    try:
        record = json.loads(line)
    except ValueError as e:
        return f"not JSON ({e})"
    return record_problem(record) or from_record(record)


def film_problem(film: FilmRecord) -> str | None:
    """What makes a film's title or one of its links no name a stage may keep (common.limits
    name_problem), naming it; None for a good film (checked in bulk first: most are)."""
    if names_are_fine(film.links) and names_are_fine((film.title,)):
        return None
    return named_problem("title", film.title) or next(
        (f"{problem} (in {_cut(film.title)})" for link in film.links if (problem := named_problem("link", link))), None)


def named_problem(what: str, name: str) -> str | None:
    """`what` and the name, cut, followed by what is wrong with it (common.limits.name_problem); None if nothing."""
    problem = name_problem(name)
    return f"{what} {_cut(name)} {problem}" if problem else None


def _cut(name: str, limit: int = 80) -> str:
    return repr(name if len(name) <= limit else name[:limit] + "…")


def open_text(path: Path) -> IO[str]:
    """A records file as text, gunzipped if its name ends in .gz (any case); a UTF-8 byte order mark
    is not data, and bytes that are not UTF-8 are replaced, as every stage reads them."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


def read_films(path: str | Path, error: type[Exception], what: str) -> list[FilmRecord]:
    """Every film of a records file (.ndjson, or .ndjson.gz), each title once. The first line that
    is no film record, a title given twice, or an unreadable file raises `error` (the stage's own
    type) naming the line and saying the file was `what`."""
    path = Path(path)
    films, lines = [], {}
    try:
        with open_text(path) as f:
            for number, line in enumerate(f, 1):
                film = film_from_line(line) if line.strip() else None
                if isinstance(film, str):
                    raise error(f"{path}:{number}: {film}; {what} must hold one film record a line")
                if film is not None and film.title in lines:
                    raise error(f"{path}:{number}: {film.title!r} again (first on line {lines[film.title]}); "
                                f"{what} must hold each film once")
                if film is not None:
                    lines[film.title] = number
                    films.append(film)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read {what} ({e})") from e
    return films


_MONEY = re.compile(r"^\s*(?:US)?\$\s*([\d,]+(?:\.\d+)?)\s*(million|billion)?", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_dollars(text: str | None) -> float | None:
    """'$783.1 million' -> 783100000.0, '$1.2 billion' -> 1.2e9, '$250,000' -> 250000.0; else None."""
    match = _MONEY.match(text or "")
    if not match:
        return None
    value = float(match.group(1).replace(",", ""))
    unit = (match.group(2) or "").lower()
    return value * {"million": 1e6, "billion": 1e9}.get(unit, 1.0)


def parse_percent(text: str | None) -> float | None:
    """'87%' -> 0.87; anything else -> None."""
    match = _PERCENT.match(text or "")
    if not match:
        return None
    value = float(match.group(1)) / 100
    return value if 0.0 <= value <= 1.0 else None


def film_attributes(film: FilmRecord | Any) -> dict[str, float]:
    """The numeric attributes a film carries (a FilmRecord, or anything with its infobox and
    rotten_tomatoes): rotten_tomatoes (0..1), gross and budget (USD)."""
    values = {
        "rotten_tomatoes": parse_percent(film.rotten_tomatoes),
        "gross": parse_dollars(film.infobox.get("gross")),
        "budget": parse_dollars(film.infobox.get("budget")),
    }
    return {k: v for k, v in values.items() if v is not None}
