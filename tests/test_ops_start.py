"""A server that cannot start says why in one line and exits 2 (the real `python -m server`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from indexer import version as iv
from indexer.build import build_index
from tests.e2e_server import REPO
from tests.fixtures import make_run

TITLES = ["Interstellar (film)", "Alien (film)", "The Martian (film)", "Heat (1995 film)"]


def build(tmp: Path, root: Path, seed: int, **sizes) -> str:
    run = make_run(tmp / f"run-{seed}", seed, titles=TITLES, **sizes)
    return build_index(run, root, progress=False)


@pytest.mark.parametrize("problem", ["missing root", "no CURRENT", "corrupt version", "bad TLS file"])
def test_a_bad_start_exits_2_with_one_line_naming_the_file(tmp_path, problem):
    root = tmp_path / "index"
    extra: list[str] = []
    if problem == "no CURRENT":
        build(tmp_path, root, 0)
        (root / iv.CURRENT).unlink()
        named = "CURRENT"
    elif problem == "corrupt version":
        name = build(tmp_path, root, 0)
        (iv.version_dir(root, name) / iv.LINKS).write_text("[]")
        named = iv.LINKS
    elif problem == "bad TLS file":
        build(tmp_path, root, 0)
        extra = ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "missing.key")]
        named = "missing.pem"
    else:
        named = "CURRENT"
    started = subprocess.run([sys.executable, "-m", "server", "--index", str(root), "--port", "0", *extra],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.count("\n") == 1 and started.stderr.startswith("server: error: ") and named in started.stderr
    assert "Traceback" not in started.stderr
