"""Thousands of mutated inputs to the collector: dumps (plain, bz2, multistream), HTML pages and
tarballs, mutated by structure (hostile snippets inside one page) and by bytes.

Whatever arrives, the collector never raises anything but its own CollectorError (an unreadable
header or index), never hangs (an alarm fails the case after CASE_LIMIT_S), every page it takes
is counted as a film or a reason, the good films beside a mutated page are kept, and memory
stays bounded.
"""
from __future__ import annotations

import bz2
import contextlib
import io
import resource
import signal
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movielinks.collector import htmlpages, xmldump
from movielinks.collector.record import ChunkResult, CollectorError
from tests.collector_fixtures import FOOTER, HEADER, film_text, page, write_multistream
from tests.collector.test_collector_html import PARSOID, RENDERED

CASE_LIMIT_S = 10
pytestmark = pytest.mark.slow  # thousands of generated inputs

FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
GOOD = [page(f"Good film {i}", film_text(f"Director {i}", f"Link {i}", "Shared link"), page_id=10 + i) for i in range(3)]
GOOD_TITLES = [f"Good film {i}" for i in range(3)]
VICTIM_TEXT = film_text("Victim director", "Victim link", extra="On Rotten Tomatoes the film holds 91% (7.5/10).")
SNIPPETS = ["{{a|[[b|" * 300, "{{Infobox film" * 100, "<nowiki " * 300, "<page>", "</page>", "</text>", "<text>",
            "<title>Other</title>", "</revision>", "<!--", "-->", "{{{{", "}}}}", "[[", "]]", "|", "\n\n", "&amp;",
            "&#0;", "\x00", "<redirect title=\"X\" />", "<ns>10</ns>", "{{Disambiguation}}", "é千", "\r\n", "{{" * 500,
            "Rotten Tomatoes " * 50, "<ref>" * 200, "<![CDATA[", "]]>", "<?xml?>", "<!DOCTYPE x [<!ENTITY a 'b'>]>"]

snippets = st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=200),
                     st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
edits = st.lists(st.tuples(st.floats(0, 1), snippets, st.integers(0, 50)), min_size=1, max_size=6)


def mutate_text(text: str, changes) -> str:
    """Each change inserts a snippet at a fraction of the text and deletes up to n characters there."""
    for where, snippet, deleted in changes:
        at = int(where * len(text))
        text = text[:at] + snippet + text[at + deleted:]
    return text


def mutate_bytes(data: bytes, flips, cut: float | None) -> bytes:
    data = bytearray(data)
    for where, value in flips:
        if data:
            data[int(where * (len(data) - 1))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    return bytes(data)


byte_flips = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8)
cuts = st.one_of(st.none(), st.floats(0, 1))


@contextlib.contextmanager
def time_limit(seconds: int):
    def hung(*_):
        raise AssertionError(f"a case ran past {seconds} s: the collector hangs")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def collect_dump(path: Path) -> ChunkResult | None:
    """Every unit of a dump collected into one result; None when the collector refused the input
    as a whole (CollectorError: an unreadable header or index)."""
    total = ChunkResult()
    with time_limit(CASE_LIMIT_S):
        try:
            namespaces = xmldump.read_namespaces(path)
            units = xmldump.plan(path, chunk_bytes=2048)
        except CollectorError:
            return None
        for unit in units:
            result = xmldump.collect_unit(unit, namespaces)
            total.films += result.films
            total.pages += result.pages
            for reason, count in result.skipped.items():
                total.skip(reason, count)
            total.problems += result.problems
    assert all(p.reason in total.skipped for p in total.problems)
    return total


def write_dump(directory: Path, kind: str, pages: list[str]) -> Path:
    if kind == "multistream":
        return write_multistream(directory / "w-pages-articles-multistream.xml.bz2", pages, pages_per_stream=1)[0]
    xml = (HEADER + "".join(pages) + FOOTER).encode("utf-8", "surrogatepass")
    if kind == "bz2":
        path = directory / "d.xml.bz2"
        path.write_bytes(bz2.compress(xml, 1))
    else:
        path = directory / "d.xml"
        path.write_bytes(xml)
    return path


