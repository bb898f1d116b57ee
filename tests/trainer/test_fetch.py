"""trainer.fetch against a local HTTP server laid out like GitHub's raw file host."""
from __future__ import annotations

import hashlib
import http.server
import re
import sys
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from movielinks.trainer.fetch import DATASETS, DataFile, Dataset, FetchError, fetch, git_blob_sha1

REPO = "someone/films"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


class FileServer:
    """Serves <root>/<repo>/<commit>/<path>, honouring `Range: bytes=N-` unless told not to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.honour_range = True
        self.corrupt: dict[str, bytes] = {}  # URL path -> bytes served instead of the file's
        self.cut_after_bytes: int | None = None  # send only this many body bytes, then hang up
        self.requests: list[tuple[str, str | None]] = []  # (URL path, Range header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                file = server.root / self.path.lstrip("/")
                if self.path in server.corrupt:
                    body = server.corrupt[self.path]
                elif file.is_file():
                    body = file.read_bytes()
                else:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and server.honour_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    body = body[start:]
                else:
                    self.send_response(200)
                if server.honour_range:
                    self.send_header("Accept-Ranges", "bytes")  # as GitHub and dumps.wikimedia.org say
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after_bytes is not None:
                    body = body[: server.cut_after_bytes]
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def publish(self, repo: str, commit: str, path: str, data: bytes) -> None:
        file = self.root / repo / commit / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)


@pytest.fixture
def server(tmp_path: Path):
    files = FileServer(tmp_path / "served")
    files.thread.start()
    yield files
    files.httpd.shutdown()
    files.httpd.server_close()
    files.thread.join()


def blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def film_bytes(n_lines: int, seed: int) -> bytes:
    return "".join(f'["Film {seed}-{i} (film)", {{}}, ["Link {i % 7}"], null, null]\n' for i in range(n_lines)).encode()


@pytest.fixture
def one_file(server: FileServer, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A one-file dataset "films" served by `server`; returns its bytes."""
    data = film_bytes(400, seed=1)
    server.publish(REPO, COMMIT, "data/films.ndjson", data)
    dataset = Dataset("test films", REPO, COMMIT, (DataFile("data/films.ndjson", blob_sha1(data)),))
    monkeypatch.setitem(DATASETS, "films", dataset)
    return data


URL_PATH = f"/{REPO}/{COMMIT}/data/films.ndjson"


def test_git_blob_sha1_is_what_git_hash_object_prints(tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"")
    assert git_blob_sha1(file) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    file.write_bytes(film_bytes(50, seed=3))
    printed = subprocess.run(["git", "hash-object", str(file)], capture_output=True, text=True, check=True).stdout
    assert git_blob_sha1(file) == printed.strip()


def test_fetch_downloads_verifies_and_renames(server: FileServer, one_file: bytes, tmp_path: Path) -> None:
    path = fetch("films", tmp_path / "cache", server.url, progress=False)
    assert path == tmp_path / "cache" / "films" / "films.ndjson"
    assert path.read_bytes() == one_file
    assert server.requests == [(URL_PATH, None)]
    assert not list(path.parent.glob("*.partial"))


def test_fetch_skips_a_file_already_verified(server: FileServer, one_file: bytes, tmp_path: Path) -> None:
    first = fetch("films", tmp_path, server.url, progress=False)
    mtime = first.stat().st_mtime_ns
    assert fetch("films", tmp_path, server.url, progress=False) == first
    assert len(server.requests) == 1
    assert first.stat().st_mtime_ns == mtime


def test_fetch_replaces_a_cached_file_that_no_longer_verifies(server: FileServer, one_file: bytes,
                                                             tmp_path: Path) -> None:
    path = fetch("films", tmp_path, server.url, progress=False)
    path.write_bytes(b"edited by hand\n")
    assert fetch("films", tmp_path, server.url, progress=False).read_bytes() == one_file
    assert len(server.requests) == 2


