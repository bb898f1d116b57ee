"""Helpers for the operations tests (tests/server/test_ops_*.py): index versions to publish,
client load, GetInfo, and the server's /metrics."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from movielinks.common.files import sha256_file
import movielinks.indexer.root
from movielinks import indexer
import movielinks.indexer.version
from movielinks.indexer.build import build_index
from movielinks.proto import movielinks_pb2 as pb
from movielinks.proto import movielinks_pb2_grpc as pb_grpc
from tests.e2e_server import ServerProcess
from tests.fixtures import make_run

TITLES = ["Interstellar (film)", "Alien (film)", "The Martian (film)", "Heat (1995 film)"]


def build(tmp: Path, root: Path, seed: int, **sizes) -> str:
    """Build (and publish) a version of `root` from a synthetic run with the shared TITLES."""
    run = make_run(tmp / f"run-{seed}", seed, titles=TITLES, **sizes)
    return build_index(run, root, progress=False)


def stage_version(tmp: Path, root: Path, seed: int) -> str:
    """A good version of `root`, complete under its final name but not published."""
    scratch = tmp / f"scratch-{seed}"
    name = build(tmp, scratch, seed)
    (root / indexer.root.VERSIONS).mkdir(parents=True, exist_ok=True)
    indexer.root.version_dir(scratch, name).rename(indexer.root.version_dir(root, name))
    return name


def publish_corrupt(tmp: Path, root: Path, seed: int, file: str = indexer.version.MOVIE_VECTORS) -> str:
    """A version of `root` with bytes of `file` flipped after its checksums were written, made current."""
    name = stage_version(tmp, root, seed)
    path = indexer.root.version_dir(root, name) / file
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 64, len(data)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    indexer.root.publish(root, name)
    return name


def replace_with_checksum(version: Path, file: str, data: bytes) -> None:
    """Replace `file` of a version and its checksum in the manifest: only the cross-checks can object."""
    (version / file).write_bytes(data)
    manifest = json.loads((version / indexer.version.MANIFEST).read_text())
    manifest["files"][file] = sha256_file(version / file)
    (version / indexer.version.MANIFEST).write_text(json.dumps(manifest))


def stub(channel: grpc.Channel) -> pb_grpc.MovielinksStub:
    return pb_grpc.MovielinksStub(channel)


def info(address: str) -> pb.InfoResponse:
    with grpc.insecure_channel(address) as channel:
        return stub(channel).GetInfo(pb.GetInfoRequest(), timeout=10)


def wait_for(condition, timeout_s: float = 20.0, explain=lambda: "") -> None:
    """Wait until `condition()` holds; past `timeout_s` fail, with what `explain()` then says."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s{explain()}"
        time.sleep(0.05)


class Load:
    """Client threads calling SimilarMovies, Recommend and BatchSimilarMovies until the block ends."""

    def __init__(self, address: str, threads: int = 8):
        self.address = address
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with grpc.insecure_channel(self.address) as channel:
            service = stub(channel)
            calls = [
                lambda: service.SimilarMovies(pb.SimilarMoviesRequest(title=TITLES[rng.integers(4)], k=5), timeout=10),
                lambda: service.Recommend(pb.RecommendRequest(liked=TITLES[:2], disliked=TITLES[2:3], k=5), timeout=10),
                lambda: service.BatchSimilarMovies(pb.BatchSimilarMoviesRequest(titles=TITLES * 10, k=3), timeout=10),
            ]
            while not self.stop.is_set():
                try:
                    response = calls[rng.integers(3)]()
                    with self._lock:
                        self.ok += 1
                        self.versions.add(response.index_version)
                except grpc.RpcError as e:
                    with self._lock:
                        self.failures.append(f"{e.code().name}: {e.details()}")


def metrics_address(server: ServerProcess) -> str:
    """HOST:PORT of /metrics, as the start log line names it."""
    return server.start_fields()["metrics"]


def scrape(server: ServerProcess) -> dict[tuple[str, frozenset], float]:
    """Every sample of the server's /metrics: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://{metrics_address(server)}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(metrics: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """One sample's value; 0 when the server has not produced it (a counter never incremented)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)
