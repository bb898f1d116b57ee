"""The explorer's queries on a tiny index: name search and the 2D map (its shared links: test_server_explain)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from movielinks.indexer.build import build_index
from movielinks.server.app import load_service
from movielinks.server.errors import ServiceError
from movielinks.common.clusters import name_clusters, nearest_links
from movielinks.common.title_index import base
from movielinks.search.neighbours import exhaustive_top
from movielinks.server.explore import (AFTER_ARTICLE, INSIDE, MAP_CLUSTERS, MAP_SEED, START, FoldedNames, explorer,
                                       principal_plane)
from tests.fixtures import make_run

TITLES = ["Interstellar (film)", "Inter Alia", "The Interpreter", "Alien (film)", "Titanic (1997 film)",
          "Titanic (1953 film)", "Jurassic World Dominion", "Jurassic World", "Jurassic Park (film)"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explore")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=120, n_links=40, years=True), tmp / "index",
                progress=False)
    return load_service(str(tmp / "index"))


def test_names_containing_a_text_the_named_film_first_then_shorter_names_first(catalogue):
    names, total = explorer(catalogue).search_names("INTER")
    assert names == ["Inter Alia", "Interstellar (film)", "The Interpreter"] and total == 3  # shorter names first
    # The name itself up to article, qualifier and case comes before the names that start with it.
    assert explorer(catalogue).search_names("interpreter")[0] == ["The Interpreter"]
    assert explorer(catalogue).search_names("interstellar")[0] == ["Interstellar (film)"]
    assert explorer(catalogue).search_names("alien")[0][0] == "Alien (film)"
    # Several films of that name: the most linked first, the one LookupTitle picks.
    titanic = explorer(catalogue).search_names("titanic")[0]
    assert titanic[0] == catalogue.lookup_title("titanic")[0] and sorted(titanic) == sorted(TITLES[4:6])
    assert explorer(catalogue).search_names("Jurassic")[0] == ["Jurassic Park (film)", "Jurassic World",
                                                               "Jurassic World Dominion"]
    links, total = explorer(catalogue).search_names("link 3", "links", limit=2)
    assert links == ["Link 3", "Link 30"] and total == 11  # Link 3, Link 30..39
    for bad in ({"text": " "}, {"text": "x", "limit": 1001}, {"text": "x" * 501}):
        with pytest.raises(ServiceError):
            explorer(catalogue).search_names(**bad)


def test_folded_names_find_a_text_inside_one_name_only():
    """The explorer's casefolded names (one buffer, not a string a name): a match is inside one name,
    never across two; non-ASCII names match by their casefolded characters; built a block at a time."""
    names = ["Straße", "AB", "cd", "Amélie", "Ab\0c", "ÉCOLE", ""]
    folded = FoldedNames(names, block=3)
    assert len(folded) == 7 and [folded[i] for i in range(7)] == ["strasse", "ab", "cd", "amélie", "abc", "école", ""]
    for needle in ("ss", "ab", "bc", "é", "co", "c", "amé", "x"):
        ids, places = folded.containing(needle)
        assert ids.tolist() == [i for i, name in enumerate(names) if needle in name.casefold().replace("\0", "")]
        assert (places == START).tolist() == [folded[i].startswith(needle) for i in ids], needle
    assert folded.containing("")[0].tolist() == list(range(7))
    tricky = ["Alien (film)", "Alien  (1979 film) ", "(film)", "A (b) (c)", "A (b (c))", "x (a)\n", "Ｔｈｅ (ß)",
              "Heat\u00a0(1995 film)", "no qualifier", "", "((", "a ()", "İstanbul (film)"]
    assert FoldedNames(tricky, block=4).base_lengths.tolist() == [len(base(name.casefold())) for name in tricky]


def _place(name: str, text: str) -> int:
    """Where `name` has `text`: at its start, right after its leading article (common.title_index's), or inside."""
    article = re.match(r"(the|a|an) +", name)
    return (START if name.startswith(text) else
            AFTER_ARTICLE if article is not None and name.find(text) == article.end() else INSIDE)


def test_a_text_past_a_leading_article_comes_after_those_at_the_start_and_before_the_rest():
    """"godf" finds The Godfather and its sequel before 3 Godfathers, and "star w" Star Wars before
    The Star Witness: past "the ", "a " or "an " (not past a word that is not an article)."""
    names = ["3 Godfathers", "The Godfather", "The Godfather Part II", "A Star Is Born", "Astar", "Anne", "The",
             "Theodora Goes Wild", "The  Two Spaces", "An Affair"]
    folded = FoldedNames(names, block=4)
    assert folded.article_lengths.tolist() == [0, 4, 4, 2, 0, 0, 0, 0, 5, 3]
    for needle in ("godf", "star", "two", "affair", "odora", "the", "a", "ne"):
        ids, places = folded.containing(needle)
        assert places.tolist() == [_place(folded[i], needle) for i in ids], needle
    ids, places = folded.containing("godf")
    assert folded.ranked(ids, places, {}, None, 10) == ([1, 2, 0], 3)
    stars = FoldedNames(["The Star Witness", "Star Wars: The Last Jedi", "Star Wars (film)", "Dark Star Wars"])
    assert stars.ranked(*stars.containing("star w"), {}, None, 10) == ([2, 1, 0, 3], 4)


def test_folded_names_rank_as_the_explorer_orders_names():
    """ranked's numpy order is the explorer's order of Python tuples (matching rank, the text's place,
    length without qualifier, weight, name, id), ties broken by the name past the limit's edge."""
    rng = np.random.default_rng(0)
    names = [f"{rng.choice(['the ', ''])}{'ab' * int(rng.integers(1, 4))}{rng.choice(['x', 'y', ''])}"
             f"{rng.choice([' (film)', ' (1999 film)', ''])}" for _ in range(300)]
    folded, weights = FoldedNames(names), rng.integers(0, 3, size=300)
    for needle in ("ab", "the", "bx", "y (", "abab"):
        ids, places = folded.containing(needle)
        matching = {int(i): rank for rank, i in enumerate(rng.choice(300, size=5, replace=False))}
        expected = sorted((0 if i in matching else 1 + _place(folded[i], needle), matching.get(i, 0),
                           len(base(folded[i])), -weights[i], folded[i], i) for i in set(ids.tolist()) | set(matching))
        for limit in (1, 7, 50, 1000):
            assert folded.ranked(ids, places, matching, weights, limit) == ([e[-1] for e in expected[:limit]],
                                                                              len(expected)), (needle, limit)


def test_the_map_is_the_first_two_principal_components(catalogue):
    vectors = catalogue.version.movie_vectors
    points, explained = principal_plane(vectors)
    centred = vectors - vectors.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    assert explained == pytest.approx(float((singular[:2] ** 2).sum() / (singular ** 2).sum()), rel=1e-4)
    assert np.abs(points).sum(axis=0) == pytest.approx(np.abs(np.linalg.svd(centred)[0][:, :2] * singular[:2])
                                                      .sum(axis=0), rel=1e-3)
    found = explorer(catalogue).movie_map(["interstellar"], 50)
    assert len(found.sample) == 50 and found.titles[0].title == "Interstellar (film)"
    assert (found.titles[0].x, found.titles[0].y) == pytest.approx(tuple(points[0]))
    assert explorer(catalogue).movie_map([], 50).sample == found.sample  # the same sample every time


def test_map_clusters_are_the_trainer_plots_clusters_of_the_map_sample(catalogue):
    found = explorer(catalogue).map_clusters(60)
    sample = explorer(catalogue).movie_map([], 60).sample
    ids = [catalogue.movie_titles.exact[p.title] for p in sample]
    version = catalogue.version
    cluster, names = name_clusters(version.movie_vectors[ids], version.link_vectors, version.links, MAP_CLUSTERS, MAP_SEED)
    assert [c.name for c in found.clusters] == names and found.of_sample == cluster.tolist()
    assert [c.size for c in found.clusters] == np.bincount(cluster).tolist()
    points = np.array([(p.x, p.y) for p in sample])
    assert (found.clusters[0].x, found.clusters[0].y) == pytest.approx(tuple(np.median(points[cluster == 0], axis=0)))
    with pytest.raises(ServiceError):
        explorer(catalogue).map_clusters(5001)


def test_map_clusters_are_never_named_by_citation_links(catalogue, tmp_path):
    names_before = {name for c in explorer(catalogue).map_clusters(60).clusters for name in c.name.split(", ")}
    cited = tuple(catalogue.version.links.index(name) for name in sorted(names_before))
    build_index(make_run(tmp_path / "run", titles=TITLES, n_movies=120, n_links=40, years=True, cited_links=cited),
                tmp_path / "index", progress=False)
    marked = load_service(str(tmp_path / "index"))
    names_after = {name for c in explorer(marked).map_clusters(60).clusters for name in c.name.split(", ")}
    assert names_after and not names_after & names_before


def test_the_servers_nearest_links_are_the_trainers():
    # The explorer names clusters with FAISS's exhaustive search, `trainer plot` with numpy: the same links.
    rng = np.random.default_rng(5)
    vectors, link_vectors = rng.normal(size=(40, 8)), rng.normal(size=(3000, 8)).astype(np.float32)
    by_faiss, by_numpy = exhaustive_top(vectors, link_vectors, 5), nearest_links(vectors, link_vectors, 5)
    assert by_faiss.shape == by_numpy.shape == (40, 5)
    np.testing.assert_array_equal(np.sort(by_faiss, axis=1), np.sort(by_numpy, axis=1))
    exact = np.argsort(-(vectors @ link_vectors.T), axis=1)[:, :5]
    np.testing.assert_array_equal(by_faiss, exact)  # best first


def test_float16_rows_are_searched_a_block_at_a_time_with_the_answer_of_one_search():
    """A version's float16 link codes (beyond 200,000 links) are searched as float32 a block at a time:
    the ids of one search over all of them, best first; a block may hold fewer rows than k."""
    rng = np.random.default_rng(6)
    vectors, link_vectors = rng.normal(size=(30, 8)), rng.normal(size=(1000, 8)).astype(np.float16)
    whole = exhaustive_top(vectors, link_vectors.astype(np.float32), 7)
    for block in (1000, 333, 64, 5):
        np.testing.assert_array_equal(exhaustive_top(vectors, link_vectors, 7, block=block), whole)
    assert exhaustive_top(vectors[:2], link_vectors[:3], 7).shape == (2, 3)
