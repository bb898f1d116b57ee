"""Reading a pages-articles XML dump: plain `.xml`, `.xml.bz2`, or multistream `.xml.bz2` with its index.

Work splits without decompressing the file first: a multistream dump by its
bz2 streams (the offsets its `-index.txt.bz2` lists, about 100 pages each), a
plain `.xml` file by byte ranges (a page belongs to the range its `<page>` tag
starts in). A single-stream `.xml.bz2` can only be read from its start: one unit.

Inside a unit, pages are found on the raw bytes, and only pages that carry the
`Infobox film` hint (and redirects, for their target) are parsed at all.
"""
from __future__ import annotations

import bz2
import dataclasses
import html
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Iterator

from movielinks.collector.links import Namespaces, normalise_title
from movielinks.collector.record import ChunkResult, CollectorError, Problem
from movielinks.collector.wikitext import FILM_HINT, film_from_wikitext

DEFAULT_CHUNK_BYTES = 8 << 20  # compressed (or plain XML) bytes per unit of work
# Wikipedia refuses an article over 2 MiB of wikitext; escaped as XML (&lt; &quot; ...) it can
# about triple. A <page> element past this is reported and skipped, never held whole.
MAX_PAGE_BYTES = 8 << 20
# A multistream dump puts 100 pages in a stream, a few MB decompressed: a stream past this is a
# decompression bomb (or not a pages-articles dump), reported, and the rest of it skipped.
MAX_STREAM_BYTES = 256 << 20

NOT_A_FILM = "not a film (no Infobox film hint)"
REDIRECT = "redirect"
OTHER_NAMESPACE = "not in the main namespace"
MALFORMED_XML = "malformed XML"
PARSER_ERROR = "wikitext parser error"
BAD_STREAM = "truncated or corrupt bz2 stream"
TRUNCATED_PAGE = "page cut off at the end of the input"
OVERSIZED_PAGE = f"page over {MAX_PAGE_BYTES >> 20} MB of XML"
OVERSIZED_STREAM = f"bz2 stream over {MAX_STREAM_BYTES >> 20} MB decompressed"
INDEX_GAP = "bz2 stream missing from the multistream index"

_PAGE = b"<page>"
_PAGE_END = b"</page>"
_REDIRECT = re.compile(rb'<redirect title="([^"]*)"')
_TITLE = re.compile(rb"<title>([^<]*)</title>")
_NAMESPACE = re.compile(rb'<namespace key="(-?\d+)"[^>]*?(?:/>|>([^<]*)</namespace>)')
_HEAD_BYTES = 1 << 20
_READ_BYTES = 8 << 20
_PIECE_BYTES = 1 << 16  # decompressed bytes asked of bz2 at a time
_COMPRESSED_READ_BYTES = 1 << 20  # compressed bytes of a multistream span read at a time


@dataclasses.dataclass(frozen=True)
class Streams:
    """bz2 streams of a multistream dump, as (start, end) byte offsets, decompressed one by one."""

    path: str
    spans: tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True)
class ByteRange:
    """The pages of a plain XML file whose `<page>` tag starts in [start, end)."""

    path: str
    start: int
    end: int


@dataclasses.dataclass(frozen=True)
class WholeFile:
    """A file read from its start to its end (a single-stream .xml.bz2)."""

    path: str


Unit = Streams | ByteRange | WholeFile


def is_xml_dump(path: Path) -> bool:
    return path.is_file() and (path.name.endswith(".xml") or path.name.endswith(".xml.bz2"))


def default_index(path: Path) -> Path | None:
    """The `-index.txt.bz2` published beside a multistream dump, when it is there."""
    if not path.name.endswith("-multistream.xml.bz2"):
        return None
    index = path.with_name(path.name.removesuffix(".xml.bz2") + "-index.txt.bz2")
    return index if index.is_file() else None


