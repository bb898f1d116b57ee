"""The movielinks.v1 gRPC API, compiled from its .proto at import time.

`movielinks_pb2` holds the messages, `movielinks_pb2_grpc` the stub and servicer
base; nothing generated is committed.
"""
import grpc

PROTO_PATH = "proto/movielinks/v1/movielinks.proto"
SERVICE_NAME = "movielinks.v1.Movielinks"

movielinks_pb2, movielinks_pb2_grpc = grpc.protos_and_services(PROTO_PATH)
