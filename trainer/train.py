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
from movielinks.common.film_record import LINK_KINDS, kind_codes, kind_weights
from movielinks.common.franchises import film_identity, franchise_groups
from movielinks.common.records import MovieRecord, release_year
from movielinks.trainer.checkpoint import Checkpoint, TrainingState, default_checkpoint_dir, fingerprint
from movielinks.trainer.data import FilmDataset, LinkTable, film_attributes, read_dataset
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.evaluate import evaluate_run, format_table
from movielinks.trainer.groups import dataset_genres
from movielinks.trainer.loop import LoopSettings, fit
from movielinks.trainer.ratings import (HIGHEST_RATING, LOWEST_RATING, TasteLikes, is_taste_link, read_ratings,
                                        with_taste_links)
from movielinks.trainer.run import RunManifest, save_run
from movielinks.trainer.sampler import every_pair_is_true, pair_keys, split_pairs
from movielinks.trainer.vocab import Vocabulary, build_vocabulary

OBJECTIVE_NAMES = ("logistic", "mse")  # keys of trainer.objectives.OBJECTIVES, without importing TensorFlow
OPTIMIZER_NAMES = ("adam", "partial-rowwise-adam", "rowwise-adagrad")  # keys of trainer.optimizer.OPTIMIZERS, without importing TensorFlow
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
    optimizer: str = "adam"  # the tables' optimizer: row-wise Adam, or row-wise Adagrad (one number a row)
    negative_power: float = 0.5  # negative links drawn by (films linking to them) ** power; 0 is uniform
    negative_pool: int = 0  # a batch's negatives drawn from this many movies and links (0: the whole catalogue)
    heldout_fraction: float = 0.1
    seed: int = 0
    like_threshold: float = 4.0  # with a ratings file: a rating this high or higher is a like
    link_kinds: str = ""  # comma-separated kinds of link to train on (common.film_record); "": every link
    # "infobox=1,references=0.2": a pair weighs as the best-weighted kind it has (unnamed kinds 1; 0 drops it)
    link_kind_weights: str = ""

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
            (self.negative_pool >= 0, f"--negative-pool must be 0 (none) or more, got {self.negative_pool}"),
            (LOWEST_RATING <= self.like_threshold <= HIGHEST_RATING,
             f"--like-threshold must be in [{LOWEST_RATING}, {HIGHEST_RATING}], got {self.like_threshold}"),
            (self.objective in OBJECTIVE_NAMES, f"unknown --objective {self.objective!r}; choose one of {', '.join(OBJECTIVE_NAMES)}"),
            (self.optimizer in OPTIMIZER_NAMES, f"unknown --optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZER_NAMES)}"),
        ]
        for ok, message in problems:
            if not ok:
                raise TrainerError(message)
        try:
            kind_codes(self.link_kinds)
        except ValueError as e:
            raise TrainerError(f"--link-kinds: {e}") from e
        try:
            kind_weights(self.link_kind_weights)
        except ValueError as e:
            raise TrainerError(f"--link-kind-weights: {e}") from e


