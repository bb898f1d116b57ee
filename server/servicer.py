"""The gRPC servicer: each method turns a request into one MovieService call and its
complete answer into a response, mapping only (no titles looked up, no facts or reasons
worked out here). ServiceError is mapped to a gRPC status here, once."""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Callable

import grpc
from google.protobuf import struct_pb2

from movielinks.common.about import package_version
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.common.answers import Neighbours
from movielinks.server.errors import Kind, ServiceError
from movielinks.server.explore import explorer
from movielinks.search.filters import FilterRequest
from movielinks.server.limits import DEFAULT_K
from movielinks.server.security import without_local_paths
from movielinks.server.service import FoundMovie, MovieFacts, MovieService, MoviesAnswer, Reason, wikipedia_url

log = logging.getLogger("movielinks.server")

_STATUS = {
    Kind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
_RESPONSE_CHUNK = 256  # batch results converted between two checks that the caller still waits


MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # what a default gRPC client accepts


def _abort(context: grpc.ServicerContext, method: str, error: Exception) -> None:
    if isinstance(error, ServiceError) and error.kind is Kind.STOPPED:
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED, error.message)
    if isinstance(error, ServiceError):
        context.abort(_STATUS[error.kind], error.message)
    log.exception("unexpected error in %s", method)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; the server log has the details")


def unary(method: Callable) -> Callable:
    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except Exception as error:  # noqa: BLE001 - every failure becomes a status, never a crash
            _abort(context, method.__name__, error)
    return handler


def streaming(method: Callable) -> Callable:
    @functools.wraps(method)
    def handler(self, request, context):
        try:
            yield from method(self, request, context)
        except Exception as error:  # noqa: BLE001
            _abort(context, method.__name__, error)
    return handler


