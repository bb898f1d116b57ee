"""Training: dataset in, a complete run directory out.

    read dataset -> vocabulary -> held-out split -> epochs of (positives + sampled
    negatives) -> evaluation -> run directory (trainer.run)

The training step is one XLA-compiled TensorFlow function; an epoch's batches are
sampled with numpy in a background thread while the previous epoch trains.
Every epoch ends with a checkpoint, so `resume` continues an interrupted run and,
because each epoch's sampling is seeded by (seed, epoch), ends where an
uninterrupted run would.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import io
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from common.files import atomic_write_bytes
from common.records import MovieRecord
from trainer import evaluate, run
from trainer.data import Dataset, film_attributes, read_dataset
from trainer.errors import TrainerError
from trainer.sampler import Batch, epoch_batches, pair_keys, split_pairs
from trainer.vocab import build_vocabulary

CHECKPOINT_FILE = "checkpoint.npz"
OBJECTIVE_NAMES = ("logistic", "mse")  # keys of trainer.objectives.OBJECTIVES, without importing TensorFlow


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every parameter that changes the trained vectors."""

    dim: int = 50
    negatives: int = 10  # sampled negative pairs per positive pair
    min_link_count: int = 3  # keep links that occur in at least this many films
    epochs: int = 15
    batch_positives: int = 4096  # positive pairs per step; a step has (1 + negatives) times as many samples
    learning_rate: float = 0.01
    objective: str = "logistic"
    heldout_fraction: float = 0.1
    seed: int = 0

    def check(self) -> None:
        problems = [
            (self.negatives >= 1, f"--negatives must be at least 1, got {self.negatives}"),
            (self.min_link_count >= 1, f"--min-link-count must be at least 1, got {self.min_link_count}"),
            (0.0 <= self.heldout_fraction < 1.0, f"--heldout-fraction must be in [0, 1), got {self.heldout_fraction}"),
            (self.dim >= 1, f"--dim must be at least 1, got {self.dim}"),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_positives >= 1, f"--batch-positives must be at least 1, got {self.batch_positives}"),
            (self.learning_rate > 0, f"--learning-rate must be positive, got {self.learning_rate}"),
            (self.objective in OBJECTIVE_NAMES, f"unknown --objective {self.objective!r}; choose one of {', '.join(OBJECTIVE_NAMES)}"),
        ]
        for ok, message in problems:
            if not ok:
                raise TrainerError(message)


@dataclasses.dataclass
class _State:
    """What a checkpoint holds besides the weights."""

    epoch: int = 0  # epochs completed
    losses: list[float] = dataclasses.field(default_factory=list)
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    train_seconds: float = 0.0
    samples: int = 0


def default_checkpoint_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoint")


