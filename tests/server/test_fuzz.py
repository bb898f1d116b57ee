"""Thousands of random and malformed requests against the real server process.

Whatever arrives, every answer is OK, INVALID_ARGUMENT, NOT_FOUND or
RESOURCE_EXHAUSTED (never UNKNOWN or INTERNAL), the process stays up, and a
normal query still answers correctly at the end.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from movielinks.indexer.build import build_index
from movielinks.proto import SERVICE_NAME
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server.app import MAX_MESSAGE_BYTES, load_service
from movielinks.server.limits import MAX_BATCH, MAX_K, MAX_STRING_CHARS
from movielinks.server.gateway import RPCS
from tests.e2e_server import ServerProcess, running_server
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # many generated examples against real servers

TITLES = ["Interstellar (film)", "Amélie (film)", "千と千尋の神隠し", "Heat (1995 film)", "Heat (1986 film)",
          "Crouching Tiger, Hidden Dragon", "Tab\tand newline\n (film)"]
N_MOVIES, N_LINKS = 300, 120
ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.RESOURCE_EXHAUSTED}
CALL_TIMEOUT_S = 30
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz(max_examples: int) -> settings:
    return settings(FUZZ, max_examples=max_examples)


@dataclasses.dataclass
class Served:
    server: ServerProcess
    index_root: Path
    sent: int = 0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=N_MOVIES, n_links=N_LINKS), tmp / "index", progress=False)
    with running_server(tmp / "index", "--workers", "4", "--http-port", "0") as server:
        yield Served(server, tmp / "index")


@pytest.fixture(scope="module")
def channel(served):
    # The client's receive limit is raised past the server's so that a large answer
    # is the server's to refuse, not the client's.
    with grpc.insecure_channel(served.server.address,
                               options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel):
    return pb_grpc.MovielinksStub(channel)


def answer(served: ServerProcess, call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """(status, details) of one call; a streamed answer is read to its end."""
    served.sent += 1
    try:
        result = call()
        if not isinstance(result, bytes) and not hasattr(result, "SerializeToString"):  # a response stream
            list(result)
        status, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        status, details = e.code(), e.details() or ""
    assert served.server.process.poll() is None, f"the server died:\n{''.join(served.server.log_lines[-50:])}"
    return status, details


def assert_answered(served: ServerProcess, call: Callable[[], object]) -> grpc.StatusCode:
    status, details = answer(served, call)
    assert status in ANSWERS, f"{status}: {details}"
    event(status.name)  # --hypothesis-show-statistics shows how often each path ran
    return status


# --- strategies --------------------------------------------------------------------------------

INT32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([-(2**31), -1, 0, 1, 2, MAX_K, MAX_K + 1, MAX_BATCH, MAX_BATCH + 1, 2**31 - 1]),
    st.integers(-3, 40),
)
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)  # protobuf strings cannot carry lone surrogates
CONTROL = st.text(st.characters(codec="utf-8", max_codepoint=0x1F), min_size=1, max_size=10)


def near(names: list[str], *, typos: bool = True) -> st.SearchStrategy[str]:
    """A name as given, in other case, cut short, padded, or (typos) with a control character inside."""
    name = st.sampled_from(names)
    variants = [name, name.map(str.upper), name.map(lambda n: n[: max(1, len(n) // 2)]), name.map(lambda n: f"  {n}  ")]
    if typos:
        variants.append(st.tuples(name, CONTROL).map(lambda p: p[0][:3] + p[1] + p[0][3:]))
    return st.one_of(variants)


LONG = st.tuples(st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
                 st.sampled_from([MAX_STRING_CHARS, MAX_STRING_CHARS + 1]) | st.integers(1, 10_000)
                 ).map(lambda p: (p[0] * p[1])[: p[1]])
MOVIE_TITLES = [*TITLES, *(f'Movie {i:03d}, part "{i % 7}"' for i in range(len(TITLES), N_MOVIES))]
LINKS = [f"Link {i}" for i in range(N_LINKS)]
TITLE = st.one_of(near(MOVIE_TITLES), TEXT, CONTROL, LONG, st.just(""), st.just(" \t\n"))
LINK = st.one_of(near(LINKS), near(MOVIE_TITLES), TEXT, CONTROL, LONG, st.just(""))
SHORT_TITLE = st.one_of(near(MOVIE_TITLES), TEXT, CONTROL, st.just(""), st.text(min_size=490, max_size=510))
# A typo resolves by a close match that scans the catalogue and is redone for every copy,
# so thousands in one request take far longer than a test should: a known server cost
# (reported to the lead), kept out of long lists so that this file stays fast.
LIST_TITLE = st.one_of(near(MOVIE_TITLES, typos=False), TEXT, CONTROL, st.just(""), st.text(min_size=490, max_size=510))
MAX_TYPO_LIST = 50


@st.composite
def title_lists(draw) -> list[str]:
    """0..12,000 titles, cycling a few drawn ones: duplicates come for free, and a
    long list costs a few drawn titles rather than thousands."""
    length = draw(st.one_of(st.integers(0, 20), st.integers(1, 20), st.integers(0, MAX_BATCH),
                            st.integers(MAX_BATCH - 2, 12_000)))
    element = SHORT_TITLE if length <= MAX_TYPO_LIST else LIST_TITLE
    pattern = draw(st.lists(st.sampled_from(MOVIE_TITLES), min_size=1, max_size=8)
                   | st.lists(element, min_size=1, max_size=8))
    return [pattern[i % len(pattern)] for i in range(length)]


def affordable_k(k: int, n_queries: int) -> int:
    """A valid k for a long list shrinks so that one example answers in milliseconds
    (10,000 titles x 1000 neighbours would be a 100 MB answer); invalid k stay as drawn."""
    return 1 + k % 3 if 1 <= k <= MAX_K and n_queries > 50 else k


# --- well-formed messages with random content --------------------------------------------------

ATTRIBUTE = st.one_of(st.sampled_from(["rotten_tomatoes", "gross", "budget"]), TEXT)


@fuzz(700)
@given(title=TITLE, link=LINK, k=INT32, attribute=ATTRIBUTE)
def test_single_queries_are_answered(served, stub, title, link, k, attribute):
    for call in (
        lambda: stub.SimilarMovies(pb.SimilarMoviesRequest(title=title, k=k), timeout=CALL_TIMEOUT_S),
        lambda: stub.SimilarLinks(pb.SimilarLinksRequest(link=link, k=k), timeout=CALL_TIMEOUT_S),
        lambda: stub.MovieLinks(pb.MovieLinksRequest(title=title, k=k), timeout=CALL_TIMEOUT_S),
        lambda: stub.LinkMovies(pb.LinkMoviesRequest(link=link, k=k), timeout=CALL_TIMEOUT_S),
        lambda: stub.PredictAttribute(pb.PredictAttributeRequest(title=title, attribute=attribute),
                                      timeout=CALL_TIMEOUT_S),
        lambda: stub.LookupTitle(pb.LookupTitleRequest(title=title), timeout=CALL_TIMEOUT_S),
    ):
        assert_answered(served, call)


@fuzz(400)
@given(titles=title_lists(), k=INT32)
def test_batches_are_answered(served, stub, titles, k):
    request = pb.BatchSimilarMoviesRequest(titles=titles, k=affordable_k(k, len(titles)))
    assert_answered(served, lambda: stub.BatchSimilarMovies(request, timeout=CALL_TIMEOUT_S))


@fuzz(500)
@given(liked=title_lists(), disliked=title_lists(), shared=st.sampled_from([0, 0, 0, 1, 3]),
       k=INT32 | st.integers(1, MAX_K), worst_k=INT32 | st.integers(0, MAX_K))
def test_recommendations_are_answered(served, stub, liked, disliked, shared, k, worst_k):
    disliked = disliked[:MAX_BATCH - shared] + liked[:shared]  # overlapping liked and disliked
    request = pb.RecommendRequest(liked=liked, disliked=disliked, k=k, worst_k=worst_k)
    assert_answered(served, lambda: stub.Recommend(request, timeout=CALL_TIMEOUT_S))


YEAR = INT32 | st.integers(0, 2100) | st.sampled_from([0, 9999, 10_000])
FILTER = st.builds(pb.MovieFilter, min_year=YEAR, max_year=YEAR, must_link_to=st.lists(LINK, max_size=22),
                   exclude_titles=st.lists(SHORT_TITLE, max_size=30), exclude_franchise=st.booleans())
REASONS = INT32 | st.integers(0, 21)
STRATEGY = st.sampled_from(["", "neighbours", "svm", "average_vector", "best_score"]) | TEXT


@fuzz(400)
@given(title=TITLE, other=TITLE, link=LINK, k=INT32 | st.integers(1, MAX_K), reasons=REASONS, movie_filter=FILTER,
       titles=st.lists(SHORT_TITLE, max_size=30))
def test_explanations_and_filters_are_answered(served, stub, title, other, link, k, reasons, movie_filter, titles):
    for call in (
        lambda: stub.ExplainSimilarity(pb.ExplainSimilarityRequest(title_a=title, title_b=other, k=k),
                                       timeout=CALL_TIMEOUT_S),
        lambda: stub.SimilarMovies(pb.SimilarMoviesRequest(title=title, k=k, filter=movie_filter, reasons=reasons),
                                   timeout=CALL_TIMEOUT_S),
        lambda: stub.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=titles, k=k, filter=movie_filter,
                                                                     reasons=reasons), timeout=CALL_TIMEOUT_S),
        lambda: stub.LinkMovies(pb.LinkMoviesRequest(link=link, k=k, filter=movie_filter), timeout=CALL_TIMEOUT_S),
    ):
        assert_answered(served, call)


@fuzz(300)
@given(liked=st.lists(SHORT_TITLE, max_size=20), disliked=st.lists(SHORT_TITLE, max_size=20),
       liked_links=st.lists(LINK, max_size=6), disliked_links=st.lists(LINK, max_size=6), strategy=STRATEGY,
       k=INT32 | st.integers(1, MAX_K), worst_k=INT32 | st.integers(0, MAX_K), reasons=REASONS, movie_filter=FILTER)
def test_recommendations_with_strategies_links_and_filters_are_answered(served, stub, liked, disliked, liked_links,
                                                                        disliked_links, strategy, k, worst_k, reasons,
                                                                        movie_filter):
    request = pb.RecommendRequest(liked=liked, disliked=disliked, liked_links=liked_links, disliked_links=disliked_links,
                                  strategy=strategy, k=k, worst_k=worst_k, reasons=reasons, filter=movie_filter)
    assert_answered(served, lambda: stub.Recommend(request, timeout=CALL_TIMEOUT_S))


@fuzz(150)
@given(k=INT32, chunk_size=INT32)
def test_exports_are_answered(served, stub, k, chunk_size):
    request = pb.ExportNeighboursRequest(k=affordable_k(k, N_MOVIES), chunk_size=chunk_size)
    assert_answered(served, lambda: stub.ExportNeighbours(request, timeout=CALL_TIMEOUT_S))
    assert_answered(served, lambda: stub.GetInfo(pb.GetInfoRequest(), timeout=CALL_TIMEOUT_S))


# --- bytes that are not the method's message ---------------------------------------------------

UNARY, STREAM, WATCH, BIDI = "unary", "stream", "watch", "bidi"
METHODS = {  # full name -> the shape of the call; every method the server implements
    **{f"/{SERVICE_NAME}/{m}": UNARY for m in ("SimilarMovies", "BatchSimilarMovies", "SimilarLinks", "MovieLinks",
                                                "LinkMovies", "Recommend", "PredictAttribute", "LookupTitle",
                                                "GetInfo", "ExplainSimilarity")},
    f"/{SERVICE_NAME}/ExportNeighbours": STREAM,
    "/grpc.health.v1.Health/Check": UNARY,
    "/grpc.health.v1.Health/Watch": WATCH,  # never ends by itself: its first answer is enough
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": BIDI,
}


def raw_call(channel: grpc.Channel, method: str, data: bytes) -> Callable[[], object]:
    """A call that sends `data` as the request's bytes, unparsed, and returns the answer's bytes."""
    shape = METHODS[method]
    if shape == BIDI:  # the same garbage twice on one stream
        bidi = channel.stream_stream(method)
        return lambda: bidi(iter([data, data]), timeout=CALL_TIMEOUT_S)
    if shape == WATCH:
        watch = channel.unary_stream(method)

        def first_answer():
            call = watch(data, timeout=CALL_TIMEOUT_S)
            try:
                return next(call)
            finally:
                call.cancel()
        return first_answer
    multi_callable = (channel.unary_stream if shape == STREAM else channel.unary_unary)(method)
    return lambda: multi_callable(data, timeout=CALL_TIMEOUT_S)


RAW_BYTES = st.one_of(
    st.binary(max_size=300),
    # a valid field tag followed by garbage reaches deeper into the parser
    st.tuples(st.sampled_from([b"\x08", b"\x0a", b"\x10", b"\x12", b"\x1a", b"\x20"]), st.binary(max_size=60))
    .map(b"".join),
)


@fuzz(900)
@given(method=st.sampled_from(sorted(METHODS)), data=RAW_BYTES)
def test_raw_bytes_to_the_real_server_are_answered(served, channel, method, data):
    status, details = answer(served, raw_call(channel, method, data))
    assert status in ANSWERS, f"{method} {data!r}: {status}: {details}"


def test_undecodable_request_is_named(channel):
    call = channel.unary_unary(f"/{SERVICE_NAME}/SimilarMovies")
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\x0a\x02\xff\xfe", timeout=CALL_TIMEOUT_S)  # a title that is not UTF-8
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "SimilarMoviesRequest" in caught.value.details()


def test_messages_past_the_size_limit_are_refused(served, stub):
    huge_title = pb.SimilarMoviesRequest(title="x" * (MAX_MESSAGE_BYTES + 1), k=5)
    huge_batch = pb.BatchSimilarMoviesRequest(titles=["y" * 420] * MAX_BATCH, k=5)
    assert huge_batch.ByteSize() > MAX_MESSAGE_BYTES
    assert answer(served, lambda: stub.SimilarMovies(huge_title, timeout=CALL_TIMEOUT_S))[0] \
        is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert answer(served, lambda: stub.BatchSimilarMovies(huge_batch, timeout=CALL_TIMEOUT_S))[0] \
        is grpc.StatusCode.RESOURCE_EXHAUSTED


# --- the HTTP gateway: JSON, bytes and query strings ------------------------------------------

HTTP_ANSWERS = {200, 400, 404, 413, 429}  # never 500: bad input is the caller's, and said so
FIELDS = st.sampled_from(["title", "titles", "k", "link", "liked", "disliked", "worst_k", "attribute", "chunk_size",
                          "text", "kind", "limit", "shared_links", "sample"]) | TEXT
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT | INT32 | TITLE | st.sampled_from(["LINKS", "MOVIES"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
PATHS = st.one_of(*[st.sampled_from(sorted(RPCS))] * 4, TEXT.map(lambda t: urllib.parse.quote(t, safe="")))


class Http:
    """One keep-alive connection to the gateway, opened again when the server closed it."""

    def __init__(self, url: str):
        self.url = urllib.parse.urlsplit(url)
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=CALL_TIMEOUT_S)
            try:
                self.connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def gateway(served):
    connection = Http(served.server.http_url)
    yield connection
    if connection.connection:
        connection.connection.close()


def assert_http_answered(served: Served, gateway: Http, method: str, path: str, body: bytes | None) -> int:
    served.sent += 1
    status, data = gateway.request(method, path, body)
    assert served.server.process.poll() is None, f"the server died:\n{''.join(served.server.log_lines[-50:])}"
    assert status in HTTP_ANSWERS, f"{method} {path} {body[:200] if body else body!r}: {status} {data[:300]!r}"
    if status != 200:
        error = json.loads(data)["error"]
        assert error["code"] == status and error["message"], error
    event(f"HTTP {status}")
    return status


def affordable(path: str, fields):
    """An export asks for every movie's neighbours: a valid k shrinks, as affordable_k does for gRPC."""
    if path == "export-neighbours" and isinstance(fields, dict) and isinstance(fields.get("k"), int):
        fields = {**fields, "k": affordable_k(fields["k"], N_MOVIES)}
    return fields


