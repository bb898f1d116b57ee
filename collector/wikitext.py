"""A film record from an article's wikitext (mwparserfromhell), and the cheap test that comes first.

A film is a page whose wikitext has the `Infobox film` template, exact name
(either first-letter case): `Infobox film awards` and `Infobox film festival`
are other templates. Links are every wikilink of the article, as the notebook
kept them: repeats included, links inside template arguments, references and
image captions included. Each link's kind (common.film_record) says where it is: the
film infobox, a citation (inside <ref>, a cite template, or a section such as
References or External links), a navigation box called in the text, a category, or the
prose ("body").
"""
from __future__ import annotations

import re

import mwparserfromhell
from mwparserfromhell import nodes
from mwparserfromhell.wikicode import Wikicode

from movielinks.collector.ids import imdb_from_wikitext
from movielinks.collector.links import Namespaces, normalise_link, normalise_title
from movielinks.collector.record import ratings_from_text
from movielinks.common.external_ids import IMDB
from movielinks.common.film_record import BODY, CATEGORY, INFOBOX, NAVBOX, REFERENCE, FilmRecord

FILM_TEMPLATE = "Infobox film"

# On raw page bytes, before any parsing: a page without this is not a film. It also
# matches the look-alikes (`Infobox film awards`), which the parser then rejects.
FILM_HINT = re.compile(rb"\{\{\s*[Ii]nfobox[ _]+film")

NOT_A_FILM = "no Infobox film template"
DISAMBIGUATION = "disambiguation page"

_DISAMBIGUATION_TEMPLATES = ("Disambiguation", "Disambig", "Dab", "Disamb", "Hndis", "Geodis", "Numberdis",
                             "Letter-NumberCombDisambig", "Set index article")
_DISAMBIGUATION = re.compile(r"\{\{\s*(?:%s)\s*(?:\||\}\})" % "|".join(
    f"[{name[0]}{name[0].lower()}]{re.escape(name[1:])}" for name in _DISAMBIGUATION_TEMPLATES))
# Templates whose arguments are the items of a list ("Plainlist", "Unbulleted list", ...).
_LIST_TEMPLATES = {"Plainlist", "Plain list", "Flatlist", "Flat list", "Ubl", "Unbulleted list", "Hlist",
                   "Bulleted list", "Collapsible list", "Br separated entries", "Ubli", "Unbulleted list citebundle"}
_CURRENCY_TEMPLATES = {"US$": "$", "USD": "$", "GBP": "£", "£": "£", "€": "€", "EUR": "€", "INR": "₹"}
_DROPPED_TAGS = {"ref", "references", "gallery", "math", "score", "timeline", "templatedata", "nowiki"}
_RT_PROSE = re.compile(r"\{\{\s*[Rr]otten [Tt]omatoes prose\s*\|([^{}]*)\}\}")
_FILM_HINT_TEXT = re.compile(FILM_HINT.pattern.decode())
_BRACES = re.compile(r"\{\{|\}\}")
# What mwparserfromhell does not parse for links: comments and <nowiki>-like blocks.
# A tag's attributes stop at the next "<": 20,000 "<nowiki " without a ">" each scanned the rest
# of the page (quadratic in its length).
_UNPARSED = re.compile(r"<!--.*?(?:-->|\Z)|<(nowiki|pre|math|source|syntaxhighlight|score|timeline|templatedata|graph"
                       r"|hiero|chem|ce|categorytree|imagemap|inputbox|section|gallery)\b[^<>]*?(?:/>|>.*?(?:</\1\s*>|\Z))",
                       re.S | re.I)
# [[target]] or [[target|text]]; a link whose text holds another link (an image caption) is
# not matched itself, its inner links are.
_WIKILINK = re.compile(r"\[\[([^\[\]|\n]+)(?:\|[^\[\]]*)?\]\]")
# Sections that list sources, not what the film is: their links are citations.
REFERENCE_SECTIONS = frozenset(("references", "notes", "citations", "sources", "bibliography",
                                "further reading", "external links", "footnotes", "notes and references", "works cited"))
_REF_TAGS = re.compile(r"<ref\b[^<>/]*>.*?(?:</ref\s*>|\Z)|<references\b[^<>/]*>.*?(?:</references\s*>|\Z)",
                       re.S | re.I)