def plan(path: Path, index: Path | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Unit]:
    """Split a dump into units of about `chunk_bytes` input bytes each, in dump order."""
    size = path.stat().st_size
    if path.name.endswith(".xml"):
        starts = list(range(0, size, chunk_bytes)) or [0]
        return [ByteRange(str(path), start, min(start + chunk_bytes, size)) for start in starts]
    index = index or default_index(path)
    if index is None:
        return [WholeFile(str(path))]
    offsets = _stream_offsets(index)
    if not offsets or offsets[-1] >= size or offsets[0] < 0:
        wrong = f"a negative offset ({offsets[0]})" if offsets and offsets[0] < 0 else \
            f"offsets past the file's {size} bytes" if offsets else "no offsets"
        raise CollectorError(f"{index}: not the index of {path} (it has {wrong}); pass the matching --index")
    bounds = [*offsets, size]
    units, spans, span_bytes = [], [], 0
    for start, end in zip(bounds, bounds[1:]):
        spans.append((start, end))
        span_bytes += end - start
        if span_bytes >= chunk_bytes:
            units.append(Streams(str(path), tuple(spans)))
            spans, span_bytes = [], 0
    if spans:
        units.append(Streams(str(path), tuple(spans)))
    return units


def read_namespaces(path: Path) -> Namespaces:
    """English namespace names plus those the dump's <siteinfo> declares."""
    head = b""
    try:
        with (bz2.open(path) if path.name.endswith(".bz2") else open(path, "rb")) as f:
            while _PAGE not in head and len(head) < _HEAD_BYTES and (piece := f.read(1 << 16)):
                head += piece
    except (OSError, EOFError) as e:
        if b"<mediawiki" not in head:  # a stream cut later is reported with the pages
            raise CollectorError(f"{path}: cannot read the dump's header ({e}); is it a pages-articles XML "
                                 f"dump?") from e
    if b"<mediawiki" not in head:
        raise CollectorError(f"{path}: no <mediawiki> element at its start; not a pages-articles XML dump")
    site_head = head.split(_PAGE, 1)[0]
    names = {int(key): html.unescape((name or b"").decode("utf-8", "replace"))
             for key, name in _NAMESPACE.findall(site_head)}
    return Namespaces.english().with_site_names(names)


def collect_unit(unit: Unit, namespaces: Namespaces) -> ChunkResult:
    """Every film, redirect and skipped page of one unit of work. Never raises on bad input: it is reported."""
    result = ChunkResult()
    if isinstance(unit, Streams):
        with open(unit.path, "rb") as f:
            for start, end in unit.spans:
                where = f"{unit.path} stream at byte offset {start}"
                scan_pieces(_stream_pieces(f, start, end, unit.path, result), where, namespaces, result)
    elif isinstance(unit, ByteRange):
        with open(unit.path, "rb") as f:
            data = _read_range(f, unit.start, unit.end)
        scan_pages(data, f"{unit.path} at byte offset {unit.start}", namespaces, result)
    else:
        _collect_whole_file(Path(unit.path), namespaces, result)
    return result


def scan_pages(data: bytes, where: str, namespaces: Namespaces, result: ChunkResult) -> None:
    """Add the pages of `data` (whole <page> elements, maybe with text around them) to `result`."""
    pages = data.count(_PAGE)
    result.pages += pages
    redirect_pages: set[int] = set()
    for match in _REDIRECT.finditer(data):
        start = data.rfind(_PAGE, 0, match.start())
        title = _TITLE.search(data, start, match.start())
        redirect_pages.add(start)
        if title:
            source, target = (normalise_title(html.unescape(m.decode("utf-8", "replace")))
                              for m in (title.group(1), match.group(1)))
            result.redirects[source] = target.split("#", 1)[0].strip()
    candidates: list[int] = []
    for match in FILM_HINT.finditer(data):
        start = data.rfind(_PAGE, 0, match.start())
        if start >= 0 and (not candidates or candidates[-1] != start):
            candidates.append(start)
    result.skip(REDIRECT, len(redirect_pages))
    result.skip(NOT_A_FILM, pages - len(redirect_pages | set(candidates)))
    for start in candidates:
        if start not in redirect_pages:
            _parse_candidate(data, start, where, namespaces, result)


