"""The indexer stage: run -> published, versioned FAISS index; prune; export; CLI."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import movielinks.search.neighbours
from movielinks import search

from movielinks import common
import movielinks.common.movie_links
import movielinks.common.npz
import movielinks.common.mapped
import movielinks.indexer.build
from movielinks import indexer
import movielinks.indexer.calibrate
import movielinks.indexer.root
import movielinks.indexer.version
from movielinks.common.files import sha256_file
from movielinks.common.movie_links import MovieLinks
from movielinks.common.neighbour_files import read_neighbour_file
from movielinks.indexer import cli
from movielinks.indexer.build import build_index
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.export import export_neighbours
from movielinks.indexer.validate import validate_version
from movielinks.indexer.prune import prune, versions_to_prune
from tests import fixtures
from tests.fixtures import clustered_unit_vectors
from movielinks.trainer.run import load_run

REPO = Path(__file__).resolve().parents[2]
N_MOVIES, N_LINKS, DIM, N_CLUSTERS = 300, 120, 16, 6


def make_run(path: Path, seed: int = 0) -> Path:
    return fixtures.make_run(path, seed, n_movies=N_MOVIES, n_links=N_LINKS, dim=DIM, n_clusters=N_CLUSTERS)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "run")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, run_dir: Path) -> indexer.version.IndexVersion:
    """One Flat version shared by the read-only tests."""
    root = tmp_path_factory.mktemp("index")
    build_index(run_dir, root, progress=False)
    return indexer.root.load_current(root)


def exact_scores(vectors: np.ndarray, queries: np.ndarray, exclude_self: bool) -> np.ndarray:
    scores = queries.astype(np.float64) @ vectors.T.astype(np.float64)
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    return scores


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    return np.argsort(-exact_scores(vectors, queries, exclude_self), axis=1, kind="stable")[:, :k]


def assert_exact_top_k(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, exclude_self: bool) -> None:
    """`ids` rank like numpy's float64 argsort; two neighbours whose scores agree to
    float32 rounding may swap, as FAISS computes in float32."""
    scores = exact_scores(vectors, queries, exclude_self)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, : ids.shape[1]]
    np.testing.assert_allclose(
        np.take_along_axis(scores, ids, axis=1), np.take_along_axis(scores, expected, axis=1), rtol=0, atol=1e-5
    )
    assert (ids == expected).mean() > 0.99


def test_build_publishes_a_loadable_inner_product_version(tmp_path: Path, run_dir: Path) -> None:
    root = tmp_path / "index"
    name = build_index(run_dir, root, progress=False)

    assert indexer.root.current_version_name(root) == name
    assert indexer.root.list_versions(root) == [name]
    version = indexer.root.load_current(root)
    assert version.name == name
    assert version.movie_index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert version.link_index.metric_type == faiss.METRIC_INNER_PRODUCT
    # Vectors and stored neighbours are memory-mapped, not read: a big version starts fast.
    # The vectors are served from the (memory-mapped) index file's own storage, one copy, read-only.
    assert isinstance(version.movie_vectors.base, indexer.version._IndexMemory) and not version.movie_vectors.flags.owndata
    assert not version.movie_vectors.flags.writeable and isinstance(version.movie_neighbours.ids, np.memmap)
    assert np.array_equal(version.movie_vectors, np.load(version.path / indexer.version.MOVIE_VECTORS))
    run = load_run(run_dir)
    np.testing.assert_array_equal(version.movie_vectors, run.movie_vectors)
    with np.load(root / "versions" / name / indexer.version.MOVIE_NEIGHBOURS) as saved:
        # Ids and each movie's local scale only: the scores are computed from the vectors.
        assert set(saved.files) == {"ids", "scales"}
        np.testing.assert_array_equal(version.movie_neighbours.ids, saved["ids"])
        np.testing.assert_array_equal(version.movie_scales, saved["scales"])
    assert version.movie_neighbours.scores is None and version.link_movies.scores is None
    run_manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest = version.manifest
    assert manifest.source_run["checksum"] == sha256_file(run_dir / "manifest.json")
    assert manifest.dataset == run_manifest["dataset"] and manifest.metrics == run_manifest["metrics"]
    assert manifest.indexes["movies"].size == N_MOVIES and manifest.indexes["links"].size == N_LINKS
    assert manifest.indexes["movies"].dim == DIM and manifest.indexes["movies"].factory == "Flat"
    assert set(manifest.files) == {
        indexer.version.MOVIE_INDEX, indexer.version.LINK_INDEX, indexer.version.MOVIE_VECTORS, indexer.version.LINK_VECTORS, indexer.version.MOVIES, indexer.version.LINKS, indexer.version.ATTRIBUTE_MODELS,
        indexer.version.MOVIE_NEIGHBOURS, indexer.version.LINK_MOVIES, indexer.version.MOVIE_LINKS, *indexer.version.LOOKUP_FILES,
    }
    run = load_run(run_dir)
    assert np.array_equal(version.movie_links.offsets, run.movie_links.offsets)
    assert np.array_equal(version.movie_links.link_ids, run.movie_links.link_ids)
    assert len(version.movies) == N_MOVIES and version.links[0] == "Link 0"
    assert set(version.attribute_models) == {"rotten_tomatoes", "gross"}


def test_flat_search_matches_numpy_exactly(built: indexer.version.IndexVersion) -> None:
    k = 10
    ids, scores = search.neighbours.search(built.movie_index, built.movie_vectors, k, exclude=[{i} for i in range(N_MOVIES)])
    assert_exact_top_k(ids, built.movie_vectors, built.movie_vectors, exclude_self=True)
    expected = np.take_along_axis(built.movie_vectors @ built.movie_vectors.T, ids, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)

    link_ids, _ = search.neighbours.search(built.link_index, built.movie_vectors[:20], k)
    assert_exact_top_k(link_ids, built.link_vectors, built.movie_vectors[:20], exclude_self=False)


def test_search_excludes_several_ids_and_pads_short_rows(built: indexer.version.IndexVersion) -> None:
    query = built.movie_vectors[:2]
    full, _ = search.neighbours.search(built.movie_index, query, 8)
    excluded = [set(full[0, :3].tolist()), set()]
    ids, scores = search.neighbours.search(built.movie_index, query, 5, exclude=excluded)
    np.testing.assert_array_equal(ids[0], full[0, 3:8])
    np.testing.assert_array_equal(ids[1], full[1, :5])

    everything, everything_scores = search.neighbours.search(built.movie_index, query[:1], N_MOVIES + 5, exclude=[{0, 1}])
    assert (everything[0, : N_MOVIES - 2] >= 0).all() and (everything[0, N_MOVIES - 2 :] == -1).all()
    assert np.isneginf(everything_scores[0, N_MOVIES - 2 :]).all()
    with pytest.raises(ValueError, match="dimension"):
        search.neighbours.search(built.movie_index, np.zeros((1, DIM + 1)), 3)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 12),
    exclude=st.lists(st.sets(st.integers(-1, 40), max_size=6), min_size=1, max_size=5),
)
def test_search_agrees_with_a_row_by_row_reference(k: int, exclude: list[set[int]]) -> None:
    rng = np.random.default_rng(len(exclude) * 100 + k)
    vectors = clustered_unit_vectors(rng, 30, 8, 3)
    index = faiss.IndexFlatIP(8)
    index.add(vectors)
    queries = vectors[: len(exclude)]
    ids, scores = search.neighbours.search(index, queries, k, exclude=exclude)
    _, full_ranking = index.search(queries, index.ntotal)  # same arithmetic, so the same order
    for row, skip in enumerate(exclude):
        ranked = [i for i in full_ranking[row].tolist() if i not in skip][:k]
        assert ids[row, : len(ranked)].tolist() == ranked
        assert (ids[row, len(ranked) :] == -1).all() and np.isneginf(scores[row, len(ranked) :]).all()


def test_second_build_moves_current_and_keeps_the_first(tmp_path: Path, run_dir: Path) -> None:
    first = build_index(run_dir, tmp_path, progress=False)
    second = build_index(run_dir, tmp_path, progress=False)
    assert first < second
    assert indexer.root.list_versions(tmp_path) == [first, second]
    assert indexer.root.current_version_name(tmp_path) == second
    assert indexer.version.load_version(indexer.root.version_dir(tmp_path, first)).name == first


def test_prune_keeps_the_newest_and_never_current_or_newer(tmp_path: Path, run_dir: Path) -> None:
    names = [build_index(run_dir, tmp_path, progress=False) for _ in range(4)]
    assert prune(tmp_path, keep=2) == names[:2]
    assert indexer.root.list_versions(tmp_path) == names[2:]

    indexer.root.publish(tmp_path, names[2])  # a rollback: the newest version is now unpublished
    assert prune(tmp_path, keep=1) == []
    assert indexer.root.list_versions(tmp_path) == names[2:]
    assert indexer.root.load_current(tmp_path).name == names[2]

    with pytest.raises(IndexerError, match="keep"):
        prune(tmp_path, keep=0)


def test_versions_to_prune_rule() -> None:
    versions = ["v1", "v2", "v3", "v4", "v5"]
    assert versions_to_prune(versions, current="v5", keep=2) == ["v1", "v2", "v3"]
    assert versions_to_prune(versions, current="v2", keep=1) == ["v1"]
    assert versions_to_prune(versions, current="v5", keep=9) == []


def test_prune_sweeps_only_stale_staging(tmp_path: Path, run_dir: Path) -> None:
    build_index(run_dir, tmp_path, progress=False)
    stale = indexer.root.versions_dir(tmp_path) / ".crashed.partial-abc"
    fresh = indexer.root.versions_dir(tmp_path) / ".building.partial-def"
    for staging in (stale, fresh):
        staging.mkdir()
        (staging / "movies.faiss").write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    prune(tmp_path, keep=1)
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("factory", ["HNSW32", "IVF8,Flat"])
def test_approximate_factories_find_most_exact_neighbours(tmp_path: Path, run_dir: Path, factory: str) -> None:
    build_index(run_dir, tmp_path, factory=factory, progress=False)
    version = indexer.root.load_current(tmp_path)
    assert version.manifest.indexes["movies"].factory == factory
    k = 10
    ids, _ = search.neighbours.search(version.movie_index, version.movie_vectors, k, exclude=[{i} for i in range(N_MOVIES)])
    exact = exact_top_k(version.movie_vectors, version.movie_vectors, k, exclude_self=True)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids.tolist(), exact.tolist())])
    assert recall >= 0.9


@pytest.mark.parametrize(
    ("factory", "message"),
    [("Nonsense42", "invalid index factory 'Nonsense42'"), ("IVF1024,Flat", "too few to train 1024 IVF lists")],
)
def test_bad_factory_is_an_indexer_error(tmp_path: Path, run_dir: Path, factory: str, message: str) -> None:
    with pytest.raises(IndexerError, match=message.replace("(", r"\(")):
        build_index(run_dir, tmp_path, factory=factory, progress=False)
    assert indexer.root.list_versions(tmp_path) == []


def test_non_unit_run_vectors_are_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    vectors = np.load(run / "movie_vectors.npy") * 2
    manifest = json.loads((run / "manifest.json").read_text())
    np.save(run / "movie_vectors.npy", vectors)
    manifest["files"]["movie_vectors.npy"] = sha256_file(run / "movie_vectors.npy")
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexerError, match="not unit length"):
        build_index(run, tmp_path / "index", progress=False)


def test_corrupt_version_file_is_named(tmp_path: Path, run_dir: Path) -> None:
    name = build_index(run_dir, tmp_path, progress=False)
    with open(indexer.root.version_dir(tmp_path, name) / indexer.version.MOVIES, "a", encoding="utf-8") as f:
        f.write("\n")
    with pytest.raises(IndexerError, match=indexer.version.MOVIES):
        indexer.root.load_current(tmp_path)


def test_corrupt_run_is_an_indexer_error(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    with open(run / "links.json", "a", encoding="utf-8") as f:
        f.write(" ")
    with pytest.raises(IndexerError, match="links.json: checksum mismatch"):
        build_index(run, tmp_path / "index", progress=False)


def _fail_copy(*args: object, **kwargs: object) -> None:
    raise OSError("disk full")


def _fail_validation(path: object) -> None:
    raise IndexerError(f"{path}: simulated")


@pytest.mark.parametrize(
    ("module", "attribute", "replacement", "error"),
    [(shutil, "copyfile", _fail_copy, OSError), (indexer.version, "load_version", _fail_validation, IndexerError)],
)
def test_failed_build_leaves_no_version_and_current_unchanged(
    tmp_path: Path,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: object,
    attribute: str,
    replacement: object,
    error: type,
) -> None:
    first = build_index(run_dir, tmp_path, progress=False)
    monkeypatch.setattr(module, attribute, replacement)
    with pytest.raises(error):
        build_index(run_dir, tmp_path, progress=False)
    assert sorted(p.name for p in indexer.root.versions_dir(tmp_path).iterdir()) == [first]
    assert indexer.root.current_version_name(tmp_path) == first


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_export_equals_search(tmp_path: Path, built: indexer.version.IndexVersion, suffix: str) -> None:
    k = 7
    out = tmp_path / f"neighbours{suffix}"
    rows = export_neighbours(built, k, out, batch_size=64, progress=False)

    assert rows == N_MOVIES * k
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    exported = read_neighbour_file(out)
    ids, scores = search.neighbours.search(built.movie_index, built.movie_vectors, k, exclude=[{i} for i in range(N_MOVIES)])
    titles = [m.title for m in built.movies]
    assert list(exported) == titles
    for i, title in enumerate(titles):
        assert [n for n, _ in exported[title]] == [titles[j] for j in ids[i]]
        assert title not in {n for n, _ in exported[title]}
        # The stored lists' scores are computed from the vectors: FAISS's to float32 rounding.
        np.testing.assert_allclose(np.float32([s for _, s in exported[title]]), scores[i], rtol=0, atol=1e-6)


def test_export_refuses_bad_suffix_and_leaves_nothing_on_failure(
    tmp_path: Path, built: indexer.version.IndexVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(IndexerError, match=r"\.csv, \.jsonl, \.parquet"):
        export_neighbours(built, 5, tmp_path / "neighbours.txt", progress=False)

    calls = []
    real_similar_rows = search.neighbours.similar_rows

    def neighbours_then_fail(*args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("interrupted")
        return real_similar_rows(*args, **kwargs)

    monkeypatch.setattr("movielinks.search.neighbours.similar_rows", neighbours_then_fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        export_neighbours(built, 5, tmp_path / "neighbours.csv", batch_size=100, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_list_export_prune(tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "index"
    first = build_index(run_dir, root, progress=False)
    second = build_index(run_dir, root, progress=False)

    assert cli.main(["list", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"  {first}") and lines[1].startswith(f"* {second}")

    out = tmp_path / "n.jsonl"
    assert cli.main(["export", str(indexer.root.version_dir(root, first)), "--k", "3", "--out", str(out), "--quiet"]) == 0
    assert f"from version {first}" in capsys.readouterr().out
    assert all(len(neighbours) == 3 for neighbours in read_neighbour_file(out).values())

    assert cli.main(["prune", str(root), "--keep", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"removed {first}"

    assert cli.main(["export", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("indexer: error: ") and err.count("\n") == 1


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "movielinks.indexer", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_build_prints_name_sizes_and_where(tmp_path: Path, run_dir: Path) -> None:
    result = run_cli("build", str(run_dir), "--out", str(tmp_path), "--quiet")
    assert result.returncode == 0, result.stderr
    name = indexer.root.current_version_name(tmp_path)
    assert f"built index version {name}" in result.stdout
    assert f"{N_MOVIES} x {DIM}" in result.stdout and f"{N_LINKS} x {DIM}" in result.stdout
    assert str(tmp_path / indexer.root.CURRENT) in result.stdout


def test_cli_bad_run_path_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run_cli("build", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "index"))
    assert result.returncode == 2
    assert result.stderr.startswith("indexer: error: ") and result.stderr.count("\n") == 1
    assert "no-such-run" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "index").exists()


def test_stored_movie_neighbours_equal_a_search(tmp_path, run_dir):
    build_index(run_dir, tmp_path / "index", neighbours_k=20, progress=False)
    version = indexer.root.load_current(tmp_path / "index")
    rows = np.arange(N_MOVIES)
    ids, scores = version.movie_neighbours.first(rows, 20)
    assert ids.shape == scores.shape == version.movie_neighbours.ids.shape == (N_MOVIES, 20)
    expected_ids, expected_scores = search.neighbours.search(version.movie_index, version.movie_vectors, 20, rows[:, None])
    assert (ids == expected_ids).all() and np.allclose(scores, expected_scores)
    assert not (ids == rows[:, None]).any()
    build_index(run_dir, tmp_path / "none", neighbours_k=0, progress=False)
    assert indexer.root.load_current(tmp_path / "none").movie_neighbours is None
    with pytest.raises(IndexerError, match="neighbours-k"):
        build_index(run_dir, tmp_path / "bad", neighbours_k=-1, progress=False)


def test_each_link_s_nearest_movies_are_stored_as_a_search_finds_them(tmp_path: Path, run_dir: Path) -> None:
    build_index(run_dir, tmp_path / "index", factory="HNSW16", link_movies_k=12, progress=False)
    version = indexer.root.load_current(tmp_path / "index")
    lists = version.link_movies
    ids, scores = lists.first(np.arange(N_LINKS), 12)
    assert ids.shape == scores.shape == lists.ids.shape == (N_LINKS, 12) and lists.ids.dtype == np.int32
    expected_ids, expected_scores = search.neighbours.search(version.movie_index, version.link_vectors, 12)
    assert (ids == expected_ids).all() and np.allclose(scores, expected_scores)  # at the file's own setting
    build_index(run_dir, tmp_path / "none", link_movies_k=0, progress=False)
    assert indexer.root.load_current(tmp_path / "none").link_movies is None
    for bad, problem in ((dataclasses.replace(lists, ids=lists.ids[:-1]), "link movies have the wrong shape"),
                         (dataclasses.replace(lists, ids=np.full_like(lists.ids, N_MOVIES)), "link movies name unknown movies"),
                         (dataclasses.replace(lists, scores=scores[:, :3]), "link movies have the wrong shape")):
        with pytest.raises(IndexerError, match=problem):
            validate_version(dataclasses.replace(version, link_movies=bad))
    with pytest.raises(IndexerError, match="link-movies-k"):
        build_index(run_dir, tmp_path / "bad", link_movies_k=-1, progress=False)


def test_stored_neighbours_are_searched_with_the_setting_for_the_index_own_rows(
        tmp_path: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where links need more candidates than movies, the file keeps the setting for both kinds and
    the stored lists (movies asking movies) are searched with the cheaper one, as the manifest says."""
    def calibrated(index, vectors, target, *, other=None, **_):
        for name, value in (("efSearch", 200),):
            faiss.ParameterSpace().set_index_parameter(index, name, value)
        return indexer.calibrate.Calibration(params={"efSearch": 200}, recall_at_10=0.99, queries=100, target=target,
                                             cross_recall_at_10=0.96, own_params={"efSearch": 4}, own_recall_at_10=0.9)

    monkeypatch.setattr(indexer.build, "calibrate", calibrated)
    build_index(run_dir, tmp_path, factory="HNSW4", neighbours_k=10, progress=False)
    version = indexer.root.load_current(tmp_path)
    described = version.manifest.indexes["movies"]
    assert described.search_params == {"efSearch": 200} and version.movie_index.hnsw.efSearch == 200
    assert described.own_search_params == {"efSearch": 4} and described.own_recall_at_10 == 0.9
    rows = np.arange(N_MOVIES)[:, None]
    version.movie_index.hnsw.efSearch = 4
    ids, _ = search.neighbours.search(version.movie_index, version.movie_vectors, 10, rows)
    np.testing.assert_array_equal(version.movie_neighbours.ids, ids)
    version.movie_index.hnsw.efSearch = 200
    wider, _ = search.neighbours.search(version.movie_index, version.movie_vectors, 10, rows)
    assert (wider != ids).any()  # the two settings answer differently: the lists show which was used


