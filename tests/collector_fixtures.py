"""Small pages-articles dumps that tests write: plain XML, bz2, multistream bz2 with its index."""
from __future__ import annotations

import bz2
import html
from pathlib import Path

HEADER = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <namespaces>
      <namespace key="-1" case="first-letter">Special</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"""
FOOTER = "</mediawiki>\n"


def page(title: str, text: str, ns: int = 0, redirect: str | None = None, page_id: int = 1) -> str:
    """One <page> element as a dump writes it (text XML-escaped)."""
    redirect_tag = f'    <redirect title="{html.escape(redirect)}" />\n' if redirect else ""
    return (f"  <page>\n    <title>{html.escape(title, quote=False)}</title>\n    <ns>{ns}</ns>\n"
            f"    <id>{page_id}</id>\n{redirect_tag}    <revision>\n      <id>{page_id}0</id>\n"
            f'      <text bytes="{len(text)}" xml:space="preserve">{html.escape(text, quote=False)}</text>\n'
            f"    </revision>\n  </page>\n")


def film_text(director: str, *links: str, extra: str = "") -> str:
    body = " ".join(f"[[{link}]]" for link in links)
    return (f"{{{{Infobox film\n| name = A film\n| director = [[{director}]]\n| budget = $10 million\n}}}}\n"
            f"'''A film''' is a film. {body}\n{extra}")


def write_plain(path: Path, pages: list[str]) -> Path:
    path.write_text(HEADER + "".join(pages) + FOOTER, encoding="utf-8")
    return path


def write_bz2(path: Path, pages: list[str], compresslevel: int = 9) -> Path:
    """A single-stream .xml.bz2; level 1 makes a bz2 block of every 100 kB of XML."""
    path.write_bytes(bz2.compress((HEADER + "".join(pages) + FOOTER).encode("utf-8"), compresslevel))
    return path


def write_multistream(path: Path, pages: list[str], pages_per_stream: int = 2,
                      cut_stream: int | None = None) -> tuple[Path, Path]:
    """A multistream dump (header stream, page streams, footer stream) and its -index.txt.bz2.

    `cut_stream` (0-based page stream) is truncated to half its bytes, as a damaged download would be.
    """
    streams = [bz2.compress(HEADER.encode("utf-8"))]
    index_lines = []
    offset = len(streams[0])
    for number, first in enumerate(range(0, len(pages), pages_per_stream)):
        group = pages[first: first + pages_per_stream]
        data = bz2.compress("".join(group).encode("utf-8"))
        if number == cut_stream:
            data = data[: len(data) // 2]
        for i, text in enumerate(group):
            title = html.unescape(text.split("<title>", 1)[1].split("</title>", 1)[0])
            index_lines.append(f"{offset}:{first + i + 1}:{title}\n")
        streams.append(data)
        offset += len(data)
    streams.append(bz2.compress(FOOTER.encode("utf-8")))
    path.write_bytes(b"".join(streams))
    index = path.with_name(path.name.removesuffix(".xml.bz2") + "-index.txt.bz2")
    index.write_bytes(bz2.compress("".join(index_lines).encode("utf-8")))
    return path, index
