"""`client` command: query a movielinks server from the shell.

    client query --movie "Interstellar (film)" [-k 10] [--reasons 3] [filters]
    client query --link "George Lucas"
    client query --links "Christopher Nolan" "Science Fiction" [-k 10] [--reasons 3] [filters]
    client query --vector v.npy [-k 10] [filters]      (a .npy of one vector, or a .json list of numbers)
    client why "Star Wars (film)" "Alien (film)"
    client why "Inception" --links-b "Christopher Nolan" "Leonardo DiCaprio"
    client links --movie TITLE          client links --search TEXT
    client movies --link NAME [filters]
    client recommend --like A --like B --dislike C [--like-link "George Lucas"] [--strategy svm] [-k 10] [--worst 5]
    client recommend --like-film "Christopher Nolan" "Hans Zimmer" [--dislike-film LINK ...]
    client recommend --like-vector mine.npy [--dislike-vector theirs.json ...]
    client vectors "Alien (film)" [--links "George Lucas"] [--film LINK LINK ...] [--out vectors.npy]
    filters: --from-year Y --to-year Y --must-link NAME --exclude TITLE --exclude-franchise
    client predict --movie TITLE --attribute rotten_tomatoes
    client export -k 10 --out neighbours.parquet [--quiet]
    client info                         client lookup TITLE
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from movielinks.client.client import (SERVER_ENV, TOKEN_ENV, ClientError, Explanation, Info, MovieFilter, MovielinksClient,
                           Neighbour, Neighbours, Prediction, Recommendation, SharedLink, TitleMatch, Vectors)
from movielinks.common.commands import closed_pipe_is_a_normal_end, command_parser, positive_int
from movielinks.client.vector_files import VECTOR_FILE_SUFFIXES, VectorFileError, read_vector
from movielinks.common.files import atomic_file, atomic_write_bytes
from movielinks.common.answers import no_better_than_mean
from movielinks.common.signals import exit_cleanly_on_sigterm

EPILOG = f"""\
The server is --server HOST:PORT, else ${SERVER_ENV}, else 127.0.0.1:50051.
Several replicas: --server 10.0.0.1:50051,10.0.0.2:50051 (IP addresses), or one
DNS name with a record per replica (movielinks.internal:50051); calls are spread
round robin over the replicas that are up and healthy, and a call that finds one
down is retried on another.
A token comes from --token-file or ${TOKEN_ENV}.
Exit codes: 0 done; 1 the call failed (unknown title or link, server not
reachable, deadline passed, file not writable, ...); 2 bad usage or a request
the server calls invalid (k out of range, a title both liked and disliked, ...);
130 interrupted. Errors are one line on stderr: "client: error: ...".
"""


@dataclasses.dataclass(frozen=True)
class NameList:
    """What `client links --search` found."""

    text: str
    kind: str
    names: list[str]
    total: int


@dataclasses.dataclass(frozen=True)
class VectorsWritten:
    """What `client vectors --out` wrote: `rows` vectors of `dim` values to `out` (and `names`)."""

    out: str
    names: str
    rows: int
    dim: int
    index_version: str


@dataclasses.dataclass(frozen=True)
class Exported:
    """What `client export` wrote."""

    out: str
    rows: int


@closed_pipe_is_a_normal_end
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):  # `client` alone: what it can do
        parser.print_help()
        return 0
    _check_usage(parser, args)
    try:
        token = _token(args.token_file)
        with MovielinksClient(args.server, timeout_s=args.timeout, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                              tls_key=args.tls_key, tls_server_name=args.tls_server_name, token=token,
                              wait_for_ready=args.wait_for_ready) as movielinks:
            result = args.command(movielinks, args)
        for typed, used in _resolved(args, result):
            if typed != used:
                print(f"client: using {used!r} for {typed!r}", file=sys.stderr)
    except ClientError as e:
        _error(e.message)
        return 2 if e.code == "INVALID_ARGUMENT" else 1
    except OSError as e:
        _error(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps(_plain(result), ensure_ascii=False, indent=1) if args.json else render(result))
    return 0


def _check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say about a command's arguments, said (as the command's usage error) before any call."""
    command = getattr(args, "command", None)
    if command is _recommend and not (args.like or args.like_link or args.like_film or args.like_vector):
        _subparser(parser, "recommend").error("recommend needs at least one --like TITLE, --like-link LINK, "
                                              "--like-film LINK [LINK ...] or --like-vector FILE")
    if command is _why and (args.title_b is None) == (args.links_b is None):
        _subparser(parser, "why").error("why needs B as a title or as --links-b LINK [LINK ...], one of them")
    if command is _vectors:
        if not (args.titles or args.links or args.film):
            _subparser(parser, "vectors").error("vectors needs at least one TITLE, --links LINK or --film LINK [LINK ...]")
        if args.out is not None and Path(args.out).suffix.lower() not in VECTOR_FILE_SUFFIXES:
            _subparser(parser, "vectors").error(
                f"--out {args.out}: the suffix picks the format, one of {', '.join(VECTOR_FILE_SUFFIXES)}")