def test_auto_factory_is_exact_for_small_catalogues_and_hnsw_beyond(tmp_path: Path, run_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert indexer.build.choose_factory("auto", indexer.build.EXACT_MAX_VECTORS) == "Flat"
    assert indexer.build.choose_factory("auto", indexer.build.EXACT_MAX_VECTORS + 1) == "HNSW32"
    assert indexer.build.choose_factory("auto", indexer.build.EXACT_MAX_VECTORS + 1, "links") == "HNSW32,SQfp16"
    assert indexer.build.choose_factory("IVF16,Flat", 10) == "IVF16,Flat"  # --factory still overrides
    monkeypatch.setattr(indexer.build, "EXACT_MAX_VECTORS", N_LINKS)  # links stay exact, movies get HNSW
    build_index(run_dir, tmp_path / "index", progress=False)
    described = indexer.root.load_current(tmp_path / "index").manifest.indexes
    assert (described["movies"].factory, described["movies"].type) == ("HNSW32", "IndexHNSWFlat")
    assert set(described["movies"].search_params) == {"efSearch"}  # chosen by measured recall (below)
    assert described["movies"].build_params == {"efConstruction": indexer.build.EF_CONSTRUCTION}
    built = indexer.root.version_dir(tmp_path / "index", indexer.root.current_version_name(tmp_path / "index"))
    assert faiss.read_index(str(built / indexer.version.MOVIE_INDEX)).hnsw.efConstruction == 200
    assert described["movies"].recall_at_10 >= indexer.calibrate.DEFAULT_TARGET_RECALL
    assert described["movies"].cross_recall_at_10 >= indexer.calibrate.DEFAULT_TARGET_RECALL  # links asking it
    assert described["links"].factory == "Flat" and described["links"].type.startswith("IndexFlat")
    assert described["links"].search_params == {} and described["links"].recall_at_10 is None


def _exact_top10(vectors: np.ndarray, rows: np.ndarray) -> list[set[int]]:
    scores = vectors[rows] @ vectors.T
    scores[np.arange(len(rows)), rows] = -np.inf  # the query itself is not its own neighbour
    return [set(np.argsort(-row, kind="stable")[:10].tolist()) for row in scores]


def test_calibration_picks_the_cheapest_setting_that_reaches_the_target() -> None:
    vectors = np.random.default_rng(3).standard_normal((4000, 32)).astype(np.float32)  # no structure: hard
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = indexer.build.make_index(vectors, "IVF64,Flat", what="movies")
    calibration = indexer.calibrate.calibrate(index, vectors, 0.9, queries=200)
    assert calibration.reached and calibration.queries == 200 and set(calibration.params) == {"nprobe"}
    assert index.nprobe == calibration.params["nprobe"]  # the index itself now searches so
    settings = [p["nprobe"] for p in indexer.calibrate.ladder(index)]
    assert settings[0] == 8 and settings[-1] == 64 and settings == sorted(settings)
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), 200, replace=False))
    truth = _exact_top10(vectors, rows)

    def recall(nprobe: int) -> float:  # measured here independently of the module
        index.nprobe = nprobe
        _, found = index.search(vectors[rows], 11)
        return float(np.mean([len(set(f[f != r][:10].tolist()) & t) / 10 for f, r, t in zip(found, rows, truth)]))

    chosen = settings.index(calibration.params["nprobe"])
    assert recall(settings[chosen]) == pytest.approx(calibration.recall_at_10)
    assert recall(settings[chosen]) >= 0.9 and chosen > 0 and recall(settings[chosen - 1]) < 0.9


