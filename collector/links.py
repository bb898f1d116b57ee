"""Link targets normalised as MediaWiki does, and which namespaces a film's links may point into.

Kept: main-namespace articles and `Category:` pages. Left out: every other
namespace (File, Template, Help, Wikipedia, ...), interlanguage and interwiki
links, links to a section of the page itself.
"""
from __future__ import annotations

import dataclasses
import html
import re
import urllib.parse

# English Wikipedia's namespace names and aliases (lower case). A dump's own
# <siteinfo> adds the names of its wiki (Kategorie, Datei, ...).
_ENGLISH_NAMESPACES = {
    "media": "Media", "special": "Special", "talk": "Talk", "user": "User", "user talk": "User talk",
    "wikipedia": "Wikipedia", "wikipedia talk": "Wikipedia talk", "project": "Project",
    "project talk": "Project talk", "wp": "Wikipedia", "wt": "Wikipedia talk", "file": "File",
    "file talk": "File talk", "image": "File", "image talk": "File talk", "mediawiki": "MediaWiki",
    "mediawiki talk": "MediaWiki talk", "template": "Template", "template talk": "Template talk",
    "help": "Help", "help talk": "Help talk", "category": "Category", "category talk": "Category talk",
    "portal": "Portal", "portal talk": "Portal talk", "draft": "Draft", "draft talk": "Draft talk",
    "timedtext": "TimedText", "timedtext talk": "TimedText talk", "module": "Module",
    "module talk": "Module talk", "book": "Book", "book talk": "Book talk", "gadget": "Gadget",
    "gadget talk": "Gadget talk", "gadget definition": "Gadget definition",
    "gadget definition talk": "Gadget definition talk", "event": "Event", "event talk": "Event talk",
    "topic": "Topic", "mos": "MOS", "education program": "Education Program",
}

# Interwiki prefixes of the Wikimedia projects (any case); a lower-case code such
# as "de", "zh-yue" or "simple" is taken for an interlanguage link.
_INTERWIKI = {
    "wikt", "wiktionary", "commons", "c", "s", "wikisource", "q", "wikiquote", "n", "wikinews", "b",
    "wikibooks", "v", "wikiversity", "voy", "wikivoyage", "species", "wikispecies", "d", "wikidata", "m",
    "meta", "metawikimedia", "mw", "mediawikiwiki", "foundation", "wmf", "w", "phab", "simple", "outreach",
    "incubator", "iarchive", "imdbname", "imdbtitle", "doi", "google", "wikimedia", "f", "l",
}
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")
_SPACES = re.compile(r"[\s_\u00a0]+")
_INVALID = re.compile(r"[\[\]{}|<>]")


@dataclasses.dataclass(frozen=True)
class Namespaces:
    """A wiki's namespace names: lower-case name or alias -> canonical name, and which one is Category."""

    names: dict[str, str]
    category: str = "Category"

    @classmethod
    def english(cls) -> "Namespaces":
        return cls(dict(_ENGLISH_NAMESPACES))

    def with_site_names(self, names_by_key: dict[int, str]) -> "Namespaces":
        """These namespaces plus those a dump's <siteinfo> declares (key 14 is Category)."""
        names = dict(self.names)
        for key, name in names_by_key.items():
            if key != 0 and name:
                names[name.lower()] = name
        return Namespaces(names, names_by_key.get(14) or self.category)


def normalise_title(title: str) -> str:
    """A page title as MediaWiki stores it: underscores as spaces, one space at most, first letter upper case."""
    title = _SPACES.sub(" ", title).strip()
    return title[:1].upper() + title[1:]


def normalise_link(target: str, namespaces: Namespaces) -> str | None:
    """The page a wikilink target points to, or None when it is not kept (see the module docstring)."""
    target = html.unescape(target)
    if "%" in target:
        target = urllib.parse.unquote(target)
    target = _SPACES.sub(" ", target).strip()
    target = target[1:].lstrip() if target.startswith(":") else target
    target = target.split("#", 1)[0].strip()
    if not target or _INVALID.search(target):
        return None
    if ":" in target:
        prefix, rest = (part.strip() for part in target.split(":", 1))
        canonical = namespaces.names.get(prefix.lower())
        if canonical is not None:
            if canonical not in (namespaces.category, "Category") or not rest:
                return None
            return f"{namespaces.category}:{normalise_title(rest)}"
        if prefix.lower() in _INTERWIKI or _LANGUAGE_CODE.fullmatch(prefix):
            return None
    return normalise_title(target)