_TEMPLATE_NAME = re.compile(r"\{\{\s*([^|{}<\n]*)")
_HEADING = re.compile(r"^==\s*([^=\n]+?)\s*==\s*$", re.M)
_BULLETS = re.compile(r"^[*#:;\s]+")
_SPACES = re.compile(r"[ \t\u00a0]+")
_ENGLISH = Namespaces.english()
# Wikipedia refuses an article over 2 MiB; a page's wikitext past this is reported, not parsed.
MAX_WIKITEXT_CHARS = 2_200_000
# mwparserfromhell's tokenizer is quadratic on unclosed nested markup ("{{a|[[b|" a thousand
# times), so it only ever sees bounded pieces: an infobox call up to this
# long, and this much of a paragraph around "Rotten Tomatoes", in at most _RATING_PARAGRAPHS.
MAX_INFOBOX_CHARS = 64_000
_RATING_WINDOW_CHARS = 4_000
_RATING_PARAGRAPHS = 5


def film_from_wikitext(title: str, wikitext: str, namespaces: Namespaces) -> FilmRecord | str:
    """The film record of one main-namespace page, or the reason the page is not a film.

    Only the infobox goes through mwparserfromhell's tree: building the tree of the whole
    article made a film page about three times dearer, and the links it gives are the ones
    `wikilinks` finds on the text (the tests compare the two). The parser's own exceptions
    propagate: the caller reports the page as bad input, as it does a page over
    MAX_WIKITEXT_CHARS (ValueError). Every step is linear in the page's length, or bounded.
    """
    if len(wikitext) > MAX_WIKITEXT_CHARS:
        raise ValueError(f"the wikitext is {len(wikitext):,} characters long, over the {MAX_WIKITEXT_CHARS:,} a page "
                         f"may have")
    text = _UNPARSED.sub(" ", wikitext)
    found = _film_infobox(text)
    if found is None:
        return NOT_A_FILM
    infobox, infobox_span = found
    if _DISAMBIGUATION.search(text):
        return DISAMBIGUATION
    linked = _UNPARSED.sub(" ", text)  # what `wikilinks` reads
    kind_at = _kinds_by_position(linked, infobox_span if linked == text else (0, 0))
    links, kinds = [], []
    for match in _WIKILINK.finditer(linked):
        link = normalise_link(match.group(1), namespaces)
        if link is not None:
            links.append(link)
            kinds.append(CATEGORY if link.startswith(f"{namespaces.category}:") else chr(kind_at[match.start()]))
    rotten, rating = _ratings(text)
    imdb = imdb_from_wikitext(text, [ref.span() for ref in _REF_TAGS.finditer(text)])
    return FilmRecord(title, template_properties(infobox), links, rotten, rating, "".join(kinds),
                      {IMDB: imdb} if imdb else {})


def _kinds_by_position(text: str, infobox_span: tuple[int, int]) -> bytearray:
    """The link kind of every position of `text` (one byte a character): later rules win,
    so a <ref> inside the infobox is a citation."""
    kinds = bytearray(BODY.encode()) * len(text)

    def mark(start: int, end: int, kind: str) -> None:
        kinds[start:end] = kind.encode() * (end - start)

    mark(*infobox_span, INFOBOX)
    headings = list(_HEADING.finditer(text))
    for heading, following in zip(headings, headings[1:] + [None]):
        if heading.group(1).strip().lower() in REFERENCE_SECTIONS:
            mark(heading.start(), following.start() if following else len(text), REFERENCE)
    first = text.find("{{")
    marked_until = 0  # a template inside one already marked is not marked again: linear, however deep
    for start, end in sorted((_template_ends(text, first) if first >= 0 else {}).items()):
        if start < marked_until:
            continue
        name = _TEMPLATE_NAME.match(text, start)
        name = name.group(1).strip().lower() if name else ""
        if name.startswith("navbox") or is_citation_template(name):
            mark(start, end, NAVBOX if name.startswith("navbox") else REFERENCE)
            marked_until = end
    for ref in _REF_TAGS.finditer(text):
        mark(ref.start(), ref.end(), REFERENCE)
    return kinds


def wikilinks(text: str) -> list[str]:
    """The target of every [[wikilink]] in wikitext, in page order, repeats included, links in template
    arguments, references and image captions included; comments and <nowiki>-like blocks left out."""
    return [match.group(1) for match in _WIKILINK.finditer(_UNPARSED.sub(" ", text))]


def is_citation_template(name: str) -> bool:
    """Whether a template (its name in lower case) formats a citation: Cite web, Citation, ..."""
    return name.startswith(("cite ", "cite_", "citation"))


