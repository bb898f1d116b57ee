"""What the real server process reads when a version is published: only the plain files inside
the version's directory, within a size bound checked before anything is hashed."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from movielinks import indexer
import movielinks.indexer.root
import movielinks.indexer.version
from movielinks.common.artifacts import MAX_ARTIFACT_BYTES
from tests.e2e_server import running_server
from tests.ops_support import build, info, stage_version, wait_for

PASSWD = Path("/etc/passwd")


def list_in_manifest(version: Path, name: str, digest: str) -> None:
    manifest = json.loads((version / indexer.version.MANIFEST).read_text())
    manifest["files"][name] = digest
    (version / indexer.version.MANIFEST).write_text(json.dumps(manifest))


def refusal(server, name: str) -> str:
    return next((line for line in server.log_lines if f"reload refused: version={name}" in line), "")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reload-bounds")
    root = tmp / "index"
    build(tmp, root, 0)
    with running_server(root, "--reload-interval", "0.1") as server:
        yield tmp, root, server


@pytest.mark.parametrize("problem", ["parent path", "absolute path", "linked file", "sparse file", "linked version"])
def test_a_version_that_reaches_outside_its_directory_or_is_too_big_is_refused_at_once(served, problem):
    tmp, root, server = served
    serving = info(server.address).index_version
    seed = ["parent path", "absolute path", "linked file", "sparse file", "linked version"].index(problem) + 10
    name = stage_version(tmp, root, seed)
    version = indexer.root.version_dir(root, name)
    passwd_sha256 = hashlib.sha256(PASSWD.read_bytes()).hexdigest()
    if problem == "parent path":
        list_in_manifest(version, "../../../../../../../../etc/passwd", passwd_sha256)
        expected = "which is not the name of a file in"
    elif problem == "absolute path":
        list_in_manifest(version, str(PASSWD), passwd_sha256)
        expected = "which is not the name of a file in"
    elif problem == "linked file":
        (version / "extra.txt").symlink_to(PASSWD)
        list_in_manifest(version, "extra.txt", passwd_sha256)
        expected = "extra.txt: not a plain file"
    elif problem == "sparse file":
        with open(version / "huge.bin", "wb") as f:
            f.truncate(100 * 10**9)  # 100 GB, no block written: hashing it took minutes
        list_in_manifest(version, "huge.bin", "0" * 64)
        expected = f"over the {MAX_ARTIFACT_BYTES:,} an artifact may"
    else:  # versions/NAME is a link to a good version outside the root
        outside = tmp / f"outside-{seed}"
        shutil.move(str(version), str(outside))
        version.symlink_to(outside, target_is_directory=True)
        expected = "a link (to"
    published_at = time.monotonic()
    indexer.root.publish(root, name)
    wait_for(lambda: refusal(server, name), timeout_s=20)
    assert time.monotonic() - published_at < 10
    assert expected in refusal(server, name), refusal(server, name)
    assert info(server.address).index_version == serving
    # A good version published next is taken at once.
    good = stage_version(tmp, root, seed + 100)
    indexer.root.publish(root, good)
    wait_for(lambda: info(server.address).index_version == good, timeout_s=20)
