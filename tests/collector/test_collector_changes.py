"""`collector collect` writing only the films asked for, or new or changed since an older output (the real command)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.collector.test_collector_html import RENDERED, make_tarball, records

REPO = Path(__file__).resolve().parents[2]
EXTRA_LINK = '<a href="/wiki/Science_fiction_film">science'
OLDER = {"movies/Alien.html": RENDERED, "movies/Heat.html": RENDERED.replace("Alien", "Heat"),
         "movies/Gone.html": RENDERED.replace("Alien", "Gone")}
# Alien gains a link, Heat's links come in another order with a repeat (no change), Gone is gone, Beta is new.
NEWER = {"movies/Alien.html": RENDERED.replace(EXTRA_LINK, '<a href="/wiki/Dan_O%27Bannon">writer</a> ' + EXTRA_LINK),
         "movies/Heat.html": RENDERED.replace("Alien", "Heat").replace(
             EXTRA_LINK, '<a href="/wiki/Ridley_Scott">again</a> ' + EXTRA_LINK),
         "movies/Beta.html": RENDERED.replace("Alien", "Beta")}


def collector(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movielinks.collector", "collect", *map(str, args), "--workers", "1"],
                          cwd=REPO, capture_output=True, text=True)


@pytest.fixture
def collections(tmp_path: Path) -> tuple[Path, Path, Path]:
    older = tmp_path / "older.ndjson"
    assert collector(make_tarball(tmp_path / "older.tar.gz", OLDER), "--out", older).returncode == 0
    return tmp_path, older, make_tarball(tmp_path / "newer.tar.gz", NEWER)


def test_only_new_and_changed_films_are_written_and_removed_ones_listed(collections) -> None:
    tmp, older, newer = collections
    done = collector(newer, "--out", tmp / "changed.ndjson", "--changed-since", older, "--removed-out",
                     tmp / "removed.txt", "--json")
    assert done.returncode == 0, done.stderr
    assert [r[0] for r in records(tmp / "changed.ndjson")] == ["Alien", "Beta"]
    assert "Dan O'Bannon" in records(tmp / "changed.ndjson")[0][2]
    assert (tmp / "removed.txt").read_text() == "Gone\n"
    changes = json.loads(done.stdout)["changes"]
    assert (changes["new"], changes["changed"], changes["unchanged"], changes["removed"]) == (1, 1, 1, ["Gone"])
    plain = collector(newer, "--out", tmp / "again.ndjson", "--changed-since", older)
    assert "written: 1 new films and 1 whose links changed; left out: 1 unchanged" in plain.stderr


def test_only_the_titles_asked_for_are_written(collections) -> None:
    tmp, _, newer = collections
    (tmp / "titles.txt").write_text("Heat\n\n  Beta  \nNo Such Film\n")
    done = collector(newer, "--out", tmp / "some.ndjson", "--titles", tmp / "titles.txt")
    assert done.returncode == 0, done.stderr
    assert [r[0] for r in records(tmp / "some.ndjson")] == ["Heat", "Beta"]
    assert "left out: 1 not asked for" in done.stderr and "asked for but not a film of the input: No Such Film" in done.stderr


@pytest.mark.parametrize("older_text, words", [
    ('["Alien", {}, ["A"], null, null]\nnot json\n', "older.ndjson:2: not JSON"),
    ('["Alien", {}, ["A"], null, null]\n["Alien", {}, ["B"], null, null]\n', "older.ndjson:2: 'Alien' again (first on line 1)"),
    ('["Alien", {}, "A", null, null]\n', "older.ndjson:1: links is not a list of strings"),
])
def test_a_bad_older_output_is_a_clear_error_and_nothing_is_written(collections, older_text: str, words: str) -> None:
    tmp, older, newer = collections
    older.write_text(older_text)
    done = collector(newer, "--out", tmp / "changed.ndjson", "--changed-since", older)
    assert done.returncode == 1 and words in done.stderr
    assert not (tmp / "changed.ndjson").exists()


def test_removed_titles_need_an_older_output(collections) -> None:
    tmp, _, newer = collections
    done = collector(newer, "--out", tmp / "changed.ndjson", "--removed-out", tmp / "removed.txt")
    assert done.returncode == 1 and "--removed-out needs --changed-since" in done.stderr


def test_a_records_file_reads_as_the_trainer_reads_it_byte_order_mark_and_gz_in_any_case(tmp_path):
    import gzip

    from movielinks.collector.record import CollectorError
    from movielinks.common.film_record import read_films

    line = json.dumps(["Alien (film)", {"released": "1979"}, ["Ridley Scott"], None, None]) + "\n"
    with_mark = tmp_path / "films.ndjson"
    with_mark.write_bytes(b"\xef\xbb\xbf" + line.encode())
    packed = tmp_path / "FILMS.NDJSON.GZ"
    packed.write_bytes(gzip.compress(line.encode()))
    for path in (with_mark, packed):
        assert [(f.title, f.links) for f in read_films(path, CollectorError, "the older output")] == [
            ("Alien (film)", ["Ridley Scott"])]