def test_calibration_also_holds_for_queries_by_the_other_kind() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    other = rng.standard_normal((1500, 32)).astype(np.float32)  # not rows of the index: as links asking movies
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    index = indexer.build.make_index(vectors, "HNSW8", what="movies")
    alone = indexer.calibrate.calibrate(index, vectors, 0.97, queries=300)
    own_only = alone.params["efSearch"]
    calibration = indexer.calibrate.calibrate(index, vectors, 0.97, other=other, queries=300)
    assert calibration.reached and calibration.params["efSearch"] >= own_only
    # the cheaper setting for the index's own rows is kept beside it, as calibrating on them alone finds it
    assert calibration.own_params == alone.params and calibration.own_recall_at_10 == alone.recall_at_10 >= 0.97
    picked = np.sort(np.random.default_rng(1).choice(len(other), 300, replace=False))
    truth = [set(np.argsort(-row, kind="stable")[:10].tolist()) for row in other[picked] @ vectors.T]

    def cross_recall(ef: int) -> float:  # measured here independently of the module
        index.hnsw.efSearch = ef
        _, found = index.search(other[picked], 10)
        return float(np.mean([len(set(f.tolist()) & t) / 10 for f, t in zip(found, truth)]))

    ladder = list(indexer.calibrate.EF_SEARCH_LADDER)
    chosen = ladder.index(calibration.params["efSearch"])
    assert cross_recall(ladder[chosen]) == pytest.approx(calibration.cross_recall_at_10)
    assert calibration.cross_recall_at_10 >= 0.97 and calibration.recall_at_10 >= 0.97
    if calibration.params["efSearch"] > own_only:  # raised for the other kind: the step below fell short for it
        assert cross_recall(ladder[chosen - 1]) < 0.97


