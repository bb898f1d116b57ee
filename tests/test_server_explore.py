"""The explorer's queries on a tiny index: name search, shared links, the 2D map."""
from __future__ import annotations

import numpy as np
import pytest

from common.records import release_year
from indexer.build import build_index
from server.app import load_service
from server.errors import ServiceError
from server.explore import explorer, principal_plane, shared_between
from tests.fixtures import make_run

TITLES = ["Interstellar (film)", "Inter Alia", "The Interpreter", "Alien (film)"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explore")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=120, n_links=40, years=True), tmp / "index",
                progress=False)
    return load_service(str(tmp / "index"))


def test_names_containing_a_text_prefix_matches_first(catalogue):
    names, total = explorer(catalogue).search_names("INTER")
    assert names == ["Inter Alia", "Interstellar (film)", "The Interpreter"] and total == 3
    links, total = explorer(catalogue).search_names("link 3", "links", limit=2)
    assert links == ["Link 3", "Link 30"] and total == 11  # Link 3, Link 30..39
    for bad in ({"text": " "}, {"text": "x", "limit": 1001}, {"text": "x" * 501}):
        with pytest.raises(ServiceError):
            explorer(catalogue).search_names(**bad)


def test_shared_links_rank_by_the_smaller_cosine():
    links = np.eye(3, dtype=np.float32)  # three links along the axes
    movie = np.array([0.8, 0.6, 0.0], dtype=np.float32)
    others = np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    shared = shared_between(links, movie, others, 2)
    assert [j for j, _ in shared[0]] == [0, 1] and shared[0][0][1] == pytest.approx(0.6)
    assert shared[1][0][1] == pytest.approx(0.0)  # nothing in common: the best is the smaller of 0 and x


def test_neighbours_come_with_years_and_shared_links(catalogue):
    query, year, explained = explorer(catalogue).explain_similar_movies("alien", 5, 3)
    expected = catalogue.similar_movies("Alien (film)", 5)[1]
    assert query == "Alien (film)" and year == 1953  # the fixture's 4th movie: "May 1953"
    assert [(n.title, n.score) for n in explained] == expected
    assert all(len(n.shared_links) == 3 for n in explained)
    movies = {m.title: m for m in catalogue.version.movies}
    assert [n.year for n in explained] == [release_year(movies[n.title].infobox) for n in explained]


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
