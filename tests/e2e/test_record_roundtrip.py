"""The collector's output is the trainer's input: every film, link, link kind and id arrives,
from a wikitext dump and from saved HTML pages, and the notebook's five-element records still read."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from movielinks.collector.collect import collect
from movielinks.common.film_record import FilmRecord, kind_codes
from movielinks.trainer.data import read_dataset
from tests.collector.test_collector_dump import trap_pages
from tests.collector.test_collector_html import PARSOID_CITATIONS, RENDERED_CITATIONS, make_tarball
from tests.collector.test_collector_ids import PARSOID_IDS, RENDERED_IDS
from tests.collector_fixtures import write_plain


def collected(path: Path) -> list[FilmRecord]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [FilmRecord(*json.loads(line)) for line in f]


def assert_every_film_arrives(out: Path) -> list[FilmRecord]:
    written = collected(out)
    dataset = read_dataset(out)
    assert not dataset.skipped
    assert [film.title for film in dataset.films] == [film.title for film in written]
    for read, wrote in zip(dataset.films, written):
        assert (read.infobox, read.links, read.rotten_tomatoes, read.rating) == (
            wrote.infobox, wrote.links, wrote.rotten_tomatoes, wrote.rating)
        assert read.kinds == wrote.kinds and len(read.kinds) == len(read.links)
        assert read.ids == wrote.ids
    return written


def test_a_collected_dump_reads_back_whole(tmp_path: Path) -> None:
    dump = write_plain(tmp_path / "dump.xml", trap_pages())
    collect(dump, tmp_path / "films.ndjson", workers=1)
    written = assert_every_film_arrives(tmp_path / "films.ndjson")
    assert [film.title for film in written] == ["Interstellar (film)", "Jaws (film)"]


def test_collected_html_pages_read_back_whole(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "pages.tar.gz", {"movies/Alien_(film).html": RENDERED_CITATIONS,
                                                       "movies/Heat.html": PARSOID_CITATIONS})
    collect(tarball, tmp_path / "films.ndjson.gz", workers=1)
    written = assert_every_film_arrives(tmp_path / "films.ndjson.gz")
    assert {film.title for film in written} == {"Alien (film)", "Heat (1995 film)"}
    assert all("r" in film.kinds for film in written)


def test_the_films_ids_reach_the_trainer(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "pages.tar.gz", {"movies/Alien_(film).html": RENDERED_IDS,
                                                       "movies/Heat.html": PARSOID_IDS})
    collect(tarball, tmp_path / "films.ndjson", workers=1)
    written = assert_every_film_arrives(tmp_path / "films.ndjson")
    assert {film.title: film.ids for film in written} == {
        "Alien (film)": {"imdb": "tt0078748", "wikidata": "Q103569"}, "Heat (1995 film)": {"imdb": "tt0113277"}}


def test_five_element_records_read_with_unknown_kinds(tmp_path: Path) -> None:
    path = tmp_path / "old.ndjson"
    path.write_text('["Old (film)", {"director": "X"}, ["A", "B"], "90%", null]\n'
                    '["New (film)", {}, ["A", "C"], null, null, "br"]\n'
                    '["Bad kinds (film)", {}, ["A", "C"], null, null, "b"]\n'
                    '["Unknown kind (film)", {}, ["A"], null, null, "z"]\n', encoding="utf-8")
    dataset = read_dataset(path)
    old, new = dataset.films
    assert (old.links, old.kinds, old.rotten_tomatoes) == (["A", "B"], None, "90%")
    assert old.cited_only() == set()
    assert (new.links, new.kinds) == (["A", "C"], "br") and new.cited_only() == {"C"}
    assert [(bad.line, "link_kinds" in bad.problem or "kind codes" in bad.problem) for bad in dataset.skipped] == [
        (3, True), (4, True)]


def test_the_trainer_reads_only_the_link_kinds_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "kinds.ndjson"
    # Films 1 and 3 carry ids, a seventh element, as the collector writes films with an IMDb id.
    path.write_text("".join(f'["Film {i}", {{}}, ["Director", "Actor {i % 2}", "IMDb", "Drama"], null, null, "ibrc"'
                            + (', {"imdb": "tt000000%d"}' % i if i % 2 else "") + "]\n"
                            for i in range(4)) + '["Old", {}, ["Director", "IMDb"], null, null]\n', encoding="utf-8")
    # The old record keeps its IMDb link, the only one left once the others' citations are gone: rare at 2.
    for min_link_count, old in ((1, ["Director", "IMDb"]), (2, ["Director"])):
        dataset = read_dataset(path, min_link_count=min_link_count, link_kinds=kind_codes("infobox, body"))
        assert [dataset.links.links_of(i) for i in range(5)] == [
            ["Director", "Actor 0"], ["Director", "Actor 1"], ["Director", "Actor 0"], ["Director", "Actor 1"], old]
        assert list(dataset.all_links(range(5)))[0] == ["Director", "Actor 0"]
    assert read_dataset(path).links.links_of(0) == ["Director", "Actor 0", "IMDb", "Drama"]
    with pytest.raises(ValueError, match="unknown link kinds prose"):
        kind_codes("body,prose")
