"""The explorer's queries on a tiny index: name search and the 2D map (its shared links: test_server_explain)."""
from __future__ import annotations

import numpy as np
import pytest

from movielinks.indexer.build import build_index
from movielinks.server.app import load_service
from movielinks.server.errors import ServiceError
from movielinks.server.explore import explorer, principal_plane
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
