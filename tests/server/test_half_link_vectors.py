"""Beyond EXACT_MAX_VECTORS the link graph keeps float16 codes (indexer.build's `auto`), and the
server serves the link vectors from them: half the bytes, the answers of float32 vectors."""
from __future__ import annotations

import numpy as np
import pytest

from movielinks.indexer import build, version as index_version
from movielinks.indexer.export import export_vectors
from movielinks.indexer.root import load_current
from movielinks.server.service import MovieService
from movielinks.trainer.run import load_run
from tests.fixtures import make_run, svm_decision

N_MOVIES, N_LINKS = 260, 90
# An fp16 code is the float32 value rounded to 11 significant bits: within 2 ** -11 of a unit row's entries.
HALF = 2.0 ** -11


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[MovieService, object]:
    tmp = tmp_path_factory.mktemp("half")
    run = make_run(tmp / "run", n_movies=N_MOVIES, n_links=N_LINKS, years=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "EXACT_MAX_VECTORS", 50)  # both catalogues get their graphs, as at a million films
        build.build_index(run, tmp / "index", progress=False)
    return MovieService(load_current(tmp / "index")), load_run(run)


def test_the_link_graph_keeps_float16_codes_and_serves_them_as_the_link_vectors(served, tmp_path) -> None:
    service, run = served
    version = service.version
    described = version.manifest.indexes
    assert (described["links"].factory, described["links"].type) == (build.APPROXIMATE_LINK_FACTORY, "IndexHNSWSQ")
    assert (described["movies"].factory, described["movies"].type) == (build.APPROXIMATE_FACTORY, "IndexHNSWFlat")
    assert described["links"].recall_at_10 >= 0.95 and described["links"].cross_recall_at_10 >= 0.95
    # One copy: the link index's own codes, read-only, 2 bytes a value; the movies' stay float32.
    links = version.link_vectors
    assert links.dtype == np.float16 and isinstance(links.base, index_version._IndexMemory)
    assert not links.flags.writeable and links.shape == run.link_vectors.shape
    np.testing.assert_array_equal(links, run.link_vectors.astype(np.float16))
    assert np.abs(links.astype(np.float32) - run.link_vectors).max() <= HALF
    assert version.movie_vectors.dtype == np.float32
    np.testing.assert_array_equal(version.movie_vectors, run.movie_vectors)
    # An export gives the version's exact float32 vectors, not the codes.
    export_vectors(version, "links", tmp_path / "links.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "links.npy"), run.link_vectors)


def test_answers_over_float16_link_vectors_are_float32_and_match_the_exact_vectors(served) -> None:
    service, run = served
    names = service.version.movie_names
    title, other = names[3], names[40]
    # A movie's nearest links: the graph over codes finds the exact top 5 of the float32 vectors.
    _, found = service.movie_links(title, 5)
    exact = np.argsort(-(run.link_vectors @ run.movie_vectors[3]), kind="stable")[:5]
    assert [name for name, _ in found] == [f"Link {j}" for j in exact.tolist()]
    # Reasons score links by the served vectors: within the rounding of the exact products.
    reasons = [(names.index(m.title), r) for m in service.similar_movies(title, 5, reasons=3).movies for r in m.reasons]
    assert reasons
    for movie, reason in reasons:
        link = run.link_vectors[int(reason.link.removeprefix("Link "))]
        assert abs(reason.cosine_a - float(link @ run.movie_vectors[3])) <= 2e-3
        assert abs(reason.cosine_b - float(link @ run.movie_vectors[movie])) <= 2e-3
    vectors = service.vectors([title], ["Link 2"], [])
    assert vectors["links"][0][1].dtype == np.float32
    # A Recommend with a liked link: the svm's decision as docs/api.md defines it, over these vectors.
    answer = service.recommend([title], [other], 5, strategy="svm", liked_links=["Link 2"])
    decision = svm_decision(service.version, [3], [40], [2])
    decision[[3, 40]] = -np.inf
    assert [m.title for m in answer.best] == [names[i] for i in np.argsort(-decision, kind="stable")[:5]]
    assert len(service.recommend([title], [other], 5, liked_links=["Link 2"]).best) == 5
