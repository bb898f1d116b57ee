"""Readers: the three formats, bad records reported with file and line, real-world input."""
from __future__ import annotations

import json

import pytest

from tests.conftest import write_ndjson
from movielinks.trainer.data import Film, detect_format, film_attributes, parse_dollars, parse_percent, read_dataset
from movielinks.common.limits import MAX_NAME_CHARS
from movielinks.trainer.errors import TrainerError

GOOD = ["Deadpool (film)", {"name": "Deadpool", "gross": "$783.1 million"}, ["Ryan Reynolds", "Superhero"], "84%", "7.2/10"]


def test_ndjson_reads_the_notebook_format(tmp_path):
    path = write_ndjson(tmp_path / "f.ndjson", [GOOD, ["Other", {}, [], None, None]])
    dataset = read_dataset(path)
    assert dataset.format == "ndjson"
    assert [f.title for f in dataset.films] == ["Deadpool (film)", "Other"]
    assert dataset.films[0].links == ["Ryan Reynolds", "Superhero"]
    assert dataset.films[0].rotten_tomatoes == "84%"
    assert dataset.skipped == []
    assert len(dataset.sha256) == 64


def test_bad_records_are_skipped_and_reported_with_line_numbers(tmp_path):
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"title": "an object, not an array"}),
        json.dumps(["", {}, [], None, None]),
        json.dumps(["Links not strings", {}, [1, 2], None, None]),
        json.dumps(GOOD),  # duplicate title
        json.dumps(["Fine", {}, ["x"], None, None]),
    ]
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = read_dataset(path)
    assert [f.title for f in dataset.films] == ["Deadpool (film)", "Fine"]
    assert [(b.line, b.problem.split()[0]) for b in dataset.skipped] == [
        (2, "not"), (3, "expected"), (4, "empty"), (5, "links"), (6, "duplicate"),
    ]
    assert all(b.file == str(path) for b in dataset.skipped)
    assert str(dataset.skipped[4]).startswith(f"{path}:6: duplicate title")


def test_strict_stops_at_the_first_bad_record(tmp_path):
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps(GOOD) + "\n[1, 2]\n" + json.dumps(["Late", {}, [], None, None]) + "\n")
    with pytest.raises(TrainerError, match=r"bad.ndjson:2: expected a JSON array"):
        read_dataset(path, strict=True)


def test_real_world_shapes_do_not_crash(tmp_path):
    huge = ["Huge (film)", {"name": "Huge"}, [f"Link {i % 700}" for i in range(2000)], None, None]
    unicode = ["Amélie (film) 🎬", {"name": "Amélie", "budget": "$10 million"}, ["Audrey Tautou", "Paris — France"], "89%", None]
    empty = ["No Links", {}, [], None, None]
    dataset = read_dataset(write_ndjson(tmp_path / "f.ndjson", [huge, unicode, empty]))
    assert len(dataset.films) == 3
    assert len(dataset.films[0].links) == 2000
    assert dataset.films[1].title == "Amélie (film) 🎬"


def test_wikipedia_movie_data_files(tmp_path):
    films = [
        {"title": "Film A", "year": 2001, "cast": ["Actor 1", "Actor 2"], "genres": ["Drama"], "href": "Film_A_(2001_film)"},
        {"title": "Film B", "year": 2002, "cast": [], "genres": ["Comedy"]},
        {"title": "", "year": 2002},
        "not an object",
        {"title": "Film A again", "href": "Film_A_(2001_film)"},
    ]
    (tmp_path / "movies-2000s.json").write_text(json.dumps(films), encoding="utf-8")
    dataset = read_dataset(tmp_path)
    assert dataset.format == "wikipedia"
    assert [f.title for f in dataset.films] == ["Film A (2001 film)", "Film B"]
    assert dataset.films[0].links == ["Actor 1", "Actor 2", "Drama"]
    assert dataset.films[0].infobox["released"] == "2001"
    assert [(b.line, b.problem.split()[0]) for b in dataset.skipped] == [(3, "empty"), (4, "expected"), (5, "duplicate")]


def test_edge_list(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("# movie\tlink\nFilm A\tActor 1\nFilm B\tActor 1\nFilm A\tDrama\nbroken line\n\tno movie\n", encoding="utf-8")
    dataset = read_dataset(path)
    assert dataset.format == "edges"
    assert {f.title: f.links for f in dataset.films} == {"Film A": ["Actor 1", "Drama"], "Film B": ["Actor 1"]}
    assert [b.line for b in dataset.skipped] == [5, 6]


def test_format_detection_and_errors(tmp_path):
    (tmp_path / "x.txt").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "y.txt").write_text("a\tb\n")
    (tmp_path / "z.txt").write_text("plain words\n")
    assert detect_format(tmp_path / "x.txt") == "ndjson"
    assert detect_format(tmp_path / "y.txt") == "edges"
    with pytest.raises(TrainerError, match="--format"):
        detect_format(tmp_path / "z.txt")
    with pytest.raises(TrainerError, match="no such dataset"):
        read_dataset(tmp_path / "missing.ndjson")
    with pytest.raises(TrainerError, match="no valid films"):
        read_dataset(write_ndjson(tmp_path / "empty.ndjson", [["", {}, [], None, None]]))


