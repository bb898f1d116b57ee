"""server.heap: the server process's glibc malloc settings (two arenas)."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

PRINT_APPLIED = "from movielinks.server.heap import bound_malloc; print(bound_malloc())"


def _applied(**env: str) -> bool:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", PRINT_APPLIED], env=clean | env, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip() == "True"


def test_a_server_process_gets_two_arenas():
    assert _applied()


def test_what_an_operator_sets_through_glibcs_variables_is_kept():
    assert not _applied(MALLOC_ARENA_MAX="4")