def train(
    data: str | Path,
    out: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    data_format: str = "auto",
    ratings: str | Path | None = None,
    strict: bool = False,
    resume: bool = False,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train on `data` and write the run directory `out` (complete or absent).

    Long because it is the stage's one linear script (read, vocabulary, train, evaluate,
    write), each step a call of its own, read best in the order it runs.

    With `ratings` (trainer.ratings), each person's liked films share one more link
    while training; those taste links shape the movie vectors and are then dropped: the
    run's links, link vectors, movie links and evaluation hold the dataset's links only.
    Returns `out`. Raises TrainerError for anything the user can fix.
    """
    config.check()
    out = Path(out)
    if out.exists():
        raise TrainerError(f"{out} already exists; a run directory is never overwritten, choose another --out")
    dataset, read_seconds = _read(data, data_format, strict, config, log)
    table, taste = _with_taste(dataset, ratings, config, strict, log)
    vocab, kept = _vocabulary(table, config)
    # with_taste_links named people after every dataset link and the vocabulary keeps that order: they come last
    n_content_links = vocab.n_links - sum(map(is_taste_link, vocab.links))
    content = vocab.pairs[:, 1] < n_content_links
    train_pairs, heldout_pairs = split_pairs(vocab.pairs[content], config.heldout_fraction, config.seed)
    taste_pairs = vocab.pairs[~content]  # all trained on: the evaluation measures the dataset's links
    log(f"vocabulary: {vocab.n_movies:,} movies, {n_content_links:,} links in >= {config.min_link_count} films, "
        f"{int(content.sum()):,} pairs ({len(heldout_pairs):,} held out); "
        f"{vocab.dropped_movies:,} films with no kept link have no vector"
        + (f"; {vocab.n_links - n_content_links:,} people's taste links, {len(taste_pairs):,} likes" if taste else ""))
    checkpoint = _checkpoint(out, checkpoint_dir, dataset.sha256 + (f"+{taste.sha256}" if taste else ""), config,
                             resume)
    trained = _sorted_pairs(np.concatenate([train_pairs, taste_pairs]), vocab.n_links)
    weights = _train_weights(vocab, trained, config, log)
    movie_vectors, link_vectors, state, versions, distribution, learned = _train_vectors(
        vocab, trained, weights, config, checkpoint, resume=resume, progress=progress, log=log)
    link_vectors, links, pairs = link_vectors[:n_content_links], vocab.links[:n_content_links], vocab.pairs[content]
    if distribution is not None and not distribution.is_chief:  # a mirrored worker: the chief writes the run
        log(f"trained; the cluster's chief writes the run to {out}")
        distribution.leave()
        return out

    info = [dataset.info[i] for i in kept.tolist()]
    attributes = [film_attributes(f) for f in info]
    started = time.perf_counter()
    metrics, models = evaluate_run(movie_vectors, link_vectors, train_pairs, heldout_pairs, attributes, config.seed,
                                   franchises=franchise_groups(vocab.movies, [film_identity(f.infobox) for f in info]),
                                   genres=dataset_genres([f.infobox for f in info], dataset.all_links(kept.tolist())),
                                   heldout_cited=_of_pairs(vocab, vocab.cited, heldout_pairs))
    metrics |= _training_metrics(state) | {"read_seconds": read_seconds,
                                           "evaluation_seconds": time.perf_counter() - started}
    _log_evaluation(metrics, models, log)
    manifest = _manifest(dataset, config, vocab, n_content_links, len(pairs), len(train_pairs), len(heldout_pairs),
                         _ratings_summary(taste, vocab.n_links - n_content_links, len(taste_pairs)), metrics, versions,
                         learned)
    manifest.vocabulary.update(_weights_summary(config, weights))
    records = Records([MovieRecord(title, f.infobox, a, f.ids) for title, f, a in zip(vocab.movies, info, attributes)],
                      links, models)
    save_run(out, manifest, movie_vectors, link_vectors, records, pairs,
             None if vocab.cited is None else vocab.cited[content])
    checkpoint.remove()
    log(f"run written to {out}")
    if distribution is not None:
        distribution.leave()
    return out


def _read(data: str | Path, data_format: str, strict: bool, config: TrainConfig,
          log: Callable[[str], None]) -> tuple[FilmDataset, float]:
    """The dataset, and the seconds reading it took; what was read and skipped is logged."""
    started = time.perf_counter()
    dataset = read_dataset(data, data_format, strict=strict, min_link_count=config.min_link_count,
                           link_kinds=kind_codes(config.link_kinds))
    read_seconds = time.perf_counter() - started
    log(f"read {len(dataset.films):,} films from {dataset.path} ({dataset.format}) in {read_seconds:.1f} s")
    if dataset.skipped:
        log(f"skipped {len(dataset.skipped):,} bad records, e.g. {dataset.skipped[0]}")
    return dataset, read_seconds


def _checkpoint(out: Path, checkpoint_dir: str | Path | None, data_sha256: str, config: TrainConfig,
                resume: bool) -> Checkpoint:
    """The run's checkpoint, keyed by its data and parameters; TrainerError where one of an
    earlier run is there and `resume` was not asked for."""
    checkpoint = Checkpoint(Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out),
                            fingerprint(data_sha256, dataclasses.asdict(config)))
    if not resume and checkpoint.exists():
        raise TrainerError(f"{checkpoint.directory} holds a checkpoint of an earlier run; pass --resume to continue it, or remove it")
    return checkpoint


def _with_taste(dataset: FilmDataset, ratings: str | Path | None, config: TrainConfig, strict: bool,
                log: Callable[[str], None]) -> tuple[LinkTable, TasteLikes | None]:
    """The dataset's link table, with each person's taste link on the films they liked when
    there is a ratings file (trainer.ratings); what was read and skipped is logged."""
    if ratings is None:
        return dataset.links, None
    years = np.array([release_year(f.infobox) or 0 for f in dataset.info], dtype=np.int64)
    taste = read_ratings(ratings, dataset.links.titles, years, config.like_threshold, strict=strict)
    log(f"read {taste.ratings:,} ratings from {taste.path} ({taste.format}): {len(taste.likes):,} people "
        f"liked {sum(map(len, taste.likes.values())):,} films at >= {config.like_threshold:g}")
    if taste.skipped:
        log(f"skipped {len(taste.skipped):,} bad rating lines, e.g. {taste.skipped[0]}")
    return with_taste_links(dataset.links, taste), taste


def _manifest(dataset: FilmDataset, config: TrainConfig, vocab: Vocabulary, n_links: int, n_pairs: int,
              n_train_pairs: int, n_heldout_pairs: int, ratings: dict, metrics: dict,
              versions: dict[str, str], objective: dict) -> RunManifest:
    """The run's manifest: where its data came from, its parameters, vocabulary (the dataset's
    links only), ratings file, measures and learned objective."""
    return RunManifest(
        created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        dataset={"path": str(Path(dataset.path).resolve()), "sha256": dataset.sha256, "format": dataset.format,
                 "films": len(dataset.films), "skipped_records": len(dataset.skipped)},
        params=dataclasses.asdict(config),
        vocabulary={"movies": vocab.n_movies, "links": n_links, "pairs": int(n_pairs),
                    "train_pairs": int(n_train_pairs), "heldout_pairs": int(n_heldout_pairs),
                    "films_without_kept_links": vocab.dropped_movies},
        ratings=ratings,
        metrics=metrics,
        versions=versions,
        objective=objective,
    )


def _log_evaluation(metrics: dict, models: dict, log: Callable[[str], None]) -> None:
    """The evaluation table, and a warning for each attribute model no better than the mean."""
    log(format_table(metrics, models))
    for model in models.values():
        if model.no_better_than_mean:
            log(f"warning: {model.verdict()} (the server refuses to predict {model.name})")


def _vocabulary(table: LinkTable, config: TrainConfig) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary of `table` and its films' positions, or TrainerError if nothing could be trained on it."""
    vocab, kept = build_vocabulary(table, config.min_link_count)
    if not len(kept):
        raise TrainerError(
            f"no link occurs in {config.min_link_count} or more films, so nothing can be trained; lower --min-link-count"
        )
    if every_pair_is_true(vocab.pairs, vocab.n_movies, vocab.n_links):
        raise TrainerError("every film links to every kept link: there are no negative pairs to learn from")
    return vocab, kept


