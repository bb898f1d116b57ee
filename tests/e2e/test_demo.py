"""`make demo`'s script, end to end on a small file: train -> index -> serve -> query over gRPC and HTTP -> stop,
then the next steps it prints."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clustered_films, write_ndjson
from tests.e2e_server import REPO


@pytest.mark.slow
def test_the_demo_answers_over_grpc_and_http_and_says_what_to_do_next(tmp_path):
    data = write_ndjson(tmp_path / "films.ndjson", clustered_films(n_films=120))
    environment = {**os.environ, "DATA": str(data), "WORK": str(tmp_path / "work"), "MOVIE": "Film 3 (film)",
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    shown = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=environment, capture_output=True, text=True,
                           timeout=600)
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    lines = shown.stdout.splitlines()
    assert any(line.startswith("Film 3 (film)") for line in lines)  # the client's table for the movie
    http = lines[lines.index(next(line for line in lines if line.startswith("== the same over HTTP"))) + 1]
    answer = json.loads(http)
    assert len(answer["neighbours"]) == 3 and all(n["name"].startswith("Film ") for n in answer["neighbours"]), http
    assert "server stopped cleanly" in lines and "  make serve WORK=" + str(tmp_path / "work") in lines
