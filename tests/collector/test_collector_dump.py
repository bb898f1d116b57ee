"""The collector on small pages-articles dumps written here, with the traps of a real one."""
from __future__ import annotations

import bz2
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from movielinks.collector import wikitext
from movielinks.collector.collect import collect, resolve_redirects
from movielinks.collector.record import CollectorError
from movielinks.common.film_record import FilmRecord
from movielinks.collector.xmldump import BAD_STREAM, MALFORMED_XML, NOT_A_FILM, OTHER_NAMESPACE, PARSER_ERROR, REDIRECT
from tests.collector_fixtures import film_text, page, write_bz2, write_multistream, write_plain

INTERSTELLAR = """{{Infobox film
| name = Interstellar
| director = [[Christopher Nolan]]
| starring = {{Plainlist|
* [[Matthew McConaughey]]
* [[Anne Hathaway]]
}}
| based_on = {{Based on|''Science'' by {{nowrap|[[Kip Thorne]]}}}}
| budget = {{US$|165 million}}<ref>{{cite web|publisher=[[Variety (magazine)|Variety]]}}</ref>
}}
'''''Interstellar''''' is a film by [[christopher_Nolan|Nolan]] starring [[Matthew McConaughey#Career|him]].
[[Chris Nolan]] and [[C. Nolan]] wrote it.
[[File:Poster.jpg|thumb|Music by [[Hans Zimmer]]]]
See [[#Plot]], [[Template:Infobox film]], [[Help:Contents]], [[wikt:space]], [[:Category:Space films]].

On [[Rotten Tomatoes]], the film holds an approval rating of 73% based on 380 reviews, with an average rating of 7.10/10.

[[Category:2014 films]]
[[de:Interstellar]]
[[fr:Interstellar (film)]]
"""
INTERSTELLAR_LINKS = [
    "Christopher Nolan", "Matthew McConaughey", "Anne Hathaway", "Kip Thorne", "Variety (magazine)",
    "Christopher Nolan", "Matthew McConaughey", "Chris Nolan", "C. Nolan", "Hans Zimmer",
    "Category:Space films", "Rotten Tomatoes", "Category:2014 films",
]
BROKEN_PAGE = ("  <page>\n    <title>Broken film</title>\n    <ns>0</ns>\n    <revision>\n"
               "      <text>{{Infobox film | name = <b>unclosed</text>\n    </revision>\n  </page>\n")


def trap_pages() -> list[str]:
    return [
        page("Interstellar (film)", INTERSTELLAR, page_id=1),
        page("Chris Nolan", "#REDIRECT [[Christopher Nolan]] {{R from short name}}", redirect="Christopher Nolan",
             page_id=2),
        page("C. Nolan", "#REDIRECT [[Chris Nolan]]", redirect="Chris Nolan", page_id=3),
        page("Christopher Nolan", "'''Christopher Nolan''' is a director of [[Interstellar (film)]].", page_id=4),
        page("86th Academy Awards", "{{Infobox film awards\n| name = 86th\n}} [[Gravity (film)]]", page_id=5),
        page("Cannes Film Festival", "{{Infobox film festival\n| name = Cannes\n}} [[Cannes]]", page_id=6),
        page("Template:Infobox film", "{{Infobox film/doc}} {{Infobox film | name = x}}", ns=10, page_id=7),
        BROKEN_PAGE,
        page("Jaws (film)", "{{infobox film\n| director = [[Steven Spielberg]]\n| writer = {{ubl|[[Peter Benchley]]"
                            "|[[Carl Gottlieb]]}}\n}} A [[shark]] film, see [[Jaws (novel)|the novel]].", page_id=9),
        page("Jaws (disambiguation)", "{{Infobox film\n| name = Jaws}} '''Jaws''' may be [[Jaws (film)]].\n"
                                      "{{disambiguation}}", page_id=10),
        page("Interstellar (2014 film)", "#REDIRECT [[Interstellar (film)]]", redirect="Interstellar (film)",
             page_id=11),
        page("Space", "Just an article with [[Category:Space]] and {{Infobox planet}}.", page_id=12),
    ]


