"""Start the real server process for tests, and stop it."""
from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]


class ServerProcess:
    """`python -m server` on a free loopback port; its stderr is collected in `log_lines`."""

    def __init__(self, index_root: Path, *extra_args: str, timeout_s: float = 30.0):
        self.log_lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--index", str(index_root), "--port", "0", *extra_args],
            cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        self.address = self._wait_for_address(timeout_s)
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_address(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.log_lines.append(line)
            match = re.search(r"listening on (\S+:\d+)", line)
            if match:
                return match.group(1)
        self.process.kill()
        raise RuntimeError("server did not start:\n" + "".join(self.log_lines) + self.process.stderr.read())

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.log_lines.append(line)

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then the exit code (killed if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextlib.contextmanager
def running_server(index_root: Path, *extra_args: str) -> Iterator[ServerProcess]:
    server = ServerProcess(index_root, *extra_args)
    try:
        yield server
    finally:
        server.stop()


def build_index_cli(run: Path, root: Path, *extra_args: str) -> None:
    """`python -m indexer build RUN --out ROOT`, as a user would run it."""
    subprocess.run([sys.executable, "-m", "indexer", "build", str(run), "--out", str(root), "--quiet", *extra_args],
                   cwd=REPO, check=True, capture_output=True)
