"""`client` command: query a movielinks server from the shell.

    client query --movie "Interstellar (film)" [-k 10]
    client query --link "George Lucas"
    client links --movie TITLE          client movies --link NAME
    client recommend --like A --like B --dislike C [-k 10] [--worst 5]
    client predict --movie TITLE --attribute rotten_tomatoes
    client export --k 10 --out neighbours.parquet
    client info                         client lookup TITLE
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from client.client import (SERVER_ENV, TOKEN_ENV, ClientError, Info, MovielinksClient, Neighbours, Prediction,
                           Recommendation, TitleMatch)
from common.signals import exit_cleanly_on_sigterm

EPILOG = f"""\
The server is --server HOST:PORT, else ${SERVER_ENV}, else 127.0.0.1:50051.
A token comes from --token-file or ${TOKEN_ENV}.
Exit codes: 0 done; 1 the call failed (unknown title or link, server not
reachable, deadline passed, file not writable, ...); 2 bad usage or a request
the server calls invalid (k out of range, a title both liked and disliked, ...);
130 interrupted. Errors are one line on stderr: "client: error: ...".
"""


@dataclasses.dataclass(frozen=True)
class Exported:
    """What `client export` wrote."""

    out: str
    rows: int


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        token = _token(args.token_file)
        with MovielinksClient(args.server, timeout_s=args.timeout, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                              tls_key=args.tls_key, token=token) as movielinks:
            result = args.command(movielinks, args)
    except ClientError as e:
        _error(e.message)
        return 2 if e.code == "INVALID_ARGUMENT" else 1
    except OSError as e:
        _error(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        print(json.dumps(_plain(result), ensure_ascii=False, indent=1) if args.json else render(result), flush=True)
    except BrokenPipeError:  # `client ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
    return 0


def _error(message: str) -> None:
    # One line, whatever the server put in its message, so scripts can read it.
    print("client: error: " + " ".join(message.splitlines()), file=sys.stderr)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number of seconds")
    return seconds


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the same one line as every other error."""

    def error(self, message: str):
        _error(f"{message} (see `{self.prog} --help`)")
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="client", description="Ask a movielinks server.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", help="HOST:PORT of the server")
    parser.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    parser.add_argument("--timeout", type=_seconds, default=30.0, help="seconds a call may take (default 30)")
    parser.add_argument("--tls-ca", help="CA certificate (PEM) that signed the server's: use TLS")
    parser.add_argument("--tls-cert", help="client certificate (PEM), for servers that require one")
    parser.add_argument("--tls-key", help="client certificate's private key (PEM)")
    parser.add_argument("--token-file", help=f"file holding the bearer token (default: ${TOKEN_ENV})")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    query = commands.add_parser("query", help="similar movies (--movie) or similar links (--link)")
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("--movie", help="movie title")
    what.add_argument("--link", help="link name")
    query.add_argument("-k", "--k", type=int, default=10, help="how many (default 10)")
    query.set_defaults(
        command=lambda c, a: c.similar_movies(a.movie, a.k) if a.movie is not None else c.similar_links(a.link, a.k)
    )

    links = commands.add_parser("links", help="links that characterise a movie")
    links.add_argument("--movie", required=True)
    links.add_argument("-k", "--k", type=int, default=10)
    links.set_defaults(command=lambda c, a: c.movie_links(a.movie, a.k))

    movies = commands.add_parser("movies", help="movies for a link")
    movies.add_argument("--link", required=True)
    movies.add_argument("-k", "--k", type=int, default=10)
    movies.set_defaults(command=lambda c, a: c.link_movies(a.link, a.k))

    recommend = commands.add_parser("recommend", help="movies ranked by an SVM on liked and disliked movies")
    recommend.add_argument("--like", action="append", required=True, help="a liked title (repeat)")
    recommend.add_argument("--dislike", action="append", default=[], help="a disliked title (repeat)")
    recommend.add_argument("-k", "--k", type=int, default=10)
    recommend.add_argument("--worst", type=int, default=0, help="also the N worst")
    recommend.set_defaults(command=lambda c, a: c.recommend(a.like, a.dislike, a.k, a.worst))

    predict = commands.add_parser("predict", help="predict an attribute from a movie's embedding")
    predict.add_argument("--movie", required=True)
    predict.add_argument("--attribute", required=True, help="e.g. rotten_tomatoes, gross, budget")
    predict.set_defaults(command=lambda c, a: c.predict_attribute(a.movie, a.attribute))

    export = commands.add_parser("export", help="every movie's top-k neighbours to .csv, .jsonl or .parquet")
    export.add_argument("--k", type=int, default=10)
    export.add_argument("--out", required=True)
    export.set_defaults(command=_export)

    info = commands.add_parser("info", help="the served index: version, sizes, metrics, limits")
    info.set_defaults(command=lambda c, a: c.info())

    lookup = commands.add_parser("lookup", help="which catalogue title a name resolves to")
    lookup.add_argument("title")
    lookup.set_defaults(command=lambda c, a: c.lookup_title(a.title))
    return parser


