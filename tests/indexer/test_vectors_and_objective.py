"""What an index version gives fold-in and batch users: the run's learned objective in its
manifest, and `indexer export --vectors` (.npy with its names, .parquet)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from movielinks.indexer import cli
from movielinks.indexer.build import build_index
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.export import export_vectors, vector_names_path
from movielinks.indexer.root import load_current
from movielinks.search.foldin import DEFAULT_SCALE, Objective
from tests.fixtures import make_run

LEARNED = {"name": "logistic", "scale": 11.5, "bias": -1.75}


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vectors")
    build_index(make_run(tmp / "run", n_movies=60, n_links=30, objective=LEARNED), tmp / "index", progress=False)
    return load_current(tmp / "index")


def test_the_version_carries_the_runs_learned_objective_for_fold_in(version, tmp_path):
    assert version.manifest.objective == LEARNED
    objective = Objective.from_manifest(version.manifest.objective, version.manifest.params)
    assert (objective.scale, objective.bias, objective.recorded) == (11.5, -1.75, True)
    build_index(make_run(tmp_path / "older", n_movies=20, n_links=10), tmp_path / "index", progress=False)
    older = load_current(tmp_path / "index").manifest  # a run from before the objective was recorded
    assert older.objective == {} and Objective.from_manifest(older.objective, older.params).scale == DEFAULT_SCALE


@pytest.mark.parametrize("what", ["movies", "links"])
def test_npy_export_holds_every_unit_vector_in_id_order_with_its_names(version, tmp_path, what):
    out = tmp_path / f"{what}.npy"
    assert cli.main(["export", str(version.path), "--vectors", what, "--out", str(out)]) == 0
    expected = version.movie_vectors if what == "movies" else version.link_vectors
    np.testing.assert_array_equal(np.load(out), expected)
    about = json.loads(vector_names_path(out).read_text())
    assert about["version"] == version.name and about["what"] == what and about["dim"] == version.dim
    assert about["names"] == list(version.movie_names if what == "movies" else version.links)


def test_parquet_export_holds_names_and_vectors_and_the_version(version, tmp_path, capsys):
    out = tmp_path / "movies.parquet"
    assert cli.main(["export", str(version.path), "--vectors", "--out", str(out)]) == 0  # movies by default
    assert f"wrote 60 movies vectors of dimension {version.dim} from version {version.name}" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column("name").to_pylist() == list(version.movie_names)
    np.testing.assert_array_equal(np.array(table.column("vector").to_pylist(), dtype=np.float32), version.movie_vectors)
    assert json.loads(table.schema.metadata[b"movielinks"])["version"] == version.name


def test_a_bad_kind_or_suffix_is_a_clear_error(version, tmp_path, capsys):
    with pytest.raises(IndexerError, match="unknown vector file type '.csv'"):
        export_vectors(version, "movies", tmp_path / "v.csv")
    with pytest.raises(IndexerError, match="unknown vectors 'films'"):
        export_vectors(version, "films", tmp_path / "v.npy")
    assert cli.main(["export", str(version.path), "--vectors", "movies", "--out", str(tmp_path / "v.txt")]) == 2
    assert "indexer: error:" in capsys.readouterr().err and not (tmp_path / "v.txt").exists()
