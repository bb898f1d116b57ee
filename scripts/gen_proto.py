"""Generate proto/movielinks_pb2.py and proto/movielinks_pb2_grpc.py from the .proto.

    python scripts/gen_proto.py            rewrite the committed stubs in proto/
    python scripts/gen_proto.py --out DIR  write them into DIR instead (the drift test compares)

Run it after every change to proto/movielinks/v1/movielinks.proto, with the
grpcio-tools of requirements.lock (the test extra installs it). The stubs are
committed so that the client needs only grpcio and protobuf at run time.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parents[1] / "proto"
PROTO_FILE = "movielinks/v1/movielinks.proto"  # as the descriptor pool (and reflection) names it
STUBS = ("movielinks_pb2.py", "movielinks_pb2_grpc.py")

# protoc names the modules after the .proto's folder (movielinks.v1.movielinks_pb2); installed,
# they are movielinks.proto's. Rewritten: the stub's import of the messages (relative) and the
# module name the message classes carry (their __module__, which pickle and repr use).
_REWRITES = {
    "movielinks_pb2.py": (re.compile(r"'movielinks\.v1\.movielinks_pb2'"), "'movielinks.proto.movielinks_pb2'"),
    "movielinks_pb2_grpc.py": (re.compile(r"^from movielinks\.v1 import movielinks_pb2 as ", re.MULTILINE),
                               "from . import movielinks_pb2 as "),
}


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (grpcio-tools) on the .proto and write the two stubs into `out_dir`."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={scratch}",
             f"--grpc_python_out={scratch}", str(PROTO_ROOT / PROTO_FILE)],
            check=True,
        )
        generated = Path(scratch) / Path(PROTO_FILE).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in STUBS:
            text = (generated / name).read_text(encoding="utf-8")
            pattern, replacement = _REWRITES[name]
            text, count = pattern.subn(replacement, text)
            if count != 1:
                raise RuntimeError(f"{name}: expected one {pattern.pattern!r} to rewrite, found {count}")
            (out_dir / name).write_text(text, encoding="utf-8")
            written.append(out_dir / name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="folder for the stubs (default: proto/)")
    for path in generate(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
