"""`collector` command line: a thin layer over collector.collect and collector.fetch.

    collector fetch WIKI DATE [--cache DIR] [--base-url URL]
    collector collect INPUT --out films.ndjson [--workers N | --scheduler ADDRESS] [--strict]
                      [--titles FILE | --changed-since OLDER.ndjson [--removed-out FILE]]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from movielinks.collector.record import CollectorError
from movielinks.common.about import package_version
from movielinks.common.commands import closed_pipe_is_a_normal_end


@closed_pipe_is_a_normal_end
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except CollectorError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("collector: interrupted; nothing was written under the output name", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collector", description="Film records from Wikipedia dumps or pages.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    collect = commands.add_parser("collect", help="read a dump or saved pages, write one film record a line")
    collect.set_defaults(command=_collect)
    collect.add_argument("input", help="pages-articles .xml / .xml.bz2 (multistream with its index: in parallel), "
                                       "or a directory / .tar.gz of saved HTML pages (rendered or Parsoid)")
    collect.add_argument("--out", required=True, help="output file, .ndjson or .ndjson.gz")
    collect.add_argument("--index", help="the multistream index (default: the -index.txt.bz2 beside the dump)")
    collect.add_argument("--workers", type=int, help="local worker processes (default: every core)")
    collect.add_argument("--scheduler", help="address of a Dask scheduler (tcp://HOST:PORT) to run on its "
                                             "workers; they must see INPUT at the same path")
    collect.add_argument("--no-resolve-redirects", dest="resolve", action="store_false",
                         help="keep link targets that are redirects as written")
    collect.add_argument("--strict", action="store_true", help="stop at the first bad page or stream")
    collect.add_argument("--every-page", action="store_true",
                         help="HTML input: keep pages without a film infobox too (a collection picked by hand)")
    collect.add_argument("--chunk-mb", type=float, default=8.0,
                         help="input megabytes per unit of work (default 8)")
    collect.add_argument("--titles", metavar="FILE",
                         help="write only the films of these page titles (one a line)")
    collect.add_argument("--changed-since", metavar="OLDER.ndjson",
                         help="an older output of this command: write only the films new since it or whose links "
                              "changed (for `indexer update`)")
    collect.add_argument("--removed-out", metavar="FILE",
                         help="with --changed-since: write the titles the older output has and INPUT lacks, one a "
                              "line (for `indexer update --remove`)")
    collect.add_argument("--json", action="store_true", help="print the summary as JSON")

    fetch = commands.add_parser("fetch", help="download a wiki's multistream dump and its index, verified")
    fetch.set_defaults(command=_fetch)
    fetch.add_argument("wiki", help="enwiki, dewiki, ...")
    fetch.add_argument("date", help="the dump's date, YYYYMMDD (or latest)")
    fetch.add_argument("--cache", help="cache directory (default: $MOVIELINKS_CACHE or ~/.cache/movielinks)")
    fetch.add_argument("--base-url", help="mirror (default: $MOVIELINKS_FETCH_BASE_URL or dumps.wikimedia.org)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _collect(args: argparse.Namespace) -> int:
    from movielinks.collector.collect import collect
    from movielinks.common.files import text_lines

    if args.workers is not None and args.workers < 1:
        raise CollectorError(f"--workers {args.workers}: give 1 or more")
    summary = collect(args.input, args.out, index=args.index, workers=args.workers, scheduler=args.scheduler,
                      resolve=args.resolve, strict=args.strict, every_page=args.every_page,
                      chunk_bytes=max(1, int(args.chunk_mb * (1 << 20))),
                      titles=text_lines(args.titles, CollectorError, "the titles file") if args.titles else None, changed_since=args.changed_since,
                      removed_out=args.removed_out)
    if args.json:
        print(json.dumps(dataclasses.asdict(summary), indent=1))
    else:
        print("\n".join(summary.lines()), file=sys.stderr)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from movielinks.collector.fetch import fetch_dump

    dump, index = fetch_dump(args.wiki, args.date, args.cache, args.base_url, progress=not args.quiet)
    print(dump)
    print(index)
    return 0