def test_calibration_says_when_the_target_is_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = np.random.default_rng(4).standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = indexer.build.make_index(vectors, "HNSW4", what="links")
    monkeypatch.setattr(indexer.calibrate, "EF_SEARCH_LADDER", (1, 2))  # too few candidates for a top 10
    calibration = indexer.calibrate.calibrate(index, vectors, 1.0, queries=100)
    assert not calibration.reached and calibration.params == {"efSearch": 2} and calibration.recall_at_10 < 1.0
    exact = indexer.build.make_index(vectors, "Flat", what="links")
    assert indexer.calibrate.calibrate(exact, vectors).params == {}  # exact: nothing to tune
    with pytest.raises(ValueError, match="target"):
        indexer.calibrate.calibrate(index, vectors, 1.5)
    with pytest.raises(IndexerError, match="target-recall"):
        build_index("no-such-run", "nowhere", target_recall=0.0, progress=False)


def test_cli_build_reports_the_measured_recall(tmp_path: Path, run_dir: Path) -> None:
    result = run_cli("build", str(run_dir), "--out", str(tmp_path), "--factory", "HNSW16", "--quiet")
    assert result.returncode == 0, result.stderr
    described = indexer.root.load_current(tmp_path).manifest.indexes["movies"]
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("movies:"))
    assert f"efSearch {described.search_params['efSearch']}: recall@10 {described.recall_at_10:.3f}" in line


