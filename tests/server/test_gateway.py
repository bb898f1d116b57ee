"""The JSON/HTTP gateway of the real server process: the same answers as gRPC, the same
token, errors as JSON with mapped statuses, the same metrics, an OpenAPI description."""
from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import urllib.parse

import grpc
import pytest
from google.protobuf import json_format

from movielinks.indexer.build import build_index
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server.gateway import RPCS
from tests.e2e_server import REPO, running_server
from tests.fixtures import make_run
from tests.ops_support import sample, scrape

TOKEN = "gateway-test-token"
TITLES = ["Interstellar (film)", "Alien (film)", "The Martian (film)", "Heat (1995 film)"]
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    build_index(make_run(tmp / "run", titles=TITLES, n_movies=200, n_links=80, years=True), tmp / "index",
                progress=False)
    (tmp / "token").write_text(TOKEN + "\n")
    with running_server(tmp / "index", "--http-port", "0", "--token-file", str(tmp / "token"),
                        "--metrics-port", "0") as server:
        with grpc.insecure_channel(server.address) as channel:
            yield server, pb_grpc.MovielinksStub(channel)


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def call(server, path: str, body=None, *, method: str = "POST", token: str | None = TOKEN, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> Answer:
    url = urllib.parse.urlsplit(server.http_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def as_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


GRPC_METADATA = (("authorization", f"Bearer {TOKEN}"),)
REQUESTS = {  # one request for every unary RPC, as JSON
    "SimilarMovies": {"title": "interstellar", "k": 5, "reasons": 2,
                      "filter": {"exclude_titles": ["Alien (film)"], "must_link_to": ["Link 0"]}},
    "BatchSimilarMovies": {"titles": ["Alien (film)", "the martian"], "k": 3, "filter": {"exclude_franchise": True}},
    "SimilarLinks": {"link": "Link 3", "k": 4},
    "MovieLinks": {"title": "Alien (film)", "k": 4},
    "LinkMovies": {"link": "Link 7", "k": 4},
    "Recommend": {"liked": ["Alien (film)", "Interstellar (film)"], "disliked": ["Heat (1995 film)"], "k": 5,
                  "worst_k": 2, "strategy": "best_score", "liked_links": ["Link 2"], "reasons": 2},
    "PredictAttribute": {"title": "The Martian (film)", "attribute": "rotten_tomatoes"},
    "LookupTitle": {"title": "interst"},
    "GetInfo": {},
    "SearchNames": {"text": "link 1", "kind": "LINKS", "limit": 5},
    "ExplainSimilarity": {"title_a": "Alien (film)", "title_b": "interstellar", "k": 3},
    "MovieMap": {"titles": ["Alien (film)"], "sample": 20},
    "SimilarToLinks": {"links": ["Link 3", "link 7", "No Such Link"], "k": 4, "reasons": 2,
                       "filter": {"exclude_titles": ["Alien (film)"]}},
    "SimilarToVector": {"vector": [0.5, -0.25, 1.0, 0.0, 0.125, 0.75, -1.0, 0.5] * 2, "k": 3},  # dim 16
    "GetVectors": {"titles": ["Alien (film)"], "links": ["Link 2"], "films": [{"links": ["Link 3", "Link 7"]}]},
}


def test_every_rpc_answers_over_http_as_over_grpc(served):
    server, stub = served
    unary = {rpc.name for rpc in RPCS.values() if not rpc.streaming}
    assert set(REQUESTS) == unary, "every RPC needs a case here"
    for rpc in RPCS.values():
        if rpc.streaming:
            continue
        request = json_format.ParseDict(REQUESTS[rpc.name], rpc.request())
        expected = as_json(getattr(stub, rpc.name)(request, timeout=TIMEOUT_S, metadata=GRPC_METADATA))
        answer = call(server, rpc.path, REQUESTS[rpc.name])
        assert answer.status == 200, (rpc.name, answer.body)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == expected, rpc.name
    info = call(server, "/v1/get-info").json()
    assert info["dataset"] == {"n_movies": 200} and info["metrics"] == {"link_auc": 0.9}  # structured, not strings
    assert info["default_k"] == 10 and info["server_version"]


def test_get_with_query_parameters_and_omitted_k(served):
    server, _ = served
    posted = call(server, "/v1/similar-movies", {"title": "Alien (film)"}).json()
    assert len(posted["neighbours"]) == 10  # no k: the documented default
    assert call(server, "/v1/similar-movies?title=Alien%20(film)&k=10", method="GET").json() == posted
    recommended = call(server, "/v1/recommend?liked=Alien%20(film)&liked=Interstellar%20(film)&k=3", method="GET")
    assert recommended.status == 200 and len(recommended.json()["best"]) == 3
    assert call(server, "/v1/similar-movies?title=Alien%20(film)&k=many", method="GET").status == 400


def test_export_is_newline_delimited_json_of_the_grpc_stream(served):
    server, stub = served
    expected = [as_json(c) for c in stub.ExportNeighbours(pb.ExportNeighboursRequest(k=3, chunk_size=64),
                                                          timeout=TIMEOUT_S, metadata=GRPC_METADATA)]
    answer = call(server, "/v1/export-neighbours", {"k": 3, "chunk_size": 64})
    assert answer.status == 200 and answer.headers["content-type"].startswith("application/x-ndjson")
    lines = answer.body.decode().splitlines()
    assert [json.loads(line) for line in lines] == expected and len(lines) == 4  # 200 movies, 64 a chunk
    refused = call(server, "/v1/export-neighbours", {"k": -2})
    assert refused.status == 400 and "k must be" in refused.json()["error"]["message"]


@pytest.mark.parametrize("path, body, options, status, code, words", [
    ("/v1/similar-movies", {"title": "Alien (film)"}, {"token": None}, 401, "UNAUTHENTICATED", "bearer token"),
    ("/v1/similar-movies", {"title": "Alien (film)"}, {"token": "wrong"}, 401, "UNAUTHENTICATED", "bearer token"),
    ("/v1/similar-movies", {"title": "Alien (film)"}, {"token": "tökén"}, 401, "UNAUTHENTICATED", "bearer token"),
    ("/v1/similar-movies", {"title": "No Such Picture At All"}, {}, 404, "NOT_FOUND", "unknown movie"),
    ("/v1/similar-movies", {"title": "Alien (film)", "k": 1001}, {}, 400, "INVALID_ARGUMENT", "k must be"),
    ("/v1/similar-movies", {"title": "Alien (film)", "k": 2**40}, {}, 400, "INVALID_ARGUMENT", "SimilarMoviesRequest"),
    ("/v1/similar-movies", {"title": "Alien (film)", "k": "five"}, {}, 400, "INVALID_ARGUMENT", "SimilarMoviesRequest"),
    ("/v1/similar-movies", {"tittle": "Alien (film)"}, {}, 400, "INVALID_ARGUMENT", "tittle"),
    ("/v1/similar-movies", ["Alien (film)"], {}, 400, "INVALID_ARGUMENT", "JSON object"),
    ("/v1/similar-movies", None, {"raw": b'{"title": "Alien'}, 400, "INVALID_ARGUMENT", "not JSON"),
    ("/v1/similar-movies", None, {"raw": b'{"title": "\xff\xfe"}'}, 400, "INVALID_ARGUMENT", "not JSON"),
    ("/v1/similar-movies", None, {"raw": b"[" * 100_000}, 400, "INVALID_ARGUMENT", "not JSON"),
    ("/v1/recommend", {"liked": ["Alien (film)"], "disliked": ["alien (film)"]}, {}, 400, "INVALID_ARGUMENT", "both"),
    ("/v1/similar-movies", {"title": "x" * (5 * 1024 * 1024)}, {}, 429, "RESOURCE_EXHAUSTED", ""),
    ("/v1/similar-movies", None, {"raw": b" " * (17 * 1024 * 1024)}, 413, "RESOURCE_EXHAUSTED", "over 16 MB"),
    ("/v1/no-such-rpc", {}, {}, 404, "NOT_FOUND", "/v1/similar-movies"),
    ("/v1/get-info", None, {"method": "DELETE"}, 405, "UNIMPLEMENTED", "Method Not Allowed"),
    ("/elsewhere", None, {"method": "GET"}, 404, "NOT_FOUND", "Not Found"),
    ("/v1/get-info/", None, {}, 404, "NOT_FOUND", "Not Found"),
])
def test_errors_are_json_with_the_mapped_status(served, path, body, options, status, code, words):
    server, _ = served
    answer = call(server, path, body, **options)
    assert answer.status == status, answer.body[:300]
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (status, code) and words in error["message"]


def test_http_calls_are_counted_in_the_same_metrics(served):
    server, _ = served
    before = scrape(server)
    for _ in range(3):
        assert call(server, "/v1/similar-movies", {"title": "Alien (film)", "k": 2}).status == 200
    assert call(server, "/v1/lookup-title", {"title": "Nothing Like It Anywhere"}).status == 404
    assert call(server, "/v1/lookup-title", {"title": "Alien (film)"}, token=None).status == 401
    after = scrape(server)

    def grew(**labels):
        return sample(after, "movielinks_requests_total", **labels) - sample(before, "movielinks_requests_total", **labels)

    assert grew(rpc="SimilarMovies", code="OK") == 3
    assert grew(rpc="LookupTitle", code="NOT_FOUND") == 1
    assert grew(rpc="LookupTitle", code="UNAUTHENTICATED") == 1


def test_openapi_describes_every_rpc(served):
    server, _ = served
    document = call(server, "/openapi.json", method="GET", token=None).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {rpc.path for rpc in RPCS.values()}
    schemas = document["components"]["schemas"]
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(document))
    assert refs and all(name in schemas for name in refs)
    similar = document["paths"]["/v1/similar-movies"]["post"]
    assert similar["summary"].startswith("Movies most similar to one movie")
    assert "default_k" in schemas["SimilarMoviesRequest"]["properties"]["k"]["description"]
    assert set(document["paths"]["/v1/export-neighbours"]["post"]["responses"]["200"]["content"]) == {
        "application/x-ndjson"}


def test_the_explorer_needs_nothing_from_elsewhere(served):
    server, _ = served
    page = call(server, "/", method="GET", token=None)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    html = page.body.decode()
    assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', html) if not a.startswith("#")]  # "#": in the page
    assert assets and all(a.startswith("/static/") for a in assets), assets
    for asset in assets:
        assert call(server, asset, method="GET", token=None).status == 200
    assert "http://" not in html and "https://" not in html


def test_the_explorer_learns_the_token_and_the_map_clusters_from_the_server(served):
    server, _ = served
    config = call(server, "/explorer/config", method="GET", token=None)
    assert config.status == 200 and config.json() == {"token_required": True}
    refused = call(server, "/explorer/map-clusters?sample=50", method="GET", token=None)
    assert refused.status == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"
    found = call(server, "/explorer/map-clusters?sample=50", method="GET").json()
    assert found["sample"] == 50 and len(found["of_sample"]) == 50 and len(found["clusters"]) == 8
    assert sum(c["size"] for c in found["clusters"]) == 50
    assert found["index_version"] == call(server, "/v1/get-info", {}).json()["index_version"]
    for bad in ("sample=5001", "sample=x"):
        answer = call(server, f"/explorer/map-clusters?{bad}", method="GET")
        assert answer.status == 400 and "sample" in answer.json()["error"]["message"]


def test_http_port_in_use_is_one_line_and_exit_2(served, tmp_path):
    server, _ = served
    taken = urllib.parse.urlsplit(server.http_url).port
    args = server.process.args
    index = args[args.index("--index") + 1]
    result = subprocess.run([sys.executable, "-m", "movielinks.server", "--index", index, "--port", "0",
                             "--http-port", str(taken)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"server: error: cannot serve HTTP on 127.0.0.1:{taken}: Address already in use"]
