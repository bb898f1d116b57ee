"""Who may call the server, and what reaches the handlers: TLS (optionally mutual),
a shared bearer token, and a clean refusal of request bytes that do not parse.

All are opt-in: `server_credentials` makes the port speak TLS only;
`TokenInterceptor` refuses calls without `authorization: Bearer <token>` before
any handler runs (the health check stays open by default so that load balancers
and orchestrators can probe the server without holding the token);
`MalformedRequestInterceptor` answers unparsable requests with INVALID_ARGUMENT.
Interceptor order: TokenInterceptor, then MalformedRequestInterceptor, then the rest.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hmac
import logging
import os
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Callable, Collection

import grpc

from movielinks.server.errors import cannot_start
from movielinks.server.observability import non_blocking
from movielinks.server.titles import shown

log = logging.getLogger("movielinks.server")

TOKEN_ENV = "MOVIELINKS_TOKEN"
AUTHORIZATION_KEY = "authorization"  # gRPC metadata keys are lower case
BEARER = "bearer"  # the scheme is case-insensitive (RFC 6750 via RFC 7235)

# Probes call Check (and Watch); they cannot be expected to carry a secret. They
# learn only "SERVING" or not. Reflection stays protected: it describes the API.
HEALTH_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

# Refused calls are logged at most once in this many seconds, with a count: a client
# sending thousands of calls without the token must not flood the log (the metrics
# count every one: movielinks_requests_total{code="UNAUTHENTICATED"}).
REFUSAL_LOG_INTERVAL_S = 60.0

UNAUTHENTICATED_DETAILS = (
    "this server requires a bearer token: send the metadata 'authorization: Bearer <token>' "
    "(the client reads it with --token-file or the MOVIELINKS_TOKEN environment variable)"
)


def server_credentials(
    cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None = None
) -> grpc.ServerCredentials:
    """TLS credentials for `server.app.start`.

    With `client_ca_file` the server is mutual TLS: every client must present a
    certificate signed by that CA, or its handshake fails. Raises ServiceError (CANNOT_START)
    naming the file when one is missing, unreadable or not PEM, or when the key
    does not belong to the certificate.
    """
    certificate = _read_pem(cert_file, "server certificate", "CERTIFICATE")
    private_key = _read_pem(key_file, "server private key", "PRIVATE KEY")
    client_ca = _read_pem(client_ca_file, "client CA certificate", "CERTIFICATE") if client_ca_file else None
    credentials = grpc.ssl_server_credentials(
        [(private_key, certificate)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
    _check_usable(credentials, cert_file, key_file)
    _warn_unless_valid_now(cert_file)
    return credentials


def load_token(token_file: str | Path | None = None, env: str = TOKEN_ENV) -> str | None:
    """The bearer token from `token_file` (stripped) or else the environment variable `env`.

    None when neither is given: the server then accepts calls without a token.
    Raises ServiceError (CANNOT_START) when the file is unreadable or the token is empty or not
    sendable as gRPC metadata (printable ASCII without spaces).
    """
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise cannot_start(f"cannot read the token file {token_file}: {_reason(e)}") from e
        source = f"the token file {token_file}"
    elif env in os.environ:
        token = os.environ[env].strip()
        source = f"the environment variable {env}"
    else:
        return None
    if not token:
        raise cannot_start(f"{source} is empty: put the shared token in it, or leave it unset to run without one")
    if not all("!" <= c <= "~" for c in token):
        raise cannot_start(
            f"the token in {source} has spaces or characters outside printable ASCII, which gRPC metadata "
            "cannot carry; use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call without `authorization: Bearer <token>` with UNAUTHENTICATED.

    A refused call's handler never runs and its request bytes are never parsed.
    Methods in `open_methods` (full names, "/package.Service/Method") need no
    token; by default only the health check. Put this interceptor first so that
    refused calls reach nothing else.
    """

    def __init__(self, token: str, open_methods: Collection[str] = HEALTH_METHODS):
        if not token:
            raise ValueError("TokenInterceptor needs a non-empty token")
        self._expected = token.encode("ascii")
        self.open_methods = frozenset(open_methods)
        self._refusals = _RefusalLog(REFUSAL_LOG_INTERVAL_S)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method in self.open_methods or self._carries_token(handler_call_details.invocation_metadata or ()):
            return continuation(handler_call_details)
        self._refusals.refused(method)
        # Looking the handler up runs nothing; it tells whether the refusal must read a
        # request stream or write a response stream, so the caller sees a clean status.
        return _refusal(continuation(handler_call_details))

    def _carries_token(self, metadata) -> bool:
        return carries_token([value for key, value in metadata if key == AUTHORIZATION_KEY], self._expected)


def carries_token(authorization_values: Collection[str | bytes], expected: bytes) -> bool:
    """Whether one of the `Authorization` values is "Bearer <expected>"."""
    # Compare against every value, without stopping early, so timing says nothing.
    matches = [hmac.compare_digest(_bearer_token(value), expected) for value in authorization_values]
    return any(matches)


