"""JSON over HTTP for every RPC, an OpenAPI description, and the web explorer.

    POST /v1/<rpc-in-kebab-case>      the request message as JSON -> the response message as JSON
    GET  /v1/<rpc-in-kebab-case>?f=v  the same, the fields as query parameters (repeat a list field)
    POST /v1/export-neighbours        newline-delimited JSON, one ExportNeighboursChunk a line
    GET  /openapi.json                OpenAPI 3.1, generated from proto/movielinks/v1/movielinks.proto
    GET  /                            the explorer (server/static/)
    GET  /explorer/config             what the explorer needs to know of this server: {"token_required": bool}
    GET  /explorer/map-clusters?sample=N  the map's sample in clusters named by their links (no RPC has them)

JSON is protobuf's JSON mapping (`google.protobuf.json_format`): field names as in
the proto (lowerCamelCase accepted too), unknown fields refused. There is one code
path: every call is forwarded to the gRPC service of the same process over a
private Unix socket, so the bearer token (`Authorization: Bearer ...`, passed on as
metadata), the limits, the errors and the metrics are the gRPC service's own. A gRPC
status becomes an HTTP status in HTTP_STATUS, and only there; every error is a JSON
body {"error": {"code": 404, "status": "NOT_FOUND", "message": "..."}}.

Before any of that, a request passes RequestChecks (no Content-Length with Transfer-Encoding, an
allowed Host) and the port's connection bounds (server.connections); a POST body must be sent as
application/json, and a call without the token is refused without its body being read.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Callable

import grpc
import uvicorn
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from movielinks.proto import PROTO_FILE, SERVICE_NAME
from movielinks.proto import movielinks_pb2 as pb
from movielinks.server.errors import ServiceError
from movielinks.server.explore import explorer
from movielinks.server.connections import (HEAD_TIMEOUT_S, MAX_CONNECTIONS, STALL_TIMEOUT_S, ConnectionGuard,
                                           bounded_h11, connection_limit)
from movielinks.server.security import carries_token

log = logging.getLogger("movielinks.gateway")

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 16 * 1024 * 1024  # JSON is wordier than protobuf; the gRPC service still enforces its 4 MB
CALL_TIMEOUT_S = 30.0  # a unary call's deadline; the export stream has none
RECEIVE_LIMIT_BYTES = 512 * 1024 * 1024  # a 10,000-title batch at k=1000 is a large answer, and a legal one
# asyncio accepts up to this many connections at a time before any of them is counted (and
# refused past the limit): uvicorn's 2,048 took every descriptor of a 1,024-descriptor process.
ACCEPT_BACKLOG = 128

# gRPC status -> HTTP status, as Google's HTTP/JSON APIs map them. The one place this is decided.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}  # UNKNOWN, INTERNAL, DATA_LOSS: 500


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)


@dataclasses.dataclass(frozen=True)
class Rpc:
    name: str  # "SimilarMovies"
    path: str  # "/v1/similar-movies"
    method: MethodDescriptor

    @property
    def streaming(self) -> bool:
        return self.method.server_streaming

    def request(self) -> Any:
        return getattr(pb, self.method.input_type.name)()


def kebab(name: str) -> str:
    """'BatchSimilarMovies' -> 'batch-similar-movies'."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


SERVICE = pb.DESCRIPTOR.services_by_name[SERVICE_NAME.rsplit(".", 1)[-1]]
RPCS = {kebab(m.name): Rpc(m.name, f"/v1/{kebab(m.name)}", m) for m in SERVICE.methods}


class GatewayError(Exception):
    """A request the gateway turns away before the gRPC service sees it."""

    def __init__(self, code: grpc.StatusCode, message: str, http: int | None = None):
        super().__init__(message)
        self.code, self.message, self.http = code, message, http or http_status(code)


