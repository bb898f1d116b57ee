"""The movielinks.v1 gRPC API: `movielinks_pb2` holds the messages, `movielinks_pb2_grpc`
the stub and servicer base.

Both are generated from movielinks/v1/movielinks.proto by scripts/gen_proto.py and
committed, so that the client needs only grpcio and protobuf at run time;
tests/package/test_proto.py fails when they differ from what the .proto produces.
"""
from pathlib import Path

from movielinks.proto import movielinks_pb2, movielinks_pb2_grpc

PROTO_FILE = Path(__file__).resolve().parent / "movielinks" / "v1" / "movielinks.proto"
SERVICE_NAME = "movielinks.v1.Movielinks"

__all__ = ["PROTO_FILE", "SERVICE_NAME", "movielinks_pb2", "movielinks_pb2_grpc"]