@dataclasses.dataclass(frozen=True)
class VectorFile:
    """A vector given as a file on the command line: its path and its values."""

    path: str
    values: list[float]


def _vector_file(path: str) -> VectorFile:
    """argparse's type for --vector, --like-vector and --dislike-vector: the file read and checked
    (client.vector_files), any problem a one-line usage error naming the file."""
    try:
        return VectorFile(path, read_vector(path))
    except VectorFileError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _vector_files_named(error: ClientError, files: dict[str, str]) -> ClientError:
    """The server's error with each request field that held a file's vector (`vector`,
    `liked_vectors[1]`) named as the option and file it came from."""
    message = error.message
    for field, option in files.items():
        if message.startswith(field + " "):
            message = option + message[len(field):]
    return ClientError(error.code, message)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


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


def _global_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, defaults: bool) -> None:
    """The options every command takes, before or after its name (after it, they override nothing unless given)."""
    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--server", default=default(None),
                        help=f"HOST[:PORT] of the server, or of several replicas: IP:PORT,IP:PORT,... or a DNS "
                             f"name resolving to them all (default: ${SERVER_ENV}, else 127.0.0.1:50051; a missing "
                             "port means 50051)")
    parser.add_argument("--json", action="store_true", default=default(False), help="JSON on stdout instead of a table")
    parser.add_argument("--timeout", type=_seconds, default=default(30.0), help="seconds a call may take (default 30)")
    parser.add_argument("--wait-for-ready", action="store_true", default=default(False),
                        help="wait (up to --timeout) for a server that is not up yet instead of failing at once")
    parser.add_argument("--tls-ca", default=default(None), help="CA certificate (PEM) that signed the server's: use TLS")
    parser.add_argument("--tls-cert", default=default(None), help="client certificate (PEM), for servers that require one")
    parser.add_argument("--tls-key", default=default(None), help="client certificate's private key (PEM)")
    parser.add_argument("--tls-server-name", default=default(None), metavar="NAME",
                        help="the name the server's certificate must carry, instead of the --server host (needed "
                             "with several IP addresses: every replica's certificate carries NAME)")
    parser.add_argument("--token-file", default=default(None),
                        help=f"file holding the bearer token (default: ${TOKEN_ENV})")


