"""Row-wise Adam: an update touches only the table rows a batch read.

Keras's optimizers update every row of an embedding table at every step (their
moment estimates decay everywhere), so a step's cost grows with the tables. Here
the tables' moments and weights are read and written only at the rows of the batch,
as TF Addons' LazyAdam and PyTorch's SparseAdam do; the objective's few scalars get
plain Adam. Bias correction follows the global step.
"""
from __future__ import annotations

import tensorflow as tf


class RowwiseAdam:
    """Adam over embedding tables (row-wise) and small dense variables; `variables` are checkpointed."""

    def __init__(self, learning_rate: float, tables: list[tf.Variable], dense: list[tf.Variable],
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self._slots = {id(v): (self._zeros(v, "m"), self._zeros(v, "v")) for v in [*tables, *dense]}
        self.variables = [self.iterations, *(s for pair in self._slots.values() for s in pair)]

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
            m_slot, v_slot = self._slots[id(table)]
            m = self.beta_1 * tf.gather(m_slot, rows) + (1.0 - self.beta_1) * gradient
            v = self.beta_2 * tf.gather(v_slot, rows) + (1.0 - self.beta_2) * tf.square(gradient)
            weights = tf.gather(table, rows) - step * m / (tf.sqrt(v) + self.epsilon)
            m_slot.scatter_update(tf.IndexedSlices(m, rows))
            v_slot.scatter_update(tf.IndexedSlices(v, rows))
            table.scatter_update(tf.IndexedSlices(weights, rows))
        for variable, gradient in dense_updates:
            m_slot, v_slot = self._slots[id(variable)]
            m_slot.assign(self.beta_1 * m_slot + (1.0 - self.beta_1) * gradient)
            v_slot.assign(self.beta_2 * v_slot + (1.0 - self.beta_2) * tf.square(gradient))
            variable.assign_sub(step * m_slot / (tf.sqrt(v_slot) + self.epsilon))
