"""Training objectives: how positive and negative cosines become a loss.

Each objective is a Keras layer so that it can own trainable parameters (the
logistic objective learns a temperature and a bias) while the model stays the
same. `call(positive [P], negative [P, R]) -> scalar loss`.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class MSEObjective(keras.layers.Layer):
    """The notebook's objective: mean squared error of every cosine against +1 / -1."""

    def call(self, positive, negative):
        errors = tf.concat([tf.reshape(positive - 1.0, [-1]), tf.reshape(negative + 1.0, [-1])], axis=0)
        return tf.reduce_mean(tf.square(errors))


class LogisticObjective(keras.layers.Layer):
    """Class-balanced binary cross-entropy on `scale * cosine + bias`, scale and bias learned.

    A cosine lives in [-1, 1], so a sigmoid over it needs a temperature to get near
    0 or 1. Positives and negatives weigh the same in total (the mean loss of each
    class, averaged), so the ten negatives per positive do not drown the positives;
    the held-out evaluation chose this over the unbalanced form and over MSE
    (docs/speed.md).
    """

    def __init__(self, initial_scale: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_scale = initial_scale

    def build(self, input_shape=None):
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial_scale), name="scale")
        self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")

    def call(self, positive, negative):
        positive_loss = tf.reduce_mean(tf.nn.softplus(-(self.scale * positive + self.bias)))
        negative_loss = tf.reduce_mean(tf.nn.softplus(self.scale * negative + self.bias))
        return (positive_loss + negative_loss) / 2.0


OBJECTIVES = {"logistic": LogisticObjective, "mse": MSEObjective}