def test_attribute_parsing():
    assert parse_dollars("$783.1 million") == pytest.approx(783.1e6)
    assert parse_dollars("$1.2 billion") == pytest.approx(1.2e9)
    assert parse_dollars("$250,000") == 250_000
    assert parse_dollars("unknown") is None and parse_dollars(None) is None
    assert parse_percent("87%") == pytest.approx(0.87)
    assert parse_percent("187%") is None and parse_percent("n/a") is None
    film = Film("X", {"gross": "$1.2 billion", "budget": "$58 million"}, [], "84%")
    assert film_attributes(film) == pytest.approx({"rotten_tomatoes": 0.84, "gross": 1.2e9, "budget": 58e6})


def test_reads_the_real_data(real_data):
    dataset = read_dataset(real_data)
    assert len(dataset.films) == 36_038
    assert dataset.skipped == []
    attributes = [film_attributes(f) for f in dataset.films]
    assert sum("rotten_tomatoes" in a for a in attributes) == 2_120
    assert sum("gross" in a for a in attributes) == 2_518


def test_titles_and_links_past_the_servers_limits_are_reported_and_skipped(tmp_path):
    # Issue 13.10: a 10 MB title reached the index, where no request could name it.
    records = [
        GOOD,
        ["T" * 10_000_000, {}, ["Ryan Reynolds"], None, None],
        ["Tab\tin the title (film)", {}, ["Ryan Reynolds"], None, None],
        ["Long link (film)", {}, ["Ryan Reynolds", "L" * (MAX_NAME_CHARS + 1)], None, None],
        ["NUL in a link (film)", {}, ["Ryan\x00Reynolds"], None, None],
        ["At the limit (film)" + "x" * (MAX_NAME_CHARS - 19), {}, ["y" * MAX_NAME_CHARS], None, None],
    ]
    dataset = read_dataset(write_ndjson(tmp_path / "f.ndjson", records))
    assert [f.title for f in dataset.films] == [GOOD[0], records[5][0]]
    assert [(b.line, b.problem.split()[0]) for b in dataset.skipped] == [(2, "title"), (3, "title"), (4, "link"),
                                                                         (5, "link")]
    assert "10,000,000 characters long; the limit is 500" in dataset.skipped[0].problem
    assert len(str(dataset.skipped[0])) < 300  # the report quotes the name cut short
    assert "U+0009" in dataset.skipped[1].problem and "U+0000" in dataset.skipped[3].problem
    with pytest.raises(TrainerError, match="f.ndjson:2: title 'TTT"):
        read_dataset(tmp_path / "f.ndjson", strict=True)


def test_edges_lines_with_bad_names_are_skipped_alone(tmp_path):
    path = tmp_path / "f.tsv"
    path.write_text(f"Film A\tLink 1\nFilm A\t{'L' * 600}\nFilm\x07B\tLink 1\nFilm A\tLink 2\n", encoding="utf-8")
    dataset = read_dataset(path)
    assert [(f.title, f.links) for f in dataset.films] == [("Film A", ["Link 1", "Link 2"])]
    assert [b.line for b in dataset.skipped] == [2, 3]


@pytest.mark.parametrize("fmt", ["ndjson", "edges", "wikipedia"])
def test_a_utf8_byte_order_mark_is_not_data(tmp_path, fmt):
    # Issue 13.10: with a BOM the ndjson reader dropped the first record and the edges
    # reader made a phantom film "\ufeffFilm 0 (film)".
    text = {
        "ndjson": json.dumps(["Film 0 (film)", {}, ["Link 1"], None, None]) + "\n"
                  + json.dumps(["Film 1 (film)", {}, ["Link 1"], None, None]) + "\n",
        "edges": "Film 0 (film)\tLink 1\nFilm 1 (film)\tLink 1\n",
        "wikipedia": json.dumps([{"title": "Film 0 (film)", "cast": ["Link 1"]},
                                 {"title": "Film 1 (film)", "cast": ["Link 1"]}]),
    }[fmt]
    path = tmp_path / {"ndjson": "f.ndjson", "edges": "f.tsv", "wikipedia": "f.json"}[fmt]
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    dataset = read_dataset(path)
    assert [f.title for f in dataset.films] == ["Film 0 (film)", "Film 1 (film)"]
    assert dataset.skipped == []
    unnamed = tmp_path / "data"  # no telling suffix: the format is guessed from the first line
    unnamed.write_bytes(path.read_bytes())
    assert fmt == "wikipedia" or detect_format(unnamed) == fmt


