"""The gRPC surface in-process: a server on a free loopback port over a tiny index,
called with the raw stub (the real client and server process are test_e2e's)."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from movielinks.indexer.build import build_index
from movielinks.indexer.root import load_current
from movielinks.proto import SERVICE_NAME
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server.app import start
from movielinks.server.limits import MAX_BATCH, MAX_K, MAX_STRING_CHARS
from movielinks.server.service import MovieService
from movielinks.server.versions import ServiceHolder
from tests.fixtures import make_run

TITLES = ["Interstellar (film)", "Alien (film)", "Aliens (film)"]
TIMEOUT_S = 10


def build_catalogue(folder: Path, seed: int) -> MovieService:
    run = make_run(folder / "run", seed, titles=TITLES, n_movies=80, n_links=30, dim=8)
    build_index(run, folder / "index", progress=False)
    return MovieService(load_current(folder / "index"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(holder, stub, channel) of a running in-process server; stopped afterwards."""
    holder = ServiceHolder(build_catalogue(tmp_path_factory.mktemp("first"), seed=0))
    running = start(holder, "127.0.0.1", 0, max_workers=4)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield holder, pb_grpc.MovielinksStub(channel), channel
    finally:
        channel.close()
        running.stop(grace_s=1)


def status_of(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_similar_movies_answers_what_the_catalogue_does(served):
    holder, stub, _ = served
    reply = stub.SimilarMovies(pb.SimilarMoviesRequest(title="interstellar", k=5), timeout=TIMEOUT_S)
    answer = holder.current().similar_movies("Interstellar (film)", 5)
    query, expected = answer.query, answer.neighbours
    assert reply.query == query == "Interstellar (film)"
    assert [(n.name, pytest.approx(n.score, abs=1e-6)) for n in reply.neighbours] == expected
    assert query not in [n.name for n in reply.neighbours]
    assert reply.index_version == holder.current().name
    batch = stub.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=["Alien (film)", "interstellar"], k=5,
                                                                 facts=True), timeout=TIMEOUT_S)
    assert [r.query for r in batch.results] == ["Alien (film)", "Interstellar (film)"]
    assert batch.results[1] == reply


def test_recommend_and_predict(served):
    holder, stub, _ = served
    liked, disliked = ["Interstellar (film)", "Aliens (film)"], ["Alien (film)"]
    reply = stub.Recommend(pb.RecommendRequest(liked=liked, disliked=disliked, k=4, worst_k=2), timeout=TIMEOUT_S)
    expected = holder.current().recommend(liked, disliked, 4, 2)
    assert [m.title for m in reply.best] == [m.title for m in expected.best]
    assert [m.title for m in reply.worst] == [m.title for m in expected.worst]
    assert reply.best[0].decision_value >= reply.best[-1].decision_value > reply.worst[0].decision_value
    prediction = stub.PredictAttribute(pb.PredictAttributeRequest(title="Aliens (film)", attribute="rotten_tomatoes"),
                                       timeout=TIMEOUT_S)
    assert prediction.unit == "fraction" and prediction.title == "Aliens (film)"
    assert prediction.HasField("known") == ("rotten_tomatoes" in holder.current().version.movies[2].attributes)