def test_movie_links_are_optional_and_checked(tmp_path: Path) -> None:
    old = fixtures.make_run(tmp_path / "old", movie_links=False)
    build_index(old, tmp_path / "old_index", progress=False)
    version = indexer.root.load_current(tmp_path / "old_index")
    assert version.movie_links is None and indexer.version.MOVIE_LINKS not in version.manifest.files
    run = fixtures.make_run(tmp_path / "new")
    links = load_run(run).movie_links
    assert links.n_movies == N_MOVIES and links.problem(N_MOVIES, N_LINKS) is None
    assert all(np.all(np.diff(links.of(i)) > 0) for i in range(N_MOVIES))  # sorted, distinct
    assert "unknown links" in MovieLinks(links.offsets, links.link_ids + N_LINKS).problem(N_MOVIES, N_LINKS)
    assert "movies" in MovieLinks(links.offsets[:-1], links.link_ids).problem(N_MOVIES, N_LINKS)


def test_citation_marks_travel_from_run_to_version_and_old_files_still_read(tmp_path: Path) -> None:
    run = fixtures.make_run(tmp_path / "run", cited_links=(1, 2))
    build_index(run, tmp_path / "index", progress=False)
    links = indexer.root.load_current(tmp_path / "index").movie_links
    assert np.array_equal(links.cited, np.isin(links.link_ids, (1, 2)))
    assert links.citation_links(N_LINKS).nonzero()[0].tolist() == [1, 2]
    assert not set(links.reasons_of(0).tolist()) & {1, 2} and links.problem(N_MOVIES, N_LINKS) is None
    assert "pairs" in MovieLinks(links.offsets, links.link_ids, links.cited[1:]).problem(N_MOVIES, N_LINKS)
    # A file written before the marks (offsets and link ids only) reads with nothing marked.
    np.savez(tmp_path / "old.npz", offsets=links.offsets, link_ids=links.link_ids)
    old = common.movie_links.load(tmp_path / "old.npz")
    assert old.cited is None and not old.citation_links(N_LINKS).any()
    assert np.array_equal(old.reasons_of(0), links.of(0))
    # A pair is cited only when every one of its repeats is.
    merged = common.movie_links.from_pairs(np.array([(0, 1), (0, 1), (0, 2), (0, 2)]), 1,
                                           np.array([True, True, True, False]))
    assert merged.link_ids.tolist() == [1, 2] and merged.cited.tolist() == [True, False]


