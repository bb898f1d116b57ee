"""Start the real server process for tests, and stop it."""
from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]


def client_cli(*args: str, server: str | None = None) -> subprocess.CompletedProcess:
    """`python -m movielinks.client ARGS`, as a user runs it; `server` (if given) goes in through
    $MOVIELINKS_SERVER, as a user would set it, and none is inherited from the test's environment."""
    env = {k: v for k, v in os.environ.items() if k != "MOVIELINKS_SERVER"}
    if server:
        env["MOVIELINKS_SERVER"] = server
    return subprocess.run([sys.executable, "-m", "movielinks.client", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


class ServerProcess:
    """`python -m server` on a free loopback port; its stderr is collected in `log_lines`.
    `descriptors` limits its open files (RLIMIT_NOFILE, soft and hard)."""

    def __init__(self, index_root: Path, *extra_args: str, timeout_s: float = 30.0, descriptors: int | None = None):
        self.log_lines: list[str] = []
        self._new_lines: queue.Queue[str | None] = queue.Queue()
        # The limit is set by the child itself (preexec_fn is unsafe in a process with threads).
        launcher = ["-m"] if descriptors is None else [
            "-c", f"import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({descriptors}, "
                  f"{descriptors})); sys.argv[0] = 'server'; runpy.run_module(sys.argv.pop(1), run_name='__main__')"]
        self.process = subprocess.Popen(
            [sys.executable, *launcher, "movielinks.server", "--index", str(index_root), "--port", "0", *extra_args],
            cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        # A thread reads stderr so that waiting for the start line can time out
        # (a bare readline would block forever on a server that hangs silently).
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.address = self._wait_for_address(timeout_s)

    def _wait_for_address(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while (left_s := deadline - time.monotonic()) > 0:
            try:
                line = self._new_lines.get(timeout=left_s)
            except queue.Empty:
                break
            if line is None:  # stderr closed: the process ended
                break
            match = re.search(r"listening on (\S+:\d+)", line)
            if match:
                return match.group(1)
        self.process.kill()
        self.process.wait()
        self._reader.join(timeout=5)  # the last lines say why it did not start
        raise RuntimeError(f"server did not start (waited up to {timeout_s:g} s; exit code {self.process.returncode}):\n"
                           + "".join(self.log_lines))

    def start_fields(self) -> dict[str, str]:
        """The key=value fields of the start log line, text or JSON (--log-format json)."""
        line = next(line for line in self.log_lines if "listening on" in line)
        if line.startswith("{"):
            return {k: str(v) for k, v in json.loads(line).items()}
        return dict(word.split("=", 1) for word in line.split() if re.match(r"^[a-z_]+=", word))

    @property
    def http_url(self) -> str:
        """The HTTP gateway's base URL ("http://127.0.0.1:PORT/"), as the start line names it (--http-port)."""
        url = self.start_fields()["http"]
        assert url != "off", "the server was started without --http-port"
        return url

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.log_lines.append(line)
            self._new_lines.put(line)
        self._new_lines.put(None)

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then the exit code (killed if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
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
    subprocess.run([sys.executable, "-m", "movielinks.indexer", "build", str(run), "--out", str(root), "--quiet", *extra_args],
                   cwd=REPO, check=True, capture_output=True)
