"""The title index and the records read on demand (indexer.version's LOOKUP_FILES): unit
tests of common.title_index, and the real server process on a version with them and on
one written before them (built in memory at load, with one log line), answering alike."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import movielinks.indexer.root

from movielinks import indexer
import movielinks.indexer.version
from movielinks.client import ClientError, MovielinksClient
from movielinks.client.client import MovieFilter
from movielinks.common import records, title_index
from movielinks.common.title_index import TitleIndex
from movielinks.server import titles
from movielinks.server.errors import Kind, ServiceError
from movielinks.server.titles import TitleResolver
from movielinks.common.franchises import franchise_groups
from tests.e2e_server import ServerProcess, build_index_cli
from tests.ops_support import build, replace_with_checksum
from tests.fixtures import make_run

TITLES = ["Titanic (1997 film)", "Titanic (1953 film)", "The Godfather", "Les Misérables (2012 film)",
          "Toy Story", "Toy Story 2", "Interstellar (film)", "Alien (film)"]


def test_a_title_index_finds_names_by_each_key_and_checks_every_hash_hit(monkeypatch):
    index = TitleIndex.build(TITLES, franchises=franchise_groups(TITLES))
    assert list(index.names) == TITLES and index.names[3] == "Les Misérables (2012 film)"
    assert index.ids("lower", "titanic (1997 film)") == [0]
    assert index.ids("base", "titanic") == [0, 1]
    assert index.ids("normal", "les miserables") == [3]
    assert index.franchises[4] == index.franchises[5] != index.franchises[6] == title_index.NO_FRANCHISE
    # Every name hashing alike: the keys still decide, so a collision never resolves a wrong title.
    monkeypatch.setattr(title_index, "stable_hash", lambda text: 7)
    colliding = TitleIndex.build(TITLES)
    assert colliding.ids("normal", "godfather") == [2] and colliding.ids("lower", "nothing") == []


def test_a_resolver_over_saved_arrays_answers_as_one_over_names(tmp_path):
    np.savez(tmp_path / "titles.npz", **TitleIndex.build(TITLES).arrays)
    with np.load(tmp_path / "titles.npz") as saved:
        loaded = TitleResolver(TitleIndex({k: saved[k] for k in saved.files}))
    built = TitleResolver(TITLES, weights=None)
    for query in ("The Godfather", "godfather", "les miserables", "interst", "Alein", "titanic", "Toy Stor"):
        try:
            expected = built.lookup(query)
        except Exception as e:  # noqa: BLE001 (the same error is expected of both)
            with pytest.raises(type(e), match="."):
                loaded.lookup(query)
        else:
            assert loaded.lookup(query) == expected
    assert "Titanic (1997 film)" in loaded.exact and loaded.exact["Alien (film)"] == 7


def test_another_films_name_is_asked_about_not_answered():
    names = ["Amelia (film)", "Speed 2: Cruise Control", "Æon Flux (film)", "Subway Sadie", "Interstellar (film)",
             "Jurassic World", "Jurassic Park (film)", "Jurassic Park III"]
    resolver = TitleResolver(names, weights=[10, 10, 10, 10, 10, 40, 90, 30])
    # The same name written otherwise: answered.
    assert resolver.lookup("Speed II: Cruise Control") == (1, "close", [])
    assert resolver.lookup("Aeon Flux") == (2, "close", [])
    assert resolver.lookup("interst") == (4, "prefix", [])  # cut short mid-word
    # A close spelling of a film the catalogue lacks, or whole words that begin another name: asked.
    with pytest.raises(ServiceError, match=r"unknown movie 'Amelie': not in the catalogue under that name; did you "
                                           r"mean: Amelia \(film\)") as amelie:
        resolver.lookup("Amelie")
    assert amelie.value.kind is Kind.NOT_FOUND
    with pytest.raises(ServiceError, match="did you mean: Subway Sadie"):
        resolver.lookup("Subway")
    with pytest.raises(ServiceError, match="did you mean: The Hills Have Eyes III"):
        TitleResolver(["The Hills Have Eyes III"]).lookup("The Hills Have Eyes II")  # another sequel, not cut short
    # Several names start so: the most linked first among those offered.
    with pytest.raises(ServiceError, match="did you mean: Jurassic Park \\(film\\); Jurassic World; Jurassic Park III"):
        resolver.lookup("Jurassic")
    assert [titles.loose_name(n) for n in ("Thomas and the Magic Railroad", "Thomas & the Magic Railroad")] == [
        "thomasmagicrailroad"] * 2


def test_close_matches_beyond_a_full_scan_visit_a_bounded_window(monkeypatch):
    names = [f"Film number {i:05d} of the catalogue" for i in range(3000)] + TITLES
    resolver = TitleResolver(names)
    monkeypatch.setattr(titles, "FULL_SCAN_NAMES", 1000)
    monkeypatch.setattr(titles, "CLOSE_WINDOW", 50)
    spellings, _ = resolver._spellings("interstellr")
    assert len(spellings) <= 4 * 2 * 50
    assert resolver.resolve("Inter-stellar (film)") == (names.index("Interstellar (film)"), "close")
    with pytest.raises(ServiceError, match=r"did you mean: Interstellar \(film\)"):
        resolver.resolve("Xnterstellar (film)")  # the first letter wrong: found, and offered
    assert resolver.suggestions("toy stori")[:2] == ["Toy Story", "Toy Story 2"]


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """The same run built twice: as `indexer build` writes it, and with the lookup files
    removed from it and its manifest (a version written before they existed)."""
    tmp = tmp_path_factory.mktemp("lookups")
    run = make_run(tmp / "run", titles=TITLES, n_movies=300, n_links=120, years=True)
    build_index_cli(run, tmp / "new", "--neighbours-k", "20")
    build_index_cli(run, tmp / "old", "--neighbours-k", "20")
    old = indexer.root.version_dir(tmp / "old", indexer.root.current_version_name(tmp / "old"))
    manifest = json.loads((old / indexer.version.MANIFEST).read_text())
    for name in indexer.version.LOOKUP_FILES:
        (old / name).unlink()
        del manifest["files"][name]
    (old / indexer.version.MANIFEST).write_text(json.dumps(manifest))
    servers = [ServerProcess(tmp / "new"), ServerProcess(tmp / "old")]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def _answers(address: str) -> list:
    with MovielinksClient(address) as client:
        found = [client.lookup_title(t) for t in ("titanic", "godfather", "les miserables", "interst", "toy story 2")]
        found.append(client.similar_movies("Alien (film)", k=5))
        found.append(client.similar_movies("Toy Story", k=5, filter=MovieFilter(min_year=1960, max_year=1990,
                                                                                exclude_franchise=True)))
        found.append(client.link_movies("Link 3", k=5))
        found.append(client.predict_attribute("Interstellar (film)", "rotten_tomatoes"))
        for misspelt in ("Alein (film)", "Toy Storyy 9", "Nothing of the kind"):  # close, suggestions, none
            try:
                found.append(client.similar_movies(misspelt, k=3).query)
            except ClientError as e:
                found.append(str(e))
        # Answers name the version they came from: the two versions differ in that alone.
        return [dataclasses.replace(a, index_version="") if hasattr(a, "index_version") else a for a in found]


def test_a_version_without_lookup_files_is_served_alike_and_says_so(two_versions):
    new, old = two_versions
    assert _answers(new.address) == _answers(old.address)
    assert any("has no movie_records.npz" in line for line in old.log_lines)
    assert not any("has no movie_records.npz" in line for line in new.log_lines)


def test_records_read_on_demand_carry_year_director_and_url(two_versions):
    new, _ = two_versions
    with MovielinksClient(new.address) as client:
        found = client.similar_movies("Alien (film)", k=20, filter=MovieFilter(min_year=1960, max_year=1990))
        assert found.neighbours and all(1960 <= n.year <= 1990 for n in found.neighbours)
        assert all(n.director.startswith("D") and n.url.startswith("https://en.wikipedia.org/wiki/")
                   for n in found.neighbours)
        assert client.predict_attribute("Interstellar (film)", "rotten_tomatoes").title == "Interstellar (film)"


def test_lookup_files_derived_from_other_records_are_built_again(tmp_path, caplog):
    """movies.jsonl replaced (its checksum too): the saved lookups name the old titles, so
    they are not used; the version loads with lookups built from its own records."""
    root = tmp_path / "index"
    name = build(tmp_path, root, 0)
    path = indexer.root.version_dir(root, name)
    movies = (path / indexer.version.MOVIES).read_text().splitlines(keepends=True)
    record = json.loads(movies[1])
    record["title"] = "Aliens (film)"
    replace_with_checksum(path, indexer.version.MOVIES, "".join([movies[0], json.dumps(record) + "\n", *movies[2:]]).encode())
    version = indexer.version.load_version(path)
    assert version.movie_names[1] == "Aliens (film)" and version.movies[1].title == "Aliens (film)"
    assert TitleResolver(version.movie_titles).resolve("aliens") == (1, "qualifier")
    assert any("derived from other records than its own" in r.getMessage() for r in caplog.records)


def test_a_name_table_reads_names_by_any_kind_of_index():
    names = ["Amélie", "", "Alien (film)", "Léon: The Professional"]
    table = title_index.NameTable.from_names(names)
    assert [table[i] for i in range(4)] == names and list(table) == names and len(table) == 4
    assert table[np.int64(2)] == "Alien (film)" and table[-1] == names[-1] and table[1:3] == names[1:3]
    for outside in (4, -5, np.int32(9)):
        with pytest.raises(IndexError, match="out of range"):
            table[outside]


def test_an_exact_lookup_tells_names_that_fold_alike_apart_and_takes_the_first_of_twins():
    names = ["HEAT (film)", "Heat (film)", "Amélie", "heat (film)", "Heat (film)", "Alien (film)"]
    index = TitleIndex.build(names)
    assert [index.exact(n) for n in ("Heat (film)", "heat (film)", "HEAT (film)", "Amélie", "Alien (film)")] == [
        1, 3, 0, 2, 5]
    assert index.exact("HeAt (film)") is None and index.exact("Aliens (film)") is None and index.exact("") is None


def test_the_facts_an_answer_shows_are_read_from_columns_equal_to_the_records(tmp_path, caplog):
    """Each movie's director and ids come from movie_records.npz's columns (no record read),
    and equal what its record says; a version written before the columns builds them at load."""
    root = tmp_path / "index"
    path = indexer.root.version_dir(root, build(tmp_path, root, 0))
    # Ids and a director with spaces and over-long text in one record, as the collector may write them.
    movies = (path / indexer.version.MOVIES).read_text().splitlines(keepends=True)
    record = json.loads(movies[2])
    record["infobox"]["director"] = "  Ridley Scott  " + "x" * 300
    record["ids"] = {"imdb": "tt0078748", "wikidata": "Q103569"}
    replace_with_checksum(path, indexer.version.MOVIES, "".join([*movies[:2], json.dumps(record) + "\n", *movies[3:]]).encode())
    indexer.version.save_lookups(path, indexer.version.build_lookups(path))  # as `indexer build` writes them
    for name in indexer.version.LOOKUP_FILES:
        replace_with_checksum(path, name, (path / name).read_bytes())

    def facts(version):
        columns = version.facts
        return [(columns.directors[i], columns.imdb_ids[i], columns.wikidata_ids[i]) for i in range(len(version.movies))]

    version = indexer.version.load_version(path)
    expected = [(records.director(r.infobox), r.ids.get("imdb", ""), r.ids.get("wikidata", "")) for r in version.movies]
    assert facts(version) == expected
    shown = ("Ridley Scott  " + "x" * 300)[:records.MAX_DIRECTOR_CHARS]  # stripped, then cut
    assert expected[2] == (shown, "tt0078748", "Q103569")
    assert sum(1 for d, _, _ in expected if d) > len(expected) // 2  # the fixture's films have directors
    assert not any("built them in memory" in r.getMessage() for r in caplog.records)

    with np.load(path / indexer.version.MOVIE_RECORDS) as saved:  # the file as versions before the columns had it
        older = {k: saved[k] for k in saved.files if not k.split("_")[0] in ("director", "imdb", "wikidata")}
    np.savez(path / indexer.version.MOVIE_RECORDS, **older)
    replace_with_checksum(path, indexer.version.MOVIE_RECORDS, (path / indexer.version.MOVIE_RECORDS).read_bytes())
    assert facts(indexer.version.load_version(path)) == expected
    assert any("has no films' prominence or facts" in r.getMessage() for r in caplog.records)


def test_facts_columns_of_another_size_than_the_movies_refuse_the_version(tmp_path):
    root = tmp_path / "index"
    path = indexer.root.version_dir(root, build(tmp_path, root, 0))
    with np.load(path / indexer.version.MOVIE_RECORDS) as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["director_offsets"] = arrays["director_offsets"][:-1]  # one movie short
    np.savez(path / indexer.version.MOVIE_RECORDS, **arrays)
    replace_with_checksum(path, indexer.version.MOVIE_RECORDS, (path / indexer.version.MOVIE_RECORDS).read_bytes())
    with pytest.raises(indexer.errors.IndexerError, match="movie facts .* differ in size"):
        indexer.version.load_version(path)


def test_an_unknown_title_is_scanned_for_close_spellings_once(monkeypatch):
    """Resolving it and naming the close titles in its error share one scan of every spelling."""
    resolver = TitleResolver(TITLES, weights=None)
    scans = []
    extract = titles.process.extract
    monkeypatch.setattr(titles.process, "extract", lambda *a, **k: scans.append(a[0]) or extract(*a, **k))
    with pytest.raises(ServiceError, match="did you mean: Alien") as error:
        resolver.resolve("Alienz")
    assert error.value.kind == Kind.NOT_FOUND and scans == ["alienz"]
    with pytest.raises(ServiceError, match="did you mean: The Godfather"):
        resolver.resolve("Thhe Godfather")
    assert scans == ["alienz", "thhe godfather"]  # another title: scanned anew