@pytest.mark.parametrize("call, code, words", [
    (lambda s: s.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=-1)), "INVALID_ARGUMENT", "k must be"),
    (lambda s: s.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=MAX_K + 1)), "INVALID_ARGUMENT", "k must"),
    (lambda s: s.SimilarMovies(pb.SimilarMoviesRequest(title="", k=3)), "INVALID_ARGUMENT", "title is empty"),
    (lambda s: s.SimilarMovies(pb.SimilarMoviesRequest(title="x" * (MAX_STRING_CHARS + 1), k=3)), "INVALID_ARGUMENT",
     "limit"),
    (lambda s: s.SimilarMovies(pb.SimilarMoviesRequest(title="Alienz (film)", k=3)), "NOT_FOUND", "Alien (film)"),
    (lambda s: s.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=["Alien (film)"] * (MAX_BATCH + 1), k=3)),
     "INVALID_ARGUMENT", "limit"),
    (lambda s: s.SimilarLinks(pb.SimilarLinksRequest(link="No such link", k=3)), "NOT_FOUND", "No such link"),
    (lambda s: s.Recommend(pb.RecommendRequest(liked=[], k=3)), "INVALID_ARGUMENT", "liked"),
    (lambda s: s.Recommend(pb.RecommendRequest(liked=["Alien (film)"], disliked=["alien (film)"], k=3)),
     "INVALID_ARGUMENT", "both liked and disliked"),
    (lambda s: s.PredictAttribute(pb.PredictAttributeRequest(title="Alien (film)", attribute="box office")),
     "NOT_FOUND", "rotten_tomatoes"),
    (lambda s: next(s.ExportNeighbours(pb.ExportNeighboursRequest(k=-1))), "INVALID_ARGUMENT", "k must"),
])
def test_bad_requests_get_a_status_that_says_what_to_fix(served, call, code, words):
    _, stub, _ = served
    error = status_of(lambda: call(stub))
    assert error.code().name == code and words in error.details()
    assert stub.GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT_S).movies == 80  # still serving


def test_info_reports_the_version_and_limits(served):
    holder, stub, _ = served
    info = stub.GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT_S)
    assert (info.index_version, info.movies, info.links, info.dim) == (holder.current().name, 80, 30, 8)
    assert (info.max_k, info.max_batch, info.max_string_chars) == (MAX_K, MAX_BATCH, MAX_STRING_CHARS)
    assert list(info.attributes) == ["gross", "rotten_tomatoes"]


def test_health_is_serving_and_reflection_lists_the_services(served):
    _, _, channel = served
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_S)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([listing]), timeout=TIMEOUT_S)
    services = {s.name for reply in replies for s in reply.list_services_response.service}
    assert services == {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                        "grpc.reflection.v1.ServerReflection"}


def test_a_swapped_version_answers_new_calls_while_a_started_stream_finishes_on_its_own(served, tmp_path):
    holder, stub, _ = served
    first = holder.current()
    stream = stub.ExportNeighbours(pb.ExportNeighboursRequest(k=3, chunk_size=10), timeout=TIMEOUT_S)
    chunks = [next(stream)]
    second = build_catalogue(tmp_path, seed=1)
    holder.swap(second)
    try:
        chunks += list(stream)
        assert stub.GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT_S).index_version == second.name != first.name
    finally:
        holder.swap(first)
    assert {c.index_version for c in chunks} == {first.name} and len(chunks) == 8
    rows = [r for c in chunks for r in c.results]
    assert [r.query for r in rows] == [m.title for m in first.version.movies]
    similar = stub.SimilarMovies(pb.SimilarMoviesRequest(title=rows[5].query, k=3)).neighbours
    assert [(n.name, n.score) for n in rows[5].neighbours] == [(n.name, n.score) for n in similar]  # export: no facts


def test_a_batch_answer_past_the_response_limit_is_refused(tmp_path):
    # Issue 13.2: titles x k is bounded, but long titles could still make an answer no client accepts.
    long_titles = [f"{i:03d} " + "x" * (MAX_STRING_CHARS - 4) for i in range(300)]
    run = make_run(tmp_path / "run", titles=long_titles, n_movies=300, n_links=30, dim=8)
    build_index(run, tmp_path / "index", progress=False)
    running = start(ServiceHolder(MovieService(load_current(tmp_path / "index"))), "127.0.0.1", 0, max_workers=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.MovielinksStub(channel)
            request = pb.BatchSimilarMoviesRequest(titles=long_titles[:100], k=200)  # 20,000 x ~500 bytes
            error = status_of(lambda: stub.BatchSimilarMovies(request, timeout=TIMEOUT_S))
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "the limit is 4,194,304" in error.details() and "fewer" in error.details()
            small = stub.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=long_titles[:10], k=20),
                                            timeout=TIMEOUT_S)
            assert len(small.results) == 10
    finally:
        running.stop(grace_s=1)