class MovielinksServicer(pb_grpc.MovielinksServicer):
    """`current()` returns the MovieService to answer with; each call reads it once."""

    def __init__(self, current: Callable[[], MovieService], refused_versions: Callable[[], list[str]] = list):
        self.current = current
        self.refused_versions = refused_versions

    @unary
    def SimilarMovies(self, request, context):
        service = self.current()
        answer = service.similar_movies(request.title, _k(request.k), _filter(request), request.reasons)
        return _answered(answer, service.name)

    @unary
    def BatchSimilarMovies(self, request, context):
        service = self.current()
        titles, k, movie_filter = list(request.titles), _k(request.k), _filter(request)
        if request.facts or request.reasons:
            results = service.similar_movies_batch(titles, k, movie_filter, request.reasons, context.is_active)
            convert = functools.partial(_answered, version=service.name)
        else:  # names and scores alone: the lean form a large batch is asked in
            results = service.similar_movies_batch_names(titles, k, movie_filter)
            convert = lambda row: _neighbours(*row, service.name)  # noqa: E731
        response = pb.BatchNeighboursResponse(index_version=service.name)
        # Up to 10,000 x 1,000 neighbours to convert: stop when nobody waits for them.
        for start in range(0, len(results), _RESPONSE_CHUNK):
            if not context.is_active():  # cancelled, or past its deadline
                return response
            response.results.extend(map(convert, results[start:start + _RESPONSE_CHUNK]))
        size = response.ByteSize()
        if size > MAX_RESPONSE_BYTES:  # long titles: the titles x k limit alone does not bound the bytes
            raise ServiceError(Kind.RESOURCE_EXHAUSTED, f"the answer would be {size:,} bytes; the limit is "
                               f"{MAX_RESPONSE_BYTES:,} (what a gRPC client accepts by default): ask for fewer "
                               "titles x k in one call, or export")
        return response

    @unary
    def SimilarLinks(self, request, context):
        service = self.current()
        return _neighbours(*service.similar_links(request.link, _k(request.k)), service.name)

    @unary
    def MovieLinks(self, request, context):
        service = self.current()
        return _neighbours(*service.movie_links(request.title, _k(request.k)), service.name)

    @unary
    def LinkMovies(self, request, context):
        service = self.current()
        return _answered(service.link_movies(request.link, _k(request.k), _filter(request)), service.name)

    @unary
    def Recommend(self, request, context):
        service = self.current()
        result = service.recommend(list(request.liked), list(request.disliked), _k(request.k), request.worst_k,
                                   strategy=request.strategy, liked_links=list(request.liked_links),
                                   disliked_links=list(request.disliked_links), movie_filter=_filter(request),
                                   reasons=request.reasons, alive=context.is_active,
                                   liked_films=_link_sets(request.liked_films),
                                   disliked_films=_link_sets(request.disliked_films),
                                   liked_vectors=[list(v.values) for v in request.liked_vectors],
                                   disliked_vectors=[list(v.values) for v in request.disliked_vectors])
        return pb.RecommendResponse(
            best=_scored(result.best), worst=_scored(result.worst),
            index_version=service.name, strategy=result.strategy, score_meaning=result.score_meaning,
            liked_resolved=result.liked, disliked_resolved=result.disliked, reasons_basis=result.reasons_basis,
        )

    @unary
    def PredictAttribute(self, request, context):
        prediction = self.current().predict_attribute(request.title, request.attribute)
        return pb.PredictAttributeResponse(**dataclasses.asdict(prediction))

    @streaming
    def ExportNeighbours(self, request, context):
        service = self.current()
        total = len(service.version.movies)
        for chunk in service.export_neighbours(_k(request.k), request.chunk_size):
            if not context.is_active():  # the client went away: stop searching
                return
            yield pb.ExportNeighboursChunk(
                results=[_neighbours(q, n, service.name) for q, n in chunk],
                index_version=service.name, total_movies=total,
            )

    @unary
    def LookupTitle(self, request, context):
        found = self.current().lookup_title(request.title)
        return pb.LookupTitleResponse(title=found.title, match=found.match, also_matched=found.also_matched,
                                      imdb_id=found.facts.imdb_id, wikidata_id=found.facts.wikidata_id)

    @unary
    def GetInfo(self, request, context):
        # Callers learn what the index holds, not where the server keeps it (paths are in the log).
        info = without_local_paths(self.current().info())
        dataset, metrics = _struct(info.pop("dataset")), _struct(info.pop("metrics"))
        return pb.InfoResponse(**info, dataset=dataset, metrics=metrics,
                               refused_versions=without_local_paths(self.refused_versions()),
                               server_version=package_version())

    @unary
    def SearchNames(self, request, context):
        kind = "links" if request.kind == pb.SearchNamesRequest.LINKS else "movies"
        names, total = explorer(self.current()).search_names(request.text, kind, request.limit)
        return pb.SearchNamesResponse(names=names, total=total)

    @unary
    def ExplainSimilarity(self, request, context):
        service = self.current()
        links_b = list(request.links_b.links)
        found = service.explain_similarity(request.title_a, request.title_b, _k(request.k), links_b)
        b = (pb.Neighbour(name=found.b, score=found.cosine) if found.b_facts is None
             else _movie(found.b, found.b_facts, found.cosine))
        return pb.ExplainSimilarityResponse(
            a=_movie(found.a, found.a_facts, found.cosine), b=b, cosine=found.cosine,
            basis=found.basis, shared_links=_reasons(found.shared), shared_total=found.shared_total,
            links_a=found.links_a, links_b=found.links_b, link_overlap_cosine=found.overlap_cosine,
            index_version=service.name,
        )

    @unary
    def MovieMap(self, request, context):
        service = self.current()
        found = explorer(service).movie_map(list(request.titles), request.sample)
        return pb.MovieMapResponse(sample=[_point(p) for p in found.sample], titles=[_point(p) for p in found.titles],
                                   explained_variance=found.explained_variance, index_version=service.name)

    @unary
    def SimilarToLinks(self, request, context):
        service = self.current()
        answer = service.similar_to_links(list(request.links), _k(request.k), _filter(request), request.reasons)
        response = pb.NeighboursResponse(index_version=service.name, reasons_basis=answer.reasons_basis,
                                         query_links=answer.film.links, unknown_links=answer.film.unknown)
        _add_movies(response, answer.movies)
        return response

    @unary
    def SimilarToVector(self, request, context):
        service = self.current()
        response = pb.NeighboursResponse(index_version=service.name)
        _add_movies(response, service.similar_to_vector(list(request.vector), _k(request.k), _filter(request)))
        return response

    @unary
    def GetVectors(self, request, context):
        service = self.current()
        found = service.vectors(list(request.titles), list(request.links), _link_sets(request.films))

        def named(rows) -> list[pb.NamedVector]:
            return [pb.NamedVector(name=name, values=vector.tolist(), unknown_links=unknown)
                    for name, vector, unknown in rows]

        return pb.GetVectorsResponse(movies=named(found["movies"]), links=named(found["links"]),
                                     films=named(found["films"]), index_version=service.name, dim=service.version.dim)


