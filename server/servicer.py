"""The gRPC servicer: each method turns a request into one Catalogue call and the
result into a response. ServiceError is mapped to a gRPC status here, once."""
from __future__ import annotations

import functools
import logging
from typing import Callable

import grpc

from proto import movielinks_pb2 as pb
from proto import movielinks_pb2_grpc as pb_grpc
from server.catalogue import Catalogue, Neighbours
from server.errors import Kind, ServiceError

log = logging.getLogger("movielinks.server")

_STATUS = {
    Kind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
_RESPONSE_CHUNK = 256  # batch results converted between two checks that the caller still waits


def _abort(context: grpc.ServicerContext, method: str, error: Exception) -> None:
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
    """`current()` returns the Catalogue to answer with; each call reads it once."""

    def __init__(self, current: Callable[[], Catalogue], refused_versions: Callable[[], list[str]] = list):
        self.current = current
        self.refused_versions = refused_versions

    @unary
    def SimilarMovies(self, request, context):
        catalogue = self.current()
        return _neighbours(*catalogue.similar_movies(request.title, request.k), catalogue.name)

    @unary
    def BatchSimilarMovies(self, request, context):
        catalogue = self.current()
        results = catalogue.similar_movies_batch(list(request.titles), request.k)
        response = pb.BatchNeighboursResponse(index_version=catalogue.name)
        # Up to 10,000 x 1,000 neighbours to convert: stop when nobody waits for them.
        for start in range(0, len(results), _RESPONSE_CHUNK):
            if not context.is_active():  # cancelled, or past its deadline
                return response
            chunk = results[start:start + _RESPONSE_CHUNK]
            response.results.extend(_neighbours(q, n, catalogue.name) for q, n in chunk)
        return response

    @unary
    def SimilarLinks(self, request, context):
        catalogue = self.current()
        return _neighbours(*catalogue.similar_links(request.link, request.k), catalogue.name)

    @unary
    def MovieLinks(self, request, context):
        catalogue = self.current()
        return _neighbours(*catalogue.movie_links(request.title, request.k), catalogue.name)

    @unary
    def LinkMovies(self, request, context):
        catalogue = self.current()
        return _neighbours(*catalogue.link_movies(request.link, request.k), catalogue.name)

    @unary
    def Recommend(self, request, context):
        catalogue = self.current()
        result = catalogue.recommend(list(request.liked), list(request.disliked), request.k, request.worst_k)
        return pb.RecommendResponse(
            best=[pb.ScoredMovie(title=t, decision_value=v) for t, v in result.best],
            worst=[pb.ScoredMovie(title=t, decision_value=v) for t, v in result.worst],
            index_version=catalogue.name,
        )

    @unary
    def PredictAttribute(self, request, context):
        catalogue = self.current()
        p = catalogue.predict_attribute(request.title, request.attribute)
        return pb.PredictAttributeResponse(
            title=p.title, attribute=p.attribute, unit=p.unit, predicted=p.predicted, known=p.known,
            heldout_mse=p.heldout_mse, baseline_mse=p.baseline_mse, index_version=catalogue.name,
        )

    @streaming
    def ExportNeighbours(self, request, context):
        catalogue = self.current()
        total = len(catalogue.version.movies)
        for chunk in catalogue.export_neighbours(request.k, request.chunk_size):
            if not context.is_active():  # the client went away: stop searching
                return
            yield pb.ExportNeighboursChunk(
                results=[_neighbours(q, n, catalogue.name) for q, n in chunk],
                index_version=catalogue.name, total_movies=total,
            )

    @unary
    def LookupTitle(self, request, context):
        title, match = self.current().resolve_title(request.title)
        return pb.LookupTitleResponse(title=title, match=match)

    @unary
    def GetInfo(self, request, context):
        return pb.InfoResponse(**self.current().info(), refused_versions=self.refused_versions())


def _neighbours(query: str, neighbours: Neighbours, version: str) -> pb.NeighboursResponse:
    return pb.NeighboursResponse(
        query=query, neighbours=[pb.Neighbour(name=n, score=s) for n, s in neighbours], index_version=version
    )