def _k(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-k", "--k", type=positive_int, default=10, help=f"how many {what} (default 10)")


def _filter_options(parser: argparse.ArgumentParser, *, franchise: bool = True) -> None:
    group = parser.add_argument_group("filters (every one must hold)")
    group.add_argument("--from-year", type=int, default=0, metavar="YEAR", help="released in YEAR or later")
    group.add_argument("--to-year", type=int, default=0, metavar="YEAR", help="released in YEAR or earlier")
    group.add_argument("--must-link", action="append", default=[], metavar="LINK",
                       help='only films whose article links to LINK, e.g. "Science Fiction" (repeat: all of them)')
    group.add_argument("--exclude", action="append", default=[], metavar="TITLE", help="never this title (repeat)")
    if franchise:
        group.add_argument("--exclude-franchise", action="store_true",
                           help='leave out the query\'s own franchise ("Toy Story 2" for "Toy Story")')
    diverse = parser.add_argument_group("a diverse list")
    diverse.add_argument("--max-per-franchise", type=int, default=0, metavar="N",
                         help="at most N films of one franchise (default 0: no cap)")
    diverse.add_argument("--diversity", type=float, default=0.0, metavar="W",
                         help="0..1: pick the answer by maximal marginal relevance, W weighing novelty against "
                              "score (default 0: by score alone)")


def _movie_filter(args: argparse.Namespace) -> MovieFilter | None:
    found = MovieFilter(args.from_year, args.to_year, tuple(args.must_link), tuple(args.exclude),
                        getattr(args, "exclude_franchise", False), getattr(args, "max_per_franchise", 0),
                        getattr(args, "diversity", 0.0))
    return None if found == MovieFilter() else found


def _reasons_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reasons", type=int, default=0, metavar="N",
                        help="with each movie, the N links it shares with the query (default 0: none)")


def _resolved(args: argparse.Namespace, result: Any) -> list[tuple[str, str]]:
    """(what was typed, the title the server used) for each title of the command."""
    if isinstance(result, Neighbours) and getattr(args, "movie", None) is not None:
        return [(args.movie, result.query)]
    if isinstance(result, Recommendation):
        return list(zip(args.like or [], result.liked_resolved)) + list(zip(args.dislike, result.disliked_resolved))
    if isinstance(result, Explanation):
        return [(args.title_a, result.a.name)] + ([(args.title_b, result.b.name)] if args.title_b is not None else [])
    if isinstance(result, Vectors):
        return list(zip(args.titles, result.movies.names))
    return []