class _RefusalLog:
    """The first refused call is logged at once; later ones as one line with their count, at most
    once every `interval_s` (written by the first refusal after the interval has passed)."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last_logged = -float("inf")
        self._unlogged = 0

    def refused(self, method: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._unlogged += 1
            if now - self._last_logged < self.interval_s:
                return
            count, self._unlogged, self._last_logged = self._unlogged, 0, now
        if count == 1:
            log.warning("refused a call to %s: no valid bearer token", shown(method))
        else:
            log.warning("refused %d calls without a valid bearer token since the last such line (the latest to %s)",
                        count, shown(method))


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Answers a request whose bytes are not the method's protobuf message with INVALID_ARGUMENT.

    grpc itself answers such a request with INTERNAL ("Exception deserializing
    request!"), which reads as a server fault, and a request stream that fails to
    parse (reflection's) can leave its worker waiting for good, which then holds up
    the shutdown. Covered: every movielinks method, the health check, and the
    reflection stream (request-streaming methods).
    """

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        if handler.request_streaming:
            return _checking_request_stream(handler, handler_call_details.method)
        return _checking_requests(handler, handler_call_details.method)


@dataclasses.dataclass(frozen=True)
class _Malformed:
    reason: str


def _safe_deserializer(parse: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def deserialize(data: bytes):
        try:
            return parse(data)
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError, upb sometimes others
            return _Malformed(str(e) or type(e).__name__)
    return deserialize


def _refuse_malformed(context: grpc.ServicerContext, method: str, request: _Malformed) -> None:
    context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request to {shown(method)} is not a valid protobuf message of the method's request type "
        f"({request.reason}); build it from the method's .proto (movielinks: proto/movielinks/v1/movielinks.proto)",
    )


def _checking_requests(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    respond = handler.unary_stream if handler.response_streaming else handler.unary_unary

    def behaviour(request, context: grpc.ServicerContext, *callback):
        if isinstance(request, _Malformed):
            _refuse_malformed(context, method, request)
        return respond(request, context, *callback)

    if getattr(respond, "experimental_non_blocking", False):  # the health Watch: keep it off the workers
        behaviour = non_blocking(behaviour, respond)
    make = grpc.unary_stream_rpc_method_handler if handler.response_streaming else grpc.unary_unary_rpc_method_handler
    return make(behaviour, request_deserializer=_safe_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer)


def _checking_request_stream(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    respond = handler.stream_stream if handler.response_streaming else handler.stream_unary

    def checked(requests, context: grpc.ServicerContext):
        for request in requests:
            if isinstance(request, _Malformed):
                _refuse_malformed(context, method, request)
            yield request

    def behaviour(requests, context: grpc.ServicerContext):
        return respond(checked(requests, context), context)

    make = grpc.stream_stream_rpc_method_handler if handler.response_streaming else grpc.stream_unary_rpc_method_handler
    return make(behaviour, request_deserializer=_safe_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer)


def _bearer_token(value: str | bytes) -> bytes:
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    scheme, _, token = text.partition(" ")
    return token.strip().encode("utf-8", "replace") if scheme.lower() == BEARER else b""


def _refusal(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape as `handler` that answers UNAUTHENTICATED.

    No deserializer is set: the request bytes are handed over raw and ignored.
    """
    def refuse(_request, context: grpc.ServicerContext):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS)

    def refuse_stream(_request, context: grpc.ServicerContext):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS)
        yield  # unreachable: makes this a generator, as a streaming response must be

    request_streaming = bool(handler and handler.request_streaming)
    response_streaming = bool(handler and handler.response_streaming)
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    return grpc.unary_unary_rpc_method_handler(refuse)


def _read_pem(path: str | Path, what: str, label: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise cannot_start(f"cannot read the {what} {path}: {_reason(e)}") from e
    if "-----BEGIN ".encode() not in data or f"{label}-----".encode() not in data:
        raise cannot_start(f"the {what} {path} is not a PEM file with a {label} block; give the PEM (not DER) file")
    return data


def _check_usable(credentials: grpc.ServerCredentials, cert_file, key_file) -> None:
    """gRPC only parses the PEMs when a port is bound, and then reports a failed bind.

    A trial bind on a free loopback port turns a mismatched or corrupt pair into an
    error that names the files instead of one that blames the address.
    """
    trial = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    try:
        trial.add_secure_port("127.0.0.1:0", credentials)
    except RuntimeError as e:
        raise cannot_start(
            f"the server certificate {cert_file} and private key {key_file} are not a valid pair "
            "(corrupt, or the key does not belong to the certificate); grpc's log above says which"
        ) from e
    finally:
        trial.stop(None)


def _warn_unless_valid_now(cert_file: str | Path) -> None:
    """A certificate past its end (or before its start) still serves, but every client
    refuses the handshake: say so at start instead of leaving it to the clients' logs."""
    try:  # the standard library's own certificate decoder (the ssl module's tests use it)
        decoded = ssl._ssl._test_decode_cert(str(cert_file))
        not_before, not_after = (ssl.cert_time_to_seconds(decoded[field]) for field in ("notBefore", "notAfter"))
    except (AttributeError, KeyError, ValueError, ssl.SSLError) as e:
        log.warning("cannot read the validity dates of the server certificate %s (%s); not checked", cert_file, e)
        return
    now = time.time()
    if now > not_after:
        log.warning("the server certificate %s expired on %s: clients will refuse to connect; renew it",
                    cert_file, decoded["notAfter"])
    elif now < not_before:
        log.warning("the server certificate %s is not valid before %s: clients will refuse to connect until then",
                    cert_file, decoded["notBefore"])


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


# An absolute path in free text: "/" after a space, a quote, a parenthesis or the start, then
# path segments. Serving them tells a caller where the data lives on the server's disk.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:/[\w.@+~%-]+)+/?")


def without_local_paths(value):
    """`value` (text, or lists and dicts of it) with every absolute path cut to its last part
    ("/srv/index/versions/v1/links.json: missing" -> ".../links.json: missing"), for callers."""
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], value)
    if isinstance(value, dict):
        return {key: without_local_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_local_paths(item) for item in value]
    return value