@settings(FUZZ, max_examples=1000)
@given(kind=st.sampled_from(["plain", "bz2", "multistream"]), changes=edits, position=st.integers(0, 3))
def test_a_mutated_page_is_reported_or_skipped_and_the_good_films_kept(tmp_path_factory, kind, changes, position):
    victim = page("Victim film", mutate_text(VICTIM_TEXT, changes), page_id=99)
    pages = GOOD[:position] + [victim] + GOOD[position:]
    directory = tmp_path_factory.mktemp("dump")
    result = collect_dump(write_dump(directory, kind, pages))
    assert result is not None  # the header and the index are intact
    titles = [film.title for film in result.films]
    assert [t for t in titles if t in GOOD_TITLES] == GOOD_TITLES, (titles, result.problems)


@settings(FUZZ, max_examples=1000)
@given(kind=st.sampled_from(["plain", "bz2", "multistream"]), flips=byte_flips, cut=cuts)
def test_mutated_dump_bytes_never_crash_or_hang(tmp_path_factory, kind, flips, cut):
    directory = tmp_path_factory.mktemp("bytes")
    path = write_dump(directory, kind, [GOOD[0], page("Victim film", VICTIM_TEXT, page_id=99), GOOD[1]])
    path.write_bytes(mutate_bytes(path.read_bytes(), flips, cut))
    collect_dump(path)  # anything but CollectorError fails the case


@settings(FUZZ, max_examples=1000)
@given(base=st.sampled_from([RENDERED, PARSOID]), changes=edits, flips=byte_flips, cut=cuts)
def test_a_mutated_html_page_is_a_film_or_a_reason(base, changes, flips, cut):
    data = mutate_bytes(mutate_text(base, changes).encode("utf-8", "surrogatepass"), flips, cut)
    with time_limit(CASE_LIMIT_S):
        result = htmlpages.collect_batch(htmlpages.HtmlBatch(pages=(("movies/Page.html", data),)))
    assert result.pages == 1 and len(result.films) + sum(result.skipped.values()) == 1


def tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD_PAGES = {f"movies/Good_{i}.html": RENDERED.replace("Alien", f"Good {i}").encode() for i in range(2)}


@settings(FUZZ, max_examples=800)
@given(changes=edits, flips=byte_flips, cut=cuts, mutate_archive=st.booleans())
def test_a_mutated_tarball_is_read_or_refused_and_its_good_pages_kept(tmp_path_factory, changes, flips, cut,
                                                                      mutate_archive):
    victim = mutate_text(RENDERED, changes).encode("utf-8", "surrogatepass")
    data = tarball({"movies/Good_0.html": GOOD_PAGES["movies/Good_0.html"], "movies/Victim.html": victim,
                    "movies/Good_1.html": GOOD_PAGES["movies/Good_1.html"]})
    if mutate_archive:
        data = mutate_bytes(data, flips, cut)
    path = tmp_path_factory.mktemp("tar") / "pages.tar.gz"
    path.write_bytes(data)
    films = []
    with time_limit(CASE_LIMIT_S):
        try:
            for batch in htmlpages.plan(path, batch_bytes=1):
                result = htmlpages.collect_batch(batch)
                assert len(result.films) + sum(result.skipped.values()) == result.pages
                films += [film.title for film in result.films]
        except CollectorError:
            assert mutate_archive
            return
    if not mutate_archive:
        assert [t for t in films if t.startswith("Good")] == ["Good 0", "Good 1"], films


def test_memory_stayed_bounded_over_the_fuzz():
    # Runs after the cases above (file order): thousands of small inputs, none held for long.
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak_bytes < 2**30, peak_bytes