def _command(commands, name: str, summary: str, examples: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=summary, description=summary, epilog="examples:\n" + examples,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("client", "Ask a movielinks server.", _Parser, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, defaults=True)
    commands = parser.add_subparsers(metavar="COMMAND", parser_class=_Parser)
    for add_command in (_query_command, _why_command, _links_command, _movies_command, _recommend_command,
                        _vectors_command, _predict_command, _export_command, _info_command, _lookup_command):
        add_command(commands)
    # Last in each command's --help, after the command's own options: a reader looks for those first.
    for command in commands.choices.values():
        _global_options(command.add_argument_group("connection and output (also accepted before the command)"),
                        defaults=False)
    return parser


def _query_command(commands: argparse._SubParsersAction) -> None:
    query = _command(commands, "query", "similar movies (--movie) or similar links (--link)",
                     '  client query --movie "Interstellar (film)" -k 5\n'
                     '  client query --link "George Lucas" --json\n'
                     '  client query --links "Christopher Nolan" "Science fiction film" "Hans Zimmer"\n'
                     '  client query --vector mine.npy --from-year 2000   # or a .json list of numbers')
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("--movie", help="movie title (exact, any case, without \"(film)\" or a leading article, cut "
                                      "short; another spelling gets the close titles to choose from)")
    what.add_argument("--link", help="link name, exact or any case (`client links --search TEXT` finds names)")
    what.add_argument("--links", nargs="+", metavar="LINK",
                      help="films like a set of links (a film the index may never have seen, folded in); "
                           "unknown links are ignored and listed")
    what.add_argument("--vector", type=_vector_file, metavar="FILE",
                      help="films like a vector of the index's space: a .npy of one vector (as `client vectors "
                           "NAME --out FILE.npy` writes) or a .json list of numbers, of the served version's "
                           "dimensions (any length: the server normalises it)")
    _k(query, "results")
    _reasons_option(query)
    _filter_options(query)
    query.set_defaults(command=_query)


def _query(movielinks: MovielinksClient, args: argparse.Namespace) -> Neighbours:
    if args.movie is not None:
        return movielinks.similar_movies(args.movie, args.k, filter=_movie_filter(args), reasons=args.reasons)
    if args.links is not None:
        return movielinks.similar_to_links(args.links, args.k, filter=_movie_filter(args), reasons=args.reasons)
    if args.vector is not None:
        if args.reasons or getattr(args, "exclude_franchise", False):
            raise ClientError("INVALID_ARGUMENT", "--reasons and --exclude-franchise need a film: --vector has no links "
                                                  "and no franchise")
        try:
            return movielinks.similar_to_vector(args.vector.values, args.k, filter=_movie_filter(args))
        except ClientError as e:
            raise _vector_files_named(e, {"vector": f"--vector {args.vector.path}"}) from None
    if _movie_filter(args) is not None or args.reasons:
        raise ClientError("INVALID_ARGUMENT", "filters and --reasons apply to --movie, --links and --vector, not to "
                                              "--link")
    return movielinks.similar_links(args.link, args.k)


def _why_command(commands: argparse._SubParsersAction) -> None:
    why = _command(commands, "why", "why two movies are alike: the links both articles have, largest contribution "
                                    "first, and the cosine of their vectors",
                   '  client why "Star Wars (film)" "Alien (film)"\n'
                   '  client why Godfather "The Godfather Part II" -k 5 --json\n'
                   '  client why Inception --links-b "Christopher Nolan" "Leonardo DiCaprio"   # B: a film by its links')
    why.add_argument("title_a", metavar="A", help="a movie title")
    why.add_argument("title_b", metavar="B", nargs="?", help="another movie title (or --links-b instead)")
    why.add_argument("--links-b", nargs="+", metavar="LINK",
                     help="B as the film these links describe (one the index may never have seen, folded in); "
                          "unknown links are ignored, none known is an error")
    _k(why, "shared links")
    why.set_defaults(command=_why)


def _why(movielinks: MovielinksClient, args: argparse.Namespace) -> Explanation:
    return movielinks.explain_similarity(args.title_a, args.title_b or "", args.k, links_b=args.links_b or ())


def _links_command(commands: argparse._SubParsersAction) -> None:
    links = _command(commands, "links", "links that characterise a movie (--movie), or link names containing a "
                                        "text (--search)",
                     '  client links --movie "The Martian (film)"\n'
                     '  client links --search fic          # link names containing "fic"')
    which = links.add_mutually_exclusive_group(required=True)
    which.add_argument("--movie", help="movie title")
    which.add_argument("--search", metavar="TEXT", help="list link names containing TEXT (any case), prefix matches "
                                                        "first")
    _k(links, "links")
    links.set_defaults(command=lambda c, a: c.nearest_links(a.movie, a.k) if a.movie is not None
                       else NameList(a.search, "link", *c.search_names(a.search, links=True, limit=a.k)))


def _movies_command(commands: argparse._SubParsersAction) -> None:
    movies = _command(commands, "movies", "movies nearest to a link's vector",
                      '  client movies --link "Science Fiction" -k 20')
    movies.add_argument("--link", required=True, help="link name, exact or any case")
    _k(movies, "movies")
    _filter_options(movies, franchise=False)
    movies.set_defaults(command=lambda c, a: c.link_movies(a.link, a.k, filter=_movie_filter(a)))


def _recommend_command(commands: argparse._SubParsersAction) -> None:
    recommend = _command(commands, "recommend", "movies for liked and disliked movies and links (by their nearest "
                                                "neighbours by default)",
                         '  client recommend --like "Star Wars (film)" --like "Alien (film)" --dislike "Get Hard"\n'
                         '  client recommend --like-link "George Lucas" --strategy best_score --reasons 3\n'
                         '  client recommend --like "Heat (1995 film)" --worst 5 --from-year 1990\n'
                         '  client recommend --like-film "Christopher Nolan" "Hans Zimmer" --like-film "Ridley Scott" '
                         '--dislike "Get Hard"\n'
                         '  client recommend --like-vector mine.npy --dislike-vector theirs.json --like Jaws')
    recommend.add_argument("--like", action="append", default=[], metavar="TITLE", help="a liked title (repeat)")
    recommend.add_argument("--dislike", action="append", default=[], metavar="TITLE",
                           help="a disliked title (repeat)")
    recommend.add_argument("--like-link", action="append", default=[], metavar="LINK",
                           help='a liked link, e.g. "George Lucas" (repeat)')
    recommend.add_argument("--dislike-link", action="append", default=[], metavar="LINK", help="a disliked link (repeat)")
    recommend.add_argument("--like-film", action="append", nargs="+", default=[], metavar="LINK",
                           help="a liked film given by its links (one the index may never have seen, folded in); "
                                "repeat the option for another film; unknown links are ignored")
    recommend.add_argument("--dislike-film", action="append", nargs="+", default=[], metavar="LINK",
                           help="a disliked film given by its links (repeat for another film)")
    recommend.add_argument("--like-vector", action="append", type=_vector_file, default=[], metavar="FILE",
                           help="a liked vector of the index's space: a .npy of one vector or a .json list of "
                                "numbers, as for `query --vector` (repeat)")
    recommend.add_argument("--dislike-vector", action="append", type=_vector_file, default=[], metavar="FILE",
                           help="a disliked vector, in a file as for --like-vector (repeat)")
    recommend.add_argument("--strategy", default="",
                           help="neighbours (the server's default: the liked films' nearest neighbours, with the era "
                                "and how well known a film is), svm (a linear SVM's decision value over the films' vectors, "
                                "prominence and era), average_vector "
                                "or best_score (as Qdrant defines them); the answer says what its score means")
    _k(recommend, "recommendations")
    recommend.add_argument("--worst", type=int, default=0, metavar="N", help="also the N least liked (default 0)")
    _reasons_option(recommend)
    _filter_options(recommend)
    recommend.set_defaults(command=_recommend)


def _recommend(movielinks: MovielinksClient, args: argparse.Namespace) -> Recommendation:
    try:
        return movielinks.recommend(args.like, args.dislike, args.k, args.worst, strategy=args.strategy,
                                    liked_links=args.like_link, disliked_links=args.dislike_link,
                                    liked_films=args.like_film, disliked_films=args.dislike_film,
                                    liked_vectors=[v.values for v in args.like_vector],
                                    disliked_vectors=[v.values for v in args.dislike_vector],
                                    filter=_movie_filter(args), reasons=args.reasons)
    except ClientError as e:
        files = {f"{field}[{i}]": f"{option} {v.path}" for field, option, given in (
            ("liked_vectors", "--like-vector", args.like_vector), ("disliked_vectors", "--dislike-vector",
                                                                     args.dislike_vector)) for i, v in enumerate(given)}
        raise _vector_files_named(e, files) from None


def _vectors_command(commands: argparse._SubParsersAction) -> None:
    vectors = _command(commands, "vectors", "the unit vectors of movies, links and films given by their links, in "
                                            "the served index's space (needs numpy: pip install 'movielinks[vectors]')",
                       '  client vectors "Interstellar (film)" "Alien (film)" --json\n'
                       '  client vectors --links "George Lucas" "Science Fiction" --out links.npy   # names in links.json\n'
                       '  client vectors --film "Christopher Nolan" "Hans Zimmer" --film "Ridley Scott" --out films.json')
    vectors.add_argument("titles", nargs="*", metavar="TITLE", help="movie titles (resolved as `client lookup` does)")
    vectors.add_argument("--links", nargs="+", default=[], metavar="LINK", help="link names, exact or any case")
    vectors.add_argument("--film", action="append", nargs="+", default=[], metavar="LINK",
                         help="a film given by its links, folded in (repeat the option for another film); unknown "
                              "links are ignored and listed")
    vectors.add_argument("--out", metavar="FILE",
                         help="write them to FILE instead of stdout: .npy (float32, movies then links then films, "
                              "names and version in FILE.json beside it, as `indexer export --vectors` writes) or "
                              ".json (what --json prints)")
    vectors.set_defaults(command=_vectors)


def _vectors(movielinks: MovielinksClient, args: argparse.Namespace) -> Vectors | VectorsWritten:
    found = movielinks.get_vectors(args.titles, args.links, args.film)
    return found if args.out is None else write_vectors(found, args.out)


def write_vectors(found: Vectors, out: str) -> VectorsWritten:
    """`found` to `out`: .npy (rows: movies, links, films; FILE.json: version, dim, names, kinds,
    unknown links) or .json (the --json form)."""
    import numpy as np  # get_vectors has already needed it

    # Each file is written beside itself and renamed into place (common.files.atomic_file), as `indexer
    # export --vectors` does: a failed write (a full disk, Ctrl-C) leaves the old file or none, never half of one.
    path = Path(out)
    parts = [("movie", found.movies), ("link", found.links), ("film", found.films)]
    if path.suffix.lower() == ".json":
        atomic_write_bytes(path, (json.dumps(_vectors_plain(found), ensure_ascii=False, indent=1) + "\n").encode())
        names = str(path)
    else:
        rows = np.concatenate([p.vectors for _, p in parts]).astype("<f4")
        names_path = path.with_suffix(".json")
        with atomic_file(path) as f:  # np.save(path) would add .npy to a name ending in .NPY
            np.save(f, rows)
        atomic_write_bytes(names_path, json.dumps({
            "version": found.index_version, "dim": found.dim,
            "names": [n for _, p in parts for n in p.names], "kinds": [k for k, p in parts for _ in p.names],
            "unknown_links": [u for _, p in parts for u in p.unknown_links]}, ensure_ascii=False).encode())
        names = str(names_path)
    total = sum(len(p.names) for _, p in parts)
    return VectorsWritten(str(path), names, total, found.dim, found.index_version)


def _predict_command(commands: argparse._SubParsersAction) -> None:
    predict = _command(commands, "predict", "predict an attribute from a movie's embedding",
                       '  client predict --movie "Jaws (film)" --attribute rotten_tomatoes\n'
                       '  client predict --movie "Avatar (2009 film)" --attribute gross')
    predict.add_argument("--movie", required=True, help="movie title")
    predict.add_argument("--attribute", required=True, help="rotten_tomatoes, gross or budget (`client info` lists "
                                                            "what the index predicts)")
    predict.set_defaults(command=lambda c, a: c.predict_attribute(a.movie, a.attribute))


def _export_command(commands: argparse._SubParsersAction) -> None:
    export = _command(commands, "export", "every movie's top-k neighbours to .csv, .jsonl or .parquet",
                      "  client export -k 10 --out neighbours.parquet\n"
                      "  client export -k 5 --out n.csv --quiet")
    _k(export, "neighbours per movie")
    export.add_argument("--out", required=True, help="file to write; the suffix picks the format")
    export.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a "
                                                            "terminal either)")
    export.set_defaults(command=_export)


