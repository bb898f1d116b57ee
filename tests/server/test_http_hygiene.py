"""HTTP hygiene of the real server's gateway: request smuggling, DNS rebinding, cross-site
text/plain posts, local paths in answers, and the token checked before a body is read."""
from __future__ import annotations

import json
import socket
import time
import urllib.parse

import grpc
import pytest

from movielinks import indexer
import movielinks.indexer.root
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from tests.e2e_server import running_server
from tests.ops_support import build, stage_version, wait_for

TOKEN = "hygiene-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hygiene")
    build(tmp, tmp / "index", 0)
    (tmp / "token").write_text(TOKEN + "\n")
    with running_server(tmp / "index", "--http-port", "0", "--token-file", str(tmp / "token"),
                        "--reload-interval", "0.1") as server:
        yield tmp, server


def exchange(server, head: str, body: bytes = b"", *, timeout_s: float = 10) -> tuple[int, bytes, bool]:
    """Send a raw request; (status, what came back, whether the server then closed the connection)."""
    port = urllib.parse.urlsplit(server.http_url).port
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        received = b""
        closed = False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                piece = connection.recv(65536)
            except socket.timeout:
                break
            if not piece:
                closed = True
                break
            received += piece
            if b"\r\n\r\n" in received:
                length = int(next((line.split(b":")[1] for line in received.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                if len(received.split(b"\r\n\r\n", 1)[1]) >= length:
                    connection.settimeout(1.0)  # the whole answer is in: does the server close?
    return int(received.split(b" ", 2)[1]), received, closed


def post(path: str, *, host: str = "127.0.0.1", content_type: str | None = "application/json",
         token: str | None = TOKEN, length: int | None = None, extra: str = "", body: bytes = b"{}") -> tuple[str, bytes]:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    return "\n".join(lines) + "\n" + extra, body


def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed(served):
    _tmp, server = served
    head, _ = post("/v1/get-info", length=4, extra="Transfer-Encoding: chunked\n")
    smuggled = b"0\r\n\r\nGET /v1/get-info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    status, received, closed = exchange(server, head, smuggled)
    assert status == 400 and b"not both" in received and closed, received
    assert received.count(b"HTTP/1.1") == 1  # the smuggled request was not answered


@pytest.mark.parametrize("host, status", [("127.0.0.1", 200), ("localhost:8080", 200), ("[::1]:1", 200),
                                          ("rebind.attacker.example", 403), ("evil.example:80", 403)])
def test_the_host_header_must_name_an_allowed_host(served, host, status):
    _tmp, server = served
    assert exchange(server, *post("/v1/get-info", host=host))[0] == status


@pytest.mark.parametrize("content_type, status", [("application/json", 200), ("Application/JSON; charset=utf-8", 200),
                                                  ("text/plain", 415), (None, 415),
                                                  ("application/x-www-form-urlencoded", 415)])
def test_a_body_is_json_only_when_sent_as_json(served, content_type, status):
    _tmp, server = served
    assert exchange(server, *post("/v1/get-info", content_type=content_type))[0] == status


def test_a_call_without_the_token_is_refused_before_its_body_is_read(served):
    _tmp, server = served
    head, _ = post("/v1/batch-similar-movies", token=None, length=15 * 2**20)
    started = time.monotonic()
    status, received, _closed = exchange(server, head, b"")  # the body is never sent
    assert status == 401 and time.monotonic() - started < 5, received


def test_get_info_serves_no_local_path_over_grpc_or_http(served):
    tmp, server = served
    root = tmp / "index"
    # A version whose dataset names the absolute path it was trained from, as `trainer train` writes.
    good = stage_version(tmp, root, 2)
    manifest_path = indexer.root.version_dir(root, good) / indexer.version.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["dataset"]["path"] = str(tmp / "data" / "films.ndjson")
    manifest_path.write_text(json.dumps(manifest))
    indexer.root.publish(root, good)
    wait_for(lambda: any(f"reload taken: version={good}" in line for line in server.log_lines))
    bad = stage_version(tmp, root, 1)
    (indexer.root.version_dir(root, bad) / indexer.version.LINKS).unlink()
    indexer.root.publish(root, bad)
    wait_for(lambda: any("reload refused" in line for line in server.log_lines))
    assert any(str(root) in line for line in server.log_lines if "reload refused" in line)  # the log has it
    with grpc.insecure_channel(server.address) as channel:
        answer = pb_grpc.MovielinksStub(channel).GetInfo(pb.GetInfoRequest(), timeout=10,
                                                         metadata=(("authorization", f"Bearer {TOKEN}"),))
    status, received, _closed = exchange(server, *post("/v1/get-info"))
    assert status == 200
    for text in (str(answer), received.decode()):
        assert str(tmp) not in text and "/tmp/" not in text, text
    assert answer.refused_versions and f"{indexer.version.LINKS}: missing" in answer.refused_versions[0]
    assert answer.index_version == good and answer.dataset["path"] == ".../films.ndjson", answer.dataset
