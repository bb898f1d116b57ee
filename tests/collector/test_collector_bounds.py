"""The collector against hostile dumps: pages and bz2 streams too big to hold, indexes that do not
match their dump. Each is reported and skipped, the good films kept, in bounded time and memory."""
from __future__ import annotations

import bz2
import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from movielinks.collector import htmlpages, wikitext, xmldump
from movielinks.collector.collect import collect
from movielinks.collector.record import CollectorError
from movielinks.collector.xmldump import INDEX_GAP, MAX_PAGE_BYTES, OVERSIZED_PAGE, OVERSIZED_STREAM
from tests.collector_fixtures import FOOTER, HEADER, film_text, page, write_multistream
from tests.e2e_server import REPO

GOOD = [page(f"Good film {i}", film_text(f"Director {i}", f"Link {i}", "Shared link"), page_id=10 + i) for i in range(3)]


def titles(out: Path) -> list[str]:
    return [json.loads(line)[0] for line in out.read_text(encoding="utf-8").splitlines()]


def peak_rss_bytes(*args: str, timeout_s: float = 120) -> tuple[subprocess.CompletedProcess, int]:
    """Run the collector CLI under a small parent that reports the child's peak resident memory."""
    probe = ("import os, resource, subprocess, sys\n"
             "p = subprocess.run([sys.executable, '-m', 'movielinks.collector', *sys.argv[1:]], "
             "capture_output=True, text=True)\n"
             "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr)\n"
             "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.exit(p.returncode)\n")
    done = subprocess.run([sys.executable, "-c", probe, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s)
    lines = done.stdout.splitlines()
    peak_kb = int(lines[-1].split()[1])
    return subprocess.CompletedProcess(done.args, done.returncode, "\n".join(lines[:-1]), done.stderr), peak_kb * 1024


def big_film(title: str, text_bytes: int) -> str:
    return page(title, film_text("Huge director", "Huge link", extra="x" * text_bytes), page_id=99)


def test_a_page_over_the_bound_in_a_single_stream_dump_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    # Used to spin forever: the reader stopped refilling its buffer once a page was over 8 MB.
    huge = big_film("Huge film", 3 * MAX_PAGE_BYTES)
    dump = tmp_path / "d.xml.bz2"
    dump.write_bytes(bz2.compress((HEADER + GOOD[0] + huge + GOOD[1] + GOOD[2] + FOOTER).encode(), 9))
    assert dump.stat().st_size < 100_000
    started = time.monotonic()
    done, peak = peak_rss_bytes("collect", str(dump), "--out", str(tmp_path / "films.ndjson"), "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 90
    assert titles(tmp_path / "films.ndjson") == ["Good film 0", "Good film 1", "Good film 2"]
    report = done.stdout + done.stderr
    assert OVERSIZED_PAGE in report and "'Huge film'" in report, report
    # The page is 24 MB and never held whole; the buffer holds one page bound and one read.
    assert peak < 3 * MAX_PAGE_BYTES + 200 * 2**20, peak


def test_a_page_over_the_bound_cut_off_at_the_end_is_reported(tmp_path: Path) -> None:
    huge = big_film("Endless film", 2 * MAX_PAGE_BYTES).split("</text>")[0]
    dump = tmp_path / "d.xml.bz2"
    dump.write_bytes(bz2.compress((HEADER + GOOD[0] + huge).encode(), 9))
    summary = collect(dump, tmp_path / "films.ndjson", workers=1)
    assert titles(tmp_path / "films.ndjson") == ["Good film 0"]
    assert summary.skipped.get(OVERSIZED_PAGE) == 1 and "'Endless film'" in summary.problems[0]


def test_a_page_over_the_bound_in_a_plain_dump_is_reported(tmp_path: Path) -> None:
    dump = tmp_path / "d.xml"
    dump.write_text(HEADER + GOOD[0] + big_film("Huge film", MAX_PAGE_BYTES + 10) + GOOD[1] + FOOTER)
    summary = collect(dump, tmp_path / "films.ndjson", workers=1)
    assert titles(tmp_path / "films.ndjson") == ["Good film 0", "Good film 1"]
    assert summary.skipped.get(OVERSIZED_PAGE) == 1 and "'Huge film'" in summary.problems[0]


def test_a_bz2_bomb_in_a_multistream_dump_is_reported_and_the_good_films_kept(tmp_path: Path) -> None:
    dump, index = write_multistream(tmp_path / "w-pages-articles-multistream.xml.bz2", GOOD, pages_per_stream=1)
    # The second page stream becomes a bomb: a few hundred bytes of bz2, far more decompressed.
    offsets = [int(line.split(":")[0]) for line in bz2.decompress(index.read_bytes()).decode().splitlines()]
    data = dump.read_bytes()
    compressor = bz2.BZ2Compressor(9)
    bomb = b"".join(compressor.compress(b"\0" * (1 << 20)) for _ in range((xmldump.MAX_STREAM_BYTES >> 20) + 8))
    bomb += compressor.flush()
    assert len(bomb) < 4096
    dump.write_bytes(data[:offsets[1]] + bomb + data[offsets[2]:])
    shift = len(bomb) - (offsets[2] - offsets[1])
    lines = bz2.decompress(index.read_bytes()).decode().splitlines()
    lines[2] = f"{offsets[2] + shift}:{lines[2].split(':', 1)[1]}"
    index.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    done, peak = peak_rss_bytes("collect", str(dump), "--out", str(tmp_path / "films.ndjson"), "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert titles(tmp_path / "films.ndjson") == ["Good film 0", "Good film 2"]
    report = done.stdout + done.stderr
    assert OVERSIZED_STREAM in report and f"byte offset {offsets[1]}" in report, report
    assert peak < xmldump.MAX_STREAM_BYTES // 2, peak  # it was never held


def test_an_index_missing_a_stream_reports_the_gap_and_loses_no_page(tmp_path: Path) -> None:
    dump, index = write_multistream(tmp_path / "w-pages-articles-multistream.xml.bz2", GOOD, pages_per_stream=1)
    lines = bz2.decompress(index.read_bytes()).decode().splitlines()
    missing = lines[1].split(":")[0]
    index.write_bytes(bz2.compress(("\n".join(lines[:1] + lines[2:]) + "\n").encode()))
    summary = collect(dump, tmp_path / "films.ndjson", workers=1)
    assert titles(tmp_path / "films.ndjson") == ["Good film 0", "Good film 1", "Good film 2"]
    assert summary.skipped.get(INDEX_GAP) == 1 and f"byte offset {missing}" in summary.problems[0]
    with pytest.raises(CollectorError, match=f"byte offset {missing}: {INDEX_GAP}"):
        collect(dump, tmp_path / "strict.ndjson", workers=1, strict=True)
    done = subprocess.run([sys.executable, "-m", "movielinks.collector", "collect", str(dump), "--strict", "--out",
                           str(tmp_path / "cli.ndjson")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and INDEX_GAP in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_negative_offset_in_the_index_is_a_one_line_error(tmp_path: Path) -> None:
    dump, index = write_multistream(tmp_path / "w-pages-articles-multistream.xml.bz2", GOOD, pages_per_stream=1)
    index.write_bytes(bz2.compress(b"-5:1:Good film 0\n" + bz2.decompress(index.read_bytes())))
    done = subprocess.run([sys.executable, "-m", "movielinks.collector", "collect", str(dump), "--out",
                           str(tmp_path / "films.ndjson")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "negative offset" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "films.ndjson").exists()


def test_tarball_members_that_are_links_devices_or_too_big_are_reported_and_not_read(tmp_path: Path) -> None:
    from tests.collector.test_collector_html import RENDERED

    tarball = tmp_path / "pages.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        def add(name: str, data: bytes = b"", **fields) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for key, value in fields.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data))

        add("movies/Alien.html", RENDERED.encode())
        huge = b"<html>" + b" " * (htmlpages.MAX_HTML_PAGE_BYTES + 1)
        add("movies/Huge.html", huge)  # a few kB once compressed
        add("movies/Passwords.html", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("movies/Hard.html", type=tarfile.LNKTYPE, linkname="movies/Alien.html")
        add("movies/Terminal.html", type=tarfile.CHRTYPE, devmajor=5, devminor=0)
        add("movies/Beta.html", RENDERED.replace("Alien", "Beta").encode())
    assert tarball.stat().st_size < 200_000
    done = subprocess.run([sys.executable, "-m", "movielinks.collector", "collect", str(tarball), "--out",
                           str(tmp_path / "films.ndjson"), "--workers", "1"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert titles(tmp_path / "films.ndjson") == ["Alien", "Beta"]
    report = done.stderr
    assert htmlpages.OVERSIZED_HTML in report, report
    for name in ("Huge.html", "Passwords.html", "Hard.html", "Terminal.html"):
        assert name in report, (name, report)
    assert report.count(htmlpages.NOT_A_FILE) >= 3, report


def test_a_directory_of_pages_reports_links_instead_of_following_them(tmp_path: Path) -> None:
    from tests.collector.test_collector_html import RENDERED

    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "Alien.html").write_text(RENDERED)
    outside = tmp_path / "secret.html"
    outside.write_text(RENDERED.replace("Alien", "Secret"))
    (pages / "Secret.html").symlink_to(outside)
    (pages / "Huge.html").write_bytes(b"<html>" + b" " * (htmlpages.MAX_HTML_PAGE_BYTES + 1))
    summary = collect(pages, tmp_path / "films.ndjson", workers=1)
    assert titles(tmp_path / "films.ndjson") == ["Alien"]
    assert summary.skipped == {htmlpages.NOT_A_FILE: 1, htmlpages.OVERSIZED_HTML: 1}
    assert any("Secret.html" in p for p in summary.problems) and any("Huge.html" in p for p in summary.problems)


def test_pathological_wikitext_takes_linear_time_and_an_oversized_page_is_reported(tmp_path: Path) -> None:
    # Each of these took from 6 s to minutes alone: unclosed nested markup in a Rotten Tomatoes
    # paragraph (mwparserfromhell is quadratic on it), 200 KB of unclosed infobox calls (every
    # hint scanned to the end), tags without a ">" (each scanned to the end).
    infobox = "{{Infobox film\n| name = Trap\n| director = [[Someone]]\n}}\n"
    traps = {
        "Nested markup": infobox + "On Rotten Tomatoes the film holds 90% " + "{{a|[[b|" * 12_500,
        "Unclosed infoboxes": "{{Infobox film" * 15_000,
        "Unclosed tags": infobox + "<nowiki " * 25_000,
        "Nested infobox": "{{Infobox film\n| name = " + "{{a|[[b|" * 12_500 + "}}",
    }
    pages = [GOOD[0]] + [page(title, text, page_id=50 + i) for i, (title, text) in enumerate(traps.items())]
    pages += [page("Too long", infobox + "x" * (wikitext.MAX_WIKITEXT_CHARS + 1), page_id=60), GOOD[1]]
    dump = tmp_path / "d.xml.bz2"
    dump.write_bytes(bz2.compress((HEADER + "".join(pages) + FOOTER).encode(), 9))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "movielinks.collector", "collect", str(dump), "--out",
                           str(tmp_path / "films.ndjson"), "--workers", "1"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    took_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took_s < 30, took_s  # the interpreter's start included; the pages themselves take well under a second
    found = titles(tmp_path / "films.ndjson")
    assert found[0] == "Good film 0" and found[-1] == "Good film 1" and "Too long" not in found, found
    assert "'Too long'" in done.stderr and f"over the {wikitext.MAX_WIKITEXT_CHARS:,}" in done.stderr, done.stderr


def test_a_parsoid_page_with_pathological_template_arguments_is_read_in_bounded_time(tmp_path: Path) -> None:
    from tests.collector.test_collector_html import PARSOID

    nested = json.dumps({"parts": [{"template": {"target": {"wt": "Navbox"},
                                                 "params": {"list": {"wt": "{{a|[[b|" * 12_500}}}}]})
    trap = PARSOID.replace("<p><b>Heat</b>", f"<div typeof=\"mw:Transclusion\" data-mw='{nested}'></div><p><b>Heat</b>")
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "Heat.html").write_text(trap)
    started = time.monotonic()
    summary = collect(pages, tmp_path / "films.ndjson", workers=1)
    assert time.monotonic() - started < 5
    assert titles(tmp_path / "films.ndjson") == ["Heat (1995 film)"] and summary.films == 1
