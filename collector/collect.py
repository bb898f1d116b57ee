"""`collector collect`: a dump or saved HTML pages in, one film record a line out.

Plan units of work -> run them (engine.py) -> merge in input order -> resolve
redirects (the second pass) -> keep only the films asked for or changed, when asked
(changes.py) -> write the file atomically. The output is the same bytes whatever the
number of workers.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import time
from pathlib import Path
from typing import Iterable, Iterator

from movielinks.common.files import atomic_file

from movielinks.collector import htmlpages, xmldump
from movielinks.collector.changes import Changes, read_link_sets, select
from movielinks.collector.engine import run_in_order
from movielinks.collector.record import ChunkResult, CollectorError
from movielinks.common.film_record import FilmRecord

DUPLICATE_TITLE = "duplicate title"
_MAX_REDIRECT_HOPS = 8


@dataclasses.dataclass
class Summary:
    """What a collection read and wrote; `problems` are the bad inputs, each also counted in `skipped`."""

    input: str
    output: str
    pages: int = 0
    films: int = 0
    links: int = 0
    redirects: int = 0  # redirect pages seen in the input
    links_resolved: int = 0  # links rewritten to their redirect's target
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    changes: Changes | None = None  # with titles or an older output: what was written of what (collector.changes)

    def lines(self) -> list[str]:
        rows = [f"{self.output}: {self.films:,} films, {self.links:,} links from {self.pages:,} pages of "
                f"{self.input} in {self.seconds:.1f} s",
                f"redirect pages: {self.redirects:,}; links resolved through them: {self.links_resolved:,}"]
        rows += self.changes.lines() if self.changes is not None else []
        rows += [f"skipped, {reason}: {count:,}" for reason, count in sorted(self.skipped.items())]
        rows += [f"bad input: {problem}" for problem in self.problems[:20]]
        if len(self.problems) > 20:
            rows.append(f"... and {len(self.problems) - 20} more bad inputs")
        return rows


def collect(source: str | Path, out: str | Path, *, index: str | Path | None = None, workers: int | None = None,
            scheduler: str | None = None, resolve: bool = True, strict: bool = False, every_page: bool = False,
            chunk_bytes: int = xmldump.DEFAULT_CHUNK_BYTES, titles: list[str] | None = None,
            changed_since: str | Path | None = None, removed_out: str | Path | None = None) -> Summary:
    """Collect every film of `source` into `out` (.ndjson or .ndjson.gz); raises CollectorError.

    `source` is a pages-articles dump (.xml, .xml.bz2, multistream .xml.bz2 with `index`
    or its -index.txt.bz2 beside it), a directory of saved HTML pages or a tarball of them.
    `every_page` keeps HTML pages that have no film infobox (a collection picked by hand).
    With `strict`, the first bad input raises instead of being skipped and counted.

    Only some films are written with `titles` (those) or `changed_since` (an older output:
    the films new since it or whose links changed, collector.changes); `removed_out` then
    gets the titles the older output has and `source` lacks, one a line.
    """
    started = time.monotonic()
    source, out = Path(source), Path(out)
    _check_output_name(out)
    if removed_out is not None and changed_since is None:
        raise CollectorError("--removed-out needs --changed-since: the removed films are those of the older output "
                             "that the input lacks")
    older = read_link_sets(changed_since) if changed_since is not None else None
    results = _results(source, index and Path(index), workers, scheduler, every_page, chunk_bytes)
    summary = Summary(str(source), str(out))
    films, redirects = _merged(results, summary, strict)
    summary.redirects = len(redirects)
    if resolve:
        for film in films:
            film.links, changed = resolve_redirects(film.links, redirects)
            summary.links_resolved += changed
    if titles is not None or older is not None:
        films, summary.changes = select(films, titles=titles, older=older)
    summary.films = len(films)
    summary.links = sum(len(film.links) for film in films)
    write_records(films, out)
    if removed_out is not None:
        _write_titles(summary.changes.removed, Path(removed_out))
    summary.seconds = time.monotonic() - started
    return summary


def _merged(results: Iterable[ChunkResult], summary: Summary, strict: bool) -> tuple[list[FilmRecord], dict[str, str]]:
    """The films of every unit in input order, each title once, and every redirect; counts what
    was read and skipped into `summary`."""
    films: list[FilmRecord] = []
    redirects: dict[str, str] = {}
    seen: set[str] = set()
    for result in results:
        if strict and result.problems:
            raise CollectorError(f"{result.problems[0]} (run without --strict to skip and count bad input)")
        summary.pages += result.pages
        summary.problems += [str(p) for p in result.problems]
        for reason, count in result.skipped.items():
            summary.skipped[reason] = summary.skipped.get(reason, 0) + count
        redirects.update(result.redirects)
        for film in result.films:
            if film.title in seen:
                summary.skipped[DUPLICATE_TITLE] = summary.skipped.get(DUPLICATE_TITLE, 0) + 1
                continue
            seen.add(film.title)
            films.append(film)
    return films, redirects


def _write_titles(titles: list[str], out: Path) -> None:
    """One title a line into `out`, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as raw:
        raw.write("".join(f"{title}\n" for title in titles).encode("utf-8"))


def _results(source: Path, index: Path | None, workers: int | None, scheduler: str | None, every_page: bool,
             chunk_bytes: int) -> Iterator[ChunkResult]:
    if not source.exists():
        raise CollectorError(f"{source}: no such dump, directory or tarball")
    if xmldump.is_xml_dump(source):
        namespaces = xmldump.read_namespaces(source)
        units: Iterable = xmldump.plan(source, index, chunk_bytes)
        return run_in_order(xmldump.collect_unit, units, (namespaces,), workers, scheduler)
    if htmlpages.is_html_input(source):
        return run_in_order(htmlpages.collect_batch, htmlpages.plan(source), (every_page,), workers, scheduler)
    raise CollectorError(f"{source}: not an input the collector reads; give a pages-articles dump (.xml, "
                         f".xml.bz2), a directory of .html pages or a .tar.gz of them")


def resolve_redirects(links: list[str], redirects: dict[str, str]) -> tuple[list[str], int]:
    """The links with each redirect replaced by the page it finally points to, and how many changed."""
    resolved, changed = [], 0
    for link in links:
        target, hops = link, 0
        while target in redirects and hops < _MAX_REDIRECT_HOPS:
            target, hops = redirects[target], hops + 1
        if target in redirects or not target:  # a loop or a chain too long: keep the link as written
            target = link
        resolved.append(target)
        changed += target != link
    return resolved, changed


def write_records(films: list[FilmRecord], out: Path) -> None:
    """Write one record a line into `out`; nothing is under that name until every byte is on disk."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as raw:
        if out.name.endswith(".gz"):
            # No file name or time in the header: the same records give the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                _write_lines(f, films)
        else:
            _write_lines(raw, films)


def _write_lines(f: io.BufferedIOBase, films: list[FilmRecord]) -> None:
    for film in films:
        f.write(film.to_json_line().encode("utf-8"))


def _check_output_name(out: Path) -> None:
    if not out.name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")):
        raise CollectorError(f"{out}: the output must end in .ndjson or .ndjson.gz (the trainer's record format)")
    if out.is_dir():
        raise CollectorError(f"{out} is a directory; give a file name ending in .ndjson")

