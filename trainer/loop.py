"""The epoch loop: sampled batches through one compiled training step, a checkpoint per epoch.

Knows nothing of the data files, the evaluation or the run directory: it takes the
training pairs and the Keras objects, and returns the TrainingState.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import sys
import time
from typing import Callable

import numpy as np

from trainer.checkpoint import Checkpoint, TrainingState
from trainer.sampler import Batch, epoch_batches, pair_keys


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    epochs: int
    negatives_per_positive: int
    batch_positives: int
    seed: int


def fit(
    model, objective, optimizer,
    train_pairs: np.ndarray, n_movies: int, n_links: int,
    settings: LoopSettings, state: TrainingState, checkpoint: Checkpoint,
    *, progress: bool, log: Callable[[str], None],
) -> TrainingState:
    """Train from `state.epoch` to `settings.epochs`, saving `checkpoint` after each epoch.

    An epoch's batches are sampled with numpy in a background thread while the
    previous epoch trains; each epoch's sampling is seeded by (seed, epoch), so a
    resumed run ends where an uninterrupted one would.
    """
    import keras

    step = _compiled_step(model, objective, optimizer)
    true_keys = np.sort(pair_keys(train_pairs, n_links))

    def sample_epoch(epoch: int) -> list[Batch]:
        return epoch_batches(
            train_pairs, true_keys, n_movies, n_links, negative_ratio=settings.negatives_per_positive,
            positives_per_batch=settings.batch_positives, rng=np.random.default_rng([settings.seed, epoch]),
        )

    # Keras's bar redraws one line with carriage returns: on a terminal only; into a file or a
    # pipe, one summary line an epoch instead.
    progress = progress and sys.stdout.isatty()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as sampler:
        upcoming = sampler.submit(sample_epoch, state.epoch) if state.epoch < settings.epochs else None
        for epoch in range(state.epoch, settings.epochs):
            batches = upcoming.result()
            upcoming = sampler.submit(sample_epoch, epoch + 1) if epoch + 1 < settings.epochs else None
            bar = keras.utils.Progbar(len(batches), verbose=1, unit_name="step") if progress else None
            if progress:
                log(f"epoch {epoch + 1}/{settings.epochs}")
            started, total_loss, samples = time.perf_counter(), 0.0, 0
            for i, batch in enumerate(batches):
                loss = float(step(batch.movies, batch.links, batch.grid_movies, batch.grid_links, batch.negative_index))
                total_loss += loss * len(batch)
                samples += len(batch)
                if bar is not None:
                    bar.update(i + 1, [("loss", loss)])
            seconds = time.perf_counter() - started
            state.epoch, state.samples = epoch + 1, state.samples + samples
            state.train_seconds += seconds
            state.losses.append(total_loss / samples)
            state.epoch_seconds.append(seconds)
            if not progress:
                log(f"epoch {epoch + 1}/{settings.epochs}: loss {state.losses[-1]:.4f}, {samples / seconds:,.0f} samples/s")
            checkpoint.save(state, model, objective, optimizer)
    return state


def _compiled_step(model, objective, optimizer):
    """One XLA-compiled step: the objective's loss on a batch, one optimizer update."""
    import tensorflow as tf

    variables = model.trainable_variables + objective.trainable_variables

    @tf.function(jit_compile=True, reduce_retracing=True)
    def step(movies, links, grid_movies, grid_links, negative_index):
        with tf.GradientTape() as tape:
            loss = objective(*model((movies, links, grid_movies, grid_links, negative_index)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step