def read_records(path: Path) -> list[list]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_a_trap_dump_gives_the_films_and_only_them(tmp_path: Path) -> None:
    dump = write_plain(tmp_path / "traps.xml", trap_pages())
    summary = collect(dump, tmp_path / "films.ndjson", workers=1)
    records = read_records(tmp_path / "films.ndjson")
    assert [r[0] for r in records] == ["Interstellar (film)", "Jaws (film)"]
    title, infobox, links, rotten, rating, kinds = records[0]
    assert infobox == {"name": "Interstellar", "director": "Christopher Nolan",
                       "starring": "Matthew McConaughey, Anne Hathaway", "based_on": "Science by Kip Thorne",
                       "budget": "$165 million"}
    resolved = ["Christopher Nolan" if link in ("Chris Nolan", "C. Nolan") else link for link in INTERSTELLAR_LINKS]
    assert links == resolved
    assert (rotten, rating) == ("73%", "7.10/10")
    # infobox (its <ref> a citation), prose and a caption, the category link and the category
    assert kinds == "iiii" + "r" + "bbbbb" + "c" + "b" + "c"
    assert records[1] == ["Jaws (film)", {"director": "Steven Spielberg", "writer": "Peter Benchley, Carl Gottlieb"},
                          ["Steven Spielberg", "Peter Benchley", "Carl Gottlieb", "Shark", "Jaws (novel)"], None, None,
                          "iiibb"]
    assert summary.pages == 12
    assert summary.films == 2
    assert summary.links == len(resolved) + 5
    assert summary.redirects == 3
    assert summary.links_resolved == 2
    assert summary.skipped == {REDIRECT: 3, NOT_A_FILM: 2, wikitext.NOT_A_FILM: 2, OTHER_NAMESPACE: 1,
                               MALFORMED_XML: 1, wikitext.DISAMBIGUATION: 1}
    (problem,) = summary.problems
    assert "Broken film" in problem and MALFORMED_XML in problem


def test_no_resolve_redirects_keeps_the_links_as_written(tmp_path: Path) -> None:
    dump = write_plain(tmp_path / "traps.xml", trap_pages())
    summary = collect(dump, tmp_path / "films.ndjson", workers=1, resolve=False)
    assert read_records(tmp_path / "films.ndjson")[0][2] == INTERSTELLAR_LINKS
    assert summary.links_resolved == 0


def test_redirect_chains_resolve_and_loops_stay_as_written() -> None:
    redirects = {"A": "B", "B": "C", "X": "Y", "Y": "X"}
    assert resolve_redirects(["A", "B", "C", "X", "Q"], redirects) == (["C", "C", "C", "X", "Q"], 2)


def test_plain_bz2_and_multistream_dumps_give_the_same_bytes(tmp_path: Path) -> None:
    pages = trap_pages()
    plain = write_plain(tmp_path / "d.xml", pages)
    single = write_bz2(tmp_path / "d.xml.bz2", pages)
    multi, _index = write_multistream(tmp_path / "wiki-20261101-pages-articles-multistream.xml.bz2", pages)
    outputs = []
    for number, dump in enumerate((plain, single, multi)):
        out = tmp_path / f"out{number}.ndjson"
        collect(dump, out, workers=1, chunk_bytes=200)  # tiny units: pages split across many of them
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(read_records(tmp_path / "out0.ndjson")) == 2


def test_a_truncated_stream_of_a_multistream_dump_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    pages = trap_pages()
    dump, index = write_multistream(tmp_path / "w-20261101-pages-articles-multistream.xml.bz2", pages,
                                    pages_per_stream=1, cut_stream=0)  # the stream of Interstellar
    summary = collect(dump, tmp_path / "films.ndjson", workers=1)
    assert [r[0] for r in read_records(tmp_path / "films.ndjson")] == ["Jaws (film)"]
    bad = [p for p in summary.problems if BAD_STREAM in p]
    offset = bz2.decompress(index.read_bytes()).decode().split(":", 1)[0]
    assert len(bad) == 1 and f"byte offset {offset}" in bad[0]
    with pytest.raises(CollectorError, match=f"byte offset {offset}"):
        collect(dump, tmp_path / "strict.ndjson", workers=1, strict=True)
    assert not (tmp_path / "strict.ndjson").exists()


def test_a_truncated_single_stream_dump_keeps_what_came_before_the_cut(tmp_path: Path) -> None:
    filler = "A long paragraph about the film. " * 30
    pages = trap_pages()[:9] + [page(f"Film {i}", film_text("Director", f"Link {i}", extra=filler), page_id=100 + i)
                                for i in range(300)]
    dump = write_bz2(tmp_path / "d.xml.bz2", pages, compresslevel=1)  # several bz2 blocks
    data = dump.read_bytes()
    dump.write_bytes(data[: int(len(data) * 0.7)])
    summary = collect(dump, tmp_path / "films.ndjson", workers=1)
    titles = [r[0] for r in read_records(tmp_path / "films.ndjson")]
    assert titles[:2] == ["Interstellar (film)", "Jaws (film)"]
    assert 2 < len(titles) < 302
    assert any(BAD_STREAM in p and "decompressed bytes" in p for p in summary.problems)


def test_a_page_that_breaks_the_parser_is_skipped_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_parse = wikitext.mwparserfromhell.parse

    def parse(text, *args, **kwargs):
        if "PARSER-BREAKER" in str(text):
            raise RecursionError("maximum recursion depth exceeded")
        return real_parse(text, *args, **kwargs)

    monkeypatch.setattr(wikitext.mwparserfromhell, "parse", parse)
    pages = [page("Bad film", film_text("X PARSER-BREAKER")), page("Good film", film_text("Y", "Z"))]
    summary = collect(write_plain(tmp_path / "d.xml", pages), tmp_path / "films.ndjson", workers=1)
    assert [r[0] for r in read_records(tmp_path / "films.ndjson")] == ["Good film"]
    assert summary.skipped == {PARSER_ERROR: 1}
    assert "'Bad film'" in summary.problems[0] and "RecursionError" in summary.problems[0]


