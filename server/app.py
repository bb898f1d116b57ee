"""The gRPC server process: the movielinks service, health and reflection on one port."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
from typing import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.neighbours import use_one_core_per_thread
from indexer.errors import IndexerError
from indexer.root import load_current
from proto import SERVICE_NAME
from proto import movielinks_pb2_grpc as pb_grpc
from server.errors import cannot_start
from server.service import MovieService
from server.servicer import MovielinksServicer
from server.versions import ServiceHolder

log = logging.getLogger("movielinks.server")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # gRPC's default, stated: requests past it get RESOURCE_EXHAUSTED


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


def load_service(index_root: str) -> MovieService:
    """The service over the index root's published version; ServiceError (CANNOT_START) if it is bad."""
    try:
        return MovieService(load_current(index_root))
    except IndexerError as e:
        raise cannot_start(str(e)) from e
    except Exception as e:  # noqa: BLE001 - any load failure is the same one-line start error
        raise cannot_start(f"{index_root}: cannot load the current index version: {type(e).__name__}: {e}") from e


def start(
    holder: ServiceHolder,
    host: str = "127.0.0.1",
    port: int = 50051,
    *,
    max_workers: int = 8,
    max_concurrent_rpcs: int | None = None,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> RunningServer:
    """Start serving `holder` on host:port (port 0 picks a free one).

    With `credentials` the port speaks TLS only; `interceptors` run before every
    call, in order. Past `max_concurrent_rpcs` calls in progress, a new call is
    answered RESOURCE_EXHAUSTED at once instead of waiting in a queue.
    """
    workers = concurrent.futures.ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix="rpc", initializer=use_one_core_per_thread
    )
    server = grpc.server(
        workers,
        interceptors=list(interceptors),
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)],
    )
    pb_grpc.add_MovielinksServicer_to_server(MovielinksServicer(holder.current, holder.refused), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    if host == "localhost":
        # gRPC binds whichever of localhost's addresses are free and calls that success, so
        # with 127.0.0.1:port taken by another process it would serve on [::1] alone.
        bound = _bind(server, "127.0.0.1", port, credentials)
        if _bind(server, "::1", bound, credentials, required=False) == 0:
            log.warning("localhost: serving on 127.0.0.1:%d only; [::1]:%d is taken or this host has no IPv6",
                        bound, bound)
    else:
        bound = _bind(server, host, port, credentials)
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


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
