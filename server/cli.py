"""`server` command: serve a published index over gRPC until SIGTERM or SIGINT.

    server --index INDEX_ROOT [--host 127.0.0.1] [--port 50051]
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from server.app import CatalogueHolder, ServerError, load_catalogue, start
from server.security import MalformedRequestInterceptor, TokenInterceptor, load_token, server_credentials

log = logging.getLogger("movielinks.server")

EPILOG = """\
Binds 127.0.0.1 unless --host says otherwise; --port 0 picks a free port (the start
log line names it). SIGTERM or SIGINT: health turns NOT_SERVING, new calls are
refused, calls in flight get --grace seconds, then the process exits 0.
Exit code 2 (one line on stderr): the index is missing or bad, or the port is taken.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server", description="Serve movielinks queries over gRPC.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index root written by `indexer build --out`")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=50051, help="port (0: a free one)")
    parser.add_argument("--workers", type=int, default=8, help="threads answering calls")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds calls in flight get at shutdown")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--tls-cert", help="PEM server certificate: the port speaks TLS only (needs --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", help="PEM CA: require client certificates signed by it (mutual TLS)")
    parser.add_argument("--token-file", help="file holding the bearer token every call must carry "
                                             "(default: $MOVIELINKS_TOKEN; neither: no token)")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)

    started = time.monotonic()
    try:
        credentials = server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
        token = load_token(args.token_file)
        interceptors = [*([TokenInterceptor(token)] if token else []), MalformedRequestInterceptor()]
        holder = CatalogueHolder(load_catalogue(args.index))
        running = start(holder, args.host, args.port, max_workers=args.workers, credentials=credentials,
                        interceptors=interceptors)
    except ServerError as e:
        print(f"server: error: {e}", file=sys.stderr)
        return 2
    catalogue = holder.current()
    log.info(
        "movielinks server listening on %s:%d version=%s movies=%d links=%d dim=%d tls=%s auth=%s start_ms=%.0f",
        args.host, running.port, catalogue.name, len(catalogue.version.movies), len(catalogue.version.links),
        catalogue.version.dim, "mutual" if args.tls_client_ca else "on" if credentials else "off",
        "token" if token else "none", 1000 * (time.monotonic() - started),
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    log.info("shutting down: refusing new calls, %.1f s for calls in flight", args.grace)
    running.stop(args.grace)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
