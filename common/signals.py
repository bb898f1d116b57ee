"""SIGTERM as an exception, so that a command's `with` blocks clean up when it is stopped."""
from __future__ import annotations

import signal
import sys

EXIT_TERMINATED = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread instead of ending the process at once.

    Python's default leaves no chance to remove a half-written file; raised, the exit
    unwinds every `with` block (a NeighbourWriter deletes its temporary file) first.
    Call it from the main thread of a command, before it starts writing.
    """
    signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum, frame) -> None:
    sys.exit(EXIT_TERMINATED)
