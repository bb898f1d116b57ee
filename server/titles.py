"""Title resolution: what a user typed -> one catalogue title, or a helpful NOT_FOUND.

Order: exact page title; case-insensitive; the name without its "(... film)"
qualifier ("the martian" -> "The Martian (film)"); the name also without a leading
article, accents and punctuation ("Godfather" -> "The Godfather", "Amelie" ->
"Amélie"); a unique prefix ("interst" -> "Interstellar (film)"); a close match
(typos). Where a step finds several titles ("Titanic": the 1997, 1953 and 1943
films), the one with the most kept links wins (the film people mean is the one its
article says most about); a tie stays ambiguous.

Franchises come from titles too (`franchise_key`): "Toy Story", "Toy Story 2" and
"Toy Story 3" share the key "toy story".
"""
from __future__ import annotations

import bisect
import re
import unicodedata
from typing import Sequence

from rapidfuzz import fuzz, process

from server.errors import invalid, not_found

_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
_ARTICLE = re.compile(r"^(the|a|an)\s+")
_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
# A sequel's marker at the end of a title: "2", "II", "Part 3", "Chapter Two", "Episode IV".
_SEQUEL = re.compile(r"\s+(?:(?:part|chapter|episode|vol|volume)\s+)?(?:\d+|[ivx]+|two|three|four|five)$")
MAX_SUGGESTIONS = 5


def fold(text: str) -> str:
    """Case and accents folded: "Amélie" -> "amelie"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalised(name: str) -> str:
    """The name without qualifier, leading article, accents and punctuation: "The Godfather (film)" -> "godfather"."""
    text = _PUNCTUATION.sub(" ", fold(_QUALIFIER.sub("", name)))
    return _ARTICLE.sub("", _SPACES.sub(" ", text).strip())


def franchise_key(title: str) -> str:
    """The base name films of one franchise share: "Toy Story 3" and "Toy Story (film)" -> "toy story",
    "Star Wars: The Force Awakens" -> "star wars", "The Godfather Part II" -> "godfather"."""
    base = _QUALIFIER.sub("", title).split(":")[0]
    key = normalised(base)
    while (shorter := _SEQUEL.sub("", key)) != key and shorter:
        key = shorter
    return key


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted and cut for messages and logs."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


class TitleResolver:
    """Resolves names against a fixed list; ids are positions in that list."""

    def __init__(self, names: Sequence[str], what: str = "movie", weights: Sequence[int] | None = None):
        """`weights` (each name's kept links) break ties between names that match alike; without them a tie is ambiguous."""
        self.what = what
        self.names = list(names)
        self.weights = None if weights is None else [int(w) for w in weights]
        self.exact = {name: i for i, name in enumerate(self.names)}
        self.lower: dict[str, list[int]] = {}
        self.base: dict[str, list[int]] = {}
        self.normal: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            self.lower.setdefault(name.casefold(), []).append(i)
            self.base.setdefault(_QUALIFIER.sub("", name).casefold(), []).append(i)
            self.normal.setdefault(normalised(name), []).append(i)
        # Every spelling a close match is measured against, and the ids each stands for.
        self._spellings = list(self.lower) + list(self.base)
        self._spelling_ids = list(self.lower.values()) + list(self.base.values())
        self.sorted_lower = sorted((name.casefold(), i) for i, name in enumerate(self.names))
        self._lower_keys = [key for key, _ in self.sorted_lower]

    def resolve(self, query: str, *, fuzzy: bool = True, close: bool = True) -> tuple[int, str]:
        """(id, how it matched: exact | case_insensitive | qualifier | normalised | prefix | close).

        Raises ServiceError NOT_FOUND naming up to five close names. Close matching
        scans every name (tens of ms on a large catalogue): with `close` False a query
        that would need it raises INVALID_ARGUMENT instead.
        """
        found, match, _ = self.lookup(query, fuzzy=fuzzy, close=close)
        return found, match

    def lookup(self, query: str, *, fuzzy: bool = True, close: bool = True) -> tuple[int, str, list[int]]:
        """resolve, and the other ids that matched as well and lost on weight (at most five)."""
        if query in self.exact:
            return self.exact[query], "exact", []
        folded = query.strip().casefold()
        candidates = self.lower.get(folded, [])
        steps = [("case_insensitive", candidates)]
        if fuzzy:
            steps += [("qualifier", self.base.get(folded, [])), ("normalised", self.normal.get(normalised(query), []))]
        for match, found in steps:
            if found:
                chosen = self._most_linked(found)
                if chosen is None:
                    candidates = found
                    break
                return chosen, match, [i for i in self._by_weight(found) if i != chosen][:MAX_SUGGESTIONS]
        if fuzzy and not candidates:
            prefixed = self._prefixed(folded, limit=2)
            if len(prefixed) == 1:
                return prefixed[0], "prefix", []
            if not prefixed and not close:
                raise invalid(
                    f"{self.what} {shown(query)} is not a catalogue title, and this request has used up its "
                    "close (misspelt) matches; send exact titles (LookupTitle resolves one)"
                )
            close = [] if prefixed else self._close(folded, 2)
            if len(close) == 1 or (len(close) == 2 and close[0][1] - close[1][1] > 0.05):
                return close[0][0], "close", []
        raise not_found(self._unknown_message(query, folded, candidates))

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
        start = bisect.bisect_left(self._lower_keys, folded)
        found = []
        for key, i in self.sorted_lower[start : start + limit]:
            if not key.startswith(folded):
                break
            found.append(i)
        return found

    def _close(self, folded: str, n: int) -> list[tuple[int, float]]:
        """Up to n (id, similarity) pairs, best first, similarity (normalised Indel, as
        difflib's ratio) >= 0.75, over full names and names without their qualifier."""
        if not folded:
            return []
        matches = process.extract(folded, self._spellings, scorer=fuzz.ratio, limit=4 * n, score_cutoff=75)
        scored: dict[int, float] = {}
        for _, score, at in matches:
            for i in self._spelling_ids[at]:
                scored[i] = max(score / 100, scored.get(i, 0.0))
        return sorted(scored.items(), key=lambda pair: -pair[1])[:n]

    def suggestions(self, folded: str) -> list[str]:
        """Up to five names close to `folded`: prefix matches first, then similar spellings."""
        ids = self._prefixed(folded, MAX_SUGGESTIONS)
        ids += [i for i, _ in self._close(folded, MAX_SUGGESTIONS) if i not in ids]
        return [self.names[i] for i in ids[:MAX_SUGGESTIONS]]

    def _unknown_message(self, query: str, folded: str, ambiguous: list[int]) -> str:
        if len(ambiguous) > 1:
            options = [self.names[i] for i in ambiguous[:MAX_SUGGESTIONS]]
            return f"{self.what} {shown(query)} is ambiguous; use the exact title: {'; '.join(options)}"
        close = self.suggestions(folded)
        similar = "title" if self.what == "movie" else f"{self.what} name"
        hint = f"; did you mean: {'; '.join(close)}" if close else f"; no similar {similar}"
        if self.what == "link":  # link names are page titles nobody guesses exactly
            hint += "; list link names with `client links --search TEXT` (the SearchNames RPC)"
        return f"unknown {self.what} {shown(query)}{hint}"
