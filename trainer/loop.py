"""The epoch loop: sampled batches through one compiled training step, a checkpoint per epoch.

Knows nothing of the data files, the evaluation or the run directory: it takes the
training pairs and the Keras objects, and returns the TrainingState.
"""
from __future__ import annotations

import contextlib
import dataclasses
import queue
import sys
import threading
import time
from typing import Callable, Iterator

import numpy as np

from movielinks.trainer.checkpoint import Checkpoint, TrainingState
from movielinks.trainer.sampler import CHECKED_FROM, Batch, epoch_batches, pair_keys, popularity_cdf, true_share

# Batches drawn ahead of the training step: enough to hide the sampler's pauses, few
# enough that memory stays a few batches.
PREFETCH_BATCHES = 32


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    epochs: int
    negatives_per_positive: int
    batch_positives: int
    seed: int
    negative_power: float = 0.0  # links drawn as negatives by popularity ** power (0: uniform)
    pair_weights: np.ndarray | None = None  # float [n_train_pairs]: each pair's training weight (None: all 1)
    negative_pool: int = 0  # each batch's negatives drawn from this many movies and links (0: from all)


def fit(
    model, objective, optimizer,
    train_pairs: np.ndarray, n_movies: int, n_links: int,
    settings: LoopSettings, state: TrainingState, checkpoint: Checkpoint,
    *, progress: bool, log: Callable[[str], None], distribution=None,
) -> TrainingState:
    """Train from `state.epoch` to `settings.epochs`, saving `checkpoint` after each epoch.

    Batches are sampled with numpy in a background thread a few steps ahead of the
    training step; each epoch's sampling is seeded by (seed, epoch), so a resumed
    run ends where an uninterrupted one would. With a `distribution`
    (trainer.distributed): ParameterServers schedules the steps on the cluster's
    workers, which update the tables on its parameter servers asynchronously;
    MirroredWorkers computes this worker's share of every batch and applies the
    update all workers agree on. Only the chief saves checkpoints.
    """
    import keras

    from movielinks.trainer.distributed import MirroredWorkers, ParameterServers

    if distribution is None:
        step = _compiled_step(model, objective, optimizer)
    elif isinstance(distribution, MirroredWorkers):
        step = _mirrored_step(model, objective, optimizer, distribution)
    else:
        step = _scheduled_step(model, objective, optimizer, distribution)
    parameter_servers = distribution if isinstance(distribution, ParameterServers) else None
    link_cdf = popularity_cdf(train_pairs, n_links, settings.negative_power)
    true_keys = _checked_keys(train_pairs, n_movies, n_links, link_cdf, settings.seed, log)

    def batches(epoch: int) -> Iterator[Batch]:
        return epoch_batches(
            train_pairs, true_keys, n_movies, n_links, negative_ratio=settings.negatives_per_positive,
            positives_per_batch=settings.batch_positives, rng=np.random.default_rng([settings.seed, epoch]),
            link_cdf=link_cdf, pair_weights=settings.pair_weights, negative_pool=settings.negative_pool,
        )

    # Keras's bar redraws one line with carriage returns: on a terminal only; into a file or a
    # pipe, one summary line an epoch instead.
    progress = progress and sys.stdout.isatty()
    positives = len(train_pairs) if settings.pair_weights is None else round(float(settings.pair_weights.sum()))
    steps = -(-positives // settings.batch_positives)  # the bar's length; weighted epochs vary a little
    epochs = range(state.epoch, settings.epochs)
    with prefetched(((epoch, batches(epoch)) for epoch in epochs), PREFETCH_BATCHES) as sampled:
        for epoch in epochs:
            bar = keras.utils.Progbar(steps, verbose=1, unit_name="step") if progress else None
            if progress:
                log(f"epoch {epoch + 1}/{settings.epochs}")
            started = time.perf_counter()
            total_loss, samples = _run_epoch(step, next(sampled), bar, parameter_servers)
            seconds = time.perf_counter() - started
            state.epoch, state.samples = epoch + 1, state.samples + samples
            state.train_seconds += seconds
            state.losses.append(total_loss / samples)
            state.epoch_seconds.append(seconds)
            if not progress:
                log(f"epoch {epoch + 1}/{settings.epochs}: loss {state.losses[-1]:.4f}, {samples / seconds:,.0f} samples/s")
            if distribution is None or distribution.is_chief:
                checkpoint.save(state, model, objective, optimizer)
    return state


def _checked_keys(train_pairs: np.ndarray, n_movies: int, n_links: int, link_cdf: np.ndarray | None, seed: int,
                  log: Callable[[str], None]) -> np.ndarray:
    """The sorted keys of the pairs negatives must not be: the training pairs', or none where almost
    no random pair is one (trainer.sampler.CHECKED_FROM)."""
    true_keys = np.sort(pair_keys(train_pairs, n_links))
    share = true_share(true_keys, n_movies, n_links, link_cdf, np.random.default_rng([seed, 0xC1A5]))
    if share >= CHECKED_FROM:
        return true_keys
    log(f"negatives not checked against the training pairs: {share:.4%} of random pairs are one")
    return true_keys[:0]


def _run_epoch(step, batches: Iterator[Batch], bar, parameter_servers) -> tuple[float, int]:
    """(loss summed over the samples, samples) of one epoch: every batch through `step`.

    `bar` (a Keras Progbar or None) shows the running loss. With `parameter_servers`
    (ParameterServers) the steps are scheduled on the cluster's workers and their losses
    read once all are done.
    """
    total_loss, samples, pending = 0.0, 0, []
    for i, batch in enumerate(batches):
        rows = batch.rows
        loss = step(rows.movie_rows, rows.movie_slots, rows.link_rows, rows.link_slots, batch.negative_index)
        samples += len(batch)
        if parameter_servers is not None:  # a RemoteValue: read once the epoch's steps are done
            pending.append((loss, len(batch)))
            continue
        total_loss += float(loss) * len(batch)
        if bar is not None:
            bar.update(i + 1, [("loss", float(loss))])
    if parameter_servers is not None:
        parameter_servers.coordinator.join()
        total_loss = sum(float(loss.fetch()) * n for loss, n in pending)
    return total_loss, samples


@contextlib.contextmanager
def prefetched(epochs: Iterator[tuple[int, Iterator[Batch]]], depth: int) -> Iterator[Iterator[Iterator[Batch]]]:
    """Draw the batches of `epochs` in a background thread, at most `depth` ahead of the trainer.

    Yields an iterator of epochs, each an iterator of its batches (consume them in
    order). The sampler's numpy work releases the GIL, so it overlaps the training
    step; the queue bounds its memory. Leaving the block stops the thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for _, batches in epochs:
                for batch in batches:
                    if not put(batch):
                        return
                if not put(_END_OF_EPOCH):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the trainer, raised there
            put(error)

    def epoch_of_batches() -> Iterator[Batch]:
        while (item := ready.get()) is not _END_OF_EPOCH:
            if isinstance(item, BaseException):
                raise item
            yield item

    def each_epoch() -> Iterator[Iterator[Batch]]:
        while True:
            yield epoch_of_batches()

    producer = threading.Thread(target=produce, name="sampler", daemon=True)
    producer.start()
    try:
        yield each_epoch()
    finally:
        stop.set()
        producer.join()


_END_OF_EPOCH = object()


def _step_parts(model, objective, optimizer):
    """A step's two halves as Python functions of a batch's tensors: `gradients` (the
    objective's loss, times `weight` if given, and its gradients with respect to the rows
    the batch read and the objective's variables) and `apply` (one row-wise optimizer
    update, trainer.optimizer, of those rows). Mirrored workers all-reduce between them."""
    import tensorflow as tf

    tables = [model.movie_table.value, model.link_table.value]
    dense = [v.value for v in objective.trainable_variables]

    def gradients(movie_rows, movie_slots, link_rows, link_slots, negative_index, weight=None):
        movie_raw, link_raw = model.rows(movie_rows, link_rows)
        with tf.GradientTape() as tape:
            tape.watch([movie_raw, link_raw])
            loss = objective(*model.score(movie_raw, link_raw, movie_slots, link_slots, negative_index))
            if weight is not None:
                loss = weight * loss
        return [loss, *tape.gradient(loss, [movie_raw, link_raw, *dense])]

    def apply(movie_rows, link_rows, movie_gradient, link_gradient, *dense_gradients):
        optimizer.apply(
            [(tables[0], movie_rows, movie_gradient), (tables[1], link_rows, link_gradient)],
            list(zip(dense, dense_gradients)),
        )

    return gradients, apply


def _train_step(model, objective, optimizer):
    """A whole step as a Python function of a batch's tensors; returns the loss."""
    gradients, apply = _step_parts(model, objective, optimizer)

    def step(movie_rows, movie_slots, link_rows, link_slots, negative_index):
        loss, *grads = gradients(movie_rows, movie_slots, link_rows, link_slots, negative_index)
        apply(movie_rows, link_rows, *grads)
        return loss

    return step


def _compiled_step(model, objective, optimizer):
    """The training step, XLA-compiled, in this process."""
    import tensorflow as tf

    return tf.function(_train_step(model, objective, optimizer), jit_compile=True, reduce_retracing=True)


def _scheduled_step(model, objective, optimizer, distribution):
    """The training step, scheduled on a worker of `distribution`; its variables live on the
    parameter servers, where the row-wise update is applied (no XLA: remote variables)."""
    import tensorflow as tf

    replica_step = _train_step(model, objective, optimizer)

    @tf.function(reduce_retracing=True)
    def worker_step(*batch):
        return distribution.strategy.run(replica_step, args=batch)

    def step(*batch):
        return distribution.coordinator.schedule(worker_step, args=tuple(tf.constant(a) for a in batch))

    return step


def _mirrored_step(model, objective, optimizer, distribution):
    """The training step of one mirrored worker. Every worker is handed the same batch and
    computes the loss of its share of the positives (`worker_share`), weighted by the
    share's size, and its gradients with respect to all the batch's rows; their SUM over
    the workers (an all-reduce) is the whole batch's gradient, so every worker applies the
    one-process update and the tables stay the same on all of them. The two halves are
    XLA-compiled; the all-reduce between them is a collective op, outside XLA."""
    import tensorflow as tf

    gradients, apply = (tf.function(f, jit_compile=True, reduce_retracing=True)
                        for f in _step_parts(model, objective, optimizer))

    def replica_step(movie_rows, movie_slots, link_rows, link_slots, negative_index, weight):
        share = gradients(movie_rows, movie_slots, link_rows, link_slots, negative_index, weight)
        loss, *grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, share)
        apply(movie_rows, link_rows, *grads)
        return loss

    @tf.function(reduce_retracing=True)
    def worker_step(*batch):
        return distribution.strategy.run(replica_step, args=batch)

    def step(movie_rows, movie_slots, link_rows, link_slots, negative_index):
        mine, weight = worker_share(len(movie_slots), distribution.workers, distribution.index)
        return worker_step(movie_rows, movie_slots[mine], link_rows, link_slots[mine], negative_index[mine],
                           np.float32(weight))

    return step


def worker_share(n_positives: int, workers: int, index: int) -> tuple[slice, float]:
    """Worker `index`'s share of a batch of `n_positives`: (its slice of the positives,
    that slice's fraction of the batch). The shares are contiguous and differ by at most
    one positive; a worker left without any (a last batch smaller than the cluster)
    gets the first positive with weight 0, so that it still takes part in the all-reduce."""
    start, stop = n_positives * index // workers, n_positives * (index + 1) // workers
    if start == stop:
        return slice(0, 1), 0.0
    return slice(start, stop), (stop - start) / n_positives
