"""The committed gRPC stubs are what the .proto produces, and load with protobuf alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from movielinks.proto import PROTO_FILE, SERVICE_NAME, movielinks_pb2, movielinks_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
STUBS = ("movielinks_pb2.py", "movielinks_pb2_grpc.py")


def test_committed_stubs_equal_freshly_generated_ones(tmp_path):
    """Edit the .proto without `python scripts/gen_proto.py` and this fails."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    for name in STUBS:
        committed = (REPO / "proto" / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == committed, f"proto/{name} is stale: run scripts/gen_proto.py"


def test_stubs_are_movielinks_proto_modules_named_after_the_proto_file():
    assert movielinks_pb2.DESCRIPTOR.name == "movielinks/v1/movielinks.proto"
    assert PROTO_FILE.is_file()
    assert movielinks_pb2.DESCRIPTOR.services_by_name["Movielinks"].full_name == SERVICE_NAME
    assert movielinks_pb2.SimilarMoviesRequest.__module__ == "movielinks.proto.movielinks_pb2"
    assert movielinks_pb2_grpc.movielinks_dot_v1_dot_movielinks__pb2 is movielinks_pb2


def test_importing_the_api_compiles_nothing_and_edits_no_path():
    code = ("import sys; path = list(sys.path); import movielinks.proto; "
            "assert 'grpc_tools.protoc' not in sys.modules, 'compiled at import'; assert sys.path == path, 'sys.path edited'; "
            "assert not any(m == 'proto' or m.startswith('proto.') for m in sys.modules), 'a top-level proto module'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO.parent, timeout=60)