def _vocabulary_of(dataset):
    from movielinks.trainer.vocab import build_vocabulary

    vocab, kept = build_vocabulary(dataset.links, 3)
    return vocab.movies, vocab.links, vocab.pairs.tolist(), kept.tolist(), vocab.dropped_movies


@pytest.mark.parametrize("fmt", ["ndjson", "edges"])
def test_reading_with_a_min_count_keeps_what_the_vocabulary_keeps_and_names_nothing_else(tmp_path, monkeypatch, fmt):
    # Issue 9: a million films' once-seen link names were all Python strings until the vocabulary dropped them.
    import movielinks.trainer.data

    from movielinks import trainer
    films = [(f"Film {i}", [f"Link {(i * j) % 23}" for j in range(1, 8)] + [f"Only in {i}"]) for i in range(40)]
    films.insert(3, ("Bad (film)", ["Link\x001"]))
    path = tmp_path / f"f.{'ndjson' if fmt == 'ndjson' else 'tsv'}"
    if fmt == "ndjson":
        write_ndjson(path, [[title, {}, links, None, None] for title, links in films])
    else:
        path.write_text("".join(f"{title}\t{link}\n" for title, links in films for link in links), encoding="utf-8")
    every = read_dataset(path)
    frequent = read_dataset(path, min_link_count=3)
    assert _vocabulary_of(frequent) == _vocabulary_of(every)
    assert not any(name.startswith("Only in") for name in frequent.links.link_names)
    assert frequent.skipped == every.skipped and len(frequent.skipped) == 1
    positions = [0, 5, 39]
    assert list(frequent.all_links(positions)) == [every.films[i].links for i in positions]
    # Two names that share a hash are not merged: the table is then built by name.
    monkeypatch.setattr(trainer.data, "_link_hash", lambda name: len(name))
    collided = read_dataset(path, min_link_count=3)
    assert _vocabulary_of(collided) == _vocabulary_of(every)


def test_citation_marks_survive_reading_with_a_min_count_and_colliding_hashes(tmp_path, monkeypatch):
    import movielinks.trainer.data

    from movielinks import trainer
    from movielinks.trainer.vocab import build_vocabulary
    records = []
    for i in range(40):
        links = [f"Link {(i * j) % 23}" for j in range(1, 8)] + [f"Only in {i}"]
        records.append([f"Film {i}", {}, links, None, None, "".join("rbin"[(i + j) % 4] for j in range(len(links)))])
    records.append(["Old (film)", {}, ["Link 1", "Link 2"], None, None])  # no kinds: its links are prose
    path = write_ndjson(tmp_path / "f.ndjson", records)

    def marks(dataset):
        vocab, _ = build_vocabulary(dataset.links, 3)
        return vocab.pairs.tolist(), vocab.cited.tolist()

    every = marks(read_dataset(path))
    assert any(every[1]) and not all(every[1])
    assert marks(read_dataset(path, min_link_count=3)) == every
    monkeypatch.setattr(trainer.data, "_link_hash", lambda name: len(name))
    assert marks(read_dataset(path, min_link_count=3)) == every
    # Film 0's Link 0 occurs seven times, kinds r, b, i, n, r, b, i: not citation-only.
    table = read_dataset(path).links
    cited_only = {name for name in set(table.links_of(0)) if all(
        c for n, c in zip(table.links_of(0), table.cited[:table.offsets[1]]) if n == name)}
    assert cited_only == {name for name, kind in zip(records[0][2], records[0][5]) if kind in "rn"} - {
        name for name, kind in zip(records[0][2], records[0][5]) if kind in "bi"}


def test_ndjson_numbers_read_as_the_standard_library_reads_them(tmp_path):
    path = tmp_path / "f.ndjson"
    path.write_text('["Big (film)", {"budget": 123456789012345678901234567890}, ["A"], null, null]\n'
                    '["Lone \\ud800 surrogate", {"x": NaN}, ["A"], null, null]\n', encoding="utf-8")
    dataset = read_dataset(path)
    assert dataset.films[0].infobox == {"budget": "123456789012345678901234567890"}
    assert dataset.films[1].infobox == {"x": "nan"}


@pytest.mark.parametrize("name", ["Alien (film)", "", "  ", "x" * MAX_NAME_CHARS, "x" * (MAX_NAME_CHARS + 1), "a\tb",
                                  "a\x85b", "a\u00a0b", "a\u2028b", "Lone \ud800 surrogate", "Zoë"])
def test_the_fast_name_check_agrees_with_name_problem(name):
    from movielinks.common.limits import name_problem, names_are_fine

    assert names_are_fine([name]) == (name_problem(name) is None)
    assert names_are_fine(["Fine", name, "Also fine"]) == (name_problem(name) is None)