def test_mapped_arrays_are_checked_by_reading_not_by_touching_the_mapping(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(common.npz, "_READ_VALUES", 1000)  # many pieces
    ids = np.random.default_rng(0).integers(-1, 5_000_000, (10_001, 7), dtype=np.int32)
    np.savez(tmp_path / "n.npz", ids=ids, scores=np.ones(ids.shape, np.float32))
    mapped = common.npz.read_arrays(tmp_path / "n.npz")["ids"]
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, ids)
    assert common.npz.value_range(mapped) == (int(ids.min()), int(ids.max())) == common.npz.value_range(ids)
    # A version's stored neighbours and movie links come back mapped, and their range is still checked.
    run = fixtures.make_run(tmp_path / "run")
    build_index(run, tmp_path / "index", progress=False)
    version = indexer.root.load_current(tmp_path / "index")
    assert isinstance(version.movie_neighbours.ids, np.memmap) and isinstance(version.movie_links.link_ids, np.memmap)
    bad = MovieLinks(version.movie_links.offsets, version.movie_links.link_ids)
    assert bad.problem(N_MOVIES, int(common.npz.value_range(bad.link_ids)[1])) is not None


def test_a_version_stores_the_films_of_each_link_and_a_server_maps_them(built):
    """movie_links.npz holds the inverse layout the must_link_to filter reads (common.movie_links),
    so a server maps it instead of sorting every pair at start; without it, it is computed."""
    links = built.movie_links
    assert links.inverse is not None and isinstance(links.inverse[1], np.memmap)
    computed = dataclasses.replace(links, inverse=None).by_link(N_LINKS)
    for stored, again in zip(links.by_link(N_LINKS), computed):
        assert np.array_equal(stored, again)
    # Films per link (the server's idf at start) come from the stored offsets, not every pair's link id.
    counted = dataclasses.replace(links, inverse=None).films_per_link(N_LINKS)
    assert np.array_equal(dataclasses.replace(links, link_ids=None).films_per_link(N_LINKS), counted)
    assert links.problem(N_MOVIES, N_LINKS) is None
    offsets, movies = links.inverse
    assert "unknown movies" in dataclasses.replace(links, inverse=(offsets, movies + N_MOVIES)).problem(N_MOVIES, N_LINKS)
    assert "offsets" in dataclasses.replace(links, inverse=(offsets[::-1].copy(), movies)).problem(N_MOVIES, N_LINKS)