def _export(movielinks: MovielinksClient, args: argparse.Namespace) -> Exported:
    exit_cleanly_on_sigterm()  # a stopped export leaves no temporary file behind
    # No deadline: --timeout is for single calls, an export takes as long as the catalogue needs.
    progress = not (args.json or args.quiet)
    return Exported(args.out, movielinks.export_to_file(args.out, args.k, progress=progress, timeout_s=None))


def _info_command(commands: argparse._SubParsersAction) -> None:
    info = _command(commands, "info", "the served index: version, sizes, metrics, limits, server version",
                    "  client info\n  client info --json")
    info.set_defaults(command=lambda c, a: c.info())


def _lookup_command(commands: argparse._SubParsersAction) -> None:
    lookup = _command(commands, "lookup", "which catalogue title a name resolves to",
                      "  client lookup godfather\n  client lookup \"the martian\"\n  client lookup imdb:tt0111161")
    lookup.add_argument("title", help="a title as you would type it")
    lookup.set_defaults(command=lambda c, a: c.lookup_title(a.title))


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
        movies = any(n.url for n in result.neighbours)  # only movie answers carry URLs
        heading = f"{result.query}{_facts(result.query_year, result.query_director)}   (index {result.index_version})"
        if result.query_links:
            heading = f"films like: {' | '.join(result.query_links)}   (index {result.index_version})"
            if result.unknown_links:
                heading += f"\nunknown links, ignored: {' | '.join(result.unknown_links)}"
        elif not result.query:  # similar_to_vector: the caller's own vector
            heading = f"films like the vector given   (index {result.index_version})"
        if not movies:
            rows = [(str(i), n.name, f"{n.score:.4f}") for i, n in enumerate(result.neighbours, 1)]
            return heading + "\n" + table(("#", "name", "cosine"), rows)
        return heading + "\n" + _movie_table("movie", "cosine", [
            (n.name, n.year, n.director, n.score, n.url, n.reasons) for n in result.neighbours], result.reasons_basis)
    if isinstance(result, Recommendation):
        text = f"score: {result.strategy}: {result.score_meaning}\n" + _scored_table("recommended", result.best,
                                                                                   result.reasons_basis)
        return (text + "\n\n" + _scored_table("least liked", result.worst, "")) if result.worst else text
    if isinstance(result, Explanation):
        return _explanation(result)
    if isinstance(result, Prediction):
        known = "unknown" if result.known is None else amount(result.known, result.unit)
        error, baseline = (amount(math.sqrt(max(0.0, mse)), result.unit, difference=True)
                           for mse in (result.heldout_mse, result.baseline_mse))
        text = (f"{result.title}: {result.attribute} predicted {amount(result.predicted, result.unit)} "
                f"(known: {known})\n"
                f"typical error (held-out RMSE) {error}, against {baseline} for always predicting the mean")
        if no_better_than_mean(result.heldout_mse, result.baseline_mse):  # a server from before it refused these
            text += "\nwarning: this model is no better than always predicting the mean: do not trust the prediction"
        return text
    if isinstance(result, NameList):
        more = f" (first {len(result.names)} of {result.total})" if result.total > len(result.names) else ""
        names = f"{result.kind} name contains" if result.total == 1 else f"{result.kind} names contain"
        heading = f"{result.total} {names} {result.text!r}{more}"
        return "\n".join([heading, *result.names])
    if isinstance(result, TitleMatch):
        also = f"; also matched: {'; '.join(result.also_matched)}" if result.also_matched else ""
        ids = "".join(f", {scheme} {value}" for scheme, value in (("imdb", result.imdb_id),
                                                                  ("wikidata", result.wikidata_id)) if value)
        return f"{result.title}   ({result.match} match{ids}{also})"
    if isinstance(result, Info):
        lines = [f"{field.name}: {_text(getattr(result, field.name))}" for field in dataclasses.fields(result)
                 if field.name not in ("dataset", "metrics")]
        # Per-epoch histories and nested tables would flood the screen; --json has them all.
        metrics = {k: v for k, v in result.metrics.items() if not isinstance(v, (list, dict))}
        return "\n".join(lines + [f"dataset: {json.dumps(result.dataset)}", f"metrics: {json.dumps(metrics)}"])
    if isinstance(result, Exported):
        return f"wrote {result.rows} rows to {result.out}"
    if isinstance(result, Vectors):
        return _vectors_text(result)
    if isinstance(result, VectorsWritten):
        beside = f" (names in {result.names})" if result.names != result.out else ""
        return (f"wrote {result.rows} vectors of {result.dim} values (index {result.index_version}) to "
                f"{result.out}{beside}")
    raise TypeError(f"no text form for {type(result).__name__}")


