"""The service: every query the server answers, by title, over one index version.

A thin layer over the id-based server.catalogue: it checks each request against
server.limits, resolves titles and link names to ids (server.titles), asks the
catalogue, and answers each query with one complete result (MoviesAnswer,
Recommendation, Explanation: every movie with its facts and any reasons, worked out
by id, so no title is looked up again). No gRPC here: the servicer maps requests,
these answers and errors. Immutable, like the catalogue: the server swaps whole services.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, Iterator, NamedTuple, Sequence
from urllib.parse import quote

import numpy as np

from movielinks.common.answers import Neighbours, Prediction
from movielinks.common.title_index import NO_FRANCHISE
from movielinks.indexer.version import IndexVersion
from movielinks.search import explain
from movielinks.search.diversity import candidates_for, diversify
from movielinks.search.filters import FilterRequest, ResolvedFilter, allowed_movies
from movielinks.search.foldin import FoldInSpace, fold_in, version_objective, version_space
from movielinks.search.neighbours import BATCH_ROWS, named
from movielinks.search.recommend import DEFAULT_STRATEGY, SCORE_MEANING, STRATEGIES
from movielinks.server import limits
from movielinks.server.catalogue import Catalogue, Ranked
from movielinks.server.errors import Kind, ServiceError, check_alive, invalid, not_found
from movielinks.server.titles import TitleResolver, shown

WIKIPEDIA = "https://en.wikipedia.org/wiki/"
# Movies whose title and facts a service keeps once made, so that an answer showing a movie
# asked for lately builds nothing; bounded (about 450 bytes a movie: 15 MB at most), as a
# million-movie version would otherwise keep every one it ever showed.
FACTS_KEPT = 1 << 15
ANSWERS_BETWEEN_CHECKS = 256  # a batch's answers worked out between two checks that the caller still waits


_URL_SAFE = "()_,!:-.'/&"
_PLAIN_TITLE = re.compile(f"[A-Za-z0-9 {re.escape(_URL_SAFE)}]*")  # needs no quoting: most titles (quote is far slower)


def wikipedia_url(title: str) -> str:
    """The English Wikipedia page of a page title."""
    path = title.replace(" ", "_")
    return WIKIPEDIA + (path if _PLAIN_TITLE.fullmatch(title) else quote(path, safe=_URL_SAFE))


class MovieFacts(NamedTuple):
    """What a person needs to recognise a film (a link, as LinkMovies' query, has its url alone).

    A NamedTuple, not a frozen dataclass: an answer makes one a movie (11 a SimilarMovies call),
    and a frozen dataclass takes about three times as long to make."""

    year: int | None
    director: str  # as the infobox names it; "" when unknown
    url: str
    imdb_id: str = ""  # "tt0111161"; "" when its article names none (common.external_ids)
    wikidata_id: str = ""  # "Q172241"; "" when unknown


@dataclasses.dataclass(frozen=True)
class Reason:
    """A link two movies share (see search.explain for the contribution)."""

    link: str
    contribution: float
    cosine_a: float
    cosine_b: float


class FoundMovie(NamedTuple):
    """One movie of an answer, with what a person needs to recognise it."""

    title: str
    facts: MovieFacts
    score: float
    reasons: list[Reason]  # the links it shares with the query; empty unless asked for


class TitleLookup(NamedTuple):
    """LookupTitle's answer."""

    title: str  # as the catalogue has it
    match: str  # how it matched (server.titles)
    also_matched: list[str]  # other titles that matched as well and lost on links
    facts: MovieFacts


@dataclasses.dataclass(frozen=True)
class MoviesAnswer:
    """A query (a movie; LinkMovies: a link) and the movies found for it, best first, each complete."""

    query: str
    query_facts: MovieFacts
    movies: list[FoundMovie]
    reasons_basis: str  # explain.ARTICLE_LINKS or explain.MODEL_ASSOCIATIONS; "" without reasons

    @property
    def neighbours(self) -> Neighbours:
        """The movies as (title, score) pairs."""
        return [(movie.title, movie.score) for movie in self.movies]


@dataclasses.dataclass(frozen=True)
class FoldedFilm:
    """A film given by its links, folded in (search.foldin): its unit vector, the links the
    index knows (names as resolved, in request order; ids sorted) and those it does not."""

    vector: np.ndarray
    links: list[str]
    link_ids: np.ndarray
    unknown: list[str]

    @property
    def name(self) -> str:
        return " | ".join(self.links)


@dataclasses.dataclass(frozen=True)
class LinksAnswer:
    """SimilarToLinks' answer: the film as folded in and the movies found for it, best first."""

    film: FoldedFilm
    movies: list[FoundMovie]
    reasons_basis: str


@dataclasses.dataclass(frozen=True)
class Explanation:
    a: str
    b: str  # a folded-in B: its known links, " | "-joined
    a_facts: MovieFacts
    b_facts: MovieFacts | None  # None for a B folded in from links
    cosine: float
    basis: str  # explain.ARTICLE_LINKS or explain.MODEL_ASSOCIATIONS
    shared: list[Reason]
    shared_total: int
    links_a: int
    links_b: int
    overlap_cosine: float


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """Recommend's answer: movies scored by the strategy (FoundMovie.score), each with its facts;
    the best with the links each shares with the liked side when reasons were asked for."""

    best: list[FoundMovie]  # highest score first
    worst: list[FoundMovie]  # lowest first
    strategy: str = DEFAULT_STRATEGY
    score_meaning: str = SCORE_MEANING[DEFAULT_STRATEGY]
    liked: list[str] = dataclasses.field(default_factory=list)  # resolved, in request order
    disliked: list[str] = dataclasses.field(default_factory=list)
    reasons_basis: str = ""


class MovieService:
    """Queries by title over one IndexVersion; each method raises ServiceError for a bad request."""

    def __init__(self, version: IndexVersion):
        self.catalogue = Catalogue(version)
        links = version.movie_links
        self.movie_titles = TitleResolver(version.movie_titles, "movie", None if links is None else links.counts())
        self.link_names = TitleResolver(version.link_titles, "link")
        self.years = version.years
        self._titled_facts = _titled_facts(version)
        # Films of one franchise (common.franchises) share a label: sorted, a franchise is a run of equals.
        franchises = version.movie_titles.franchises
        self._franchise_order = np.argsort(franchises, kind="stable")
        self._franchise_sorted = franchises[self._franchise_order]
        if links is not None:
            self.idf = explain.idf(links, len(version.links))
            self._link_offsets, self._movie_of_pair = links.by_link(len(version.links))

    @property
    def version(self) -> IndexVersion:
        return self.catalogue.version

    @functools.cached_property
    def fold_in_space(self) -> FoldInSpace:
        """The space films are folded into, built at the first fold-in: it counts every film's
        links and draws rows of the link vectors, pages of the mapped files (about 250 MB at a
        million films) that a server asked for no fold-in need not hold."""
        return version_space(self.version)

    @property
    def name(self) -> str:
        return self.catalogue.name

    def resolve_title(self, title: str) -> tuple[str, str]:
        """(catalogue title, how it matched)."""
        limits.check_string("title", title)
        movie_id, match = self.movie_titles.resolve(title)
        return self.movie_titles.names[movie_id], match

    @property
    def has_movie_links(self) -> bool:
        return self.version.movie_links is not None

    def similar_movies(self, title: str, k: int, movie_filter: FilterRequest | None = None,
                       reasons: int = 0) -> MoviesAnswer:
        """The k movies most similar to `title` that `movie_filter` lets through, each with its
        facts and, when `reasons` > 0, that many links it shares with the query."""
        query_ids, (ids, scores) = self._similar_movie_ids([title], k, movie_filter, reasons)
        return self._answer(int(query_ids[0]), ids[0], scores[0], reasons)

    def similar_movies_batch(self, titles: Sequence[str], k: int, movie_filter: FilterRequest | None = None,
                             reasons: int = 0, alive: Callable[[], bool] = lambda: True) -> list[MoviesAnswer]:
        """similar_movies for each title, in one search, each answer complete (facts, and `reasons`
        links a movie). `alive` is asked every ANSWERS_BETWEEN_CHECKS answers; once it says False
        the work stops with ServiceError STOPPED."""
        query_ids, (ids, scores) = self._similar_movie_ids(titles, k, movie_filter, reasons)
        answers = []
        for row, query_id in enumerate(query_ids.tolist()):
            if row % ANSWERS_BETWEEN_CHECKS == 0:
                check_alive(alive, "BatchSimilarMovies")
            answers.append(self._answer(query_id, ids[row], scores[row], reasons))
        return answers

    def similar_movies_batch_names(self, titles: Sequence[str], k: int,
                                   movie_filter: FilterRequest | None = None) -> list[tuple[str, Neighbours]]:
        """A large batch's lean form: each title (as resolved) with its similar movies' names and
        scores alone, no facts (a record read per movie) and no object per movie beyond the pair."""
        query_ids, ranked = self._similar_movie_ids(titles, k, movie_filter, 0)
        return self._named_rows(query_ids, ranked, self.movie_titles, self.movie_titles)

    def _answer(self, query_id: int, ids: np.ndarray, scores: np.ndarray, reasons: int) -> MoviesAnswer:
        """A movie's answer from its ranked row, with `reasons` links each found movie shares with it."""
        why = (lambda found: self._reasons_of(query_id, found, reasons)) if reasons else None
        return MoviesAnswer(*self._titled_facts(query_id), self._found(ids, scores, why),
                            self.reasons_basis if reasons else "")

    def _found(self, ids: np.ndarray, scores: np.ndarray,
               why: Callable[[list[int]], list[list[Reason]]] | None = None) -> list[FoundMovie]:
        """One ranked row (padding dropped) as FoundMovies with their facts; `why(ids)`, when
        given, says each one's reasons."""
        found = [(i, s) for i, s in zip(ids.tolist(), scores.tolist()) if i >= 0]
        reasons = why([i for i, _ in found]) if why is not None else [[]] * len(found)
        titled_facts = self._titled_facts
        return [FoundMovie(*titled_facts(i), s, r) for (i, s), r in zip(found, reasons)]

    def _similar_movie_ids(self, titles: Sequence[str], k: int, movie_filter: FilterRequest | None,
                           reasons: int) -> tuple[np.ndarray, Ranked]:
        """(the titles' ids, each one's ranked similar movies): similar_movies_batch's search, by id."""
        limits.check_count("titles", titles, minimum=1)
        limits.check_k(k)
        limits.check_batch_neighbours(len(titles), k)
        limits.check_reasons(reasons, len(titles) * k)
        found = self._movie_filter(movie_filter)
        ids = self._movie_ids(titles)
        wanted = self._candidates(k, movie_filter)
        if found is None:
            ranked = self.catalogue.similar_movies(ids, wanted)
        else:
            allowed = self._allowed(found)
            excluded = [self._franchise(int(q)) if found.exclude_franchise else np.empty(0, np.int64) for q in ids]
            ranked = self.catalogue.similar_movies(ids, wanted, allowed, excluded)
        return ids, self._diverse(ranked, k, movie_filter)

    @property
    def reasons_basis(self) -> str:
        return explain.ARTICLE_LINKS if self.has_movie_links else explain.MODEL_ASSOCIATIONS

    def _reasons_of(self, query_id: int, movie_ids: Sequence[int], n: int) -> list[list[Reason]]:
        """reasons by id."""
        return self._reasons_against(self.version.movie_vectors[query_id], self._links_of([query_id], []),
                                     movie_ids, n)

    def explain_similarity(self, title_a: str, title_b: str, k: int, links_b: Sequence[str] = ()) -> Explanation:
        """Why two movies are alike: their cosine and the k shared links contributing most (search.explain).
        With `links_b` (and no `title_b`), B is the film those links describe, folded in."""
        limits.check_k(k)
        if links_b and title_b:
            raise invalid("give B as title_b or as links_b, not both")
        if links_b:
            a = int(self._movie_ids([title_a])[0])
            folded = self.fold_in_films([links_b], "links_b")[0]
            (b_name, b_facts), vector_b, links_of_b = (folded.name, None), folded.vector, folded.link_ids
        else:
            a, b = self._movie_ids([title_a, title_b]).tolist()
            if a == b:
                raise invalid(f"both titles are {shown(self.movie_titles.names[a])}: name two different movies")
            (b_name, b_facts), vector_b, links_of_b = (self._titled_facts(b), self.version.movie_vectors[b],
                                                       self._links_of([b], []))
        vector_a, links_a = self.version.movie_vectors[a], self._links_of([a], [])
        shared = self._shared(vector_a, links_a, vector_b, links_of_b, k)
        link_vectors = self.version.link_vectors
        reasons = [Reason(self.version.links[j], float(c), float(link_vectors[j] @ vector_a),
                          float(link_vectors[j] @ vector_b)) for j, c in zip(shared.link_ids.tolist(), shared.contributions)]
        a_name, a_facts = self._titled_facts(a)
        return Explanation(a_name, b_name, a_facts, b_facts, float(vector_a @ vector_b), self.reasons_basis, reasons, shared.total, len(links_a),
                           len(links_of_b) if self.has_movie_links else 0, shared.overlap_cosine)

    def fold_in_films(self, films: Sequence[Sequence[str]], field: str = "links") -> list[FoldedFilm]:
        """Films given by their link names (exact or any case), each fitted to its known links
        by fold-in (search.foldin), in one batch. Unknown links are reported and ignored; a film
        with no known link is INVALID_ARGUMENT, as is one past the limits."""
        resolved = []
        for links in films:
            limits.check_fold_in_links(field, links)
            known, unknown = {}, []
            for name in dict.fromkeys(links):
                link_id = self._known_link(name)
                if link_id is None:
                    unknown.append(name)
                else:
                    known.setdefault(link_id, self.link_names.names[link_id])
            if not known:
                raise invalid(f"none of the {len(links)} links of {field} is a link of index version {self.name} "
                              f"(e.g. {shown(links[0])}); SearchNames with kind LINKS finds the names it knows")
            resolved.append((known, unknown))
        vectors = fold_in(self.fold_in_space, [list(known) for known, _ in resolved]).vectors
        return [FoldedFilm(vector, list(known.values()), np.sort(np.fromiter(known, np.int64)), unknown)
                for vector, (known, unknown) in zip(vectors, resolved)]

    def similar_to_links(self, links: Sequence[str], k: int, movie_filter: FilterRequest | None = None,
                         reasons: int = 0) -> LinksAnswer:
        """The movies most similar to the film `links` describe (folded in), filtered, diversified and
        with reasons as similar_movies_answer's: the links each shares with the known links given."""
        limits.check_k(k)
        limits.check_reasons(reasons, k)
        found_filter = self._movie_filter(movie_filter)
        film = self.fold_in_films([links])[0]
        why = (lambda found: self._reasons_against(film.vector, film.link_ids, found, reasons)) if reasons else None
        return LinksAnswer(film, self._found(*self._vector_movies(film.vector, k, movie_filter, found_filter), why),
                           self.reasons_basis if reasons else "")

    def similar_to_vector(self, values: Sequence[float], k: int,
                          movie_filter: FilterRequest | None = None) -> list[FoundMovie]:
        """The movies most similar to a caller's own vector (dim finite values, not all zero)."""
        limits.check_k(k)
        found_filter = self._movie_filter(movie_filter)
        vector = limits.unit_vector("vector", values, self.version.dim)
        return self._found(*self._vector_movies(vector, k, movie_filter, found_filter))

    def _vector_movies(self, vector: np.ndarray, k: int, request: FilterRequest | None,
                       found: ResolvedFilter | None) -> Ranked:
        """(ids, cosines) [k] of the movies nearest to a unit vector that the filter lets through."""
        allowed = None if found is None else self._allowed(found)
        ranked = self.catalogue.vector_movies(vector[None, :], self._candidates(k, request), allowed)
        ids, scores = self._diverse(ranked, k, request)
        return ids[0], scores[0]

    def vectors(self, titles: Sequence[str], links: Sequence[str],
                films: Sequence[Sequence[str]]) -> dict[str, list[tuple[str, np.ndarray, list[str]]]]:
        """Unit vectors of movies, links and films given by their links: {"movies", "links", "films"},
        each a list of (name as resolved, float32 vector, unknown links) in request order."""
        limits.check_count("titles, links and films", [*titles, *links, *films], minimum=1)
        limits.check_vector_values(len(titles) + len(links) + len(films), self.version.dim)
        movie_ids = self._movie_ids(titles) if titles else np.empty(0, np.int64)
        link_ids = [int(self._link_ids(name)[0]) for name in links]
        folded = self.fold_in_films(films, "films") if films else []
        version = self.version
        return {"movies": [(self.movie_titles.names[i], np.asarray(version.movie_vectors[i]), [])
                           for i in movie_ids.tolist()],
                "links": [(self.link_names.names[i], np.asarray(version.link_vectors[i], dtype=np.float32), [])
                          for i in link_ids],
                "films": [(f.name, f.vector, f.unknown) for f in folded]}

    def _known_link(self, name: str) -> int | None:
        """The id of a link name, exact or in any case; None where the index has no such link."""
        exact = self.link_names.exact.get(name)
        if exact is not None:
            return exact
        found = self.link_names.index.ids("lower", name.strip().casefold())
        return min(found) if found else None

    def similar_links(self, link: str, k: int) -> tuple[str, Neighbours]:
        ids = self._link_ids(link)
        limits.check_k(k)
        return self._named_rows(ids, self.catalogue.similar_links(ids, k), self.link_names, self.link_names)[0]

    def movie_links(self, title: str, k: int) -> tuple[str, Neighbours]:
        ids = self._movie_ids([title])
        limits.check_k(k)
        return self._named_rows(ids, self.catalogue.movie_links(ids, k), self.movie_titles, self.link_names)[0]

    def link_movies(self, link: str, k: int, movie_filter: FilterRequest | None = None) -> MoviesAnswer:
        """The k movies nearest to a link's vector that `movie_filter` lets through, each with its facts."""
        ids = self._link_ids(link)
        limits.check_k(k)
        found = self._movie_filter(movie_filter)
        if found is None:  # every movie may answer: the link's stored list where it is long enough
            ranked = self.catalogue.link_movies(ids[:1], self._candidates(k, movie_filter))
            movie_ids, scores = (row[0] for row in self._diverse(ranked, k, movie_filter))
        else:
            movie_ids, scores = self._vector_movies(self.version.link_vectors[int(ids[0])], k, movie_filter, found)
        name = self.link_names.names[int(ids[0])]
        return MoviesAnswer(name, MovieFacts(None, "", wikipedia_url(name)), self._found(movie_ids, scores), "")

    def recommend(self, liked: Sequence[str], disliked: Sequence[str], k: int, worst_k: int = 0, *,
                  strategy: str = "", liked_links: Sequence[str] = (), disliked_links: Sequence[str] = (),
                  movie_filter: FilterRequest | None = None, reasons: int = 0,
                  alive: Callable[[], bool] = lambda: True, liked_films: Sequence[Sequence[str]] = (),
                  disliked_films: Sequence[Sequence[str]] = (), liked_vectors: Sequence[Sequence[float]] = (),
                  disliked_vectors: Sequence[Sequence[float]] = ()) -> Recommendation:
        """Movies ranked by `strategy` (search.recommend; "" is the default, neighbours) over liked (+) and
        disliked (-) movies, links, films given by their links (folded in) and callers' own vectors.

        `alive` is asked between the steps (titles, fit, searches): once it says False (the
        caller cancelled or passed its deadline) the work stops with ServiceError STOPPED.
        """
        strategy = strategy or DEFAULT_STRATEGY
        if strategy not in STRATEGIES:
            raise invalid(f"unknown strategy {shown(strategy)}; choose one of {', '.join(STRATEGIES)}")
        if not liked and not liked_links and not liked_films and not liked_vectors:
            raise invalid("liked needs at least 1 title (or liked_links a link, liked_films a film, liked_vectors a vector)")
        for field, values in (("liked", liked), ("disliked", disliked), ("liked_links", liked_links),
                              ("disliked_links", disliked_links)):
            limits.check_count(field, values, minimum=0)
        limits.check_recommend_titles(len(liked) + len(liked_links) + len(liked_films) + len(liked_vectors),
                                      len(disliked) + len(disliked_links) + len(disliked_films) + len(disliked_vectors))
        limits.check_k(k)
        limits.check_k(worst_k, "worst_k", minimum=0)
        limits.check_reasons(reasons, k)
        found_filter = self._movie_filter(movie_filter)
        liked_resolved, disliked_resolved = self._movie_ids(liked), self._movie_ids(disliked)
        liked_ids, disliked_ids = _unique(liked_resolved), _unique(disliked_resolved)
        liked_link_ids = _unique(np.array([self._link_ids(n)[0] for n in liked_links], dtype=np.int64))
        disliked_link_ids = _unique(np.array([self._link_ids(n)[0] for n in disliked_links], dtype=np.int64))
        for what, names, a, b in (("movie", self.movie_titles.names, liked_ids, disliked_ids),
                                  ("link", self.link_names.names, liked_link_ids, disliked_link_ids)):
            both = np.intersect1d(a, b)
            if len(both):
                raise invalid(f"a {what} cannot be both liked and disliked: "
                              + ", ".join(shown(names[i]) for i in both[:5]))
        if len(liked_ids) + len(disliked_ids) >= len(self.movie_titles.names):
            raise invalid("every movie is liked or disliked: nothing is left to recommend")
        # Fold-in is the costly part of reading a request: after every cheaper check has passed.
        liked_extra, liked_extra_links = self._extra_examples("liked", liked_films, liked_vectors)
        disliked_extra, _ = self._extra_examples("disliked", disliked_films, disliked_vectors)
        allowed = None
        if found_filter is not None:
            allowed = self._allowed(found_filter)
            if found_filter.exclude_franchise:
                for movie_id in liked_ids.tolist():
                    allowed[self._franchise(movie_id)] = False
        best, (worst_ids, worst_scores) = self.catalogue.recommend(
            liked_ids, disliked_ids, self._candidates(k, movie_filter), worst_k, strategy=strategy,
            liked_links=liked_link_ids, disliked_links=disliked_link_ids, allowed=allowed, alive=alive,
            liked_vectors=liked_extra, disliked_vectors=disliked_extra)
        (best_ids,), (best_scores,) = self._diverse((best[0][None, :], best[1][None, :]), k, movie_filter)
        why = None
        if reasons:
            why = functools.partial(self._liked_reasons, liked_ids, liked_link_ids, liked_extra, liked_extra_links,
                                    n=reasons)
        titles = self.movie_titles.names
        return Recommendation(self._found(best_ids, best_scores, why), self._found(worst_ids, worst_scores), strategy,
                              SCORE_MEANING[strategy], [titles[i] for i in liked_resolved.tolist()],
                              [titles[i] for i in disliked_resolved.tolist()], self.reasons_basis if reasons else "")

    def _liked_reasons(self, liked_ids: np.ndarray, liked_link_ids: np.ndarray, liked_vectors: np.ndarray,
                       liked_vector_links: list[int], found_ids: list[int], n: int) -> list[list[Reason]]:
        """For each movie found, the n links it shares with the liked side (the average of its
        vectors; its movies' links, its links, its folded films' links)."""
        profile = np.concatenate([self.version.movie_vectors[liked_ids], self.version.link_vectors[liked_link_ids],
                                  liked_vectors]).mean(axis=0)
        profile /= max(float(np.linalg.norm(profile)), 1e-12)
        links = self._links_of(liked_ids.tolist(), liked_link_ids.tolist() + liked_vector_links)
        return self._reasons_against(profile, links, found_ids, n)

    def _extra_examples(self, side: str, films: Sequence[Sequence[str]],
                        vectors: Sequence[Sequence[float]]) -> tuple[np.ndarray, list[int]]:
        """A recommendation side's films given by links (folded in) and own vectors, as unit vectors
        [n, dim], and the folded films' known link ids (what reasons may name)."""
        folded = self.fold_in_films(films, f"{side}_films") if films else []
        own = [limits.unit_vector(f"{side}_vectors[{i}]", v, self.version.dim) for i, v in enumerate(vectors)]
        rows = [f.vector for f in folded] + own
        extra = np.stack(rows) if rows else np.empty((0, self.version.dim), np.float32)
        return extra, sorted({int(j) for f in folded for j in f.link_ids})

    def predict_attribute(self, title: str, attribute: str) -> Prediction:
        ids = self._movie_ids([title])
        limits.check_string("attribute", attribute)
        model = self.version.attribute_models.get(attribute)
        if model is None:
            known = ", ".join(self.served_attributes()) or "none"
            raise not_found(f"unknown attribute {shown(attribute)}; this index predicts: {known}")
        if model.no_better_than_mean:  # an answer would look like knowledge and be noise
            raise ServiceError(Kind.FAILED_PRECONDITION, f"{model.verdict()}; index version {self.name}")
        movie = self.version.movies[int(ids[0])]
        predicted = float(self.catalogue.predict(ids, attribute)[0])
        return Prediction(movie.title, attribute, model.unit, predicted, movie.attributes.get(attribute),
                          model.heldout_mse, model.baseline_mse, self.name)

    def served_attributes(self) -> list[str]:
        """The attributes PredictAttribute answers: a model no better than the mean is not served."""
        return sorted(name for name, model in self.version.attribute_models.items() if not model.no_better_than_mean)

    def export_neighbours(self, k: int, chunk_size: int = 0) -> Iterator[list[tuple[str, Neighbours]]]:
        """Every movie's top-k similar movies, in movie id order, in chunks of at most
        `chunk_size` movies (0: the default) and EXPORT_NEIGHBOURS_PER_CHUNK neighbours."""
        limits.check_k(k)
        limits.check_chunk_size(chunk_size)
        size = max(1, min(chunk_size or BATCH_ROWS, limits.EXPORT_NEIGHBOURS_PER_CHUNK // k))
        titles = self.movie_titles
        for movie_ids, ids, scores in self.catalogue.all_similar_movies(k, size):
            yield self._named_rows(movie_ids, (ids, scores), titles, titles)

    def info(self) -> dict:
        manifest = self.version.manifest
        return {
            "index_version": self.name,
            "movies": len(self.version.movies),
            "links": len(self.version.links),
            "dim": self.version.dim,
            "movie_index_type": manifest.indexes["movies"].label,
            "link_index_type": manifest.indexes["links"].label,
            "dataset": manifest.dataset,
            "metrics": manifest.metrics,
            "attributes": self.served_attributes(),
            "max_k": limits.MAX_K,
            "max_batch": limits.MAX_BATCH,
            "max_string_chars": limits.MAX_STRING_CHARS,
            "default_k": limits.DEFAULT_K,
            "max_reasons": limits.MAX_REASONS,
            "max_filter_links": limits.MAX_FILTER_LINKS,
            "has_movie_links": self.has_movie_links,
            "max_fold_in_links": limits.MAX_FOLD_IN_LINKS,
            "max_vector_values": limits.MAX_VECTOR_VALUES,
            "fold_in_objective_recorded": version_objective(self.version).recorded,
        }

    def lookup_title(self, title: str) -> TitleLookup:
        """The catalogue title a title names, how it matched, the others that matched as well
        and lost on links, and its facts."""
        limits.check_string("title", title)
        movie_id, match, others = self.movie_titles.lookup(title)
        names = self.movie_titles.names
        return TitleLookup(names[movie_id], match, [names[i] for i in others], self._titled_facts(movie_id)[1])

    def _candidates(self, k: int, request: FilterRequest | None) -> int:
        """How many ranked movies to ask for: k, or more for a diverse list to be picked from."""
        if request is None or not request.shapes_the_list:
            return k  # (its settings were checked by _movie_filter, which every query calls first)
        return candidates_for(k, len(self.movie_titles.names) - 1)

    def _diverse(self, ranked: Ranked, k: int, request: FilterRequest | None) -> Ranked:
        """Each row's k picked for a diverse list (search.diversity), or the ranking as it is."""
        if request is None or not request.shapes_the_list:
            return ranked
        rows = [diversify(ids, scores, k, self.version.movie_vectors, weight=request.diversity,
                          groups=self.version.movie_titles.franchises, max_per_group=request.max_per_franchise)
                for ids, scores in zip(*ranked)]
        return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])

    def _movie_filter(self, request: FilterRequest | None) -> ResolvedFilter | None:
        """The filter with its names resolved, or None when it lets every movie through
        (its diversity settings are not a filter: `_diverse` applies them)."""
        if request is not None:
            limits.check_diversity(request.max_per_franchise, request.diversity)
            request = request.without_diversity
        if request is None or request.empty:
            return None
        limits.check_filter(request.min_year, request.max_year, request.must_link_to, request.exclude_titles)
        if request.must_link_to and not self.has_movie_links:
            raise invalid("filter.must_link_to needs the films' links, and this index version has none: rebuild it "
                          "(`indexer build`) from a run trained since runs carry movie_links.npz")
        links = tuple(int(self._link_ids(name)[0]) for name in request.must_link_to)
        excluded = tuple(self._movie_ids(request.exclude_titles).tolist()) if request.exclude_titles else ()
        return ResolvedFilter(request.min_year, request.max_year, links, excluded, request.exclude_franchise)

    def _allowed(self, movie_filter: ResolvedFilter) -> np.ndarray:
        return allowed_movies(movie_filter, self.years, self._movies_of_link)

    def _movies_of_link(self, link_id: int) -> np.ndarray:
        return self._movie_of_pair[self._link_offsets[link_id]:self._link_offsets[link_id + 1]]

    def _franchise(self, movie_id: int) -> np.ndarray:
        """The films of the movie's franchise, itself included (empty when it has no other)."""
        key = self.version.movie_titles.franchises[movie_id]
        if key == NO_FRANCHISE:
            return np.empty(0, np.int64)
        start, end = np.searchsorted(self._franchise_sorted, key, "left"), np.searchsorted(self._franchise_sorted, key, "right")
        return self._franchise_order[start:end].astype(np.int64) if end - start > 1 else np.empty(0, np.int64)

    def _links_of(self, movie_ids: Sequence[int], link_ids: Sequence[int]) -> np.ndarray:
        """The sorted distinct links of some movies that explain them (those outside their
        articles' citations and navigation boxes, when the index knows), with some links added
        (empty without movie links)."""
        links = self.version.movie_links
        if links is None:
            return np.empty(0, np.int64)
        parts = [links.reasons_of(i).astype(np.int64) for i in movie_ids] + [np.asarray(link_ids, dtype=np.int64)]
        return np.unique(np.concatenate(parts))

    def _shared(self, vector: np.ndarray, links: np.ndarray, other_vector: np.ndarray, other_links: np.ndarray,
                n: int) -> explain.Shared:
        """The n links (vector, links) shares with (other_vector, other_links) contributing most."""
        if self.has_movie_links:
            link_vectors = self.version.link_vectors
            return explain.shared_article_links(
                links, other_links, self.idf, n,
                lambda ids: (link_vectors[ids] @ vector) * (link_vectors[ids] @ other_vector))
        return explain.shared_associations(self.version.link_vectors, vector, other_vector, n,
                                           explain.association_candidates(self.version.link_index, vector, other_vector))

    def _reasons_against(self, vector: np.ndarray, links: np.ndarray, others: Sequence[int], n: int) -> list[list[Reason]]:
        """For each of `others`, the n links it shares with (`vector`, `links`): one query side."""
        link_vectors, movie_vectors, names = self.version.link_vectors, self.version.movie_vectors, self.version.links
        result = []
        for other in others:
            shared = self._shared(vector, links, movie_vectors[other], self._links_of([other], []), n)
            chosen = link_vectors[shared.link_ids]
            result.append([Reason(names[j], float(c), float(a), float(b)) for j, c, a, b in
                           zip(shared.link_ids.tolist(), shared.contributions.tolist(), (chosen @ vector).tolist(),
                               (chosen @ movie_vectors[other]).tolist())])
        return result

    def _movie_ids(self, titles: Sequence[str]) -> np.ndarray:
        """Ids of many titles: each distinct title resolved once, at most MAX_CLOSE_MATCHES by close match."""
        resolved: dict[str, int] = {}
        close_left = limits.MAX_CLOSE_MATCHES
        for title in dict.fromkeys(titles):
            limits.check_string("title", title)
            resolved[title], match = self.movie_titles.resolve(title, close=close_left > 0)
            close_left -= match == "close"
        return np.array([resolved[t] for t in titles], dtype=np.int64)

    def _link_ids(self, link: str) -> np.ndarray:
        limits.check_string("link", link)
        return np.array([self.link_names.resolve(link, fuzzy=False)[0]], dtype=np.int64)

    @staticmethod
    def _named_rows(
        query_ids: np.ndarray, ranked: Ranked, queries: TitleResolver, results: TitleResolver
    ) -> list[tuple[str, Neighbours]]:
        """Queries and results by name, for the answers that are names and scores alone (similar
        links, a movie's links, the export)."""
        ids, scores = ranked
        return [(queries.names[q], named(i, s, results.names)) for q, i, s in zip(query_ids.tolist(), ids, scores)]


def _titled_facts(version: IndexVersion) -> Callable[[int], tuple[str, MovieFacts]]:
    """(title, MovieFacts) by movie id, from the version's columns (no record is read; the last
    FACTS_KEPT asked for are kept). It holds the version's columns, not the service: no
    reference cycle, so a service swapped out is freed at once."""
    # A memoryview's items are Python ints: a third of the time of int(array[i]) (np.memmap's [i] is slower still).
    years, names, facts = memoryview(np.ascontiguousarray(version.years)), version.movie_names, version.facts
    directors, imdb_ids, wikidata_ids = facts.directors, facts.imdb_ids, facts.wikidata_ids

    @functools.lru_cache(maxsize=FACTS_KEPT)
    def titled_facts(movie_id: int) -> tuple[str, MovieFacts]:
        title = names[movie_id]
        return title, MovieFacts(years[movie_id] or None, directors[movie_id], wikipedia_url(title),
                                 imdb_ids[movie_id], wikidata_ids[movie_id])

    return titled_facts


def _unique(ids: np.ndarray) -> np.ndarray:
    """`ids` without repeats, in the order of first appearance."""
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)]
