"""Installable by role: each extra of pyproject.toml declares what its stages import.

The source is read (ast), not imported: from every module of a role's stage folders
the `movielinks.*` imports are followed (into common/, proto/ and other stages), and
each third-party import met on the way must be a distribution of the base or of the
role's extra. An import inside a function may also come from a feature's extra
(FEATURE_EXTRAS); one at import time may not.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]  # "movielinks.server" -> "server"
# extra -> the stage folders that installing it must let run
ROLES = {"client": ("client", "proto"), "server": ("server", "search", "indexer"), "collector": ("collector",), "train": ("trainer",)}
# role -> extras its stages import only inside a function, for one feature (client export --out x.parquet)
FEATURE_EXTRAS = {"client": ("parquet", "vectors")}
CLIENT_BASE = {"grpcio", "protobuf", "tqdm"}  # issue 20: the client installs with grpcio and protobuf (tqdm: pure Python)
LOCAL_TOPS = {"movielinks", "tests", "bench"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str) -> tuple[str, list[str]]:
    """("dask", ["distributed"]) for "dask[distributed]>=1; python_version > '3'"."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", text)
    return _normal(match.group(1)), [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]


def _distributions_of(requirement: str, extras_of_ours: dict[str, list[str]]) -> set[str]:
    """The distributions a requirement installs by name: itself, and those its extras add
    (movielinks[server] names our own extra; dask[distributed] adds distributed)."""
    name, extras = _requirement(requirement)
    if name == "movielinks":
        return declared(extras, extras_of_ours)
    found = {name}
    for extra in extras:
        for text in importlib.metadata.requires(name) or []:
            if re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", text):
                found |= _distributions_of(text.split(";")[0], extras_of_ours)
    return found


def declared(extras: Iterable[str], extras_of_ours: dict[str, list[str]] | None = None) -> set[str]:
    """The distributions the base and `extras` of pyproject.toml install by name."""
    ours = PYPROJECT["project"]["optional-dependencies"] if extras_of_ours is None else extras_of_ours
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        requirements += ours[extra]
    return {d for r in requirements for d in _distributions_of(r, ours)}


def _module_file(module: str) -> Path | None:
    """The source file of a movielinks module, found through pyproject's package-dir; None for a name
    inside a module (the `ClientError` of `from movielinks.client.client import ClientError`)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if (package := ".".join(parts[:i])) in PACKAGE_DIRS:
            path = REPO.joinpath(PACKAGE_DIRS[package], *parts[i:])
            return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    package = {folder: name for name, folder in PACKAGE_DIRS.items()}.get(parts[0])
    names = (*package.split("."), *parts[1:]) if package else parts
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at import time) for each import in a file; `if TYPE_CHECKING:` blocks never run."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            now = eager and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, now) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{anchor}.{base}".rstrip(".")
                found.append((base, now))
                found.extend((f"{base}.{alias.name}", now) for alias in child.names)
            visit(child, now)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def third_party_imports(files: Iterable[Path], at_import_time_only: bool) -> dict[str, set[str]]:
    """Top-level third-party module -> the files importing it, over `files` and every
    movielinks module they import (with their packages' __init__), transitively."""
    todo, seen, found = list(files), set(), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module, eager in imports(path):
            if at_import_time_only and not eager:
                continue
            top = module.split(".")[0]
            if top == "movielinks":
                parts = module.split(".")
                todo += [f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i])))]
            elif top not in sys.stdlib_module_names and top not in LOCAL_TOPS:
                found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def undeclared(modules: dict[str, set[str]], allowed: set[str]) -> dict[str, str]:
    """The modules whose distribution is not in `allowed`, with where they are imported."""
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for top, files in sorted(modules.items()):
        # A module not installed here (a bench-only dependency in CI's venv) is taken to be
        # its distribution's name, as implicit's is.
        names = {_normal(d) for d in distributions.get(top, [])} or {_normal(top)}
        if not names & allowed:
            missing[top] = f"{sorted(names)} imported by {sorted(files)}"
    return missing