def test_strict_stops_at_the_broken_page_and_writes_nothing(tmp_path: Path) -> None:
    dump = write_plain(tmp_path / "traps.xml", trap_pages())
    with pytest.raises(CollectorError, match="Broken film.*malformed XML"):
        collect(dump, tmp_path / "films.ndjson", workers=1, strict=True)
    assert list(tmp_path.iterdir()) == [dump]


def test_a_failure_while_writing_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = write_plain(tmp_path / "traps.xml", trap_pages())
    written = []

    def to_json_line(self: FilmRecord) -> str:
        if written:
            raise OSError(28, "No space left on device")  # the second record fails, as a full disk would
        written.append(self.title)
        return "[]\n"

    monkeypatch.setattr(FilmRecord, "to_json_line", to_json_line)
    with pytest.raises(OSError, match="No space left"):
        collect(dump, tmp_path / "films.ndjson", workers=1)
    assert list(tmp_path.iterdir()) == [dump]


def test_gzip_output_is_deterministic_and_reads_back(tmp_path: Path) -> None:
    dump = write_plain(tmp_path / "traps.xml", trap_pages())
    collect(dump, tmp_path / "a.ndjson.gz", workers=1)
    collect(dump, tmp_path / "b.ndjson.gz", workers=1)
    collect(dump, tmp_path / "c.ndjson", workers=1)
    assert (tmp_path / "a.ndjson.gz").read_bytes() == (tmp_path / "b.ndjson.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.ndjson.gz").read_bytes()) == (tmp_path / "c.ndjson").read_bytes()


def test_the_output_name_and_input_are_checked(tmp_path: Path) -> None:
    dump = write_plain(tmp_path / "traps.xml", trap_pages())
    with pytest.raises(CollectorError, match="must end in .ndjson"):
        collect(dump, tmp_path / "films.csv")
    with pytest.raises(CollectorError, match="no such dump"):
        collect(tmp_path / "absent.xml", tmp_path / "films.ndjson")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CollectorError, match="not an input the collector reads"):
        collect(tmp_path / "notes.txt", tmp_path / "films.ndjson")
    (tmp_path / "empty.xml").write_text("hello")
    with pytest.raises(CollectorError, match="not a pages-articles XML dump"):
        collect(tmp_path / "empty.xml", tmp_path / "films.ndjson")


@pytest.mark.slow
def test_one_process_and_a_two_worker_dask_cluster_write_the_same_bytes(tmp_path: Path) -> None:
    pages = trap_pages() + [page(f"Film {i}", film_text(f"Director {i % 3}", f"Link {i}", "Chris Nolan"),
                                 page_id=100 + i) for i in range(30)]
    dump, _index = write_multistream(tmp_path / "w-20261101-pages-articles-multistream.xml.bz2", pages)
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"films-{workers}.ndjson.gz"
        command = [sys.executable, "-m", "movielinks.collector", "collect", str(dump), "--out", str(out),
                   "--workers", str(workers), "--chunk-mb", "0.0005", "--json"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["films"] == 32
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert read_records(tmp_path / "films-2.ndjson.gz")[2][2] == ["Director 0", "Link 0", "Christopher Nolan"]


@pytest.mark.slow
def test_a_killed_collector_leaves_nothing_under_the_output_name(tmp_path: Path) -> None:
    pages = [page(f"Film {i}", film_text(f"Director {i % 50}", *(f"Link {j}" for j in range(i % 40, i % 40 + 60))),
                  page_id=i + 1) for i in range(30000)]
    dump = write_plain(tmp_path / "big.xml", pages)
    out = tmp_path / "films.ndjson"
    process = subprocess.Popen([sys.executable, "-m", "movielinks.collector", "collect", str(dump), "--out", str(out),
                                "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed once it has worked a while (CPU time, not wall time: a loaded machine starts it late),
    # in the middle of reading the pages.
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and _cpu_seconds(process.pid) < 2.0:
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    assert process.returncode == -9, "the collector ended before it could be killed: give it a bigger dump"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big.xml"]  # no partial file either


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_scheduler_runs_the_units_on_an_existing_dask_cluster(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from movielinks.collector import engine

    dump, _index = write_multistream(tmp_path / "w-20261101-pages-articles-multistream.xml.bz2", trap_pages())
    collect(dump, tmp_path / "local.ndjson", workers=1)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        summary = collect(dump, tmp_path / "cluster.ndjson", scheduler=cluster.scheduler_address, chunk_bytes=100)
    assert (tmp_path / "cluster.ndjson").read_bytes() == (tmp_path / "local.ndjson").read_bytes()
    assert summary.films == 2
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(CollectorError, match="cannot reach the Dask scheduler"):
        collect(dump, tmp_path / "none.ndjson", scheduler="tcp://127.0.0.1:9")
