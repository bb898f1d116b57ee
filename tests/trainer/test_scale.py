"""Training at scale: synthetic data at any size, row-wise updates, bounded evaluation."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.e2e_server import REPO
from movielinks.trainer import evaluate
from movielinks.trainer.data import read_dataset
from movielinks.trainer.synth import SynthSpec, generate, topic_of, write

SMALL = SynthSpec(films=1500, links_per_film=20, seed=3)


def test_synthetic_films_are_deterministic_and_share_links_within_a_topic():
    first, again = list(generate(SMALL)), list(generate(SMALL))
    assert first == again and len(first) == 1500
    assert list(generate(SynthSpec(films=1500, links_per_film=20, seed=4)))[0] != first[0]
    topics = np.array([topic_of(r[0]) for r in first])
    links = [set(r[2]) for r in first]
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(first), (3000, 2))
    same = [len(links[a] & links[b]) for a, b in pairs if topics[a] == topics[b] and a != b]
    other = [len(links[a] & links[b]) for a, b in pairs if topics[a] != topics[b]]
    assert len(same) > 20 and np.mean(same) > 3 * np.mean(other)


def test_the_notebook_preset_has_the_notebooks_shape():
    """10,000 films, ~95 distinct links a film, ~950k pairs, ~67k links in 3 or more films."""
    spec = SynthSpec()
    counts: dict[str, int] = {}
    pairs = 0
    for record in generate(spec):
        distinct = set(record[2])
        pairs += len(distinct)
        for link in distinct:
            counts[link] = counts.get(link, 0) + 1
    kept = sum(1 for c in counts.values() if c >= 3)
    assert 900_000 < pairs < 1_000_000 and 60_000 < kept < 75_000, (pairs, kept)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["films.ndjson", "films.ndjson.gz"])
def test_synth_command_writes_what_the_trainer_reads(tmp_path, name):
    out = tmp_path / name
    done = subprocess.run([sys.executable, "-m", "movielinks.trainer", "synth", "--films", "300", "--links-per-film", "12",
                           "--out", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    dataset = read_dataset(out)
    assert len(dataset.films) == 300 and dataset.skipped == []
    assert dataset.films[5].title == list(generate(SynthSpec(films=300, links_per_film=12)))[5][0]
    if name.endswith(".ndjson"):  # the same bytes again: deterministic
        again = write(SynthSpec(films=300, links_per_film=12), tmp_path / "again.ndjson", progress=False)
        assert again.read_bytes() == out.read_bytes()


def _table_and_batch():
    """A seeded 6 x 3 table (its start, and the variable), and a batch's rows 1 and 4 with their gradient."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    gradient = rng.normal(size=(2, 3)).astype(np.float32)
    return start, tf.Variable(start.copy()), tf.constant([1, 4], dtype=tf.int32), gradient


