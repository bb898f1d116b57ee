"""The client installs by itself: a fresh venv with only `movielinks[client]` asks a real server.

The checkout's package is copied to a temporary folder (a wheel build writes build/
beside its source) and pip-installed from there, not editable, with requirements.lock.
"""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from movielinks.client import MovielinksClient
from movielinks.indexer.build import build_index
from tests.e2e_server import REPO, running_server
from tests.fixtures import make_run

pytestmark = pytest.mark.slow  # real server (or indexer, collector) processes

# What building the package reads: pyproject.toml, the README and every folder its package-dir maps.
PACKAGE_PARTS = ("pyproject.toml", "README.md",
                 *tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
HEAVY = {"numpy", "faiss-cpu", "tensorflow", "tensorflow-cpu", "keras", "scikit-learn", "pyarrow", "grpcio-tools"}
TITLE = "Interstellar (film)"
N_MOVIES = 60
INSTALL_TIMEOUT_S = 300


def _run(args: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """The bin/ folder of a venv holding movielinks[client] and what it depends on, nothing else."""
    root = tmp_path_factory.mktemp("client-only")
    source = root / "movielinks-src"
    source.mkdir()
    for part in PACKAGE_PARTS:
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / part, source / part)
    _run([sys.executable, "-m", "venv", str(root / "venv")], root, 120)
    bin_dir = root / "venv" / "bin"
    _run([str(bin_dir / "pip"), "install", "--quiet", "-c", str(REPO / "requirements.lock"), f"{source}[client]"],
         root, INSTALL_TIMEOUT_S)
    return bin_dir


def test_the_client_extra_installs_no_numpy_faiss_or_tensorflow(client_venv):
    listed = json.loads(_run([str(client_venv / "pip"), "list", "--format=json"], client_venv, 60).stdout)
    names = {package["name"].lower().replace("_", "-") for package in listed}
    assert {"movielinks", "grpcio", "protobuf"} <= names
    assert not names & HEAVY, f"the client-only venv holds {sorted(names & HEAVY)}"


def test_the_installed_client_says_its_version(client_venv):
    shown = _run([str(client_venv / "client"), "--version"], client_venv, 60)
    assert shown.stdout.split() == ["client", importlib.metadata.version("movielinks")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server process over a tiny index."""
    tmp = tmp_path_factory.mktemp("served")
    build_index(make_run(tmp / "run", titles=[TITLE], n_movies=N_MOVIES, n_links=20, dim=8), tmp / "index", progress=False)
    with running_server(tmp / "index") as running:
        yield running


def test_the_installed_client_queries_a_real_server(client_venv, server):
    """The answer of the client-only install is the full install's, over the same server process."""
    # cwd outside the checkout: the venv's own installed copy is what runs
    answered = _run([str(client_venv / "client"), "--server", server.address, "--json", "query", "--movie", TITLE,
                     "-k", "5"], client_venv, 60)
    with MovielinksClient(server.address) as client:
        expected = client.similar_movies(TITLE, k=5)
    result = json.loads(answered.stdout)
    assert [n["name"] for n in result["neighbours"]] == [n.name for n in expected.neighbours]
    assert len(result["neighbours"]) == 5 and TITLE not in {n["name"] for n in result["neighbours"]}


def test_a_parquet_export_without_pyarrow_says_which_extra_to_install(client_venv, server, tmp_path):
    refused = subprocess.run([str(client_venv / "client"), "--server", server.address, "export", "-k", "2", "--out",
                              str(tmp_path / "n.parquet"), "--quiet"], cwd=client_venv, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2, refused
    assert "movielinks[parquet]" in refused.stderr and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert list(tmp_path.iterdir()) == []
    exported = _run([str(client_venv / "client"), "--server", server.address, "export", "-k", "2", "--out",
                     str(tmp_path / "n.csv"), "--quiet"], client_venv, 60)
    assert exported.stdout.startswith(f"wrote {N_MOVIES * 2} rows")
    assert (tmp_path / "n.csv").read_text(encoding="utf-8").count("\n") == 1 + N_MOVIES * 2  # the header, then the rows


def test_a_vector_file_needs_numpy_only_when_it_is_npy(client_venv, server, tmp_path):
    """`client query --vector` reads a .json list without numpy; a .npy says which extra reads it."""
    with MovielinksClient(server.address) as client:
        vector = client.get_vectors(titles=[TITLE]).movies.vectors[0]  # this process has numpy
        expected = client.similar_to_vector(vector, k=3)
    (tmp_path / "v.json").write_text(json.dumps([float(v) for v in vector]))
    answered = _run([str(client_venv / "client"), "--server", server.address, "--json", "query", "--vector",
                     str(tmp_path / "v.json"), "-k", "3"], client_venv, 60)
    assert [n["name"] for n in json.loads(answered.stdout)["neighbours"]] == [n.name for n in expected.neighbours]
    (tmp_path / "v.npy").write_bytes(b"\x93NUMPY")
    refused = subprocess.run([str(client_venv / "client"), "--server", server.address, "query", "--vector",
                              str(tmp_path / "v.npy")], cwd=client_venv, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "reading .npy needs numpy (pip install 'movielinks[vectors]')" in refused.stderr