def _resident_kb(path: Path) -> int:
    """This process's resident kB of its mappings of `path` (/proc/self/smaps)."""
    target, total, inside = os.path.realpath(path), 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:
            inside = len(fields) > 5 and fields[5] == target
        elif inside and fields[:1] == ["Rss:"]:
            total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise: Linux")
def test_released_pages_of_a_read_only_mapping_leave_the_resident_set_and_read_the_same(tmp_path):
    """common.mapped.release: what a version load does to the HNSW graph FAISS scanned."""
    values = np.random.default_rng(0).random(1 << 20)  # 8 MB
    path = tmp_path / "values.npy"
    np.save(path, values)
    mapped = np.load(path, mmap_mode="r")
    assert np.array_equal(mapped, values) and _resident_kb(path) > 6000
    address = mapped.__array_interface__["data"][0]
    assert common.mapped.release(path, address) >= values.nbytes
    assert _resident_kb(path) < 1000
    assert np.array_equal(mapped, values)  # read again from the page cache
    # Only a read-only mapping that holds the address: not a writable one, not another file's.
    writable = np.load(path, mmap_mode="r+")
    writable_address = writable.__array_interface__["data"][0]
    assert common.mapped.release(path, writable_address) == 0
    assert common.mapped.release(tmp_path / "other.npy", address) == 0
    assert common.mapped.mapping_of(path, address) is not None


def test_loading_gives_back_what_faiss_scanned_of_each_index_file_and_the_graph_still_searches(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    build_index(run, tmp_path / "index", factory="HNSW32", progress=False)
    released = []
    release = movielinks.common.mapped.release
    monkeypatch.setattr(movielinks.common.mapped, "release",
                        lambda path, address: released.append((Path(path).name, release(path, address))) or released[-1][1])
    version = indexer.root.load_current(tmp_path / "index")
    # Each index file, read by FAISS (which checks every neighbour id of a graph), is given back whole.
    expected = {indexer.version.MOVIE_INDEX, indexer.version.LINK_INDEX}
    assert {name for name, _ in released} == expected
    if sys.platform.startswith("linux"):
        sizes = {name: (version.path / name).stat().st_size for name in expected}
        assert all(advised >= sizes[name] for name, advised in released)
    ids, _ = movielinks.search.neighbours.search(version.movie_index, version.movie_vectors[:5], 3)
    exact = exact_top_k(np.asarray(version.movie_vectors), np.asarray(version.movie_vectors[:5]), 3, False)
    assert (ids[:, 0] == exact[:, 0]).all()  # the graph searches as before
