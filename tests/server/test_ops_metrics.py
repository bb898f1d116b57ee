"""Prometheus metrics and structured logs of the real server process."""
from __future__ import annotations

import json
import re

import grpc
import pytest

from movielinks.proto import movielinks_pb2 as pb
from tests.e2e_server import running_server
from tests.ops_support import build, info, metrics_address, publish_corrupt, sample, scrape, stub, wait_for

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

REQUESTS = "movielinks_requests_total"


def test_requests_are_counted_by_rpc_and_status_code_with_their_latency(tmp_path):
    root = tmp_path / "index"
    name = build(tmp_path, root, 0)
    with running_server(root, "--metrics-port", "0", "--log-format", "json") as server:
        with grpc.insecure_channel(server.address) as channel:
            service = stub(channel)
            for _ in range(3):
                service.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=10)
            with pytest.raises(grpc.RpcError):
                service.SimilarMovies(pb.SimilarMoviesRequest(title="No Such Film Anywhere", k=5), timeout=10)
            with pytest.raises(grpc.RpcError):  # aborted in a server-streaming call, before the first chunk
                list(service.ExportNeighbours(pb.ExportNeighboursRequest(k=-1), timeout=10))
            assert sum(len(c.results) for c in service.ExportNeighbours(pb.ExportNeighboursRequest(k=3), timeout=10))
            served = service.GetInfo(pb.GetInfoRequest(), timeout=10)
        metrics = scrape(server)
    assert sample(metrics, REQUESTS, rpc="SimilarMovies", code="OK") == 3
    assert sample(metrics, REQUESTS, rpc="SimilarMovies", code="NOT_FOUND") == 1
    assert sample(metrics, REQUESTS, rpc="ExportNeighbours", code="INVALID_ARGUMENT") == 1
    assert sample(metrics, REQUESTS, rpc="ExportNeighbours", code="OK") == 1
    assert sample(metrics, "movielinks_request_seconds_count", rpc="SimilarMovies") == 4
    assert 0 < sample(metrics, "movielinks_request_seconds_sum", rpc="SimilarMovies") < 4
    assert sample(metrics, "movielinks_index_info", version=name) == 1
    assert sample(metrics, "movielinks_index_movies") == served.movies
    assert sample(metrics, "movielinks_index_links") == served.links
    assert sample(metrics, "movielinks_index_dim") == served.dim
    # One JSON object a line; the start line's details are fields of their own, the time is UTC.
    entries = [json.loads(line) for line in server.log_lines]
    assert {"ts", "level", "logger", "msg"} <= set(entries[0])
    start = next(e for e in entries if "listening on" in e["msg"])
    assert start["msg"] == f"movielinks server listening on {server.address}" and "=" not in start["msg"]
    assert start["metrics"] == metrics_address(server) and start["movies"] == served.movies
    assert isinstance(start["start_ms"], int) and start["version"] == name and start["http"] == "off"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]) for e in entries)


def test_reloads_are_counted_and_the_index_gauges_follow_the_version_served(tmp_path):
    root = tmp_path / "index"
    first = build(tmp_path, root, 0)
    with running_server(root, "--metrics-port", "0", "--reload-interval", "0.1") as server:
        corrupt = publish_corrupt(tmp_path, root, 1)
        wait_for(lambda: sample(scrape(server), "movielinks_reloads_total", result="refused") == 1)
        metrics = scrape(server)
        assert sample(metrics, "movielinks_reloads_total", result="taken") == 0
        assert sample(metrics, "movielinks_index_info", version=first) == 1
        assert sample(metrics, "movielinks_index_info", version=corrupt) == 0
        second = build(tmp_path, root, 2, n_movies=200, dim=8)
        wait_for(lambda: info(server.address).index_version == second)
        # The server counts a reload, then sets the gauges, just after it swaps the version in: a scrape
        # in between sees the new version served and its metrics not yet (failed once so, in a fresh clone).
        wait_for(lambda: sample(scrape(server), "movielinks_index_info", version=second) == 1)
        metrics = scrape(server)
    assert sample(metrics, "movielinks_reloads_total", result="taken") == 1
    assert sample(metrics, "movielinks_reloads_total", result="refused") == 1
    assert sample(metrics, "movielinks_index_info", version=second) == 1
    assert ("movielinks_index_info", frozenset({("version", first)})) not in metrics  # only the version served
    assert sample(metrics, "movielinks_index_movies") == 200 and sample(metrics, "movielinks_index_dim") == 8


def test_calls_refused_for_their_token_are_counted_and_the_token_is_never_logged(tmp_path):
    root = tmp_path / "index"
    build(tmp_path, root, 0)
    token = "s3cret-token-for-the-metrics-test"
    token_file = tmp_path / "token"
    token_file.write_text(token)
    with running_server(root, "--metrics-port", "0", "--token-file", str(token_file), "--log-level", "DEBUG") as server:
        with grpc.insecure_channel(server.address) as channel:
            service = stub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                service.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=10,
                                      metadata=[("authorization", "Bearer wrong-token")])
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            service.SimilarMovies(pb.SimilarMoviesRequest(title="Alien (film)", k=5), timeout=10,
                                  metadata=[("authorization", f"Bearer {token}")])
        metrics = scrape(server)
    assert sample(metrics, REQUESTS, rpc="SimilarMovies", code="UNAUTHENTICATED") == 1
    assert sample(metrics, REQUESTS, rpc="SimilarMovies", code="OK") == 1
    assert server.log_lines and not any(token in line or "wrong-token" in line for line in server.log_lines)
