"""Answers that explain themselves, on a tiny index: shared links, facts, filters,
title resolution and the recommendation strategies (service level; the real server
is tested in test_e2e_explain)."""
from __future__ import annotations

import faiss
import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfTransformer

from movielinks.common.movie_links import from_pairs
from movielinks.common.records import release_year
from movielinks.indexer.build import build_index
from movielinks.search import explain
from movielinks.server.app import load_service
from movielinks.server.errors import ServiceError
from movielinks.search.filters import FilterRequest
from movielinks.search.recommend import best_scores
from movielinks.server.titles import TitleResolver, normalised
from tests.fixtures import make_run

TITLES = ["Toy Story", "Toy Story 2", "Toy Story 3", "The Godfather", "The Godfather Part II", "Amélie",
          "Titanic (1997 film)", "Titanic (1953 film)", "Star Wars: The Force Awakens", "Star Wars (film)"]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=150, n_links=40, years=True), tmp / "index",
                progress=False)
    return load_service(str(tmp / "index"))


def test_contributions_are_the_terms_of_the_tfidf_cosine():
    pairs = np.array([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (2, 0), (2, 3), (3, 2)])
    links = from_pairs(pairs, 4)
    weights = explain.idf(links, 4)
    binary = np.zeros((4, 4))
    binary[pairs[:, 0], pairs[:, 1]] = 1
    tfidf = TfidfTransformer(smooth_idf=True).fit_transform(binary).toarray()  # rows l2-normalised
    shared = explain.shared_article_links(links.of(0), links.of(1), weights, 5)
    assert sorted(shared.link_ids.tolist()) == [1, 2] and shared.total == 2
    assert shared.overlap_cosine == pytest.approx(float(tfidf[0] @ tfidf[1]))
    assert shared.contributions.sum() == pytest.approx(shared.overlap_cosine, rel=1e-5)
    assert shared.link_ids[0] == 1  # link 1 is in 2 films, link 2 in 3: the rarer contributes more
    assert explain.shared_article_links(links.of(0), links.of(3), weights, 1).total == 1


def test_model_associations_rank_by_the_smaller_cosine():
    link_vectors = np.eye(3, dtype=np.float32)
    found = explain.shared_associations(link_vectors, np.array([0.8, 0.6, 0.0], np.float32),
                                        np.array([0.6, 0.8, 0.0], np.float32), 2)
    assert found.link_ids.tolist() == [0, 1] and found.contributions[0] == pytest.approx(0.6)


