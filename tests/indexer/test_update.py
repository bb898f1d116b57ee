"""`indexer update`: films folded into a new version (exact and HNSW), its stored neighbours and title
index right, and bad update files refused with nothing published (the real command)."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from movielinks.indexer.build import all_movie_neighbours, build_index
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.root import current_version_name, list_versions, load_current
from movielinks.indexer.stored_neighbours import refreshed_neighbours
from movielinks.indexer.update import update_index
from movielinks.search.foldin import fold_in, fold_in_space, link_film_counts
from movielinks.search.neighbours import search
from tests.e2e_server import REPO
from movielinks.trainer.run import load_run, save_run
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # builds and updates index versions


def write_films(path: Path, films: list[list]) -> Path:
    path.write_text("".join(json.dumps(film) + "\n" for film in films), encoding="utf-8")
    return path


def near_film(title: str, links: list[str], **extra) -> list:
    return [title, {"director": "Somebody", "released": "2001", **extra}, links, "87%", None]


@pytest.fixture(params=["Flat", "HNSW32"])
def root(request, tmp_path: Path) -> Path:
    """A version whose movie vectors are the fold-in of their links, as if trained with the objective
    exactly: a new film with an old film's links lands on it."""
    made = load_run(make_run(tmp_path / "made", n_movies=400, n_links=120, titles=["Alien (film)", "Heat (1995 film)"]))
    links = made.movie_links
    space = fold_in_space(made.link_vectors, link_film_counts(links, len(made.links)))
    movie_vectors = fold_in(space, [links.of(i) for i in range(links.n_movies)]).vectors
    pairs = np.column_stack([np.repeat(np.arange(links.n_movies), links.counts()), links.link_ids])
    save_run(tmp_path / "run", made.manifest, movie_vectors, made.link_vectors, made.records, pairs)
    build_index(tmp_path / "run", tmp_path / "index", factory=request.param, neighbours_k=20, progress=False)
    return tmp_path / "index"


def test_new_changed_and_removed_films_make_a_consistent_version(root: Path, tmp_path: Path) -> None:
    base = load_current(root)
    films = [near_film(f"New film {i}", [base.links[j] for j in base.movie_links.of(i + 2).tolist()]
                       + ["Nobody knows this link"]) for i in range(30)]
    films.append(near_film("Alien (film)", ["Link 3", "Link 4", "Link 5"], imdb="x"))  # changed
    films[0] = films[0] + [None, {"imdb": "tt7777777"}]
    (tmp_path / "removed.txt").write_text("Heat (1995 film)\n")
    done = update_index(root, write_films(tmp_path / "update.ndjson", films), remove=tmp_path / "removed.txt",
                        progress=False)
    assert (done.new, done.changed, done.removed, done.movies, done.unknown_links) == (30, 1, 1, 429, 30)
    updated = load_current(root)  # loaded and validated: checksums, sizes, title index
    assert updated.name == done.version != base.name and current_version_name(root) == done.version
    names = list(updated.movie_names)
    assert names[0] == "Alien (film)" and "Heat (1995 film)" not in names and names[-1] == "New film 29"
    assert updated.movies[names.index("New film 0")].ids == {"imdb": "tt7777777"}
    assert updated.movies[0].attributes["rotten_tomatoes"] == pytest.approx(0.87)
    assert np.allclose(np.linalg.norm(updated.movie_vectors, axis=1), 1.0, atol=1e-5)
    assert updated.movie_links.of(0).tolist() == sorted(base.links.index(f"Link {i}") for i in (3, 4, 5))
    # The stored neighbours are each movie's nearest (of an exact index: what its search finds, films with
    # equal vectors swapping places; of a graph: nearly all of them), each its true cosine, never itself.
    vectors = np.asarray(updated.movie_vectors)
    stored_ids, stored_scores = updated.movie_neighbours.first(np.arange(429), 20)
    if base.manifest.indexes["movies"].factory == "Flat":
        np.testing.assert_allclose(stored_scores, all_movie_neighbours(updated.movie_index, vectors, 20)[1], atol=1e-5)
    cosines = vectors @ vectors.T
    np.fill_diagonal(cosines, -np.inf)
    exact = np.argsort(-cosines, axis=1)[:, :20]
    assert np.mean([len(set(a) & set(b)) / 20 for a, b in zip(stored_ids.tolist(), exact.tolist())]) > 0.95
    np.testing.assert_allclose(np.take_along_axis(cosines, stored_ids.astype(np.int64), 1), stored_scores,
                               atol=1e-5)
    assert not (stored_ids == np.arange(429)[:, None]).any()
    # A new film with an old film's links lands on it: at the head of its list (base id i + 2 is new id i + 1).
    assert all(399 + i in stored_ids[i + 1, :2] for i in range(30))
    manifest = updated.manifest
    assert manifest.folded_in["films"]["New film 3"] == 0 and manifest.folded_in["updates"][0]["removed"] == 1
    assert manifest.indexes["movies"].size == 429 and manifest.indexes["movies"].factory == base.manifest.indexes[
        "movies"].factory