def _parse_candidate(data: bytes, start: int, where: str, namespaces: Namespaces, result: ChunkResult) -> None:
    end = data.find(_PAGE_END, start)
    place = _place(data, start, where, end)
    if end < 0 and len(data) - start <= MAX_PAGE_BYTES:
        result.bad(Problem(TRUNCATED_PAGE, place))
        return
    if (end if end >= 0 else len(data)) - start > MAX_PAGE_BYTES:
        result.bad(Problem(OVERSIZED_PAGE, place, "skipped"))
        return
    try:
        page = ElementTree.fromstring(data[start: end + len(_PAGE_END)])
    except ElementTree.ParseError as e:
        result.bad(Problem(MALFORMED_XML, place, str(e)))
        return
    title = normalise_title(page.findtext("title") or "")
    if (page.findtext("ns") or "0").strip() != "0":
        result.skip(OTHER_NAMESPACE)
        return
    if not title:
        result.bad(Problem(MALFORMED_XML, place, "no <title>"))
        return
    text = page.findtext("revision/text") or ""
    try:
        film = film_from_wikitext(title, text, namespaces)
    except Exception as e:  # noqa: BLE001 - whatever breaks the parser on one page must not stop the dump
        result.bad(Problem(PARSER_ERROR, place, f"{type(e).__name__}: {e}"))
        return
    if isinstance(film, str):
        result.skip(film)
    else:
        result.films.append(film)


def _stream_pieces(f, start: int, end: int, path: str, result: ChunkResult) -> Iterator[bytes]:
    """The decompressed bytes of the bz2 stream at byte offset `start` of a multistream dump (its
    span of the file runs to `end`, the next offset of the index), _PIECE_BYTES at a time; the
    compressed bytes are read _COMPRESSED_READ_BYTES at a time, however long the span.

    Bad input is reported into `result`: a damaged or cut stream, one past MAX_STREAM_BYTES, and
    a further stream after the first one's end that holds pages (an offset the index lacks: its
    pages are read too; the dump's last stream, its footer, is in no index).
    """
    f.seek(start)
    position = start  # the file offset of the next compressed byte to read
    decompressor, stream_start, produced = bz2.BZ2Decompressor(), start, 0
    unlisted: int | None = None  # the offset of a stream the index does not list, until a page shows in it
    data, tail = b"", b""
    while True:
        where = f"{path} at byte offset {stream_start}"
        if decompressor.needs_input and not data:
            data = f.read(min(_COMPRESSED_READ_BYTES, end - position))
            position += len(data)
            if not data:
                result.bad(Problem(BAD_STREAM, where, "the stream ends before its end-of-stream marker"))
                return
        try:
            piece = decompressor.decompress(data, _PIECE_BYTES)
        except OSError as e:
            result.bad(Problem(BAD_STREAM, where, str(e)))
            return
        data = b""
        produced += len(piece)
        if produced > MAX_STREAM_BYTES:
            result.bad(Problem(OVERSIZED_STREAM, where, "the rest of the stream is skipped"))
            return
        if unlisted is not None and _PAGE in tail + piece:
            result.bad(Problem(INDEX_GAP, f"{path} at byte offset {unlisted}",
                               "its pages are read anyway; the index does not match the dump: download both again"))
            unlisted = None
        tail = piece[-len(_PAGE):]
        if piece:
            yield piece
        if decompressor.eof:
            data = decompressor.unused_data
            if not data and position >= end:
                return
            stream_start = unlisted = position - len(data)
            decompressor, produced, tail = bz2.BZ2Decompressor(), 0, b""


def _read_range(f, start: int, end: int) -> bytes:
    """The bytes from the first <page> at or after `start` to the </page> closing the last one before `end`
    (read no further than MAX_PAGE_BYTES past that page's start: a longer one is reported as such)."""
    f.seek(start)
    data = f.read(end - start + len(_PAGE) - 1)
    first = data.find(_PAGE)
    last = data.rfind(_PAGE)
    if first < 0:
        return b""
    while data.find(_PAGE_END, last) < 0 and len(data) - last <= MAX_PAGE_BYTES:
        more = f.read(_READ_BYTES)
        if not more:
            break  # a page cut off at the end of the file: reported by scan_pages
        data += more
    close = data.find(_PAGE_END, last)
    return data[first: close + len(_PAGE_END)] if close >= 0 else data[first:]


