"""The gRPC server process: the movielinks service, health and reflection on one port."""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import Sequence

import grpc
import threadpoolctl
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from movielinks.search.neighbours import use_one_core_per_thread
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.root import load_current, load_named
from movielinks.proto import SERVICE_NAME
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from movielinks.server.errors import cannot_start
from movielinks.server.service import MovieService
from movielinks.server.servicer import MovielinksServicer
from movielinks.server.versions import ServiceHolder
from movielinks.server.workers import CallWorkers

log = logging.getLogger("movielinks.server")

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # gRPC's default, stated: requests past it get RESOURCE_EXHAUSTED
# The client pings every second, with calls or without, to find a replica that stopped answering
# (client.client.KEEPALIVE_OPTIONS); gRPC servers by default take more than one ping in 5 minutes
# without data for abuse and close the connection.
KEEPALIVE_OPTIONS = [("grpc.keepalive_permit_without_calls", 1),
                     ("grpc.http2.min_ping_interval_without_data_ms", 500)]


@dataclasses.dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer

    def stop(self, grace_s: float, wait_s: float | None = None) -> None:
        """Health turns NOT_SERVING, new calls are refused, calls in flight get `grace_s`;
        returns when they are done or cancelled, or after `wait_s` at most."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait(wait_s)


def load_service(index_root: str, version: str | None = None) -> MovieService:
    """The service over the index root's published version (or its version named `version`);
    ServiceError (CANNOT_START) if it is bad."""
    try:
        return MovieService(load_named(index_root, version) if version else load_current(index_root))
    except IndexerError as e:
        raise cannot_start(str(e)) from e
    except Exception as e:  # noqa: BLE001 - any load failure is the same one-line start error
        raise cannot_start(f"{index_root}: cannot load the current index version: {type(e).__name__}: {e}") from e


def start(
    holder: ServiceHolder,
    host: str = "127.0.0.1",
    port: int = 50051,
    *,
    max_workers: int = 2,
    max_concurrent_rpcs: int | None = None,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    local_address: str | None = None,
    reuse_port: bool = False,
    check_port: bool = True,
) -> RunningServer:
    """Start serving `holder` on host:port (port 0 picks a free one).

    With `credentials` the port speaks TLS only; `interceptors` run before every
    call, in order. Past `max_concurrent_rpcs` calls in progress, a new call is
    answered RESOURCE_EXHAUSTED at once instead of waiting in a queue.
    `local_address` (e.g. "unix:/private/dir/grpc.sock") is a second, plaintext port
    for the HTTP gateway of this process: the same service, interceptors and limits.
    `max_workers` threads compute calls at once; a call that waits steps aside
    (server.workers). With `reuse_port` other processes may bind the same port (server.processes);
    without `check_port` (another serving process, binding beside the first) the port is not checked first.
    """
    # numpy's BLAS spreads each matrix product over every core by default: for the small
    # products of a filtered query (36k x 50) on a busy machine that made a product many
    # times slower (docs/speed.md). Requests run in parallel threads already, so one core
    # each is right.
    threadpoolctl.threadpool_limits(1, user_api="blas")
    workers = CallWorkers(max_workers, name="rpc", initializer=use_one_core_per_thread)
    server = grpc.server(
        workers,
        interceptors=list(interceptors),
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", int(reuse_port)),
                 *KEEPALIVE_OPTIONS],
    )
    pb_grpc.add_MovielinksServicer_to_server(MovielinksServicer(holder.current, holder.refused), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    _serve_reflection(server, (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))
    if host == "localhost":
        # gRPC binds whichever of localhost's addresses are free and calls that success, so
        # with 127.0.0.1:port taken by another process it would serve on [::1] alone.
        if port and check_port:
            _check_free("127.0.0.1", port)
        bound = _bind(server, "127.0.0.1", port, credentials)
        if _bind(server, "::1", bound, credentials, required=False) == 0:
            log.warning("localhost: serving on 127.0.0.1:%d only; [::1]:%d is taken or this host has no IPv6",
                        bound, bound)
    else:
        if port and check_port:
            _check_free(host, port)
        bound = _bind(server, host, port, credentials)
    if local_address is not None and server.add_insecure_port(local_address) == 0:
        raise cannot_start(f"cannot listen on {local_address} for the HTTP gateway")
    server.start()
    return RunningServer(server, bound, health_servicer)


def _bind(server: grpc.Server, host: str, port: int, credentials: grpc.ServerCredentials | None,
          required: bool = True) -> int:
    """The port bound on host:port; 0 when it is not free and not `required`, else a CANNOT_START ServiceError."""
    address = f"{_bracket(host)}:{port}"
    try:
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as e:
        if not required:
            return 0
        raise cannot_start(f"cannot listen on {host}:{port}: {e}") from e
    if bound == 0 and required:
        raise cannot_start(f"cannot listen on {host}:{port}: the address is in use or not available here")
    return bound


class _ReflectionServicer(reflection.ReflectionServicer):
    """grpcio-reflection's servicer, also finding the file of a method ("pkg.Service.Method").

    protobuf's upb descriptor pool finds services and messages by name but not the
    methods inside a service, so `grpcurl describe movielinks.v1.Movielinks.SimilarMovies`
    got "Symbol not found"; the file holding the enclosing symbol is the answer.
    """

    def _file_containing_symbol(self, request, fully_qualified_name):
        answer = super()._file_containing_symbol(request, fully_qualified_name)
        service, _, method = fully_qualified_name.rpartition(".")
        if answer.HasField("error_response") and service:
            try:
                self._pool.FindServiceByName(service).methods_by_name[method]
            except KeyError:
                return answer
            return super()._file_containing_symbol(request, service)
        return answer


def _serve_reflection(server: grpc.Server, services: Sequence[str]) -> None:
    """Server reflection as both grpc.reflection.v1 (what grpcurl and Postman ask first) and v1alpha.

    grpcio-reflection implements only v1alpha; v1's messages are the same on the wire (the
    package name is all that changed), so one servicer answers both.
    """
    servicer = _ReflectionServicer((*services, REFLECTION_V1, reflection.SERVICE_NAME))
    for name in (REFLECTION_V1, reflection.SERVICE_NAME):
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler}),))


def _check_free(host: str, port: int) -> None:
    """ServiceError (CANNOT_START) when host:port cannot be bound, said before gRPC's core logs its own line about it."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise cannot_start(f"cannot listen on {host}:{port}: {e.strerror}") from e
    for family, kind, proto, _, address in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no obstacle
            try:
                probe.bind(address)
            except OSError as e:
                raise cannot_start(f"cannot listen on {host}:{port}: {os.strerror(e.errno) if e.errno else e}") from e


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
