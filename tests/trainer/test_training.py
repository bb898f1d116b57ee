"""Training end to end: real data, resume after an interruption, atomic run output."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from movielinks.trainer import run as run_module
from tests.conftest import clustered_films, write_ndjson
from movielinks.trainer.checkpoint import Checkpoint
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.objectives import LogisticObjective
from movielinks.trainer.run import load_run
from movielinks.trainer.train import TrainConfig, default_checkpoint_dir, train

pytestmark = pytest.mark.tf  # the trainer and TensorFlow, in process or as a command

SMALL = TrainConfig(dim=16, epochs=6, batch_positives=128, min_link_count=2, learning_rate=0.05)


def quiet(_line: str) -> None:
    pass


def test_short_real_training_run_beats_chance_by_far(real_data, tmp_path):
    out = train(real_data, tmp_path / "run", TrainConfig(epochs=3), progress=False, log=quiet)
    run = load_run(out)
    metrics = run.manifest.metrics
    assert metrics["link_auc"] > 0.75, metrics
    assert 0 < metrics["recall_at_10"] <= 1
    dim = TrainConfig().dim
    assert run.movie_vectors.shape == (run.manifest.vocabulary["movies"], dim)
    assert run.link_vectors.shape == (run.manifest.vocabulary["links"], dim)
    assert np.allclose(np.linalg.norm(run.movie_vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(run.link_vectors, axis=1), 1, atol=1e-5)
    assert run.movie_vectors.dtype == np.float32
    assert {"rotten_tomatoes", "gross", "budget"} <= set(run.attribute_models)
    for model in run.attribute_models.values():
        assert model.heldout_mse > 0 and model.baseline_mse > 0 and len(model.coef) == dim
    assert run.manifest.dataset["sha256"] and run.manifest.params["negatives_per_positive"] == 10
    assert not default_checkpoint_dir(out).exists()


def test_small_run_learns_clusters(small_dataset, tmp_path):
    run = load_run(train(small_dataset, tmp_path / "run", SMALL, progress=False, log=quiet))
    assert run.manifest.metrics["link_auc"] > 0.8
    learned = run.manifest.objective  # what fold-in (search.foldin) fits new films with
    assert learned["name"] == "logistic" and np.isfinite([learned["scale"], learned["bias"]]).all()
    assert learned["scale"] != pytest.approx(LogisticObjective().initial_scale)  # learned, not the initial value
    # films of one cluster (same i % 6) are closer to each other than to the others
    titles = [m.title for m in run.movies]
    cluster = np.array([int(t.split()[1]) % 6 for t in titles])
    similarity = run.movie_vectors @ run.movie_vectors.T
    same = similarity[cluster[:, None] == cluster[None, :]].mean()
    other = similarity[cluster[:, None] != cluster[None, :]].mean()
    assert same > other + 0.3


def test_a_run_marks_the_pairs_whose_link_is_only_cited(tmp_path):
    """Records with link kinds: the stray link of each film is in its references only (and
    Link 0-0 of cluster 0 in a navbox); the run's movie links say so, pair by pair."""
    records = [r + ["b" * (len(r[2]) - 1) + ("n" if r[2][-1] == "Link 0-0" else "r")] for r in clustered_films()]
    data = write_ndjson(tmp_path / "films.ndjson", records)
    run = load_run(train(data, tmp_path / "run", SMALL, progress=False, log=quiet))
    links, movies = run.movie_links, {movie.title: i for i, movie in enumerate(run.movies)}
    for title, _, film_links, _, _, kinds in records:
        if title not in movies:
            continue
        m = movies[title]
        ids, cited = links.of(m), links.cited[links.offsets[m]:links.offsets[m + 1]]
        expected = {link for link, kind in zip(film_links, kinds) if kind != "b"} - {
            link for link, kind in zip(film_links, kinds) if kind == "b"}
        assert {run.links[j] for j, c in zip(ids.tolist(), cited) if c} == expected & {run.links[j] for j in ids}


def test_training_is_deterministic_and_resumes_after_an_interruption(small_dataset, tmp_path, monkeypatch):
    whole = load_run(train(small_dataset, tmp_path / "whole", SMALL, progress=False, log=quiet))

    real_save = Checkpoint.save
    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # as if the process were stopped right after epoch 1
    monkeypatch.setattr(Checkpoint, "save", save_then_die)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(small_dataset, out, SMALL, progress=False, log=quiet)
    assert not out.exists() and (default_checkpoint_dir(out) / "checkpoint.npz").is_file()
    with pytest.raises(TrainerError, match="--resume"):
        train(small_dataset, out, SMALL, progress=False, log=quiet)
    monkeypatch.setattr(Checkpoint, "save", real_save)

    resumed = load_run(train(small_dataset, out, SMALL, resume=True, progress=False, log=quiet))
    np.testing.assert_allclose(resumed.movie_vectors, whole.movie_vectors, atol=1e-5)
    np.testing.assert_allclose(resumed.link_vectors, whole.link_vectors, atol=1e-5)
    assert resumed.manifest.metrics["epoch_losses"] == pytest.approx(whole.manifest.metrics["epoch_losses"], rel=1e-4)


def test_resume_refuses_other_parameters(small_dataset, tmp_path, monkeypatch):
    real_save = Checkpoint.save
    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt
    monkeypatch.setattr(Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(small_dataset, tmp_path / "run", SMALL, progress=False, log=quiet)
    monkeypatch.setattr(Checkpoint, "save", real_save)
    other = TrainConfig(**{**SMALL.__dict__, "dim": 8})
    with pytest.raises(TrainerError, match="other data or parameters"):
        train(small_dataset, tmp_path / "run", other, resume=True, progress=False, log=quiet)


def test_run_output_is_complete_or_absent(small_dataset, tmp_path, monkeypatch):
    calls = []
    real_save = np.save
    def fail_on_second(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(*args, **kwargs)
    monkeypatch.setattr(run_module.np, "save", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        train(small_dataset, tmp_path / "run", SMALL, progress=False, log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "films.ndjson") == ["run.checkpoint"]


def test_existing_output_is_never_overwritten(small_dataset, tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(TrainerError, match="already exists"):
        train(small_dataset, tmp_path / "run", SMALL, progress=False, log=quiet)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    missing = subprocess.run([sys.executable, "-m", "movielinks.trainer", "train", "--data", str(tmp_path / "none.ndjson"),
                              "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "no such dataset" in missing.stderr
    bad_args = subprocess.run([sys.executable, "-m", "movielinks.trainer", "train", "--data", str(tmp_path), "--out",
                               str(tmp_path / "run"), "--epochs", "0"], capture_output=True, text=True)
    assert bad_args.returncode == 2 and "--epochs must be at least 1" in bad_args.stderr
