"""Title resolution: what a user typed -> one catalogue title, or a helpful NOT_FOUND.

Order: exact page title; case-insensitive; the name without its "(... film)"
qualifier ("the martian" -> "The Martian (film)"); the name also without a leading
article, accents and punctuation ("Godfather" -> "The Godfather", "Amelie" ->
"Amélie"); a name cut short mid-word, when one name starts so ("interst" ->
"Interstellar (film)"); a close match that is the same name written otherwise
("Speed II" -> "Speed 2", "Aeon Flux" -> "Æon Flux (film)", "Beetle Juice" ->
"Beetlejuice"). Where a step finds several titles ("Titanic": the 1997, 1953 and 1943
films), the one with the most kept links wins (the film people mean is the one its
article says most about); a tie stays ambiguous.

A film may also be named by its id in another catalogue, "imdb:tt0111161" or
"wikidata:Q172241" (common.external_ids), where the index version knows it (the
collector keeps the ids the articles name); two films known by one id (two saved
spellings of one article) are told apart by their kept links, as titles are.

Any other close spelling, and whole words that begin one name, are asked about
(NOT_FOUND listing the close titles), never answered. `python -m bench.title_resolution`
measured why, with 800 titles of vega-movies (IMDb spellings) against the 36k catalogue:
of the 42 a plain close match would answer, 24 are another film by release year
("Fateless" -> "Faithless (1932 film)", "Alien³" -> "Alien (film)"), all among the 31
asked about now; the 11 still answered are each the film asked for.

The names and their keys are a common.title_index.TitleIndex: numpy arrays an index
version holds and the server memory-maps, no Python object per name.
"""
from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np
from rapidfuzz import fuzz, process

from movielinks.common.external_ids import EXAMPLES, id_number, id_text, parse_query
from movielinks.common.title_index import TitleIndex, fold, normalised  # noqa: F401 (re-exported)
from movielinks.common.title_index import key as title_key
from movielinks.server.errors import invalid, not_found

MAX_SUGGESTIONS = 5
# Up to this many names a close match scans every spelling (tens of ms). Beyond, it scans
# the names next to the query in four sorted orders (by the folded name and without its
# qualifier, each also reversed), CLOSE_WINDOW on each side: a misspelling keeps either
# the start or the end of the name, so the name it misspells sorts next to it in one of
# them. A few thousand spellings a call, whatever the catalogue's size.
FULL_SCAN_NAMES = 100_000
CLOSE_WINDOW = 256


_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8", "ix": "9", "x": "10"}
_LIGATURES = str.maketrans({"æ": "ae", "œ": "oe", "ß": "ss", "ø": "o", "ł": "l", "đ": "d"})
_FILLER_WORDS = {"the", "a", "an", "and", "part"}  # "&" is punctuation: "and" goes the same way


def loose_name(name: str) -> str:
    """The name as written any way that names the same film: without qualifier, case, accents,
    punctuation, spaces, articles, "and"/"&" and "part", roman numerals as digits."""
    words = normalised(name.casefold().translate(_LIGATURES)).split()
    return "".join(_ROMAN.get(w, w) for w in words if w not in _FILLER_WORDS)


def _cut_short(folded: str, name: str) -> bool:
    """Whether `folded`, a prefix of `name`, ends inside a word of it, and not after a sequel's
    number ("the hills have eyes ii" is no cut "The Hills Have Eyes III")."""
    words = folded.split()
    return name[len(folded):][:1].isalnum() and bool(words) and not (words[-1].isdigit() or words[-1] in _ROMAN
                                                                      or words[-1] == "i")


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted and cut for messages and logs."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


class _ExactIds:
    """name -> id of exactly that name, like a read-only dict (KeyError for another name)."""

    def __init__(self, index: TitleIndex):
        self.index = index

    def get(self, name: str, default: int | None = None) -> int | None:
        found = self.index.exact(name)
        return default if found is None else found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> int:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found


