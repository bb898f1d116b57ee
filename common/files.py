"""Checksums and crash-safe writes for the pipeline's artifacts.

Every artifact (a training run, an index version) is a directory that is either
complete or absent under its final name: it is written in a hidden sibling
directory, every file and the directory itself are fsynced, then renamed.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator

# Read in 8 MB pieces into one reused buffer: hashlib releases the GIL while it hashes
# a piece, so files hashed in parallel threads use every core (common.artifacts).
_CHUNK_BYTES = 8 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while read := f.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory entry (a rename or a new file) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync every file below `path`, then the directories, deepest first."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(root)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging directory that becomes `final` on success.

    The staging directory is a hidden sibling of `final` (same filesystem, so
    the rename is atomic). On any exception it is removed and `final` is left
    untouched. `final` must not exist yet.
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} already exists; choose a new path or remove it first")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the artifact from other users
        yield staging
        fsync_tree(staging)
        os.rename(staging, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", **open_args) -> Iterator[IO]:
    """Yield a file opened with `mode` that replaces `path` when the block ends without an exception.

    Bytes go to a hidden temporary sibling (same filesystem, so the replace is
    atomic), which is flushed and fsynced before the rename. On any exception, or
    if finishing the file fails, the temporary file is deleted, whatever else goes
    wrong while closing it, and `path` is left as it was: readers see the old file
    or the new one, never a mix, and nothing partial stays behind.
    """
    path = Path(path)
    # The writer's pid in the name lets a later writer tell an orphan (its writer was
    # killed with SIGKILL, which nothing can catch) from a file still being written.
    fd, tmp = tempfile.mkstemp(prefix=f"{_partial_prefix(path)}{os.getpid()}-", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_orphaned_partials(path: str | os.PathLike) -> None:
    """Delete `atomic_file` temporary files of `path` whose writing process no longer runs."""
    path = Path(path)
    prefix = _partial_prefix(path)
    for orphan in path.parent.glob(f"{glob.escape(prefix)}*-*"):
        pid = orphan.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            orphan.unlink(missing_ok=True)


def _partial_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a mix."""
    with atomic_file(path) as f:
        f.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def text_lines(path: str | os.PathLike, error: type[Exception], what: str) -> list[str]:
    """The non-blank lines of a UTF-8 text file (a list of titles), stripped, each once, in order.

    An unreadable file raises `error` (the stage's own type) saying it was `what`."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read {what} ({e}); give one page title a line") from e
    return list(dict.fromkeys(line.strip() for line in lines if line.strip()))