def test_cache_and_base_url_come_from_the_environment(server: FileServer, one_file: bytes, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIELINKS_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MOVIELINKS_FETCH_BASE_URL", server.url + "/")
    assert fetch("films", progress=False) == tmp_path / "env-cache" / "films" / "films.ndjson"


def test_a_corrupted_download_raises_and_leaves_nothing(server: FileServer, one_file: bytes,
                                                        tmp_path: Path) -> None:
    server.corrupt[URL_PATH] = one_file.replace(b"Link 3", b"Link 9")
    with pytest.raises(FetchError) as caught:
        fetch("films", tmp_path, server.url, progress=False)
    message = str(caught.value)
    assert "films.ndjson" in message
    assert DATASETS["films"].files[0].git_blob_sha1 in message
    assert blob_sha1(server.corrupt[URL_PATH]) in message
    assert "trainer fetch films" in message
    assert list((tmp_path / "films").iterdir()) == []


def test_a_partial_download_is_resumed_with_a_range_request(server: FileServer, one_file: bytes,
                                                            tmp_path: Path) -> None:
    half = len(one_file) // 2
    partial = tmp_path / "films" / "films.ndjson.partial"
    partial.parent.mkdir()
    partial.write_bytes(one_file[:half])
    path = fetch("films", tmp_path, server.url, progress=False)
    assert server.requests == [(URL_PATH, f"bytes={half}-")]
    assert path.read_bytes() == one_file
    assert not partial.exists()


def test_a_cut_off_download_keeps_its_partial_file_and_resumes(server: FileServer, one_file: bytes,
                                                               tmp_path: Path) -> None:
    server.cut_after_bytes = 1000
    expected = rf"{re.escape(URL_PATH)}: download interrupted after 1000 of {len(one_file)} bytes"
    with pytest.raises(FetchError, match=expected):
        fetch("films", tmp_path, server.url, progress=False)
    assert [p.name for p in (tmp_path / "films").iterdir()] == ["films.ndjson.partial"]
    server.cut_after_bytes = None
    assert fetch("films", tmp_path, server.url, progress=False).read_bytes() == one_file
    assert server.requests[-1] == (URL_PATH, "bytes=1000-")


def test_a_server_that_ignores_range_still_gives_the_right_file(server: FileServer, one_file: bytes,
                                                                tmp_path: Path) -> None:
    server.honour_range = False
    partial = tmp_path / "films" / "films.ndjson.partial"
    partial.parent.mkdir()
    partial.write_bytes(one_file[: len(one_file) // 3])
    path = fetch("films", tmp_path, server.url, progress=False)
    assert server.requests[0][1] == f"bytes={len(one_file) // 3}-"
    assert path.read_bytes() == one_file
    assert not partial.exists()


def test_a_wrong_partial_as_long_as_the_file_is_downloaded_again(server: FileServer, one_file: bytes,
                                                                 tmp_path: Path) -> None:
    partial = tmp_path / "films" / "films.ndjson.partial"
    partial.parent.mkdir()
    partial.write_bytes(b"x" * len(one_file))
    path = fetch("films", tmp_path, server.url, progress=False)
    assert [r[1] for r in server.requests] == [f"bytes={len(one_file)}-", None]
    assert path.read_bytes() == one_file


def test_a_complete_partial_is_renamed_without_downloading(server: FileServer, one_file: bytes,
                                                           tmp_path: Path) -> None:
    partial = tmp_path / "films" / "films.ndjson.partial"
    partial.parent.mkdir()
    partial.write_bytes(one_file)
    assert fetch("films", tmp_path, server.url, progress=False).read_bytes() == one_file
    assert server.requests == []


def test_http_404_raises_with_url_and_status(server: FileServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    missing = Dataset("absent", REPO, COMMIT, (DataFile("data/absent.ndjson", "0" * 40),))
    monkeypatch.setitem(DATASETS, "absent", missing)
    with pytest.raises(FetchError, match=rf"{re.escape(server.url)}/{REPO}/{COMMIT}/data/absent.ndjson: HTTP 404"):
        fetch("absent", tmp_path, server.url, progress=False)
    assert list((tmp_path / "absent").iterdir()) == []


def test_an_unreachable_server_raises_fetch_error(one_file: bytes, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match=rf"http://127.0.0.1:{port}/.*cannot connect"):
        fetch("films", tmp_path, f"http://127.0.0.1:{port}", progress=False)
    assert list((tmp_path / "films").iterdir()) == []


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as caught:
        fetch("no-such-films", tmp_path, progress=False)
    for name in ("wp-movies-10k", "wikipedia-movie-data"):
        assert name in str(caught.value)


@pytest.mark.real_data
def test_the_real_table_matches_the_shared_copies(server: FileServer, tmp_path: Path) -> None:
    """The pinned hashes of wikipedia-movie-data are those of ../shared/data; fetched through
    a local mirror, the dataset is a directory of the 13 decade files."""
    dataset = DATASETS["wikipedia-movie-data"]
    assert len(dataset.files) == 13
    for file in dataset.files:
        server.publish(dataset.repo, dataset.commit, file.path,
                       (SHARED_DATA / "wikipedia-movie-data" / file.basename).read_bytes())
    path = fetch("wikipedia-movie-data", tmp_path, server.url, progress=False)
    assert path == tmp_path / "wikipedia-movie-data"
    assert sorted(p.name for p in path.iterdir()) == sorted(f.basename for f in dataset.files)
    (ten_k,) = DATASETS["wp-movies-10k"].files
    assert re.fullmatch(r"[0-9a-f]{40}", DATASETS["wp-movies-10k"].commit)
    assert re.fullmatch(r"[0-9a-f]{40}", ten_k.git_blob_sha1)


def test_progress_bar_counts_bytes_on_a_terminal_only(server: FileServer, one_file: bytes, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fetch("films", tmp_path / "piped", server.url, progress=True)
    assert capsys.readouterr().err == ""  # stderr is no terminal: no bar frames in a log file
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    fetch("films", tmp_path / "terminal", server.url, progress=True)
    assert "films.ndjson" in capsys.readouterr().err