def _export(movielinks: MovielinksClient, args: argparse.Namespace) -> Exported:
    exit_cleanly_on_sigterm()  # a stopped export leaves no temporary file behind
    # No deadline: --timeout is for single calls, an export takes as long as the catalogue needs.
    return Exported(args.out, movielinks.export_to_file(args.out, args.k, progress=not args.json, timeout_s=None))


def _token(token_file: str | None) -> str | None:
    if not token_file:
        return None
    token = Path(token_file).read_text(encoding="utf-8").strip()
    if not token:
        raise ClientError("INVALID_ARGUMENT", f"{token_file} is empty")
    return token


def render(result: Any) -> str:
    """A result as aligned text for people."""
    if isinstance(result, Neighbours):
        rows = [(str(i), n.name, f"{n.score:.4f}") for i, n in enumerate(result.neighbours, 1)]
        return f"{result.query}   (index {result.index_version})\n" + table(("#", "name", "cosine"), rows)
    if isinstance(result, Recommendation):
        text = _scored_table("recommended", result.best)
        return (text + "\n\n" + _scored_table("least liked", result.worst)) if result.worst else text
    if isinstance(result, Prediction):
        known = "unknown" if result.known is None else f"{result.known:.4g}"
        return (f"{result.title}: {result.attribute} predicted {result.predicted:.4g} {result.unit} (known: {known})\n"
                f"model held-out MSE {result.heldout_mse:.4g} vs {result.baseline_mse:.4g} "
                "for always predicting the mean")
    if isinstance(result, TitleMatch):
        return f"{result.title}   ({result.match} match)"
    if isinstance(result, Info):
        lines = [f"{field.name}: {_text(getattr(result, field.name))}" for field in dataclasses.fields(result)
                 if field.name not in ("dataset", "metrics")]
        # Per-epoch histories and nested tables would flood the screen; --json has them all.
        metrics = {k: v for k, v in result.metrics.items() if not isinstance(v, (list, dict))}
        return "\n".join(lines + [f"dataset: {json.dumps(result.dataset)}", f"metrics: {json.dumps(metrics)}"])
    if isinstance(result, Exported):
        return f"wrote {result.rows} rows to {result.out}"
    raise TypeError(f"no text form for {type(result).__name__}")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, numbers (the last column) right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    def line(row):
        cells = [c.ljust(w) if i < len(row) - 1 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()
    return "\n".join([line(header)] + [line(r) for r in rows])


def _scored_table(heading: str, movies: list) -> str:
    return table(("#", heading, "decision"), [(str(i), m.title, f"{m.decision_value:.4f}") for i, m in enumerate(movies, 1)])


def _text(value: Any) -> str:
    return (", ".join(map(str, value)) or "none") if isinstance(value, list) else str(value)


def _plain(result: Any) -> Any:
    return dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result


if __name__ == "__main__":
    sys.exit(main())