def _link_sets(sets) -> list[list[str]]:
    return [list(s.links) for s in sets]


def _k(k: int) -> int:
    """proto3 cannot tell an omitted k from 0: both mean the documented default."""
    return k or DEFAULT_K


def _struct(values: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _point(point) -> pb.MapPoint:
    return pb.MapPoint(title=point.title, x=point.x, y=point.y, year=point.year or 0)


def _filter(request) -> FilterRequest | None:
    """The request's MovieFilter message as a FilterRequest (None when the request has none)."""
    if not request.HasField("filter"):
        return None
    f = request.filter
    return FilterRequest(f.min_year, f.max_year, tuple(f.must_link_to), tuple(f.exclude_titles), f.exclude_franchise,
                         f.max_per_franchise, f.diversity)


def _reasons(reasons: list[Reason]) -> list[pb.SharedLink]:
    return [pb.SharedLink(link=r.link, contribution=r.contribution, cosine_a=r.cosine_a, cosine_b=r.cosine_b,
                          url=wikipedia_url(r.link)) for r in reasons]


def _movie(title: str, facts: MovieFacts, score: float) -> pb.Neighbour:
    return pb.Neighbour(name=title, score=score, year=facts.year or 0, director=facts.director, url=facts.url,
                        imdb_id=facts.imdb_id, wikidata_id=facts.wikidata_id)


def _scored(movies: list[FoundMovie]) -> list[pb.ScoredMovie]:
    """A Recommendation's movies, each with its facts and any reasons."""
    return [pb.ScoredMovie(title=m.title, decision_value=m.score, year=m.facts.year or 0, director=m.facts.director,
                           url=m.facts.url, reasons=_reasons(m.reasons), imdb_id=m.facts.imdb_id,
                           wikidata_id=m.facts.wikidata_id) for m in movies]


def _answered(answer: MoviesAnswer, version: str) -> pb.NeighboursResponse:
    """A complete answer (every movie with its facts) as a NeighboursResponse."""
    query = answer.query_facts
    response = pb.NeighboursResponse(query=answer.query, query_year=query.year or 0, query_director=query.director,
                                     query_url=query.url, index_version=version, reasons_basis=answer.reasons_basis,
                                     query_imdb_id=query.imdb_id, query_wikidata_id=query.wikidata_id)
    _add_movies(response, answer.movies)
    return response


def _add_movies(response: pb.NeighboursResponse, movies) -> None:
    """Each FoundMovie as a Neighbour of `response`, with its facts and any reasons."""
    # add() fills each Neighbour in place: half the time of building them and copying them in.
    add = response.neighbours.add
    for movie in movies:
        facts = movie.facts
        neighbour = add(name=movie.title, score=movie.score, year=facts.year or 0, director=facts.director,
                        url=facts.url, imdb_id=facts.imdb_id, wikidata_id=facts.wikidata_id)
        if movie.reasons:
            neighbour.reasons.extend(_reasons(movie.reasons))


def _neighbours(query: str, neighbours: Neighbours, version: str) -> pb.NeighboursResponse:
    return pb.NeighboursResponse(
        query=query, neighbours=[pb.Neighbour(name=n, score=s) for n, s in neighbours], index_version=version
    )