def _stage_files(folders: Iterable[str]) -> list[Path]:
    return [path for folder in folders for path in sorted((REPO / folder).rglob("*.py"))]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_declares_what_its_stages_import(role):
    files = _stage_files(ROLES[role])
    at_import = undeclared(third_party_imports(files, at_import_time_only=True), declared([role]))
    assert not at_import, f"declare these in the base or the {role!r} extra: {at_import}"
    features = [role, *FEATURE_EXTRAS.get(role, ())]
    anywhere = undeclared(third_party_imports(files, at_import_time_only=False), declared(features))
    assert not anywhere, f"declare these in the {features} extras: {anywhere}"


def test_the_base_is_the_client_alone():
    """What every install gets stays what the client needs; the heavy stages live in extras."""
    assert declared(["client"]) <= CLIENT_BASE
    client_imports = third_party_imports(_stage_files(ROLES["client"]), at_import_time_only=True)
    assert not undeclared(client_imports, {"grpcio", "protobuf"}), "the client imports more than grpcio and protobuf"


def test_the_test_extra_holds_everything_the_checkout_imports():
    files = [path for folder in (*PACKAGE_DIRS.values(), "tests", "scripts") for path in (REPO / folder).rglob("*.py")]
    missing = undeclared(third_party_imports(files, at_import_time_only=False), declared(["test"]))
    assert not missing, f"declare these in the 'test' extra (or a role's extra it names): {missing}"


def test_the_bench_extra_holds_what_the_benchmarks_import():
    """bench/ is run by hand, with `.[test,bench]`: its own measuring tools (implicit's ALS) stay out of CI's install."""
    files = list((REPO / "bench").rglob("*.py"))
    missing = undeclared(third_party_imports(files, at_import_time_only=False), declared(["test", "bench"]))
    assert not missing, f"declare these in the 'bench' or 'test' extra: {missing}"


def test_reading_the_imports_sees_lazy_relative_and_type_only_imports(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "proto").mkdir()
    source = tmp_path / "proto" / "stub.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\n"
                      "from . import messages\nimport grpc\n\ndef f():\n    import pyarrow.parquet\n", encoding="utf-8")
    assert imports(source) == [("typing", True), ("typing.TYPE_CHECKING", True),
                               ("movielinks.proto", True), ("movielinks.proto.messages", True),
                               ("grpc", True), ("pyarrow.parquet", False)]


SERVE_AND_ASK = """
import sys
import movielinks.indexer.cli, movielinks.server.cli
from movielinks.client import MovielinksClient
from movielinks.server.app import load_service, start
from movielinks.server.versions import ServiceHolder
running = start(ServiceHolder(load_service(sys.argv[1])), "127.0.0.1", 0, max_workers=2)
try:
    with MovielinksClient(f"127.0.0.1:{running.port}", timeout_s=30) as client:
        assert client.similar_movies(sys.argv[2], k=3).neighbours
        assert client.recommend([sys.argv[2]], k=3).best
finally:
    running.stop(0, 10)
print(" ".join(sys.modules))
"""


@pytest.mark.slow
def test_serving_imports_no_tensorflow(tmp_path):
    """The server's and indexer's modules, a started server and its answers (the SVM included) load no TensorFlow."""
    from movielinks.indexer.build import build_index
    from tests.fixtures import make_run

    build_index(make_run(tmp_path / "run", titles=["Alien (film)"], n_movies=60, n_links=20, dim=8), tmp_path / "index",
                progress=False)
    loaded = subprocess.run([sys.executable, "-c", SERVE_AND_ASK, str(tmp_path / "index"), "Alien (film)"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    modules = loaded.stdout.split()
    assert "movielinks.server.service" in modules
    assert not {m.split(".")[0] for m in modules} & {"tensorflow", "keras"}