def _sorted_pairs(pairs: np.ndarray, n_links: int) -> np.ndarray:
    """`pairs` in (movie id, link id) order, as the vocabulary's are."""
    return pairs[np.argsort(pairs[:, 0].astype(np.int64) * n_links + pairs[:, 1], kind="stable")]


def _ratings_summary(taste: TasteLikes | None, taste_links: int, likes_used: int) -> dict:
    """The ratings file as the manifest records it ({} without one): the file, what was read
    and skipped, and how many people and likes the min link count kept."""
    if taste is None:
        return {}
    return taste.summary() | {"users_used": taste_links, "likes_used": likes_used}


def _of_pairs(vocab: Vocabulary, values: np.ndarray | None, pairs: np.ndarray) -> np.ndarray | None:
    """`values` (one a vocabulary pair) of `pairs`, each one of the vocabulary's; None for None."""
    if values is None:
        return None
    return values[np.searchsorted(pair_keys(vocab.pairs, vocab.n_links), pair_keys(pairs, vocab.n_links))]


def _train_weights(vocab: Vocabulary, train_pairs: np.ndarray, config: TrainConfig,
                   log: Callable[[str], None]) -> np.ndarray | None:
    """Each training pair's weight by --link-kind-weights (Vocabulary.pair_weights), or None
    when every pair weighs 1; what the weights do is logged."""
    weights = kind_weights(config.link_kind_weights)
    pair_weights = _of_pairs(vocab, vocab.pair_weights(weights), train_pairs)
    if weights and vocab.kinds is None:
        log("--link-kind-weights: the dataset records no link kinds, so every pair weighs 1")
    if pair_weights is not None and not pair_weights.any():
        raise TrainerError(f"--link-kind-weights {config.link_kind_weights!r} weighs every training pair 0: "
                           "nothing would be trained on")
    if pair_weights is not None:
        log(f"link kind weights {_weights_text(weights)}: {len(pair_weights):,} training pairs weigh "
            f"{pair_weights.sum():,.0f} in all, {int((pair_weights == 0).sum()):,} of them 0 (not trained on)")
    return pair_weights


