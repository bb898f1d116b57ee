"""The movielinks.v1 gRPC API, compiled from its .proto at import time.

`movielinks_pb2` holds the messages, `movielinks_pb2_grpc` the stub and servicer
base; nothing generated is committed.
"""
import sys
from pathlib import Path

import grpc

PROTO_PATH = "proto/movielinks/v1/movielinks.proto"
SERVICE_NAME = "movielinks.v1.Movielinks"

# grpc_tools finds .proto files along sys.path. An editable install reaches our
# packages through an import hook instead, so the folder holding proto/ may be absent.
_PACKAGES_DIR = str(Path(__file__).resolve().parent.parent)
if _PACKAGES_DIR not in sys.path:
    sys.path.append(_PACKAGES_DIR)

movielinks_pb2, movielinks_pb2_grpc = grpc.protos_and_services(PROTO_PATH)