def _film_infobox(text: str) -> tuple[nodes.Template, tuple[int, int]] | None:
    """The film infobox template and where its call is in `text`, or None."""
    hints = [hint.start() for hint in _FILM_HINT_TEXT.finditer(text)]
    ends = _template_ends(text, hints[0]) if hints else {}
    for start in hints:
        end = ends.get(start)
        if end is None:  # not closed
            continue
        if end - start > MAX_INFOBOX_CHARS:
            raise ValueError(f"an infobox call of {end - start:,} characters, over the {MAX_INFOBOX_CHARS:,} one may have")
        template = mwparserfromhell.parse(text[start:end]).nodes[0]
        if isinstance(template, nodes.Template) and template_name(template) == FILM_TEMPLATE:
            return template, (start, end)
    return None


def _template_ends(text: str, start: int) -> dict[int, int]:
    """{where a {{ opens: where its call ends (after the }} closing it, nested calls included)} for
    the calls from `start` on that are closed: one pass, where scanning from each Infobox hint
    to its end was quadratic in the number of unclosed hints."""
    ends, opened = {}, []
    for brace in _BRACES.finditer(text, start):
        if brace.group() == "{{":
            opened.append(brace.start())
        elif opened:
            ends[opened.pop()] = brace.end()
    return ends


def template_name(template: nodes.Template) -> str:
    return normalise_title(template.name.strip_code())


def template_properties(template: nodes.Template) -> dict[str, str]:
    """The template's named parameters as plain text; empty values left out."""
    properties = {}
    for param in template.params:
        name = param.name.strip_code().strip()
        value = flatten(param.value)
        if name and value and name not in properties:
            properties[name] = value
    return properties


def flatten(code: Wikicode) -> str:
    """Plain text of a wikitext value: links as their text, list items joined with ", ", references dropped."""
    lines = (_BULLETS.sub("", line).strip() for line in _text(code).split("\n"))
    return ", ".join(_SPACES.sub(" ", line) for line in lines if line)


def _text(code: Wikicode) -> str:
    return "".join(_node_text(node) for node in code.nodes)


def _node_text(node: nodes.Node) -> str:
    if isinstance(node, nodes.Text):
        return str(node)
    if isinstance(node, nodes.Wikilink):
        if normalise_link(str(node.title), _ENGLISH) is None and node.text is None:
            return ""
        return _text(node.text) if node.text is not None else node.title.strip_code()
    if isinstance(node, nodes.Template):
        return _template_text(node)
    if isinstance(node, nodes.Tag):
        tag = str(node.tag).strip().lower()
        if tag in ("br", "li", "p", "div"):
            return "\n" + (_text(node.contents) if node.contents else "") + "\n"
        if tag in _DROPPED_TAGS or node.contents is None:
            return ""
        return _text(node.contents)
    if isinstance(node, nodes.ExternalLink):
        return _text(node.title) if node.title is not None else ""
    if isinstance(node, nodes.HTMLEntity):
        return node.normalize()
    if isinstance(node, nodes.Heading):
        return _text(node.title)
    return ""  # comments, template arguments


def _template_text(template: nodes.Template) -> str:
    name = template_name(template)
    positional = [p.value for p in template.params if not p.showkey]
    if name in _LIST_TEMPLATES:
        return "\n" + "\n".join(_text(value) for value in positional) + "\n"
    if name in _CURRENCY_TEMPLATES and positional:
        return _CURRENCY_TEMPLATES[name] + _text(positional[0]).strip()
    return " ".join(_text(value).strip() for value in positional)


def _ratings(text: str) -> tuple[str | None, str | None]:
    prose = _RT_PROSE.search(text)
    if prose:
        values = [v.strip() for v in prose.group(1).split("|") if "=" not in v]
        if values and values[0].isdigit():
            return values[0] + "%", (values[1] + "/10") if len(values) > 1 and values[1] else None
    paragraphs = (paragraph for paragraph in text.split("\n\n") if "Rotten Tomatoes" in paragraph)
    for paragraph, _ in zip(paragraphs, range(_RATING_PARAGRAPHS)):
        at = paragraph.index("Rotten Tomatoes")
        window = paragraph[max(0, at - _RATING_WINDOW_CHARS // 4): at + _RATING_WINDOW_CHARS]
        found = ratings_from_text(mwparserfromhell.parse(window).strip_code())
        if found[0]:
            return found
    return None, None