def amount(value: float, unit: str, *, difference: bool = False) -> str:
    """A value as people read it: "$114.5 million" for USD, "62%" for a fraction
    ("26 percentage points" for a difference of fractions), else the number and unit."""
    if unit == "USD":
        sign, size = ("-" if value < 0 else ""), abs(value)
        for scale, word in ((1e9, "billion"), (1e6, "million")):
            if size >= scale:
                return f"{sign}${size / scale:.1f} {word}"
        return f"{sign}${size:,.0f}"
    if unit == "fraction":
        return f"{100 * value:.0f} percentage points" if difference else f"{100 * value:.0f}%"
    return f"{value:.4g} {unit}".rstrip()


def table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: tuple[int, ...] = (-1,),
          notes: dict[int, str] | None = None) -> str:
    """Left-aligned columns, numbers (the `right` columns, default the last) right-aligned;
    `notes[i]` is a line printed under row i."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {i % len(header) for i in right}
    def line(row):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()
    lines = [line(header)]
    for i, row in enumerate(rows):
        lines.append(line(row))
        if notes and notes.get(i):
            lines.append(notes[i])
    return "\n".join(lines)


def _facts(year: int | None, director: str) -> str:
    parts = [str(year)] if year else []
    parts += [director] if director else []
    return f" ({', '.join(parts)})" if parts else ""


def _reasons_line(reasons: list[SharedLink], basis: str) -> str:
    if not reasons:
        return ""
    label = "shares" if basis == "article_links" else "near both"
    return f"      {label}: " + ", ".join(f"{r.link} ({r.contribution:.3f})" for r in reasons)


def _movie_table(heading: str, score: str, rows: list[tuple], basis: str) -> str:
    """#, title, year, director, score, Wikipedia URL; each movie's reasons on a line under it."""
    cells = [(str(i), title, str(year or ""), director or "", f"{value:.4f}", url)
             for i, (title, year, director, value, url, _) in enumerate(rows, 1)]
    notes = {i: _reasons_line(reasons, basis) for i, (*_, reasons) in enumerate(rows)}
    return table(("#", heading, "year", "director", score, "wikipedia"), cells, right=(4,), notes=notes)