@fuzz(500)
@given(path=PATHS, fields=st.dictionaries(FIELDS, JSON_VALUE, max_size=4) | JSON_VALUE | st.fixed_dictionaries(
    {}, optional={"title": TITLE, "k": INT32, "link": LINK, "liked": st.lists(TITLE, max_size=3), "text": TITLE,
                  "titles": st.lists(TITLE, max_size=3), "attribute": ATTRIBUTE, "kind": st.sampled_from(["LINKS", 1]),
                  "sample": INT32, "shared_links": INT32}))
def test_json_to_the_gateway_is_answered(served, gateway, path, fields):
    body = json.dumps(affordable(path, fields), ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert_http_answered(served, gateway, "POST", f"/v1/{path}", body)


@fuzz(300)
@given(path=st.sampled_from(sorted(RPCS)), data=RAW_BYTES)
def test_bytes_to_the_gateway_are_answered(served, gateway, path, data):
    assert_http_answered(served, gateway, "POST", f"/v1/{path}", data)


@fuzz(200)
@given(path=st.sampled_from(sorted(set(RPCS) - {"export-neighbours"})),
       query=st.lists(st.tuples(FIELDS, TEXT | INT32.map(str)), max_size=5))
def test_query_strings_to_the_gateway_are_answered(served, gateway, path, query):
    assert_http_answered(served, gateway, "GET", f"/v1/{path}?{urllib.parse.urlencode(query)}", None)


# --- afterwards ----------------------------------------------------------------------------------

def test_server_still_answers_correctly_afterwards(served, stub, channel):
    """Runs last in this file: after everything above, the same process answers as the catalogue does."""
    answer = load_service(str(served.index_root)).similar_movies("Interstellar (film)", 10)
    expected_query, expected = answer.query, answer.neighbours
    response = stub.SimilarMovies(pb.SimilarMoviesRequest(title="interstellar", k=10), timeout=CALL_TIMEOUT_S)
    assert response.query == expected_query == "Interstellar (film)"
    assert [n.name for n in response.neighbours] == [name for name, _ in expected]
    assert [n.score for n in response.neighbours] == pytest.approx([score for _, score in expected], abs=1e-6)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    # The servicer logs "unexpected error in" before an INTERNAL; grpc logs "Exception
    # calling application" for an exception that escaped a handler (UNKNOWN).
    escaped = [line for line in served.server.log_lines if "unexpected error" in line or "Exception calling application" in line]
    assert not escaped, "".join(served.server.log_lines[-200:])