@pytest.mark.tf
def test_rowwise_adam_updates_only_the_rows_of_the_batch_as_adam_does():
    import tensorflow as tf

    from movielinks.trainer.optimizer import RowwiseAdam

    start, table, rows, gradient = _table_and_batch()
    optimizer = RowwiseAdam(0.1, tables=[table], dense=[])
    for _ in range(3):
        optimizer.apply([(table, rows, tf.constant(gradient))], [])
    after = table.numpy()
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(after[untouched], start[untouched])
    # Adam with a constant gradient g moves each weight by lr * sign(g) every step (bias-corrected).
    expected = start[[1, 4]] - 3 * 0.1 * gradient / (np.abs(gradient) + 1e-7)
    np.testing.assert_allclose(after[[1, 4]], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.tf
def test_partial_rowwise_adam_keeps_the_second_moment_once_a_row():
    import tensorflow as tf

    from movielinks.trainer.optimizer import PartialRowwiseAdam

    start, table, rows, gradient = _table_and_batch()
    optimizer = PartialRowwiseAdam(0.1, tables=[table], dense=[])
    (moments,) = [v for v in optimizer.variables if len(v.shape) == 2]
    assert moments.shape == (6, 3 + 1)  # the first moment a weight, the second a row
    for _ in range(3):
        optimizer.apply([(table, rows, tf.constant(gradient))], [])
    after = table.numpy()
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(after[untouched], start[untouched])
    # A constant gradient g: each step moves a weight by lr * g / sqrt(the mean of the row's g squared).
    row_scale = np.sqrt((gradient.astype(np.float64) ** 2).mean(axis=1, keepdims=True))
    np.testing.assert_allclose(after[[1, 4]], start[[1, 4]] - 3 * 0.1 * gradient / row_scale, rtol=1e-4, atol=1e-4)


@pytest.mark.tf
def test_rowwise_adagrad_keeps_one_number_a_row_and_updates_only_the_batchs_rows():
    import tensorflow as tf

    from movielinks.trainer.optimizer import RowwiseAdagrad

    start, table, rows, gradient = _table_and_batch()
    optimizer = RowwiseAdagrad(0.1, tables=[table], dense=[])
    assert sum(int(np.prod(v.shape)) for v in optimizer.variables if v.dtype == tf.float32) == 6  # a number a row
    expected, summed = start[[1, 4]].astype(np.float64), np.zeros(2)
    for _ in range(3):
        optimizer.apply([(table, rows, tf.constant(gradient))], [])
        summed += (gradient.astype(np.float64) ** 2).mean(axis=1)
        expected -= 0.1 / np.sqrt(summed)[:, None] * gradient
    after = table.numpy()
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(after[untouched], start[untouched])
    np.testing.assert_allclose(after[[1, 4]], expected, rtol=1e-4, atol=1e-5)


def test_an_unknown_optimizer_is_refused_with_the_choices():
    from movielinks.trainer.errors import TrainerError
    from movielinks.trainer.train import TrainConfig

    with pytest.raises(TrainerError, match="unknown --optimizer 'sgd'; choose one of adam, partial-rowwise-adam, rowwise-adagrad"):
        TrainConfig(optimizer="sgd").check()


@pytest.mark.tf
def test_the_training_step_reads_the_tables_only_at_the_batchs_rows():
    # Issue 9: once a table had a sparse update, each whole read of it (a Keras variable passed to
    # tf.gather) copied the table: 1M x 1M tables trained 3.4 times slower than 20k x 50k ones.
    import tensorflow as tf

    from movielinks.trainer.loop import _train_step
    from movielinks.trainer.model import LinkEmbeddingModel
    from movielinks.trainer.objectives import OBJECTIVES
    from movielinks.trainer.optimizer import RowwiseAdam
    from movielinks.trainer.sampler import epoch_batches, pair_keys

    pairs = np.array([[m, (m * 7 + k) % 50] for m in range(40) for k in range(3)], dtype=np.int32)
    batch = next(epoch_batches(pairs, np.sort(pair_keys(pairs, 50)), 40, 50, negative_ratio=3, positives_per_batch=16,
                               rng=np.random.default_rng(0)))
    model, objective = LinkEmbeddingModel(40, 50, 4, seed=0), OBJECTIVES["logistic"]()
    objective.build(None)
    tables = [model.movie_table.value, model.link_table.value]
    optimizer = RowwiseAdam(0.01, tables=tables, dense=[v.value for v in objective.trainable_variables])
    rows = batch.rows
    graph = tf.function(_train_step(model, objective, optimizer)).get_concrete_function(
        rows.movie_rows, rows.movie_slots, rows.link_rows, rows.link_slots, batch.negative_index).graph
    handles = {id(inside) for outside, inside in graph.captures if any(outside is t.handle for t in tables)}
    assert len(handles) == 2
    whole_reads = [op.name for op in graph.get_operations()
                   if op.type == "ReadVariableOp" and id(op.inputs[0]) in handles]
    assert whole_reads == []


def test_recall_is_sampled_when_exact_would_be_quadratic(monkeypatch):
    rng = np.random.default_rng(1)
    movies = rng.normal(size=(400, 8)).astype(np.float32)
    links = rng.normal(size=(300, 8)).astype(np.float32)
    # Each movie's held-out link is its best-scoring link: recall 1 whatever is sampled.
    best = np.argmax(movies @ links.T, axis=1)
    heldout = np.column_stack([np.arange(400), best]).astype(np.int32)
    train = np.zeros((0, 2), dtype=np.int32)
    exact = evaluate.recall_at_k(movies, links, heldout, train, 1)
    monkeypatch.setattr(evaluate, "RECALL_MAX_CELLS", 300 * 50)  # room for 50 movies, not 400
    monkeypatch.setattr(evaluate, "RECALL_CHUNK_CELLS", 300 * 7)  # several chunks
    sampled = evaluate.recall_at_k(movies, links, heldout, train, 1)
    assert exact == sampled == 1.0