def _scored_table(heading: str, movies: list, basis: str) -> str:
    return _movie_table(heading, "score", [(m.title, m.year, m.director, m.decision_value, m.url, m.reasons)
                                           for m in movies], basis)


def _explanation(e: Explanation) -> str:
    def movie(n: Neighbour) -> str:
        return f"{n.name}{_facts(n.year, n.director)}" + (f"  {n.url}" if n.url else "")  # B by links has none
    lines = [f"A: {movie(e.a)}", f"B: {movie(e.b)}", f"cosine of the two movie vectors: {e.cosine:.4f}"]
    if e.basis == "article_links":
        lines.append(f"the articles share {e.shared_total} of their kept links (A {e.links_a}, B {e.links_b}); "
                     f"link-overlap (TF-IDF) cosine {e.link_overlap_cosine:.4f}, each link's share of it below")
        header = ("#", "shared link", "contribution", "cos to A", "cos to B")
    else:
        lines.append("this index version has no article links: the links whose vectors are closest to both movies")
        header = ("#", "link near both", "min cosine", "cos to A", "cos to B")
    rows = [(str(i), s.link, f"{s.contribution:.4f}", f"{s.cosine_a:.3f}", f"{s.cosine_b:.3f}")
            for i, s in enumerate(e.shared_links, 1)]
    return "\n".join(lines) + "\n" + (table(header, rows, right=(2, 3, 4)) if rows else "(none)")