def error_response(code: grpc.StatusCode, message: str, http: int | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    status = http or http_status(code)
    return JSONResponse({"error": {"code": status, "status": code.name, "message": message}}, status_code=status,
                        headers=headers)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(bound_host: str, listed: str | None) -> frozenset[str] | None:
    """The host names an HTTP request may name in its Host header: `listed` (comma-separated; "*"
    for any: None), else the loopback names and the address the port is bound to."""
    if listed is not None:
        names = {name.strip().lower().strip("[]").rstrip(".") for name in listed.split(",") if name.strip()}
        return None if "*" in names else frozenset(names)
    bound = bound_host.strip("[]").lower()
    return frozenset(LOOPBACK_NAMES + (() if bound in ("", "0.0.0.0", "::") else (bound,)))


class RequestChecks:
    """ASGI middleware: what every HTTP request must pass before any route sees it.

    - Content-Length and Transfer-Encoding together are refused (400, connection closed): a proxy
      in front may frame the body by the other one, and smuggle a request past this one.
    - The Host header must name an allowed host (`hosts`; None: any): a DNS-rebinding page names
      its own domain, and must not reach a token-less gateway through the victim's browser.
    """

    def __init__(self, app, hosts: frozenset[str] | None):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            names = {name for name, _ in headers}
            refusal = None
            if b"content-length" in names and b"transfer-encoding" in names:
                refusal = error_response(grpc.StatusCode.INVALID_ARGUMENT, "a request may carry Content-Length or "
                                         "Transfer-Encoding, not both", headers={"Connection": "close"})
            elif self.hosts is not None:
                host = next((value for name, value in headers if name == b"host"), None)
                if host is not None and _host_name(host.decode("latin-1")) not in self.hosts:
                    refusal = error_response(grpc.StatusCode.PERMISSION_DENIED, "this server does not answer for the "
                                             "host the request names; start it with --http-allowed-hosts to add it")
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """'Example.COM:8080' -> 'example.com'; '[::1]:8080' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


class Gateway:
    """The Starlette app in front of the gRPC service at `target` (a Unix socket of this process).

    With `token`, a request without it goes to the gRPC service empty, its body never read, to be
    refused there (so counted and logged as every refusal). `hosts`: see RequestChecks.
    `current` gives the service being served, for the explorer's map clusters, the one
    answer no RPC carries."""

    def __init__(self, target: str, token: str | None = None, hosts: frozenset[str] | None = None, *,
                 current: Callable[[], Any] | None = None):
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", RECEIVE_LIMIT_BYTES)])
        self._token = token.encode("ascii") if token else None
        self.token_required = token is not None
        self.current = current
        self.app = Starlette(
            middleware=[Middleware(RequestChecks, hosts=hosts)],
            routes=[
                Route("/", self.explorer, methods=["GET"]),
                Route("/explorer/config", self.explorer_config, methods=["GET"]),
                Route("/explorer/map-clusters", self.map_clusters, methods=["GET"]),
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/v1/{rpc}", self.call, methods=["GET", "POST"]),
                Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            ],
            exception_handlers={HTTPException: self.http_error, Exception: self.unexpected},
        )
        self.app.router.redirect_slashes = False  # "/v1/x/" is no RPC: a JSON 404, not a redirect
        self._openapi = openapi_document()

    def close(self) -> None:
        self.channel.close()

    async def explorer(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def explorer_config(self, request: Request) -> Response:
        return JSONResponse({"token_required": self.token_required})

    async def map_clusters(self, request: Request) -> Response:
        if self.current is None:
            return error_response(grpc.StatusCode.UNIMPLEMENTED, "this gateway serves no map clusters")
        try:
            sample = int(request.query_params.get("sample", "0"))
        except ValueError:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, "sample must be a whole number")
        # The bearer token is checked where every call's is: by the gRPC service, on a GetInfo.
        get_info = self.channel.unary_unary(f"/{SERVICE_NAME}/GetInfo", request_serializer=pb.GetInfoRequest.SerializeToString,
                                            response_deserializer=pb.InfoResponse.FromString)
        try:
            await run_in_threadpool(get_info, pb.GetInfoRequest(), timeout=CALL_TIMEOUT_S,
                                    metadata=_forwarded_metadata(request))
        except grpc.RpcError as e:
            return error_response(e.code(), e.details() or e.code().name)
        service = self.current()
        try:
            found = await run_in_threadpool(explorer(service).map_clusters, sample)
        except ServiceError as e:
            return error_response(grpc.StatusCode[e.kind.value], e.message)
        return JSONResponse({"index_version": service.name, "sample": len(found.of_sample),
                             "clusters": [dataclasses.asdict(c) for c in found.clusters],
                             "of_sample": found.of_sample})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)

    async def call(self, request: Request) -> Response:
        rpc = RPCS.get(request.path_params["rpc"])
        if rpc is None:
            return error_response(grpc.StatusCode.NOT_FOUND, f"no RPC at {request.url.path}; the paths are: "
                                  + ", ".join(r.path for r in RPCS.values()) + " (see /openapi.json)")
        message = rpc.request()
        # Without the token the body is never read: the service refuses the empty request at once,
        # counted and logged as every refusal.
        if self._token is None or carries_token(request.headers.getlist("authorization"), self._token):
            try:
                if request.method == "GET":
                    fields = await _query_fields(request, message.DESCRIPTOR)
                else:
                    _check_json_type(request)
                    fields = await _body_fields(request)
                # A 16 MB body takes a while to parse: not on the event loop, where every connection waits.
                await run_in_threadpool(_parse, fields, message)
            except GatewayError as e:
                return error_response(e.code, e.message, e.http)
        metadata = _forwarded_metadata(request)
        if rpc.streaming:
            return await self._stream(rpc, message, metadata)
        invoke = self.channel.unary_unary(f"/{SERVICE_NAME}/{rpc.name}", request_serializer=type(message).SerializeToString,
                                          response_deserializer=getattr(pb, rpc.method.output_type.name).FromString)
        try:
            response = await run_in_threadpool(invoke, message, timeout=CALL_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as e:
            return error_response(e.code(), e.details() or e.code().name)
        return JSONResponse(_json(response))

    async def _stream(self, rpc: Rpc, message, metadata) -> Response:
        invoke = self.channel.unary_stream(f"/{SERVICE_NAME}/{rpc.name}", request_serializer=type(message).SerializeToString,
                                           response_deserializer=getattr(pb, rpc.method.output_type.name).FromString)
        stream = invoke(message, metadata=metadata)
        try:
            # The first message (or the error) decides the HTTP status; after it, it is too late.
            first = await run_in_threadpool(next, stream, None)
        except grpc.RpcError as e:
            return error_response(e.code(), e.details() or e.code().name)

        async def lines():
            try:
                chunk = first
                while chunk is not None:
                    yield json.dumps(_json(chunk), ensure_ascii=False, separators=(",", ":")) + "\n"
                    chunk = await run_in_threadpool(next, stream, None)
            except grpc.RpcError as e:  # mid-stream: the last line says why the stream ended
                status = http_status(e.code())
                yield json.dumps({"error": {"code": status, "status": e.code().name, "message": e.details()}}) + "\n"
            finally:
                stream.cancel()  # a reader that went away must not leave the server searching

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def http_error(self, request: Request, error: HTTPException) -> Response:
        code = {404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED}.get(error.status_code,
                                                                                         grpc.StatusCode.INVALID_ARGUMENT)
        return error_response(code, f"{request.method} {request.url.path}: {error.detail}", error.status_code)

    async def unexpected(self, request: Request, error: Exception) -> Response:
        log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=error)
        return error_response(grpc.StatusCode.INTERNAL, "internal error in the HTTP gateway; the server log has the details")


def _check_json_type(request: Request) -> None:
    """A POST body is JSON by its Content-Type: a browser sends text/plain across sites without
    asking the server first (no CORS preflight), application/json only after asking."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"the request body must be sent as Content-Type: "
                           f"application/json, not {media_type or 'none'!r}", http=415)


