"""Training: dataset in, a complete run directory out.

    read dataset -> vocabulary -> held-out split -> epochs of (positives + sampled
    negatives) -> evaluation -> run directory (trainer.run)

Each piece lives in its own module, so that changing one does not touch the others:
trainer.data (reading), trainer.vocab, trainer.sampler (split, negatives),
trainer.model and trainer.objectives (the model and its loss), trainer.loop (the
epoch loop), trainer.checkpoint (resume), trainer.evaluate (every held-out
measure) and trainer.run (the run directory). This module wires them together.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from movielinks.common.artifacts import Records
from movielinks.common.film_record import kind_codes
from movielinks.common.franchises import film_identity, franchise_groups
from movielinks.common.records import MovieRecord
from movielinks.trainer.checkpoint import Checkpoint, TrainingState, default_checkpoint_dir, fingerprint
from movielinks.trainer.data import FilmDataset, film_attributes, read_dataset
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.evaluate import evaluate_run, format_table
from movielinks.trainer.groups import dataset_genres
from movielinks.trainer.loop import LoopSettings, fit
from movielinks.trainer.run import RunManifest, save_run
from movielinks.trainer.sampler import every_pair_is_true, split_pairs
from movielinks.trainer.vocab import Vocabulary, build_vocabulary

OBJECTIVE_NAMES = ("logistic", "mse")  # keys of trainer.objectives.OBJECTIVES, without importing TensorFlow
__all__ = ["TrainConfig", "train", "default_checkpoint_dir"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every parameter that changes the trained vectors."""

    dim: int = 100  # chosen with --negative-power and --epochs by bench/bench_quality.py (docs/quality.md)
    negatives_per_positive: int = 10  # sampled negative pairs per positive pair (--negatives)
    min_link_count: int = 3  # keep links that occur in at least this many films
    epochs: int = 30
    batch_positives: int = 4096  # positive pairs per step; a step has (1 + negatives) times as many samples
    learning_rate: float = 0.005  # chosen by the held-out sweep in docs/scale.md
    objective: str = "logistic"
    negative_power: float = 0.5  # negative links drawn by (films linking to them) ** power; 0 is uniform
    heldout_fraction: float = 0.1
    seed: int = 0
    link_kinds: str = ""  # comma-separated kinds of link to train on (common.film_record); "": every link

    def check(self) -> None:
        problems = [
            (self.negatives_per_positive >= 1, f"--negatives must be at least 1, got {self.negatives_per_positive}"),
            (self.min_link_count >= 1, f"--min-link-count must be at least 1, got {self.min_link_count}"),
            (0.0 <= self.heldout_fraction < 1.0, f"--heldout-fraction must be in [0, 1), got {self.heldout_fraction}"),
            (self.dim >= 1, f"--dim must be at least 1, got {self.dim}"),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_positives >= 1, f"--batch-positives must be at least 1, got {self.batch_positives}"),
            (self.learning_rate > 0, f"--learning-rate must be positive, got {self.learning_rate}"),
            (0 <= self.negative_power <= 1, f"--negative-power must be in [0, 1], got {self.negative_power}"),
            (self.objective in OBJECTIVE_NAMES, f"unknown --objective {self.objective!r}; choose one of {', '.join(OBJECTIVE_NAMES)}"),
        ]
        for ok, message in problems:
            if not ok:
                raise TrainerError(message)
        try:
            kind_codes(self.link_kinds)
        except ValueError as e:
            raise TrainerError(f"--link-kinds: {e}") from e


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
    started = time.perf_counter()
    dataset = read_dataset(data, data_format, strict=strict, min_link_count=config.min_link_count,
                           link_kinds=kind_codes(config.link_kinds))
    read_seconds = time.perf_counter() - started
    log(f"read {len(dataset.films):,} films from {dataset.path} ({dataset.format}) in {read_seconds:.1f} s")
    if dataset.skipped:
        log(f"skipped {len(dataset.skipped):,} bad records, e.g. {dataset.skipped[0]}")
    vocab, kept = _vocabulary(dataset, config)
    train_pairs, heldout_pairs = split_pairs(vocab.pairs, config.heldout_fraction, config.seed)
    log(
        f"vocabulary: {vocab.n_movies:,} movies, {vocab.n_links:,} links in >= {config.min_link_count} films, "
        f"{len(vocab.pairs):,} pairs ({len(heldout_pairs):,} held out); "
        f"{vocab.dropped_movies:,} films with no kept link have no vector"
    )
    checkpoint = Checkpoint(Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out),
                            fingerprint(dataset.sha256, dataclasses.asdict(config)))
    if not resume and checkpoint.exists():
        raise TrainerError(f"{checkpoint.directory} holds a checkpoint of an earlier run; pass --resume to continue it, or remove it")
    movie_vectors, link_vectors, state, versions, distribution = _train_vectors(
        vocab, train_pairs, config, checkpoint, resume=resume, progress=progress, log=log)
    if distribution is not None and not distribution.is_chief:  # a mirrored worker: the chief writes the run
        log(f"trained; the cluster's chief writes the run to {out}")
        distribution.leave()
        return out

    info = [dataset.info[i] for i in kept.tolist()]
    attributes = [film_attributes(f) for f in info]
    started = time.perf_counter()
    genres = dataset_genres([f.infobox for f in info], dataset.all_links(kept.tolist()))
    metrics, models = evaluate_run(movie_vectors, link_vectors, train_pairs, heldout_pairs, attributes, config.seed,
                                   franchises=franchise_groups(vocab.movies, [film_identity(f.infobox) for f in info]),
                                   genres=genres)
    metrics |= _training_metrics(state) | {"read_seconds": read_seconds,
                                           "evaluation_seconds": time.perf_counter() - started}
    log(format_table(metrics, models))
    for model in models.values():
        if model.no_better_than_mean:
            log(f"warning: {model.verdict()} (the server refuses to predict {model.name})")
    manifest = RunManifest(
        created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        dataset={"path": str(Path(dataset.path).resolve()), "sha256": dataset.sha256, "format": dataset.format,
                 "films": len(dataset.films), "skipped_records": len(dataset.skipped)},
        params=dataclasses.asdict(config),
        vocabulary={"movies": vocab.n_movies, "links": vocab.n_links, "pairs": int(len(vocab.pairs)),
                    "train_pairs": int(len(train_pairs)), "heldout_pairs": int(len(heldout_pairs)),
                    "films_without_kept_links": vocab.dropped_movies},
        metrics=metrics,
        versions=versions,
    )
    records = Records([MovieRecord(title, f.infobox, a) for title, f, a in zip(vocab.movies, info, attributes)],
                      vocab.links, models)
    save_run(out, manifest, movie_vectors, link_vectors, records, vocab.pairs, vocab.cited)
    checkpoint.remove()
    log(f"run written to {out}")
    if distribution is not None:
        distribution.leave()
    return out