def _weights_text(weights: dict[str, float]) -> str:
    return ", ".join(f"{name} {weights.get(code, 1.0):g}" for code, name in LINK_KINDS.items())


def _weights_summary(config: TrainConfig, pair_weights: np.ndarray | None) -> dict:
    """What --link-kind-weights did, as the manifest's vocabulary records it ({} without it)."""
    weights = kind_weights(config.link_kind_weights)
    if not weights:
        return {}
    return {"link_kind_weights": {name: weights.get(code, 1.0) for code, name in LINK_KINDS.items()},
            "train_pairs_weight_sum": None if pair_weights is None else float(pair_weights.sum()),
            "train_pairs_weight_zero": 0 if pair_weights is None else int((pair_weights == 0).sum())}


def _train_vectors(
    vocab: Vocabulary, train_pairs: np.ndarray, pair_weights: np.ndarray | None, config: TrainConfig,
    checkpoint: Checkpoint,
    *, resume: bool, progress: bool, log: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, TrainingState, dict[str, str], object, dict]:
    """Build the model, objective and optimizer, resume them if asked, run the epoch loop.

    `pair_weights` (one a training pair, or None: all 1) weigh the pairs (trainer.sampler.epoch_batches).
    Returns (unit movie vectors, unit link vectors, the final state, library versions, the
    trainer.distributed strategy it trained with or None, the objective as the run records it:
    `_learned_objective`).
    TensorFlow is imported here: reading and checking the data needs none of it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from movielinks.trainer.distributed import training_distribution
    from movielinks.trainer.model import LinkEmbeddingModel
    from movielinks.trainer.objectives import OBJECTIVES
    from movielinks.trainer.optimizer import OPTIMIZERS

    distribution = training_distribution()  # None: this process trains alone
    keras.utils.set_random_seed(config.seed)
    if distribution is not None:
        log(f"training on a cluster: {distribution.describe()}")
    with distribution.scope() if distribution is not None else contextlib.nullcontext():
        model = LinkEmbeddingModel(vocab.n_movies, vocab.n_links, config.dim, config.seed)
        objective = OBJECTIVES[config.objective]()
        objective.build(None)
        tables = [model.movie_table.value, model.link_table.value]
        optimizer = OPTIMIZERS[config.optimizer](config.learning_rate, tables=tables,
                                                 dense=[v.value for v in objective.trainable_variables])
    state = TrainingState()
    if resume:
        state = checkpoint.restore(model, objective, optimizer)
        log(f"resuming from {checkpoint.directory} after epoch {state.epoch}")
    settings = LoopSettings(config.epochs, config.negatives_per_positive, config.batch_positives, config.seed,
                            config.negative_power, pair_weights, config.negative_pool)
    state = fit(model, objective, optimizer, train_pairs, vocab.n_movies, vocab.n_links, settings, state, checkpoint,
                progress=progress, log=log, distribution=distribution)
    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": np.__version__}
    return model.movie_vectors(), model.link_vectors(), state, versions, distribution, _learned_objective(config, objective)


def _learned_objective(config: TrainConfig, objective) -> dict:
    """The objective's name and what it learned ({"name", "scale", "bias"} for the logistic one),
    which fold-in (search.foldin) fits new films with."""
    learned = {"name": config.objective}
    for name in ("scale", "bias"):
        if hasattr(objective, name):
            learned[name] = float(getattr(objective, name).numpy())
    return learned


def _training_metrics(state: TrainingState) -> dict:
    return {
        "final_loss": state.losses[-1],
        "epoch_losses": state.losses,
        "epoch_seconds": state.epoch_seconds,
        "samples_per_epoch": state.samples // max(1, len(state.losses)),
        "train_seconds": state.train_seconds,
        "samples_per_second": state.samples / state.train_seconds if state.train_seconds else None,
    }