async def _body_fields(request: Request) -> dict:
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > MAX_BODY_BYTES:
                raise GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   f"the request body is over {MAX_BODY_BYTES // (1024 * 1024)} MB", http=413)
    except ClientDisconnect:  # gone, or cut off for sending too slowly (server.connections): nobody to answer
        raise GatewayError(grpc.StatusCode.CANCELLED, "the client went away before sending its whole body") from None
    if not body.strip():
        return {}
    try:
        fields = await run_in_threadpool(json.loads, body)
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nesting too deep
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"the request body is not JSON: {e}") from None
    if not isinstance(fields, dict):
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"the request body must be a JSON object of the request's fields, not {type(fields).__name__}")
    return fields


async def _query_fields(request: Request, descriptor: Descriptor) -> dict:
    fields: dict[str, Any] = {}
    for key in request.query_params.keys():
        field = descriptor.fields_by_name.get(key) or descriptor.fields_by_camelcase_name.get(key)
        values = request.query_params.getlist(key)
        fields[key] = values if field is not None and field.is_repeated else values[-1]
    return fields


def _parse(fields: dict, message) -> None:
    try:
        json_format.ParseDict(fields, message)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
        name = message.DESCRIPTOR.name
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {name}: {e}") from None


def _forwarded_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    value = request.headers.get("authorization")
    # gRPC metadata carries printable ASCII only; anything else is no token at all.
    if value is None or not all(" " <= c <= "~" for c in value):
        return ()
    return (("authorization", value),)


def _json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


# --- OpenAPI ---------------------------------------------------------------------------------------

_SCALARS = {
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
}


