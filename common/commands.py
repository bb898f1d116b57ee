"""What every command line (client, collector, indexer, server, trainer) does alike: `--version`,
a closed pipe is a normal end, and a count is a positive whole number."""
from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any, Callable

from movielinks.common.about import package_version


def command_parser(prog: str, description: str, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
                   **options: Any) -> argparse.ArgumentParser:
    """The parser of the command `prog`, with `--version` (the package's); `options` go to `parser_class`."""
    parser = parser_class(prog=prog, description=description, **options)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    return parser


def closed_pipe_is_a_normal_end(main: Callable[..., int]) -> Callable[..., int]:
    """`main(argv)` that ends quietly with exit 0 when its reader stops reading
    (`trainer evaluate RUN | head -1`, `indexer list ROOT | head -0`): the reader has
    all it wanted, which is no error and deserves no traceback."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            try:
                return main(argv)
            finally:
                sys.stdout.flush()  # here, where a closed pipe can still be caught, not at interpreter exit
        except BrokenPipeError:
            # Python's own recipe (the signal module's note on SIGPIPE): point stdout at devnull,
            # so that the flush at exit does not fail once more.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    return run


def positive_int(text: str) -> int:
    """argparse type of a count (-k, --keep): 1 or more; 0 is refused rather than read as a default."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more (leave the option out for its default)")
    return value
