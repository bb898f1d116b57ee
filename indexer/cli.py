"""The `indexer` command: build, update, list, prune and export index versions.

    indexer build RUN --out INDEX_ROOT [--factory auto] [--neighbours-k 100] [--link-movies-k 20] [--target-recall 0.95]
    indexer update INDEX_ROOT --data new_or_changed.ndjson [--remove TITLES_FILE] [--target-recall 0.95]
    indexer list INDEX_ROOT
    indexer prune INDEX_ROOT --keep N
    indexer export INDEX -k 10 --out FILE        INDEX: an index root (its CURRENT) or a version dir
    indexer export INDEX --vectors [movies|links] --out FILE.npy|FILE.parquet

Expected faults (a bad run, factory, index, path or argument) print one line
`indexer: error: ...` on stderr and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from movielinks.common.commands import closed_pipe_is_a_normal_end, command_parser, positive_int
from movielinks.common.signals import exit_cleanly_on_sigterm
from movielinks.indexer.build import (APPROXIMATE_FACTORY, APPROXIMATE_LINK_FACTORY, AUTO, DEFAULT_LINK_MOVIES_K,
                                     DEFAULT_NEIGHBOURS_K, EXACT_MAX_VECTORS, build_index)
from movielinks.indexer.calibrate import DEFAULT_TARGET_RECALL
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.export import VECTOR_KINDS, export_neighbours, export_vectors, vector_names_path
from movielinks.indexer.prune import prune
from movielinks.indexer.root import CURRENT, VERSIONS, current_version_name, list_versions, load_index, version_dir, versions_dir
from movielinks.indexer.version import IndexManifest

EXIT_ERROR = 2


@closed_pipe_is_a_normal_end
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except BrokenPipeError:  # stdout's reader stopped reading: a normal end (closed_pipe_is_a_normal_end)
        raise
    except (IndexerError, OSError) as e:
        print(f"indexer: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR


def _build_command(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser("build", help="index a training run and publish it as the CURRENT version")
    build.add_argument("run", metavar="RUN", help="training run directory (`trainer train --out`)")
    build.add_argument("--out", required=True, metavar="INDEX_ROOT", help="index root to add the version to")
    build.add_argument("--factory", default=AUTO,
                       help=f"FAISS index-factory string, e.g. Flat, HNSW32, IVF256,Flat; auto (default): exact "
                            f"up to {EXACT_MAX_VECTORS:,} vectors, {APPROXIMATE_FACTORY} beyond ({APPROXIMATE_LINK_FACTORY} "
                            f"for links: float16 codes)")
    build.add_argument("--neighbours-k", type=int, default=DEFAULT_NEIGHBOURS_K,
                       help="similar movies found per movie at build time and served without a search (0: none)")
    build.add_argument("--link-movies-k", type=int, default=DEFAULT_LINK_MOVIES_K,
                       help="movies found per link at build time, LinkMovies served without a search up to that k "
                            "(0: none)")
    build.add_argument("--target-recall", type=float, default=DEFAULT_TARGET_RECALL, metavar="R",
                       help="approximate indexes: the cheapest search setting whose recall@10 against exact search, "
                            f"measured on sampled rows, reaches R (default {DEFAULT_TARGET_RECALL})")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(command=_build)


def _build(args: argparse.Namespace) -> int:
    name = build_index(args.run, args.out, factory=args.factory, neighbours_k=args.neighbours_k,
                       link_movies_k=args.link_movies_k,
                       target_recall=args.target_recall, progress=not args.quiet)
    indexes = IndexManifest.load(version_dir(args.out, name)).indexes
    print(f"built index version {name}")
    for what, d in indexes.items():
        measured = ""
        if d.recall_at_10 is not None:
            setting = ", ".join(f"{key} {value}" for key, value in d.search_params.items())
            measured = f", {setting}: recall@10 {d.recall_at_10:.3f} against exact search"
            if d.cross_recall_at_10 is not None:
                measured += f", {d.cross_recall_at_10:.3f} asked by {'links' if what == 'movies' else 'movies'}"
            if d.own_search_params:
                own = ", ".join(f"{key} {value}" for key, value in d.own_search_params.items())
                measured += f"; its own rows reach {d.own_recall_at_10:.3f} at {own}"
        print(f"  {what + ':':<7} {d.size} x {d.dim} ({d.type}, factory {d.factory!r}{measured})")
    print(f"published: {Path(args.out) / CURRENT} -> {version_dir(args.out, name)}")
    return 0


def _update_command(commands: argparse._SubParsersAction) -> None:
    update = commands.add_parser("update", help="fold new and changed films into the CURRENT version, drop removed "
                                                "ones, publish the result as a new version")
    update.add_argument("index_root", metavar="INDEX_ROOT", help="index root (`indexer build --out`)")
    update.add_argument("--data", required=True, metavar="FILE",
                        help="film records (.ndjson) of the films new or whose links changed "
                             "(`collector collect --changed-since` writes them)")
    update.add_argument("--remove", metavar="TITLES_FILE", help="titles to drop, one a line (`collector collect "
                                                                "--removed-out` writes them)")
    update.add_argument("--target-recall", type=float, default=DEFAULT_TARGET_RECALL, metavar="R",
                        help=f"approximate indexes: the search setting's recall target (default {DEFAULT_TARGET_RECALL})")
    update.add_argument("--quiet", action="store_true", help="no progress bars")
    update.set_defaults(command=_update)


def _update(args: argparse.Namespace) -> int:
    from movielinks.indexer.update import update_index

    done = update_index(args.index_root, args.data, remove=args.remove, target_recall=args.target_recall,
                        progress=not args.quiet)
    print(f"updated index version {done.base} -> {done.version} in {done.seconds:.1f} s: {done.new} films new, "
          f"{done.changed} changed (folded in), {done.removed} removed; {done.movies} movies; "
          f"{done.unknown_links} link occurrences unknown to the version, ignored")
    print(f"published: {Path(args.index_root) / CURRENT} -> {version_dir(args.index_root, done.version)}")
    return 0


def _list_command(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list the versions of an index root, * marks CURRENT")
    listing.add_argument("index_root", metavar="INDEX_ROOT", help="index root (`indexer build --out`)")
    listing.set_defaults(command=_list)


def _list(args: argparse.Namespace) -> int:
    root = Path(args.index_root)
    if not versions_dir(root).is_dir():
        raise IndexerError(f"{root}: not an index root (no {VERSIONS}/ directory); create one with `indexer build`")
    try:
        current = current_version_name(root)
    except IndexerError:
        current = None
    versions = list_versions(root)
    for name in versions:
        print(f"{'*' if name == current else ' '} {name}  {_summary(version_dir(root, name))}")
    if not versions:
        print(f"no index versions under {root}")
    if current is not None and current not in versions:
        print(f"indexer: warning: {CURRENT} names {current}, which is missing", file=sys.stderr)
    return 0


def _summary(path: Path) -> str:
    try:
        manifest = IndexManifest.load(path)
    except IndexerError as e:
        return f"(unreadable: {e})"
    movies, links = manifest.indexes["movies"], manifest.indexes["links"]
    return (
        f"movies={movies.size} links={links.size} dim={movies.dim} "
        f"factory={movies.factory!r} created={manifest.created_at}"
    )


def _prune_command(commands: argparse._SubParsersAction) -> None:
    pruning = commands.add_parser("prune", help="remove the oldest versions, never CURRENT or newer")
    pruning.add_argument("index_root", metavar="INDEX_ROOT", help="index root (`indexer build --out`)")
    pruning.add_argument("--keep", type=int, required=True, metavar="N", help="how many of the newest versions to keep")
    pruning.set_defaults(command=_prune)


def _prune(args: argparse.Namespace) -> int:
    removed = prune(args.index_root, args.keep)
    for name in removed:
        print(f"removed {name}")
    if not removed:
        print("nothing to prune")
    return 0


def _export_command(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="write every movie's k most similar movies, or the vectors, to a file")
    export.add_argument("index", metavar="INDEX", help="index root (exports its CURRENT) or a version directory")
    export.add_argument("-k", "--k", type=positive_int, default=10, help="neighbours per movie, 1..1000 (default 10)")
    export.add_argument("--out", required=True, metavar="FILE",
                        help="output file: .csv, .jsonl or .parquet (neighbours); .npy or .parquet (--vectors)")
    export.add_argument("--vectors", nargs="?", const="movies", choices=VECTOR_KINDS, metavar="movies|links",
                        help="write the unit vectors (movies, the default, or links) instead of neighbours: .npy "
                             "(float32, row i = id i, names in FILE.json beside it) or .parquet (name, vector)")
    export.add_argument("--batch-size", type=int, default=4096, help="movies searched at a time (default 4096)")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(command=_export)


def _export(args: argparse.Namespace) -> int:
    exit_cleanly_on_sigterm()  # a stopped export leaves no temporary file behind
    version = load_index(args.index)
    if args.vectors:
        rows = export_vectors(version, args.vectors, args.out)
        names = f", names in {vector_names_path(args.out)}" if Path(args.out).suffix.lower() == ".npy" else ""
        print(f"wrote {rows} {args.vectors} vectors of dimension {version.dim} from version {version.name} "
              f"to {args.out}{names}")
        return 0
    rows = export_neighbours(version, args.k, args.out, batch_size=args.batch_size, progress=not args.quiet)
    print(f"wrote {rows} rows ({len(version.movies)} movies, k={args.k}) from version {version.name} to {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("indexer", "Build, update, publish and export FAISS index versions.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for add_command in (_build_command, _update_command, _list_command, _prune_command, _export_command):
        add_command(commands)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
