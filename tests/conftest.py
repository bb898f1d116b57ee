"""Shared fixtures: the real data (required, never skipped) and tiny synthetic datasets."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# TensorFlow's C++ start-up chatter would drown the test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "wp_movies_us.ndjson"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The 36k real films. Their absence fails the test: CI must not pass without them."""
    if not REAL_DATA.is_file():
        pytest.fail(f"{REAL_DATA} is missing: the real-data tests need ../shared/data beside the checkout")
    return REAL_DATA


def clustered_films(n_films: int = 300, n_clusters: int = 6, links_per_cluster: int = 25, seed: int = 0) -> list[list]:
    """Records in the notebook's format whose links come mostly from the film's cluster,
    so that a trained model can predict held-out links far better than chance."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_films):
        cluster = i % n_clusters
        own = [f"Link {cluster}-{j}" for j in rng.choice(links_per_cluster, 8, replace=False)]
        stray = [f"Link {rng.integers(n_clusters)}-{rng.integers(links_per_cluster)}"]
        infobox = {"name": f"Film {i}", "gross": f"${10 + 5 * cluster + rng.random():.1f} million"}
        rotten = f"{20 + 10 * cluster + int(rng.integers(0, 10))}%"
        records.append([f"Film {i} (film)", infobox, own + stray, rotten, None])
    return records


def write_ndjson(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    return write_ndjson(tmp_path / "films.ndjson", clustered_films())


# The tiers. `make test` runs every test; `make test-fast` leaves out the marked ones (pyproject.toml):
#   tf         trains or otherwise runs TensorFlow (in this process or a child)
#   real_data  reads ../shared/data (marked here for every test using the real_data fixture; by hand otherwise)
#   slow       takes several seconds for another reason (server processes, a fresh venv, a browser)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


_TENSORFLOW_BEFORE = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_TENSORFLOW_BEFORE] = "tensorflow" in sys.modules


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A test that loads TensorFlow in this process without the tf marker fails at teardown,
    so that the fast tier stays free of it (a test run after TensorFlow is loaded goes unchecked)."""
    outcome = yield
    report = outcome.get_result()
    if (call.when == "teardown" and report.passed and not item.stash.get(_TENSORFLOW_BEFORE, True)
            and "tensorflow" in sys.modules and item.get_closest_marker("tf") is None):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} loaded TensorFlow: mark it (or its module) with @pytest.mark.tf"