def _text(value: Any) -> str:
    return (", ".join(map(str, value)) or "none") if isinstance(value, list) else str(value)


def _vectors_text(found: Vectors) -> str:
    """Each vector as a line: what it is, its name, its values (6 decimals); unknown links under a film."""
    lines = [f"{found.dim} dimensions, unit vectors   (index {found.index_version})"]
    for kind, part in (("movie", found.movies), ("link", found.links), ("film", found.films)):
        for name, vector, unknown in zip(part.names, part.vectors, part.unknown_links):
            lines.append(f"{kind}: {name}\n  " + " ".join(f"{float(v):.6f}" for v in vector))
            if unknown:
                lines.append(f"  unknown links, ignored: {' | '.join(unknown)}")
    return "\n".join(lines)


def _vectors_plain(found: Vectors) -> dict:
    """Vectors as JSON: {index_version, dim, movies: [{name, vector, unknown_links}], links, films}."""
    def rows(part) -> list[dict]:
        return [{"name": name, "vector": [float(v) for v in vector], "unknown_links": unknown}
                for name, vector, unknown in zip(part.names, part.vectors, part.unknown_links)]
    return {"index_version": found.index_version, "dim": found.dim, "movies": rows(found.movies),
            "links": rows(found.links), "films": rows(found.films)}


def _plain(result: Any) -> Any:
    if isinstance(result, Vectors):
        return _vectors_plain(result)
    return dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result


if __name__ == "__main__":
    sys.exit(main())