def test_model_associations_at_scale_score_the_nearest_links_of_each_side(monkeypatch):
    """Beyond EXACT_ASSOCIATION_LINKS the fallback scores the links nearest to each vector,
    a bounded set; the links it finds there are the full scan's best ones."""
    rng = np.random.default_rng(0)
    link_vectors = rng.normal(size=(2000, 8)).astype(np.float32)
    link_vectors /= np.linalg.norm(link_vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(8)
    index.add(link_vectors)
    a, b = link_vectors[0], (link_vectors[0] + link_vectors[1]) / np.linalg.norm(link_vectors[0] + link_vectors[1])
    assert explain.association_candidates(index, a, b) is None  # 2,000 links: every one is scored
    monkeypatch.setattr(explain, "EXACT_ASSOCIATION_LINKS", 1000)
    candidates = explain.association_candidates(index, a, b)
    assert len(candidates) == 2 * explain.ASSOCIATION_CANDIDATES
    bounded = explain.shared_associations(link_vectors, a, b, 5, candidates)
    full = explain.shared_associations(link_vectors, a, b, 5)
    assert bounded.link_ids.tolist() == full.link_ids.tolist()
    np.testing.assert_allclose(bounded.contributions, full.contributions)


def test_explain_similarity_names_links_both_films_have(service):
    found = service.explain_similarity("Toy Story", "toy story 2", 5)
    links = service.version.movie_links
    a, b = service.movie_titles.exact["Toy Story"], service.movie_titles.exact["Toy Story 2"]
    both = set(np.intersect1d(links.of(a), links.of(b)).tolist())
    assert found.basis == explain.ARTICLE_LINKS and found.b == "Toy Story 2"
    assert {service.version.links.index(r.link) for r in found.shared} <= both and found.shared_total == len(both)
    contributions = [r.contribution for r in found.shared]
    assert contributions == sorted(contributions, reverse=True)
    vectors = service.version.movie_vectors
    assert found.cosine == pytest.approx(float(vectors[a] @ vectors[b]), abs=1e-6)
    with pytest.raises(ServiceError, match="two different movies"):
        service.explain_similarity("Toy Story", "toy story", 5)


def test_facts_are_year_director_and_url(service):
    facts = service.lookup_title("Toy Story 2").facts
    movie = service.version.movies[1]
    assert facts.year == release_year(movie.infobox) and facts.director == movie.infobox["director"]
    assert facts.url == "https://en.wikipedia.org/wiki/Toy_Story_2"
    assert service.lookup_title("Toy Story").facts.year is None  # the fixture gives each fifth movie no year


def test_title_resolution_ignores_articles_and_accents_and_prefers_the_most_linked(service):
    assert service.lookup_title("Godfather")[:2] == ("The Godfather", "normalised")
    assert service.lookup_title("amelie")[:2] == ("Amélie", "normalised")
    counts = service.version.movie_links.counts()
    title, match, others, _ = service.lookup_title("Titanic")
    ids = [TITLES.index("Titanic (1997 film)"), TITLES.index("Titanic (1953 film)")]
    if counts[ids[0]] != counts[ids[1]]:
        assert title == TITLES[ids[int(np.argmax(counts[ids]))]] and match == "qualifier" and len(others) == 1
    resolver = TitleResolver(["Heat (1995 film)", "Heat (1986 film)"], weights=[10, 3])
    assert resolver.resolve("heat") == (0, "qualifier")
    with pytest.raises(ServiceError, match="ambiguous"):
        TitleResolver(["Heat (1995 film)", "Heat (1986 film)"], weights=[3, 3]).resolve("heat")


def test_franchises_are_the_shared_rule_s(service):
    # the filters' franchises are common.franchises' groups (tested in test_quality)
    names = service.movie_titles.names
    assert {names[i] for i in service._franchise(service.movie_titles.exact["Toy Story 2"])} >= {
        "Toy Story", "Toy Story 2", "Toy Story 3"}
    assert {names[i] for i in service._franchise(service.movie_titles.exact["The Godfather"])} == {
        "The Godfather", "The Godfather Part II"}
    assert len(service._franchise(service.movie_titles.exact["Amélie"])) == 0
    assert normalised("The Matrix") == "matrix"


def filtered_ids(service, found):
    return [service.movie_titles.exact[m.title] for m in found]


def test_filters_hold_and_keep_the_cosine_order(service):
    years = service.years
    link = service.version.links.index("Link 0")
    linking = set(service._movies_of_link(link).tolist())
    f = FilterRequest(min_year=1960, max_year=2000, must_link_to=("link 0",), exclude_titles=("Toy Story 3",),
                      exclude_franchise=True)
    ids = filtered_ids(service, service.similar_movies("Toy Story", 20, f).movies)
    assert ids and all(1960 <= years[i] <= 2000 and i in linking for i in ids)
    assert not {0, 1, 2} & set(ids)
    vectors = service.version.movie_vectors
    allowed = [i for i in range(len(years)) if 1960 <= years[i] <= 2000 and i in linking and i not in (0, 1, 2)]
    expected = sorted(allowed, key=lambda i: -float(vectors[0] @ vectors[i]))[:20]
    assert ids == expected
    unfiltered = filtered_ids(service, service.similar_movies("Toy Story", 149).movies)
    assert {1, 2} <= set(unfiltered[:149])
    by_link = service.link_movies("Link 0", 5, FilterRequest(max_year=1970)).movies
    assert all(0 < years[i] <= 1970 for i in filtered_ids(service, by_link))
    batch = service.similar_movies_batch(["Toy Story", "Godfather"], 5, FilterRequest(exclude_franchise=True))
    assert "The Godfather Part II" not in [t for t, _ in batch[1].neighbours]


@pytest.mark.parametrize("bad", [
    FilterRequest(min_year=-1), FilterRequest(max_year=10_000), FilterRequest(min_year=2000, max_year=1990),
    FilterRequest(must_link_to=("Link 1",) * 21), FilterRequest(must_link_to=("No Such Link",)),
])
def test_bad_filters_are_refused(service, bad):
    with pytest.raises(ServiceError):
        service.similar_movies("Toy Story", 5, bad)


def test_strategies_rank_by_their_documented_scores(service):
    vectors = service.version.movie_vectors
    liked, disliked = ["Toy Story", "The Godfather"], ["Amélie"]
    ids = {t: service.movie_titles.exact[t] for t in liked + disliked}
    positives, negatives = vectors[[ids[t] for t in liked]], vectors[[ids[t] for t in disliked]]
    best = service.recommend(liked, disliked, 5, strategy="best_score")
    scores = best_scores(vectors, positives, negatives)
    expected = [i for i in np.argsort(-scores, kind="stable") if i not in ids.values()][:5]
    assert filtered_ids(service, best.best) == expected and "closest liked" in best.score_meaning
    average = service.recommend(liked, disliked, 5, strategy="average_vector")
    query = 2 * positives.mean(axis=0) - negatives.mean(axis=0)
    cosines = vectors @ (query / np.linalg.norm(query))
    expected = [i for i in np.argsort(-cosines, kind="stable") if i not in ids.values()][:5]
    assert filtered_ids(service, average.best) == expected
    assert [m.score for m in average.best] == pytest.approx(cosines[expected].tolist(), abs=1e-5)
    with pytest.raises(ServiceError, match="strategy"):
        service.recommend(liked, [], 5, strategy="magic")


def test_a_liked_link_and_reasons(service):
    found = service.recommend([], [], 5, strategy="average_vector", liked_links=["Link 3"], reasons=2)
    link_vector = service.version.link_vectors[3]
    cosines = service.version.movie_vectors @ link_vector
    assert filtered_ids(service, found.best) == np.argsort(-cosines, kind="stable")[:5].tolist()
    links = service.version.movie_links
    for movie in found.best:
        own = set(links.of(service.movie_titles.exact[movie.title]).tolist())
        assert all(service.version.links.index(r.link) in own for r in movie.reasons)  # shared with the liked side
    with pytest.raises(ServiceError, match="reasons"):
        service.recommend(["Toy Story"], [], 5, reasons=21)
    with pytest.raises(ServiceError, match="liked"):
        service.recommend([], [], 5)


def test_a_filter_that_lets_nothing_through_answers_nothing(service):
    nothing = FilterRequest(max_year=1)  # no film is that old
    assert service.similar_movies("Toy Story", 5, nothing).movies == []
    assert service.link_movies("Link 0", 5, nothing).movies == []
    assert service.recommend(["Toy Story"], [], 5, 2, movie_filter=nothing).best == []


# The most common links of random_pairs (low ids): the ones an explanation would otherwise name most.
CITED = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def cited_service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cited")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=150, n_links=40, years=True, cited_links=CITED),
                tmp / "index", progress=False)
    return load_service(str(tmp / "index"))


def test_explanations_leave_citation_only_links_out(service, cited_service):
    cited_names = {f"Link {i}" for i in CITED}
    links = cited_service.version.movie_links
    assert links.citation_links(40).nonzero()[0].tolist() == list(CITED)
    a, b = (cited_service.movie_titles.exact[t] for t in ("Toy Story", "Toy Story 2"))
    found = cited_service.explain_similarity("Toy Story", "Toy Story 2", 40)
    kept = np.intersect1d(links.reasons_of(a), links.reasons_of(b))
    assert sorted(r.link for r in found.shared) == sorted(f"Link {i}" for i in kept.tolist())
    # The same index without the marks (an index built before them) names the cited links too.
    every = {r.link for movie in service.similar_movies("Toy Story", 20, reasons=20).movies for r in movie.reasons}
    assert every & cited_names
    similar = cited_service.similar_movies("Toy Story", 20, reasons=20).movies
    named = {r.link for movie in similar for r in movie.reasons}
    assert named and not named & cited_names
    liked = cited_service.recommend(["Toy Story", "The Godfather"], [], 10, reasons=20)
    assert any(m.reasons for m in liked.best) and not {r.link for m in liked.best for r in m.reasons} & cited_names
