"""The functions over MAX_LINES lines (def to last line, docstring and nested functions
included) whose docstring does not give the reason with the marker "Long because".
Generated files (protoc's stubs: "DO NOT EDIT" in their first lines) are left out.

    python scripts/long_functions.py            # exit 1, one line per long function, when any lacks a reason
    python scripts/long_functions.py --all      # every long function, the ones with a reason too
    python scripts/long_functions.py server/    # only below these paths

A long function is a place to split; one that reads best whole (a linear pipeline, one
table of options) says so in its docstring: "Long because it is one pipeline ...".
tests/package/test_function_length.py runs this over the tree.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60
REASON_MARKER = "Long because"
# The code the check reads: the stage folders, bench/, scripts/ and tests/.
FOLDERS = ("common", "collector", "trainer", "indexer", "search", "server", "client", "proto", "movielinks",
           "bench", "scripts", "tests")
# A file that says this in its first lines is generated (protoc's stubs): nobody edits its functions.
GENERATED = "DO NOT EDIT"


@dataclasses.dataclass(frozen=True)
class LongFunction:
    path: str  # relative to the repository root, with forward slashes
    line: int
    name: str  # Class.method, outer.inner
    lines: int
    has_reason: bool

    def __str__(self) -> str:
        reason = "" if self.has_reason else f' (no "{REASON_MARKER}" in its docstring)'
        return f"{self.path}:{self.line} {self.name}: {self.lines} lines{reason}"


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The .py files at or below `paths`, sorted, without hidden folders (virtual environments) and caches."""
    for path in paths:
        if path.is_file():
            yield path
            continue
        for file in sorted(path.rglob("*.py")):
            if not any(part.startswith(".") or part == "__pycache__" for part in file.relative_to(path).parts):
                yield file


def long_functions(source: str, path: str, max_lines: int = MAX_LINES) -> list[LongFunction]:
    """The functions of one module's `source` longer than `max_lines`, in the order they start;
    none for generated code."""
    found: list[LongFunction] = []
    if GENERATED in "".join(source.splitlines(keepends=True)[:3]):
        return found

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                lines = child.end_lineno - child.lineno + 1
                if lines > max_lines:
                    docstring = ast.get_docstring(child) or ""
                    found.append(LongFunction(path, child.lineno, name, lines, REASON_MARKER in docstring))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source, filename=path), "")
    return found


def scan(paths: Iterable[Path], max_lines: int = MAX_LINES) -> list[LongFunction]:
    """Every function over `max_lines` in the .py files at or below `paths`."""
    found: list[LongFunction] = []
    for file in python_files(paths):
        relative = file.resolve().relative_to(ROOT).as_posix() if file.resolve().is_relative_to(ROOT) else str(file)
        found.extend(long_functions(file.read_text(encoding="utf-8"), relative, max_lines))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the code folders of the tree)")
    parser.add_argument("--max-lines", type=int, default=MAX_LINES, help=f"the most lines a function may have (default {MAX_LINES})")
    parser.add_argument("--all", action="store_true", help=f'list the long functions with a "{REASON_MARKER}" reason too')
    args = parser.parse_args(argv)
    paths = args.paths or [ROOT / folder for folder in FOLDERS if (ROOT / folder).is_dir()]
    found = scan(paths, args.max_lines)
    for function in found:
        if args.all or not function.has_reason:
            print(function)
    return 1 if any(not function.has_reason for function in found) else 0


if __name__ == "__main__":
    sys.exit(main())