class TitleResolver:
    """Resolves names against a fixed list; ids are positions in that list."""

    def __init__(self, names: Sequence[str] | TitleIndex, what: str = "movie", weights: Sequence[int] | None = None):
        """`names` is a TitleIndex (an index version's) or the names themselves (indexed here).
        `weights` (each name's kept links) break ties between names that match alike; without them a tie is ambiguous."""
        self.what = what
        self.index = names if isinstance(names, TitleIndex) else TitleIndex.build(list(names))
        self.names = self.index.names
        self.weights = None if weights is None else np.asarray(weights, dtype=np.int64)
        self.exact = _ExactIds(self.index)
        self._all_spellings: tuple[list[str], list[list[int]]] | None = None
        self._last_close: tuple[str, list[tuple[int, float]]] | None = None  # (query, _close's pairs), one tuple: thread-safe

    def resolve(self, query: str, *, fuzzy: bool = True, close: bool = True) -> tuple[int, str]:
        """(id, how it matched: exact | imdb | wikidata | case_insensitive | qualifier | normalised | prefix | close).

        Raises ServiceError NOT_FOUND naming up to five close names. Close matching
        scans every name (tens of ms on a large catalogue): with `close` False a query
        that would need it raises INVALID_ARGUMENT instead.
        """
        found, match, _ = self.lookup(query, fuzzy=fuzzy, close=close)
        return found, match

    def lookup(self, query: str, *, fuzzy: bool = True, close: bool = True) -> tuple[int, str, list[int]]:
        """resolve, and the other ids that matched as well and lost on weight (at most five)."""
        exact = self.exact.get(query)
        if exact is not None:
            return exact, "exact", []
        external = parse_query(query) if self.what == "movie" else None
        if external is not None:
            return self._by_external_id(query, *external)
        folded = query.strip().casefold()
        candidates = self.index.ids("lower", folded)
        steps = [("case_insensitive", candidates)]
        if fuzzy:
            steps += [("qualifier", self.index.ids("base", folded)),
                      ("normalised", self.index.ids("normal", normalised(query)))]
        for match, found in steps:
            if found:
                chosen = self._most_linked(found)
                if chosen is None:
                    candidates = found
                    break
                return chosen, match, [i for i in self._by_weight(found) if i != chosen][:MAX_SUGGESTIONS]
        if fuzzy and not candidates:
            prefixed = self._prefixed(folded, limit=2)
            # A name cut short ("interst") is that name; whole words that begin one other name
            # ("Subway" -> "Subway Sadie", "Resident Evil" -> "Resident Evil: Extinction") are most
            # often a film the catalogue lacks: asked about, as a close spelling is.
            if len(prefixed) == 1 and _cut_short(folded, self.names[prefixed[0]].casefold()):
                return prefixed[0], "prefix", []
            if not prefixed and not close:
                raise invalid(
                    f"{self.what} {shown(query)} is not a catalogue title, and this request has used up its "
                    "close (misspelt) matches; send exact titles (LookupTitle resolves one)"
                )
            close = [] if prefixed else self._close(folded, 2)
            clear = len(close) == 1 or (len(close) == 2 and close[0][1] - close[1][1] > 0.05)
            # A close spelling of another name is most often another film ("Amelie": not in the
            # catalogue; "Amelia (film)" is): only the same name written otherwise is answered.
            if clear and loose_name(query) == loose_name(self.names[close[0][0]]):
                return close[0][0], "close", []
        raise not_found(self._unknown_message(query, folded, candidates))

    def _by_external_id(self, query: str, scheme: str, value: str) -> tuple[int, str, list[int]]:
        """lookup of "imdb:tt0111161" or "wikidata:Q172241": INVALID_ARGUMENT for no such id,
        NOT_FOUND for one no film of the version has."""
        number = id_number(scheme, value)
        if number is None:
            raise invalid(f"{shown(query)} is no {scheme} id; write one as {EXAMPLES[scheme]}")
        found = self.index.with_external_id(scheme, number)
        if not found:
            known = self.index.knows(scheme)
            why = (f"{known:,} of its {len(self.names):,} movies have one" if known else
                   "its films' records named none: the collector keeps the ids the articles name; train and index "
                   "such records")
            raise not_found(f"no movie with {scheme} id {id_text(scheme, number)} in this index version ({why})")
        chosen = self._most_linked(found)
        if chosen is None:
            options = "; ".join(self.names[i] for i in found[:MAX_SUGGESTIONS])
            raise not_found(f"{scheme} id {id_text(scheme, number)} names several movies alike; use the exact "
                            f"title: {options}")
        return chosen, scheme, [i for i in self._by_weight(found) if i != chosen][:MAX_SUGGESTIONS]

    def matching(self, query: str) -> list[int]:
        """Ids whose name is `query` up to case, qualifier, leading article, accents and punctuation
        ("godfather" -> The Godfather), most kept links first."""
        folded = query.strip().casefold()
        found = {*self.index.ids("lower", folded), *self.index.ids("base", folded),
                 *self.index.ids("normal", normalised(query))}
        return self._by_weight(sorted(found))

    def weight(self, i: int) -> int:
        """The kept links of id `i` (0 without weights)."""
        return 0 if self.weights is None else int(self.weights[i])

    def _by_weight(self, ids: list[int]) -> list[int]:
        return sorted(ids, key=lambda i: -self.weights[i]) if self.weights is not None else list(ids)

    def _most_linked(self, ids: list[int]) -> int | None:
        """The one id of `ids`, or the one with the largest weight; None for a tie."""
        if len(ids) == 1:
            return ids[0]
        if self.weights is None:
            return None
        ranked = self._by_weight(ids)
        return ranked[0] if self.weights[ranked[0]] > self.weights[ranked[1]] else None

    def _prefixed(self, folded: str, limit: int) -> list[int]:
        if not folded:
            return []
        keys, order = self.index.sorted_keys("lower"), self.index.order("lower")
        start = bisect.bisect_left(keys, folded)
        found = []
        for j in range(start, min(start + limit, len(keys))):
            if not keys[j].startswith(folded):
                break
            found.append(int(order[j]))
        return found

    def _close(self, folded: str, n: int) -> list[tuple[int, float]]:
        """Up to n (at most MAX_SUGGESTIONS) (id, similarity) pairs, best first, similarity
        (normalised Indel, as difflib's ratio) >= 0.75, over full names and names without their
        qualifier (every one up to FULL_SCAN_NAMES names, else those sorted next to `folded`).
        The last query's pairs are kept: an unknown title is scanned for once, not once to
        resolve it and again to name the close titles in its error (a scan of every spelling each)."""
        if not folded:
            return []
        last = self._last_close
        if last is None or last[0] != folded:
            spellings, spelling_ids = self._spellings(folded)
            matches = process.extract(folded, spellings, scorer=fuzz.ratio, limit=4 * MAX_SUGGESTIONS,
                                      score_cutoff=75)
            scored: dict[int, float] = {}
            for _, score, at in matches:
                for i in spelling_ids[at]:
                    scored[i] = max(score / 100, scored.get(i, 0.0))
            last = self._last_close = (folded, sorted(scored.items(), key=lambda pair: -pair[1])[:MAX_SUGGESTIONS])
        return last[1][:n]

    def _spellings(self, folded: str) -> tuple[list[str], list[list[int]]]:
        """The spellings a close match of `folded` is measured against, and the ids each stands for."""
        if len(self.names) <= FULL_SCAN_NAMES:
            if self._all_spellings is None:
                lower: dict[str, list[int]] = {}
                base: dict[str, list[int]] = {}
                for i, name in enumerate(self.names):
                    lower.setdefault(name.casefold(), []).append(i)
                    base.setdefault(title_key("base", name), []).append(i)
                self._all_spellings = (list(lower) + list(base), list(lower.values()) + list(base.values()))
            return self._all_spellings
        near: dict[str, list[int]] = {}
        for kind in ("lower", "base", "lower_reversed", "base_reversed"):
            keys, order = self.index.sorted_keys(kind), self.index.order(kind)
            at = bisect.bisect_left(keys, folded[::-1] if kind.endswith("_reversed") else folded)
            for j in range(max(0, at - CLOSE_WINDOW), min(len(keys), at + CLOSE_WINDOW)):
                i = int(order[j])
                spelling = title_key(kind.removesuffix("_reversed"), self.names[i])
                if i not in near.setdefault(spelling, []):
                    near[spelling].append(i)
        return list(near), list(near.values())

    def suggestions(self, folded: str) -> list[str]:
        """Up to five names close to `folded`: prefix matches first (the most linked first), then similar spellings."""
        ids = self._by_weight(self._prefixed(folded, MAX_SUGGESTIONS))
        ids += [i for i, _ in self._close(folded, MAX_SUGGESTIONS) if i not in ids]
        return [self.names[i] for i in ids[:MAX_SUGGESTIONS]]

    def _unknown_message(self, query: str, folded: str, ambiguous: list[int]) -> str:
        if len(ambiguous) > 1:
            options = [self.names[i] for i in ambiguous[:MAX_SUGGESTIONS]]
            return f"{self.what} {shown(query)} is ambiguous; use the exact title: {'; '.join(options)}"
        close = self.suggestions(folded)
        similar = "title" if self.what == "movie" else f"{self.what} name"
        # Close spellings are listed, never taken: most are other films (see the module's docstring).
        hint = (f": not in the catalogue under that name; did you mean: {'; '.join(close)}" if close
                else f"; no similar {similar}")
        if self.what == "link":  # link names are page titles nobody guesses exactly
            hint += "; list link names with `client links --search TEXT` (the SearchNames RPC)"
        return f"unknown {self.what} {shown(query)}{hint}"
