"""The trainer's huge pages (trainer/huge_pages.py): when it starts itself again, and what that does."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from movielinks.trainer.huge_pages import TUNABLE, glibc_version, huge_pages_environment, thp_mode


def test_the_kernels_mode_is_the_bracketed_word(tmp_path):
    enabled = tmp_path / "enabled"
    enabled.write_text("always [madvise] never\n")
    assert thp_mode(enabled) == "madvise"
    enabled.write_text("[always] madvise never\n")
    assert thp_mode(enabled) == "always"
    assert thp_mode(tmp_path / "absent") is None


def test_the_tunable_is_added_where_the_kernel_gives_huge_pages_only_on_request():
    assert huge_pages_environment({"HOME": "/h"}, "madvise", (2, 36)) == {"HOME": "/h", "GLIBC_TUNABLES": f"{TUNABLE}=1"}
    kept = huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", (2, 35))
    assert kept == {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{TUNABLE}=1"}


@pytest.mark.parametrize("environ, mode, glibc", [
    ({"GLIBC_TUNABLES": f"{TUNABLE}=0"}, "madvise", (2, 36)),  # the operator's choice, and no second restart
    ({"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{TUNABLE}=1"}, "madvise", (2, 36)),
    ({}, "always", (2, 36)),  # every mapping gets them already
    ({}, "never", (2, 36)),
    ({}, None, (2, 36)),  # no transparent huge pages in this kernel
    ({}, "madvise", (2, 34)),  # a glibc without the tunable
    ({}, "madvise", None),  # not glibc
])
def test_nothing_is_restarted_where_it_would_change_nothing(environ, mode, glibc):
    assert huge_pages_environment(environ, mode, glibc) is None


# Restarts itself (as the trainer does), then maps 64 MiB through malloc, as TensorFlow's CPU allocator
# does for a table, touches it, and prints the tunables it ran with and how much more of its anonymous
# memory is in huge pages (numpy asks for them on its own big arrays; malloc's callers do not).
PROBE = textwrap.dedent("""
    import ctypes, re
    from movielinks.trainer.huge_pages import restart_with_huge_pages
    restart_with_huge_pages()
    import os
    def huge_kb():
        return int(re.search(r"AnonHugePages:\\s+(\\d+)", open("/proc/self/smaps_rollup").read()).group(1))
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    before = huge_kb()
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    print(os.environ.get("GLIBC_TUNABLES", ""), huge_kb() - before)
""")


def _probe(environ: dict[str, str]) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # started again once, not in a loop
    tunables, _, huge = lines[0].rpartition(" ")
    return tunables, int(huge)


@pytest.mark.skipif(not (sys.platform.startswith("linux") and thp_mode() == "madvise"
                         and (glibc_version() or (0, 0)) >= (2, 35)),
                    reason="huge pages on request need Linux with THP in madvise mode and glibc 2.35+")
def test_the_trainer_process_gets_huge_pages_for_what_it_mallocs_and_an_operator_can_say_no():
    environ = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    tunables, huge_kb = _probe(environ)
    assert tunables == f"{TUNABLE}=1"
    assert huge_kb >= 32 << 10, f"only {huge_kb} kB of 64 MiB in huge pages"
    tunables, huge_kb = _probe({**environ, "GLIBC_TUNABLES": f"{TUNABLE}=0"})
    assert tunables == f"{TUNABLE}=0"
    assert huge_kb < 32 << 10
