"""Film records from article HTML: pages as the site rendered them, or Parsoid HTML (Wikimedia's HTML dumps).

Rendered pages (`<div id="mw-content-text">`): a film is a page whose infobox has a
"Directed by" row (the rendered `Infobox film`; the template name is gone from the
HTML); its links are the `/wiki/` links of the article body outside navigation boxes,
which a page's wikitext does not hold either. Each link's kind (common.film_record) says
where it is: the infobox, a citation (a reference, a <cite>, a reference list, or a
section such as References or External links: REFERENCE_SECTIONS), a category, or the
prose ("body").

Parsoid HTML (links `<a rel="mw:WikiLink" href="./Title">`): a template call keeps its
name and arguments as wikitext in `data-mw`, so a film is found by its exact
`Infobox film` template, as in a dump, and links inside template arguments are read
from those arguments, in page order, as the wikitext has them.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
import tarfile
import urllib.parse
from pathlib import Path
from typing import Iterator

import lxml.html
import mwparserfromhell

from movielinks.collector.ids import IMDB_TEMPLATES, ids_from_rendered, imdb_from_hrefs, imdb_from_template_params
from movielinks.collector.links import Namespaces, normalise_link, normalise_title
from movielinks.collector.record import ChunkResult, CollectorError, Problem, ratings_from_text
from movielinks.collector.wikitext import (DISAMBIGUATION, FILM_TEMPLATE, MAX_INFOBOX_CHARS, NOT_A_FILM,
                                          REFERENCE_SECTIONS, flatten, is_citation_template)
from movielinks.common.external_ids import IMDB
from movielinks.common.film_record import BODY, CATEGORY, INFOBOX, NAVBOX, REFERENCE, FilmRecord

NO_CONTENT = "HTML page without article content"
BAD_HTML = "unreadable HTML page"
NO_FILM_INFOBOX = "no film infobox"
NOT_A_FILE = "not a regular file (a link or a device)"
# The largest rendered articles are a few MB of HTML; a page over this is no article (or a
# decompression bomb in a tarball) and is reported without being read.
MAX_HTML_PAGE_BYTES = 16 << 20
OVERSIZED_HTML = f"HTML page over {MAX_HTML_PAGE_BYTES >> 20} MB"

DEFAULT_BATCH_BYTES = 4 << 20
HTML_SUFFIXES = (".html", ".htm")

# The rendered Infobox film's row labels -> the template's parameter names.
INFOBOX_LABELS = {
    "directed by": "director", "produced by": "producer", "written by": "writer",
    "screenplay by": "screenplay", "story by": "story", "based on": "based_on", "starring": "starring",
    "narrated by": "narrator", "music by": "music", "cinematography": "cinematography",
    "edited by": "editing", "production company": "studio", "production companies": "studio",
    "distributed by": "distributor", "release date": "released", "release dates": "released",
    "running time": "runtime", "country": "country", "countries": "country", "language": "language",
    "languages": "language", "budget": "budget", "box office": "gross",
}
_CITATION = re.compile(r"\[\d+\]|\[citation needed\]")
# Classes of the rendered elements that hold citations (and <cite> itself).
_REFERENCE_CLASSES = frozenset(("reference", "references", "reflist", "refbegin", "citation", "mw-references"))
_ENGLISH = Namespaces.english()


@dataclasses.dataclass(frozen=True)
class HtmlBatch:
    """A few saved pages: (name, bytes) read by the planner (tar members), or file paths read by the
    worker; and the pages the planner found unfit to read, each a Problem."""

    pages: tuple[tuple[str, bytes], ...] = ()
    paths: tuple[str, ...] = ()
    refused: tuple[Problem, ...] = ()


def is_html_input(path: Path) -> bool:
    return path.is_dir() or path.name.endswith((".tar.gz", ".tgz", ".tar"))


def plan(path: Path, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[HtmlBatch]:
    """Batches of about `batch_bytes` of HTML, in name order for a directory, member order for a tarball.

    Links, devices and pages over MAX_HTML_PAGE_BYTES are not read: each is a Problem of the batch.
    """
    if path.is_dir():
        batch: list[str] = []
        refused: list[Problem] = []
        size = 0
        for file in sorted(p for p in path.rglob("*") if p.name.endswith(HTML_SUFFIXES)):
            if file.is_symlink() or not file.is_file():
                if not file.is_dir():
                    refused.append(Problem(NOT_A_FILE, str(file), "skipped"))
                continue
            file_bytes = file.stat().st_size
            if file_bytes > MAX_HTML_PAGE_BYTES:
                refused.append(Problem(OVERSIZED_HTML, str(file), f"{file_bytes:,} bytes; skipped"))
                continue
            batch.append(str(file))
            size += file_bytes
            if size >= batch_bytes:
                yield HtmlBatch(paths=tuple(batch), refused=tuple(refused))
                batch, refused, size = [], [], 0
        if batch or refused:
            yield HtmlBatch(paths=tuple(batch), refused=tuple(refused))
        return
    try:
        with tarfile.open(path) as tar:
            pages: list[tuple[str, bytes]] = []
            refused = []
            size = 0
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    refused.append(Problem(NOT_A_FILE, f"{path} member {member.name}", "skipped"))
                    continue
                if not member.name.endswith(HTML_SUFFIXES):
                    continue
                if member.size > MAX_HTML_PAGE_BYTES:  # what its header says; the bytes are never held
                    refused.append(Problem(OVERSIZED_HTML, f"{path} member {member.name}",
                                           f"{member.size:,} bytes; skipped"))
                    continue
                data = tar.extractfile(member).read()
                pages.append((member.name, data))
                size += len(data)
                if size >= batch_bytes:
                    yield HtmlBatch(pages=tuple(pages), refused=tuple(refused))
                    pages, refused, size = [], [], 0
            if pages or refused:
                yield HtmlBatch(pages=tuple(pages), refused=tuple(refused))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise CollectorError(f"{path}: cannot read this tarball of HTML pages ({e})") from e


def collect_batch(batch: HtmlBatch, every_page: bool = False, namespaces: Namespaces = _ENGLISH) -> ChunkResult:
    """The film records of a batch of pages; bad pages are reported, never raised.

    `every_page` keeps rendered pages without a film infobox too (a collection picked by hand).
    """
    result = ChunkResult()
    for problem in batch.refused:
        result.pages += 1
        result.bad(problem)
    pages = list(batch.pages)
    for path in batch.paths:
        try:
            pages.append((path, Path(path).read_bytes()))
        except OSError as e:
            result.pages += 1
            result.bad(Problem(BAD_HTML, path, str(e)))
    for name, data in pages:
        result.pages += 1
        try:
            film = film_from_html(name, data, namespaces, every_page)
        except Exception as e:  # noqa: BLE001 - one broken page must not stop the batch
            result.bad(Problem(BAD_HTML, name, f"{type(e).__name__}: {e}"))
            continue
        if isinstance(film, Problem):
            result.bad(film)
        elif isinstance(film, str):
            result.skip(film)
        else:
            result.films.append(film)
    return result


def film_from_html(name: str, data: bytes, namespaces: Namespaces,
                   every_page: bool = False) -> FilmRecord | Problem | str:
    """The film record of one saved page, a Problem for a page without article content, or the reason it is no film."""
    if not data.strip():
        return Problem(NO_CONTENT, name, "empty file")
    document = lxml.html.fromstring(data)
    if b'rel="mw:WikiLink"' in data or b"mw:PageProp" in data:
        return _parsoid_film(name, document, namespaces)
    return _rendered_film(name, document, namespaces, every_page)


def _rendered_film(name: str, document, namespaces: Namespaces,
                   every_page: bool) -> FilmRecord | Problem | str:
    content = document.get_element_by_id("mw-content-text", None)
    if content is None:
        return Problem(NO_CONTENT, name, 'no <div id="mw-content-text">')
    infobox = _rendered_infobox(content)
    if infobox is None and not every_page:
        return NO_FILM_INFOBOX
    links, kinds = [], []
    sections = _reference_sections(content)
    for anchor in content.iter("a"):
        href = anchor.get("href") or ""
        if href.startswith("/wiki/"):
            kind = _rendered_kind(anchor, content, sections)
            link = normalise_link(href[len("/wiki/"):], namespaces) if kind != NAVBOX else None
            if link is not None:
                links.append(link)
                kinds.append(CATEGORY if link.startswith(f"{namespaces.category}:") else kind)
    for dropped in content.xpath(".//style | .//script"):
        dropped.drop_tree()
    ids = ids_from_rendered(document, content)  # before the text is read: no <style> or <script> holds one
    rotten, rating = ratings_from_text(" ".join(content.text_content().split()))
    return FilmRecord(_title_from_file_name(name), infobox or {}, links, rotten, rating, "".join(kinds), ids)


def _title_from_file_name(name: str) -> str:
    # A saved page is known by the title it was saved under (two spellings of one
    # article, both saved, stay two records, as in the collection).
    stem = name.rsplit("/", 1)[-1]
    for suffix in HTML_SUFFIXES:
        stem = stem.removesuffix(suffix)
    return normalise_title(urllib.parse.unquote(stem))


def _reference_sections(content) -> set:
    """The top-level elements of the article that lie in a REFERENCE_SECTIONS section."""
    body = next((div for div in content.iter("div") if "mw-parser-output" in (div.get("class") or "").split()), content)
    inside, in_references = set(), False
    for child in body:
        if isinstance(child.tag, str) and child.tag == "h2":
            heading = child.find(".//span[@class='mw-headline']")
            text = " ".join((heading if heading is not None else child).text_content().split()).lower()
            in_references = text.removesuffix("[edit]").strip() in REFERENCE_SECTIONS
        elif in_references:
            inside.add(child)
    return inside


def _rendered_kind(anchor, stop, sections: set) -> str:
    """Where a link of the rendered article is: NAVBOX, REFERENCE, INFOBOX or BODY."""
    kind = BODY
    for element in itertools.chain((anchor,), anchor.iterancestors()):
        if element is stop:
            break
        classes = set((element.get("class") or "").split())
        if "navbox" in classes:
            return NAVBOX
        if element.tag == "cite" or classes & _REFERENCE_CLASSES or element in sections:
            kind = REFERENCE
        elif "infobox" in classes and kind == BODY:
            kind = INFOBOX
    return kind


def _rendered_infobox(content) -> dict[str, str] | None:
    for table in content.iter("table"):
        if "infobox" not in (table.get("class") or "").split():
            continue
        properties: dict[str, str] = {}
        for row in table.iter("tr"):
            header = row.find("th")
            if header is None:
                continue
            if "summary" in (header.get("class") or "").split():
                properties.setdefault("name", " ".join(header.text_content().split()))
                continue
            cell = row.find("td")
            key = INFOBOX_LABELS.get(" ".join(header.text_content().split()).lower())
            if key and cell is not None:
                value = _cell_text(cell)
                if value:
                    properties.setdefault(key, value)
        return properties if "director" in properties else None
    return None


def _cell_text(cell) -> str:
    for br in cell.iter("br"):
        br.tail = "\n" + (br.tail or "")
    for item in cell.iter("li"):
        item.text = "\n" + (item.text or "")
    lines = (" ".join(line.split()) for line in _CITATION.sub("", cell.text_content()).split("\n"))
    return ", ".join(line for line in lines if line)


def _parsoid_film(name: str, document, namespaces: Namespaces) -> FilmRecord | Problem | str:
    body = document.find(".//body")
    if body is None or not len(body):
        return Problem(NO_CONTENT, name, "no <body> content")
    walk = _ParsoidWalk(namespaces)
    walk.visit(body)
    if walk.infobox is None:
        return NOT_A_FILM
    if walk.disambiguation:
        return DISAMBIGUATION
    for dropped in body.xpath(".//style | .//script"):
        dropped.drop_tree()
    rotten, rating = ratings_from_text(" ".join(body.text_content().split()))
    return FilmRecord(_parsoid_title(name, document), walk.infobox, walk.links, rotten, rating, "".join(walk.kinds),
                      {IMDB: walk.imdb} if walk.imdb else {})


def _parsoid_title(name: str, document) -> str:
    for link in document.iterfind(".//link[@rel='dc:isVersionOf']"):
        href = link.get("href") or ""
        if "/wiki/" in href:
            return normalise_title(urllib.parse.unquote(href.split("/wiki/", 1)[1]))
    title = document.findtext(".//title")
    return normalise_title(title) if title else _title_from_file_name(name)


class _ParsoidWalk:
    """Links in page order, each with its kind; a template call contributes the links of its
    wikitext arguments, not of its output. The film's IMDb id is the first `{{IMDb title}}`
    call's outside citations (collector.ids)."""

    def __init__(self, namespaces: Namespaces) -> None:
        self.namespaces = namespaces
        self.links: list[str] = []
        self.kinds: list[str] = []
        self.infobox: dict[str, str] | None = None
        self.disambiguation = False
        self.imdb: str | None = None
        self._seen_about: set[str] = set()

    def visit(self, element, kind: str = BODY, cited: bool = False) -> None:
        """Read `element` and what is under it; `cited`: it lies in a citation (a <ref>, a <cite>)."""
        if not isinstance(element.tag, str):
            return  # comments, processing instructions
        about = element.get("about")
        if about and about in self._seen_about:
            return  # a later node of a template call already read
        typeof = element.get("typeof") or ""
        cited = cited or (element.tag == "cite" or "mw:Extension/ref" in typeof
                          or bool(set((element.get("class") or "").split()) & _REFERENCE_CLASSES))
        if cited or _is_reference_section(element):
            kind = REFERENCE
        if "mw:Transclusion" in typeof:
            if about:
                self._seen_about.add(about)
            self._template_call(element, kind, cited)
            return
        rel = element.get("rel") or ""
        if (element.tag == "a" and "mw:WikiLink" in rel) or (element.tag == "link" and "mw:PageProp/Category" in rel):
            self._add(element.get("href") or "", kind)
        for child in element:
            self.visit(child, kind, cited)

    def _add(self, target: str, kind: str) -> None:
        link = normalise_link(target.removeprefix("./"), self.namespaces)
        if link is not None:
            self.links.append(link)
            self.kinds.append(CATEGORY if link.startswith(f"{self.namespaces.category}:") else kind)

    def _template_call(self, element, kind: str, cited: bool) -> None:
        for part in json.loads(element.get("data-mw") or "{}").get("parts", []):
            template = part.get("template") if isinstance(part, dict) else None
            if not template:
                continue
            # mwparserfromhell is quadratic on unclosed nested markup: it only sees bounded arguments.
            params = {key: value.get("wt", "") for key, value in template.get("params", {}).items()
                      if len(value.get("wt", "")) <= MAX_INFOBOX_CHARS}
            target = normalise_title(mwparserfromhell.parse(template.get("target", {}).get("wt", "")).strip_code())
            if target == FILM_TEMPLATE and self.infobox is None:
                self.infobox = {key: text for key, text in
                                ((key, flatten(mwparserfromhell.parse(wt))) for key, wt in params.items()) if text}
            elif target.startswith("Disambiguation") or target == "Disambig":
                self.disambiguation = True
            elif target.lower() in IMDB_TEMPLATES and not cited and self.imdb is None:
                self.imdb = imdb_from_template_params(params) or imdb_from_hrefs(element)
            for wt in params.values():
                for wikilink in mwparserfromhell.parse(wt).filter_wikilinks():
                    self._add(str(wikilink.title), _template_kind(target, kind))


def _template_kind(target: str, kind: str) -> str:
    """The kind of the links in the arguments of a template called where links are of `kind`."""
    name = target.lower()
    if kind != BODY:
        return kind
    if is_citation_template(name):
        return REFERENCE
    if name.startswith("navbox"):
        return NAVBOX
    return INFOBOX if target == FILM_TEMPLATE else BODY


def _is_reference_section(element) -> bool:
    if element.tag != "section":
        return False
    heading = next((child for child in element if isinstance(child.tag, str) and child.tag == "h2"), None)
    return heading is not None and " ".join(heading.text_content().split()).lower() in REFERENCE_SECTIONS