def _collect_whole_file(path: Path, namespaces: Namespaces, result: ChunkResult) -> None:
    """Read a single-stream .xml.bz2 (or any XML file) in pieces, scanning the complete pages of each."""
    with (bz2.open(path) if path.name.endswith(".bz2") else open(path, "rb")) as f:
        scan_pieces(_file_pieces(f, path, result), str(path), namespaces, result)


def _file_pieces(f, path: Path, result: ChunkResult) -> Iterator[bytes]:
    read_bytes = 0
    while True:
        try:
            # Small reads: a stream cut short loses only the piece it ends in.
            piece = f.read(_PIECE_BYTES)
        except (EOFError, OSError) as e:
            result.bad(Problem(BAD_STREAM, f"{path} after {read_bytes} decompressed bytes", str(e) or type(e).__name__))
            return
        if not piece:
            return
        read_bytes += len(piece)
        yield piece


def scan_pieces(pieces: Iterator[bytes], where: str, namespaces: Namespaces, result: ChunkResult) -> None:
    """Add the pages of a decompressed XML stream, given in pieces, to `result`, holding at most
    MAX_PAGE_BYTES + _READ_BYTES of it: a page longer than MAX_PAGE_BYTES is reported and skipped."""
    carry = b""
    offset = 0  # decompressed bytes before `carry`
    oversized: str | None = None  # the place of a page too long to hold, while its bytes are dropped
    ended = False
    while not ended:
        batch, new = [carry], 0
        while new < _READ_BYTES:
            piece = next(pieces, b"")
            if not piece:
                ended = True
                break
            batch.append(piece)
            new += len(piece)
        data = b"".join(batch)
        if oversized is not None:
            close = data.find(_PAGE_END)
            if close < 0:  # still inside it: keep only what may be the start of its </page>
                keep = min(len(data), len(_PAGE_END) - 1)
                offset, carry = offset + len(data) - keep, data[len(data) - keep:]
                continue
            oversized = None
            offset, data = offset + close + len(_PAGE_END), data[close + len(_PAGE_END):]
        cut = data.rfind(_PAGE_END)
        cut = cut + len(_PAGE_END) if cut >= 0 else 0
        scan_pages(data[:cut], f"{where} after {offset} decompressed bytes", namespaces, result)
        offset, carry = offset + cut, data[cut:]
        start = carry.find(_PAGE)
        if start < 0:  # between pages: keep only what may be the start of a <page>
            keep = min(len(carry), len(_PAGE) - 1)
            offset, carry = offset + len(carry) - keep, carry[len(carry) - keep:]
        elif len(carry) - start > MAX_PAGE_BYTES:
            oversized = _place(carry, start, f"{where} after {offset + start} decompressed bytes")
            result.pages += 1
            result.bad(Problem(OVERSIZED_PAGE, oversized, "skipped"))
            offset, carry = offset + len(carry), b""
    # Whatever follows the last </page> is the end of the input, or a page the stream cut off.
    if _PAGE in carry and oversized is None:
        scan_pages(carry[carry.find(_PAGE):], f"{where} after {offset} decompressed bytes", namespaces, result)


def _place(data: bytes, start: int, where: str, end: int = -1) -> str:
    """How a report names the page starting at `start` of `data` (ending at `end`, when known): its title when it has one."""
    title_match = _TITLE.search(data, start, min(start + 4096, end if end >= 0 else len(data)))
    title = html.unescape(title_match.group(1).decode("utf-8", "replace")) if title_match else None
    return f"page {title!r} ({where})" if title else f"{where}, page at byte {start} of the unit"


def _stream_offsets(index: Path) -> list[int]:
    try:
        with bz2.open(index, "rt", encoding="utf-8") if index.name.endswith(".bz2") else open(index) as f:
            return sorted({int(line.split(":", 1)[0]) for line in f if line.strip()})
    except (OSError, EOFError, ValueError) as e:
        raise CollectorError(f"{index}: not a readable multistream index (offset:page id:title lines): {e}") from e