def train(
    data: str | Path,
    out: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    data_format: str = "auto",
    strict: bool = False,
    resume: bool = False,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train on `data` and write the run directory `out` (complete or absent).

    Returns `out`. Raises TrainerError for anything the user can fix.
    """
    config.check()
    out = Path(out)
    if out.exists():
        raise TrainerError(f"{out} already exists; a run directory is never overwritten, choose another --out")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out)

    dataset = read_dataset(data, data_format, strict=strict)
    log(f"read {len(dataset.films):,} films from {dataset.path} ({dataset.format})")
    if dataset.skipped:
        log(f"skipped {len(dataset.skipped):,} bad records, e.g. {dataset.skipped[0]}")
    vocab, films = build_vocabulary(dataset.films, config.min_link_count)
    train_pairs, heldout_pairs = split_pairs(vocab.pairs, config.heldout_fraction, config.seed)
    log(
        f"vocabulary: {vocab.n_movies:,} movies, {vocab.n_links:,} links in >= {config.min_link_count} films, "
        f"{len(vocab.pairs):,} pairs ({len(heldout_pairs):,} held out); "
        f"{vocab.dropped_movies:,} films with no kept link have no vector"
    )

    # Imported late: reading and checking the data needs none of it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from trainer.model import LinkEmbeddingModel
    from trainer.objectives import OBJECTIVES

    keras.utils.set_random_seed(config.seed)
    model = LinkEmbeddingModel(vocab.n_movies, vocab.n_links, config.dim, config.seed)
    objective = OBJECTIVES[config.objective]()
    objective.build(None)
    variables = model.trainable_variables + objective.trainable_variables
    optimizer = keras.optimizers.Nadam(config.learning_rate)
    optimizer.build(variables)

    fingerprint = _fingerprint(dataset, config)
    state = _State()
    if resume:
        state = _restore_checkpoint(checkpoint_dir, fingerprint, model, objective, optimizer)
        log(f"resuming from {checkpoint_dir} after epoch {state.epoch}")
    elif (checkpoint_dir / CHECKPOINT_FILE).exists():
        raise TrainerError(f"{checkpoint_dir} holds a checkpoint of an earlier run; pass --resume to continue it, or remove it")

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(movies, links, grid_movies, grid_links, negative_index):
        with tf.GradientTape() as tape:
            loss = objective(*model((movies, links, grid_movies, grid_links, negative_index)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    true_keys = np.sort(pair_keys(train_pairs, vocab.n_links))

    def sample_epoch(epoch: int) -> list[Batch]:
        return epoch_batches(
            train_pairs,
            true_keys,
            vocab.n_movies,
            vocab.n_links,
            negative_ratio=config.negatives,
            positives_per_batch=config.batch_positives,
            rng=np.random.default_rng([config.seed, epoch]),
        )

    steps = -(-len(train_pairs) // config.batch_positives)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as sampler:
        upcoming = sampler.submit(sample_epoch, state.epoch) if state.epoch < config.epochs else None
        for epoch in range(state.epoch, config.epochs):
            batches = upcoming.result()
            upcoming = sampler.submit(sample_epoch, epoch + 1) if epoch + 1 < config.epochs else None
            bar = keras.utils.Progbar(steps, verbose=1 if progress else 0, unit_name="step") if progress else None
            if progress:
                log(f"epoch {epoch + 1}/{config.epochs}")
            started, total_loss, samples = time.perf_counter(), 0.0, 0
            for i, batch in enumerate(batches):
                loss = float(step(batch.movies, batch.links, batch.grid_movies, batch.grid_links, batch.negative_index))
                total_loss += loss * len(batch)
                samples += len(batch)
                if bar is not None:
                    bar.update(i + 1, [("loss", loss)])
            seconds = time.perf_counter() - started
            state.epoch, state.train_seconds, state.samples = epoch + 1, state.train_seconds + seconds, state.samples + samples
            state.losses.append(total_loss / samples)
            state.epoch_seconds.append(seconds)
            if not progress:
                log(f"epoch {epoch + 1}/{config.epochs}: loss {state.losses[-1]:.4f}, {samples / seconds:,.0f} samples/s")
            _save_checkpoint(checkpoint_dir, fingerprint, state, model, objective, optimizer)

    movie_vectors, link_vectors = model.movie_vectors(), model.link_vectors()
    attributes = [film_attributes(f) for f in films]
    metrics = {
        "link_auc": evaluate.link_auc(movie_vectors, link_vectors, heldout_pairs, vocab.pairs, config.seed),
        "recall_at_10": evaluate.recall_at_k(movie_vectors, link_vectors, heldout_pairs, train_pairs, 10),
        "heldout_pairs": int(len(heldout_pairs)),
        "final_loss": state.losses[-1],
        "epoch_losses": state.losses,
        "epoch_seconds": state.epoch_seconds,
        "samples_per_epoch": state.samples // max(1, len(state.losses)),
        "train_seconds": state.train_seconds,
        "samples_per_second": state.samples / state.train_seconds if state.train_seconds else None,
    }
    models = evaluate.fit_attribute_models(movie_vectors, attributes, config.seed)
    metrics["attributes"] = {name: {"heldout_mse": m.heldout_mse, "baseline_mse": m.baseline_mse, "films": m.n_train + m.n_test} for name, m in models.items()}
    log(evaluate.format_table(metrics, models))

    manifest = {
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "dataset": {"path": str(Path(dataset.path).resolve()), "sha256": dataset.sha256, "format": dataset.format,
                    "films": len(dataset.films), "skipped_records": len(dataset.skipped)},
        "params": dataclasses.asdict(config),
        "vocabulary": {"movies": vocab.n_movies, "links": vocab.n_links, "pairs": int(len(vocab.pairs)),
                       "train_pairs": int(len(train_pairs)), "heldout_pairs": int(len(heldout_pairs)),
                       "films_without_kept_links": vocab.dropped_movies},
        "metrics": metrics,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__},
    }
    movies = [MovieRecord(f.title, f.infobox, a) for f, a in zip(films, attributes)]
    run.save_run(out, manifest=manifest, movie_vectors=movie_vectors, link_vectors=link_vectors, movies=movies,
                 links=vocab.links, attribute_models=models)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log(f"run written to {out}")
    return out


def _fingerprint(dataset: Dataset, config: TrainConfig) -> str:
    """What must match for a checkpoint to be resumed (epochs may grow)."""
    params = {k: v for k, v in dataclasses.asdict(config).items() if k != "epochs"}
    return json.dumps({"dataset_sha256": dataset.sha256, "params": params}, sort_keys=True)


def _save_checkpoint(directory: Path, fingerprint: str, state: _State, model, objective, optimizer) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"model_{i}": np.asarray(v) for i, v in enumerate(model.get_weights())}
    arrays |= {f"objective_{i}": np.asarray(v) for i, v in enumerate(objective.get_weights())}
    arrays |= {f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    arrays["meta"] = np.array(json.dumps({"fingerprint": fingerprint, "state": dataclasses.asdict(state)}))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(directory / CHECKPOINT_FILE, buffer.getvalue())


def _restore_checkpoint(directory: Path, fingerprint: str, model, objective, optimizer) -> _State:
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        raise TrainerError(f"{path}: no checkpoint to resume from; train without --resume")
    try:
        with np.load(path) as saved:
            meta = json.loads(str(saved["meta"]))
            if meta["fingerprint"] != fingerprint:
                raise TrainerError(
                    f"{path}: the checkpoint was made with other data or parameters; resume with the same ones, or remove it"
                )
            model.set_weights([saved[f"model_{i}"] for i in range(len(model.get_weights()))])
            objective.set_weights([saved[f"objective_{i}"] for i in range(len(objective.get_weights()))])
            for i, variable in enumerate(optimizer.variables):
                variable.assign(saved[f"optimizer_{i}"])
    except (OSError, KeyError, ValueError) as e:
        raise TrainerError(f"{path}: unreadable checkpoint ({e}); remove it and train again") from e
    return _State(**meta["state"])