def _vocabulary(dataset: FilmDataset, config: TrainConfig) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary of `dataset` and its films' positions, or TrainerError if nothing could be trained on it."""
    vocab, kept = build_vocabulary(dataset.links, config.min_link_count)
    if not len(kept):
        raise TrainerError(
            f"no link occurs in {config.min_link_count} or more films, so nothing can be trained; lower --min-link-count"
        )
    if every_pair_is_true(vocab.pairs, vocab.n_movies, vocab.n_links):
        raise TrainerError("every film links to every kept link: there are no negative pairs to learn from")
    return vocab, kept


def _train_vectors(
    vocab: Vocabulary, train_pairs: np.ndarray, config: TrainConfig, checkpoint: Checkpoint,
    *, resume: bool, progress: bool, log: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, TrainingState, dict[str, str], object]:
    """Build the model, objective and optimizer, resume them if asked, run the epoch loop.

    Returns (unit movie vectors, unit link vectors, the final state, library versions, the
    trainer.distributed strategy it trained with or None).
    TensorFlow is imported here: reading and checking the data needs none of it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from movielinks.trainer.distributed import training_distribution
    from movielinks.trainer.model import LinkEmbeddingModel
    from movielinks.trainer.objectives import OBJECTIVES
    from movielinks.trainer.optimizer import RowwiseAdam

    distribution = training_distribution()  # None: this process trains alone
    keras.utils.set_random_seed(config.seed)
    if distribution is not None:
        log(f"training on a cluster: {distribution.describe()}")
    with distribution.scope() if distribution is not None else contextlib.nullcontext():
        model = LinkEmbeddingModel(vocab.n_movies, vocab.n_links, config.dim, config.seed)
        objective = OBJECTIVES[config.objective]()
        objective.build(None)
        optimizer = RowwiseAdam(config.learning_rate, tables=[model.movie_table.value, model.link_table.value],
                                dense=[v.value for v in objective.trainable_variables])
    state = TrainingState()
    if resume:
        state = checkpoint.restore(model, objective, optimizer)
        log(f"resuming from {checkpoint.directory} after epoch {state.epoch}")
    settings = LoopSettings(config.epochs, config.negatives_per_positive, config.batch_positives, config.seed,
                            config.negative_power)
    state = fit(model, objective, optimizer, train_pairs, vocab.n_movies, vocab.n_links, settings, state, checkpoint,
                progress=progress, log=log, distribution=distribution)
    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": np.__version__}
    return model.movie_vectors(), model.link_vectors(), state, versions, distribution


def _training_metrics(state: TrainingState) -> dict:
    return {
        "final_loss": state.losses[-1],
        "epoch_losses": state.losses,
        "epoch_seconds": state.epoch_seconds,
        "samples_per_epoch": state.samples // max(1, len(state.losses)),
        "train_seconds": state.train_seconds,
        "samples_per_second": state.samples / state.train_seconds if state.train_seconds else None,
    }