def test_old_lists_are_ranked_by_scores_from_the_vectors_or_by_those_a_version_stored(root: Path) -> None:
    """The lists hold ids only: the merge ranks a kept list by its scores computed from the old vectors;
    a version written before gives its stored ones (here float64 products, rounded), and both agree."""
    base = load_current(root)
    lists, vectors = base.movie_neighbours, np.asarray(base.movie_vectors)
    n = len(vectors)
    stored = np.where(lists.ids >= 0, np.einsum("rd,rkd->rk", vectors.astype(np.float64),
                                                 vectors[np.maximum(lists.ids, 0)].astype(np.float64)), -np.inf)
    remap = np.arange(n)
    remap[7], remap[8:] = -1, remap[8:] - 1  # film 7 removed
    kept = vectors[remap >= 0]
    fresh = np.zeros(len(kept), dtype=bool)
    fresh[[3, 50, 200]] = True  # changed, to the same vectors
    index = faiss.IndexFlatIP(kept.shape[1])
    index.add(kept)
    ids, scores = refreshed_neighbours(lists, remap, fresh, index, kept)
    old_ids, old_scores = refreshed_neighbours(dataclasses.replace(lists, scores=stored.astype(np.float32)), remap,
                                               fresh, index, kept)
    np.testing.assert_array_equal(ids, old_ids)
    np.testing.assert_allclose(scores, old_scores, rtol=0, atol=1e-6)
    listed = ids >= 0
    np.testing.assert_allclose(scores[listed], np.einsum("rd,rkd->rk", kept, kept[np.maximum(ids, 0)])[listed],
                               rtol=0, atol=1e-5)


def test_a_graph_that_only_gains_films_is_extended_and_finds_them(root: Path, tmp_path: Path) -> None:
    base = load_current(root)
    links = [base.links[i] for i in base.movie_links.of(0).tolist()]
    update_index(root, write_films(tmp_path / "update.ndjson", [near_film("Alien copy", links)]), progress=False)
    updated = load_current(root)
    found, scores = search(updated.movie_index, np.asarray(updated.movie_vectors[[400]]), 5)
    # The new film is its own nearest: it is in the index. It has film 0's links, so film 0 ties with it
    # (the same vector to rounding) and either may come first.
    assert 400 in found[0, :2] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    if 0 in found[0, :2]:
        assert scores[0, 1] == pytest.approx(scores[0, 0], abs=1e-5)
    assert updated.manifest.indexes["movies"].type == base.manifest.indexes["movies"].type
    second = update_index(root, write_films(tmp_path / "again.ndjson", [near_film("Heat copy", links)]), progress=False)
    assert load_current(root).manifest.folded_in["films"] == {"Alien copy": 0, "Heat copy": 1}
    assert second.movies == 402


def indexer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "movielinks.indexer", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True)


@pytest.mark.parametrize("lines, words", [
    (['["A film", {}, ["Link 1"], null, null]', '["A film", {}, ["Link 2"], null, null]'],
     "update.ndjson:2: 'A film' again (first on line 1)"),
    (['["A film", {}, ["Link 1"], null, null]', '{"title": "B"}'], "update.ndjson:2: expected a JSON array"),
    (['["A film", {}, ["Link 1"], null, null', ], "update.ndjson:1: not JSON"),
    (['["A film", {}, ["Link 1", "  "], null, null]'], "update.ndjson: film 'A film': link ' ' is empty"),
    (['["A film", {}, ["No such link"], null, null]'], "1 films have no link that version"),
    ([], "no films"),
])
def test_a_bad_update_file_is_refused_and_nothing_is_published(root: Path, tmp_path: Path, lines: list[str],
                                                               words: str) -> None:
    before = (current_version_name(root), list_versions(root))
    (tmp_path / "update.ndjson").write_text("".join(line + "\n" for line in lines))
    done = indexer("update", root, "--data", tmp_path / "update.ndjson", "--quiet")
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert (current_version_name(root), list_versions(root)) == before
    assert not [p for p in (root / "versions").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_unknown_titles_to_remove_are_refused(root: Path, tmp_path: Path) -> None:
    write_films(tmp_path / "update.ndjson", [near_film("A film", ["Link 1"])])
    (tmp_path / "removed.txt").write_text("Alien (film)\nNo Such Film\n")
    with pytest.raises(IndexerError, match="1 titles to remove are no movie of version .*'No Such Film'"):
        update_index(root, tmp_path / "update.ndjson", remove=tmp_path / "removed.txt", progress=False)
    (tmp_path / "removed.txt").write_text("A film\n")
    with pytest.raises(IndexerError, match="both in the update file and to remove: 'A film'"):
        update_index(root, tmp_path / "update.ndjson", remove=tmp_path / "removed.txt", progress=False)


def test_the_command_says_what_it_published(root: Path, tmp_path: Path) -> None:
    write_films(tmp_path / "update.ndjson", [near_film("A film", ["Link 1", "Link 2", "Unknown"])])
    done = indexer("update", root, "--data", tmp_path / "update.ndjson", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "1 films new, 0 changed (folded in), 0 removed; 401 movies; 1 link occurrences unknown" in done.stdout
    assert f"published: {root / 'CURRENT'}" in done.stdout
