"""Row-wise optimizers: an update touches only the table rows a batch read.

Keras's optimizers update every row of an embedding table at every step (their
moment estimates decay everywhere), so a step's cost grows with the tables. Here
the tables' moments and weights are read and written only at the rows of the batch,
as TF Addons' LazyAdam and PyTorch's SparseAdam do; the objective's few scalars get
plain Adam. Bias correction follows the global step.

RowwiseAdagrad (PyTorch-BigGraph's and DLRM's optimizer for large tables) keeps one
number a table row, the running sum of the row's mean squared gradient, where Adam
keeps two moments the size of the table: a third of the row traffic of a step, and
a table's worth of memory instead of three.

PartialRowwiseAdam (FBGEMM's PARTIAL_ROWWISE_ADAM) keeps Adam's first moment for
every weight and its second moment, the mean of the row's squared gradient, once a
row: two thirds of Adam's row traffic, with Adam's momentum kept.
"""
from __future__ import annotations

import tensorflow as tf


class RowwiseAdam:
    """Adam over embedding tables (row-wise) and small dense variables; `variables` are checkpointed."""

    # Weights a table row's second moment has: one for each of the row's weights (Adam), or one
    # for the whole row (PartialRowwiseAdam).
    row_second_moment = False

    def __init__(self, learning_rate: float, tables: list[tf.Variable], dense: list[tf.Variable],
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        # A table's two moments side by side, [rows, 2 x dim] ([rows, dim + 1] with one second moment a
        # row): a step gathers and scatters each of its rows' moments once, not twice (docs/scale.md);
        # the small dense variables keep two slots.
        self._moments = {id(t): tf.Variable(tf.zeros([t.shape[0], t.shape[1] + (1 if self.row_second_moment
                                                                               else t.shape[1])]), trainable=False,
                                            name=f"{t.name.split(':')[0]}_m_v") for t in tables}
        self._slots = {id(v): (self._zeros(v, "m"), self._zeros(v, "v")) for v in dense}
        self.variables = [self.iterations, *self._moments.values(),
                          *(s for pair in self._slots.values() for s in pair)]

    @staticmethod
    def _zeros(variable: tf.Variable, what: str) -> tf.Variable:
        return tf.Variable(tf.zeros_like(variable), trainable=False, name=f"{variable.name.split(':')[0]}_{what}")

    def apply(self, table_updates, dense_updates) -> None:
        """`table_updates`: (table, rows [U], gradient of those rows [U, d]) with rows distinct but for
        padding with the spare row; `dense_updates`: (variable, gradient)."""
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        step = self.learning_rate * tf.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        for table, rows, gradient in table_updates:
            moments, dim = self._moments[id(table)], table.shape[1]
            both = tf.gather(moments, rows)
            m = self.beta_1 * both[:, :dim] + (1.0 - self.beta_1) * gradient
            squared = tf.square(gradient)
            if self.row_second_moment:
                squared = tf.reduce_mean(squared, axis=1, keepdims=True)
            v = self.beta_2 * both[:, dim:] + (1.0 - self.beta_2) * squared
            weights = tf.gather(table, rows) - step * m / (tf.sqrt(v) + self.epsilon)
            moments.scatter_update(tf.IndexedSlices(tf.concat([m, v], axis=1), rows))
            table.scatter_update(tf.IndexedSlices(weights, rows))
        for variable, gradient in dense_updates:
            m_slot, v_slot = self._slots[id(variable)]
            m_slot.assign(self.beta_1 * m_slot + (1.0 - self.beta_1) * gradient)
            v_slot.assign(self.beta_2 * v_slot + (1.0 - self.beta_2) * tf.square(gradient))
            variable.assign_sub(step * m_slot / (tf.sqrt(v_slot) + self.epsilon))


class PartialRowwiseAdam(RowwiseAdam):
    """RowwiseAdam with one second moment a table row (the mean of the row's squared gradients)
    and the first moment for every weight, as FBGEMM's PARTIAL_ROWWISE_ADAM; the same `apply`."""

    row_second_moment = True


class RowwiseAdagrad:
    """Adagrad over embedding tables with one accumulator a row (the mean of the row's squared
    gradient, summed over steps), plain Adam for the small dense variables; `variables` are
    checkpointed. Same `apply` as RowwiseAdam."""

    def __init__(self, learning_rate: float, tables: list[tf.Variable], dense: list[tf.Variable],
                 dense_learning_rate: float = 0.005, initial_accumulator: float = 0.0, epsilon: float = 1e-10):
        self.learning_rate, self.epsilon = learning_rate, epsilon
        self._accumulators = {id(t): tf.Variable(tf.fill([tf.shape(t)[0]], initial_accumulator), trainable=False,
                                                 name=f"{t.name.split(':')[0]}_rowwise_sum")
                              for t in tables}
        self._dense = RowwiseAdam(dense_learning_rate, tables=[], dense=dense)
        self.iterations = self._dense.iterations
        self.variables = [*self._dense.variables, *self._accumulators.values()]

    def apply(self, table_updates, dense_updates) -> None:
        """`table_updates`: (table, rows [U], gradient of those rows [U, d]) with rows distinct but for
        padding with the spare row; `dense_updates`: (variable, gradient)."""
        for table, rows, gradient in table_updates:
            accumulator = self._accumulators[id(table)]
            summed = tf.gather(accumulator, rows) + tf.reduce_mean(tf.square(gradient), axis=1)
            accumulator.scatter_update(tf.IndexedSlices(summed, rows))
            step = self.learning_rate / (tf.sqrt(summed) + self.epsilon)
            table.scatter_update(tf.IndexedSlices(tf.gather(table, rows) - step[:, None] * gradient, rows))
        self._dense.apply([], dense_updates)


OPTIMIZERS = {"adam": RowwiseAdam, "partial-rowwise-adam": PartialRowwiseAdam, "rowwise-adagrad": RowwiseAdagrad}
