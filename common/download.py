"""Resumable, verified downloads, shared by `trainer fetch` and `collector fetch`.

A file is downloaded into "<name>.partial" beside its final name, resumed from
there with an HTTP Range request when a previous attempt was cut off, and only
renamed to its final name once its digest matched and its bytes are on disk: a
file under its final name is always complete and verified.

What a server says is bounded: a file of more than `Expected.max_bytes` (announced
or sent) is refused, so is one that does not fit on the disk; a download slower
than MIN_RATE_BYTES_PER_S over RATE_WINDOW_S, or longer than DEADLINE_S in all, is
given up. A download that was refused or given up keeps its partial file only when
the server said it can resume it (a 206 answer or `Accept-Ranges: bytes`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from tqdm import tqdm

from movielinks.common.files import fsync_dir

BASE_URL_ENV = "MOVIELINKS_FETCH_BASE_URL"
PARTIAL_SUFFIX = ".partial"

MAX_DOWNLOAD_BYTES = 64 << 30  # enwiki's multistream dump is about 25 GB (2026)
MAX_LIST_BYTES = 4 << 20  # a checksum list: a few kB for a whole dump
MIN_RATE_BYTES_PER_S = 32 << 10  # at least this much in every RATE_WINDOW_S
RATE_WINDOW_S = 60.0
DEADLINE_S = 24 * 3600.0  # one run of one file, however fast it goes

_CHUNK_BYTES = 1 << 16
_TIMEOUT_S = 60  # one read


class DownloadError(Exception):
    """A download failed: network or HTTP failure, a file that fails its digest, or a file that cannot be written."""


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a downloaded file must hash to, and how to say so in an error.

    `rerun` is the command that resumes the download; `mirror_hint` tells what a mirror must serve.
    """

    digest: str
    digest_name: str
    digest_of: Callable[[Path], str]
    rerun: str
    mirror_hint: str = ""
    max_bytes: int = MAX_DOWNLOAD_BYTES


def sha1_file(path: str | Path) -> str:
    """Hex SHA-1 of a file's bytes (what Wikimedia's dump checksum files list)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path`: two downloads of one file would append to the same .partial file."""
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def download_verified(url: str, final: Path, expected: Expected, progress: bool) -> None:
    """Make `final` the verified file at `url`, downloading (or resuming) only what is missing.

    Raises DownloadError; `final` is then still absent or complete and verified.
    """
    if final.is_file() and expected.digest_of(final) == expected.digest:
        return
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    # A partial file with the right digest is a download that was cut off between
    # its last byte and the rename; anything else is resumed from its end.
    if not (partial.is_file() and expected.digest_of(partial) == expected.digest):
        _download(url, partial, progress, expected)
        actual = expected.digest_of(partial)
        if actual != expected.digest:
            partial.unlink()
            raise DownloadError(
                f"{final.name} from {url} has {expected.digest_name} {actual}, expected {expected.digest}; the "
                f"download was deleted. Rerun `{expected.rerun}`; if it fails again the server sends another "
                f"file: drop --base-url/${BASE_URL_ENV} or fix the mirror"
            )
    os.replace(partial, final)
    fsync_dir(final.parent)


def fetch_bytes(url: str, mirror_hint: str = "", max_bytes: int = MAX_LIST_BYTES) -> bytes:
    """The whole body at `url` (for small files such as a checksum list), at most `max_bytes`
    within RATE_WINDOW_S; raises DownloadError."""
    started = time.monotonic()
    with _open(url, 0, mirror_hint) as response:
        body = bytearray()
        while chunk := _read(response, url, len(body)):
            body += chunk
            if len(body) > max_bytes:
                raise DownloadError(f"{url}: more than {max_bytes:,} bytes, and this file is a short list; the "
                                    f"server sends something else: drop --base-url/${BASE_URL_ENV} or fix the mirror")
            if time.monotonic() - started > RATE_WINDOW_S:
                raise DownloadError(f"{url}: not received within {RATE_WINDOW_S:g} s; rerun the same command, or "
                                    f"point --base-url or ${BASE_URL_ENV} at a faster mirror")
        return bytes(body)


