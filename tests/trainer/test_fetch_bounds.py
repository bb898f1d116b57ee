"""`collector fetch` against a lying mirror (127.0.0.1 only): endless lists, huge announced sizes,
a trickle. Each is given up in bounded time and memory, and no partial file is kept unless the
server said the download can be resumed."""
from __future__ import annotations

import hashlib
import http.server
import threading
import time
from pathlib import Path

import pytest

from movielinks.collector.cli import main
from movielinks.collector.fetch import dump_file_names
from movielinks.common import download

WIKI, DATE = "enwiki", "20261101"
DUMP, INDEX, SUMS = dump_file_names(WIKI, DATE)
BODY = b"x" * 5000


class LyingMirror:
    """Serves the checksum list honestly unless `endless_list`; the dump as `dump_mode` says:
    "huge" (announces 100 GB), "trickle" (a byte every 50 ms)."""

    def __init__(self) -> None:
        self.endless_list = False
        self.dump_mode = "trickle"
        self.accept_ranges = False
        self.stop = threading.Event()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith(SUMS):
                    self.send_response(200)
                    self.end_headers()
                    line = f"{hashlib.sha1(BODY).hexdigest()}  {DUMP}\n".encode()
                    # Endless, as far as the client is concerned: at most 64 MB, then it stops.
                    for _ in range(64 * (1 << 20) // len(line) if mirror.endless_list else 1):
                        if mirror.stop.is_set() or not self._write(line):
                            return
                    return
                self.send_response(200)
                if mirror.accept_ranges:
                    self.send_header("Accept-Ranges", "bytes")
                if mirror.dump_mode == "huge":
                    self.send_header("Content-Length", str(100 * 10**9))
                    self.end_headers()
                    for _ in range(200):  # 200 x 64 kB, if the client reads at all
                        if mirror.stop.is_set() or not self._write(b"\0" * (1 << 16)):
                            return
                    return
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                for byte in BODY[:600]:  # 30 s at most
                    if mirror.stop.is_set() or not self._write(bytes([byte])):
                        return
                    time.sleep(0.05)

            def _write(self, data: bytes) -> bool:
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return True
                except OSError:
                    return False

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)


@pytest.fixture
def mirror():
    served = LyingMirror()
    served.thread.start()
    yield served
    served.stop.set()
    served.httpd.shutdown()
    served.httpd.server_close()
    served.thread.join(10)


def fetch(mirror: LyingMirror, cache: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    started = time.monotonic()
    code = main(["fetch", WIKI, DATE, "--cache", str(cache), "--base-url", mirror.url, "--quiet"])
    return code, capsys.readouterr().err, time.monotonic() - started


def files_in(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "dumps" / WIKI / DATE).iterdir() if not p.name.startswith("."))


def test_an_endless_checksum_list_is_refused_at_its_bound(mirror, tmp_path, capsys) -> None:
    mirror.endless_list = True
    code, err, took_s = fetch(mirror, tmp_path, capsys)
    assert code == 1 and f"more than {download.MAX_LIST_BYTES:,} bytes" in err, err
    assert took_s < 30 and files_in(tmp_path) == []


def test_a_dump_announced_over_the_bound_is_refused_before_writing(mirror, tmp_path, capsys) -> None:
    mirror.dump_mode = "huge"
    mirror.accept_ranges = True  # even a resumable one: it can never be the file
    code, err, took_s = fetch(mirror, tmp_path, capsys)
    assert code == 1 and "announces 100,000,000,000 bytes" in err and "nothing was kept" in err, err
    assert took_s < 30 and files_in(tmp_path) == [SUMS]


@pytest.mark.parametrize("resumable", [False, True])
def test_a_trickle_is_given_up_and_kept_only_when_resumable(mirror, tmp_path, capsys, monkeypatch,
                                                            resumable) -> None:
    # One byte every 50 ms (20 B/s) against a 1 kB/s minimum over 1 s windows: given up at the
    # first window, where a timeout per read never fires.
    monkeypatch.setattr(download, "MIN_RATE_BYTES_PER_S", 1000)
    monkeypatch.setattr(download, "RATE_WINDOW_S", 1.0)
    mirror.accept_ranges = resumable
    code, err, took_s = fetch(mirror, tmp_path, capsys)
    assert code == 1 and "under the 1,000 bytes/s a download must keep" in err, err
    assert took_s < 10
    assert files_in(tmp_path) == ([f"{DUMP}.partial", SUMS] if resumable else [SUMS])


def test_a_download_past_the_deadline_is_given_up(mirror, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(download, "DEADLINE_S", 1.0)
    code, err, took_s = fetch(mirror, tmp_path, capsys)
    assert code == 1 and "not done after 1 s" in err, err
    assert took_s < 10 and files_in(tmp_path) == [SUMS]