def proto_comments(text: str) -> dict[str, str]:
    """Leading `//` comments of the .proto's rpcs ("Rpc") and fields ("Message.field")."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    message: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            pending.append(line[2:].strip())
            continue
        if m := re.match(r"rpc (\w+)\(", line):
            comments[m.group(1)] = " ".join(pending)
        elif m := re.match(r"(message|enum) (\w+) \{", line):
            message.append(m.group(2))
        elif line.startswith("}") and message:
            message.pop()
        elif (m := re.match(r"(?:repeated |optional )?[\w.]+ (\w+) = \d+;", line)) and message:
            comments[f"{message[-1]}.{m.group(1)}"] = " ".join(pending)
        pending = []
    return comments


def openapi_document() -> dict:
    """OpenAPI 3.1 for every RPC, built from the service's descriptors and the .proto's comments."""
    proto_text = PROTO_FILE.read_text(encoding="utf-8")
    comments = proto_comments(proto_text)
    schemas: dict[str, dict] = {
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "integer", "description": "the HTTP status"},
            "status": {"type": "string", "description": "the gRPC status name"},
            "message": {"type": "string", "description": "what was wrong and what to do"}}}}},
    }

    def schema_of(descriptor: Descriptor) -> dict:
        if descriptor.full_name == "google.protobuf.Struct":
            return {"type": "object"}
        if descriptor.name not in schemas:
            schemas[descriptor.name] = {}  # placeholder against recursion
            schemas[descriptor.name] = {"type": "object", "additionalProperties": False, "properties": {
                f.name: {**field_schema(f), "description": comments.get(f"{descriptor.name}.{f.name}", "")}
                for f in descriptor.fields}}
        return {"$ref": f"#/components/schemas/{descriptor.name}"}

    def field_schema(field: FieldDescriptor) -> dict:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            item = schema_of(field.message_type)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            item = {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        else:
            item = dict(_SCALARS[field.type])
        return {"type": "array", "items": item} if field.is_repeated else item

    errors = {str(status): {"description": description, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for status, description in ((400, "invalid request"), (401, "missing or wrong bearer token"),
                                    (404, "unknown title, link or attribute"),
                                    (429, "a limit was passed (size, concurrency)"), (503, "server shutting down"))}
    paths = {}
    for rpc in RPCS.values():
        response_schema = schema_of(rpc.method.output_type)
        media = "application/x-ndjson" if rpc.streaming else "application/json"
        paths[rpc.path] = {"post": {
            "operationId": rpc.name,
            "summary": comments.get(rpc.name, rpc.name),
            "description": (f"gRPC {SERVICE_NAME}/{rpc.name}." +
                            (" The answer is newline-delimited JSON, one message a line; an error after the first "
                             "line is a last line {\"error\": ...}." if rpc.streaming else
                             " GET with the fields as query parameters works too.")),
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": schema_of(rpc.method.input_type)}}},
            "responses": {"200": {"description": "OK", "content": {media: {"schema": response_schema}}}, **errors},
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "movielinks", "version": "v1",
                 "description": "Movie similarity from Wikipedia links: every gRPC method of movielinks.v1 as JSON "
                                "over HTTP (protobuf's JSON mapping)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
    }


# --- serving ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class TlsFiles:
    cert: str
    key: str
    client_ca: str | None = None


class GatewayServer:
    """uvicorn serving a Gateway on a socket bound before the thread starts (so a port in use is
    the caller's error at once, and port 0 tells its port)."""

    def __init__(self, target: str, host: str, port: int, *, tls: TlsFiles | None = None, grace_s: float = 10.0,
                 max_connections: int = MAX_CONNECTIONS, head_timeout_s: float = HEAD_TIMEOUT_S,
                 stall_timeout_s: float = STALL_TIMEOUT_S, token: str | None = None, hosts: str | None = None,
                 current: Callable[[], Any] | None = None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host.strip("[]"), port), family=family)  # OSError: the caller says why
        self.port = self.socket.getsockname()[1]
        self.scheme = "https" if tls else "http"
        self.gateway = Gateway(target, token, allowed_hosts(host, hosts), current=current)
        tls_options = {} if tls is None else {
            "ssl_certfile": tls.cert, "ssl_keyfile": tls.key, "ssl_ca_certs": tls.client_ca,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if tls.client_ca else ssl.CERT_NONE}
        self.guard = ConnectionGuard(connection_limit(max_connections), head_timeout_s,
                                     stall_timeout_s=stall_timeout_s)
        config = uvicorn.Config(self.gateway.app, log_config=None, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=max(1, round(grace_s)), server_header=False,
                                http=bounded_h11(self.guard), backlog=ACCEPT_BACKLOG, **tls_options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="http-gateway", daemon=True)

    def start(self) -> "GatewayServer":
        self.thread.start()
        return self

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.socket]))

    def begin_stop(self) -> None:
        """Stop taking connections; requests in flight finish (within the grace)."""
        self.server.should_exit = True

    def stop(self, timeout_s: float = 15.0) -> None:
        self.begin_stop()
        self.thread.join(timeout_s)
        self.gateway.close()
        self.socket.close()