def _download(url: str, partial: Path, progress: bool, expected: Expected) -> None:
    """Append the rest of `url` to `partial` (or rewrite it when the server ignores Range), then fsync it."""
    offset = partial.stat().st_size if partial.is_file() else 0
    try:
        response = _open(url, offset, expected.mirror_hint)
    except _RangeNotSatisfiable:
        # The partial file is as long as the whole file or longer, and wrong: start over.
        partial.unlink()
        offset = 0
        response = _open(url, offset, expected.mirror_hint)
    with response:
        resumable = response.status == 206 or response.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
        if response.status != 206:
            offset = 0
        try:
            _receive(response, url, partial, offset, progress, expected.max_bytes)
        except _Refused as e:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{e}; nothing was kept") from None
        except DownloadError:
            if not resumable:
                partial.unlink(missing_ok=True)
            raise


class _Refused(Exception):
    """What the server sends cannot be the file: no part of it is kept."""


def _receive(response: http.client.HTTPResponse, url: str, partial: Path, offset: int, progress: bool,
             max_bytes: int) -> None:
    length = response.headers.get("Content-Length")
    try:
        total = offset + int(length) if length is not None else None
    except ValueError:
        raise _Refused(f"{url}: the server sent Content-Length {length[:40]!r}, not a number") from None
    if total is not None and total > max_bytes:
        raise _Refused(f"{url}: the server announces {total:,} bytes; no such file is over {max_bytes:,}")
    try:
        out = open(partial, "ab" if offset else "wb")
        free = shutil.disk_usage(partial.parent).free
    except OSError as e:
        raise DownloadError(f"cannot write {partial}: {e}; choose another cache with --cache") from e
    if total is not None and total - offset > free:
        out.close()
        raise DownloadError(f"{partial.parent} has {free:,} bytes free and {url} needs {total - offset:,} more; "
                            f"free some space (or choose another cache with --cache) and rerun the same command")
    started = window_start = time.monotonic()
    with out, tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=partial.name.removesuffix(PARTIAL_SUFFIX), disable=not progress or None,
    ) as bar:
        size_bytes = window_bytes = offset
        while chunk := _read(response, url, size_bytes):
            try:
                out.write(chunk)
            except OSError as e:
                raise DownloadError(f"cannot write {partial}: {e}; free some space and rerun the same "
                                    f"command to resume") from e
            size_bytes += len(chunk)
            bar.update(len(chunk))
            if size_bytes > max_bytes:
                raise _Refused(f"{url}: the server sent more than {max_bytes:,} bytes; no such file is that long")
            now = time.monotonic()
            if now - started > DEADLINE_S:
                raise DownloadError(f"{url}: not done after {DEADLINE_S:g} s ({size_bytes:,} bytes); rerun the "
                                    f"same command to resume, or use a faster mirror")
            if now - window_start >= RATE_WINDOW_S:
                rate = (size_bytes - window_bytes) / (now - window_start)
                if rate < MIN_RATE_BYTES_PER_S:
                    raise DownloadError(f"{url}: {rate:,.0f} bytes/s over the last {now - window_start:.0f} s, "
                                        f"under the {MIN_RATE_BYTES_PER_S:,} bytes/s a download must keep; rerun "
                                        f"the same command to resume, or use a faster mirror")
                window_start, window_bytes = now, size_bytes
        # http.client ends a body cut short by the server like a complete one.
        if total is not None and size_bytes < total:
            raise DownloadError(f"{url}: download interrupted after {size_bytes} of {total} bytes (the "
                                f"server closed the connection); rerun the same command to resume it")
        out.flush()
        os.fsync(out.fileno())


def _read(response: http.client.HTTPResponse, url: str, size_bytes: int) -> bytes:
    try:
        # read1: what one receive brings, so that the time between reads is the time checks see.
        return response.read1(_CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as e:
        raise DownloadError(f"{url}: download interrupted after {size_bytes} bytes ({e}); rerun the same "
                            f"command to resume it") from e


class _RangeNotSatisfiable(Exception):
    """The server answered 416 to a Range request: the partial file is not a prefix of the file."""


def _open(url: str, offset: int, mirror_hint: str = "") -> http.client.HTTPResponse:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            raise _RangeNotSatisfiable() from e
        hint = f" ({mirror_hint})" if mirror_hint else ""
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; the server does not serve this file: check "
                            f"--base-url or ${BASE_URL_ENV}{hint}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot connect ({reason}); check the network, or point --base-url or "
                            f"${BASE_URL_ENV} at a reachable mirror") from e
