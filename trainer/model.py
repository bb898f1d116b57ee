"""The embedding model: a movie table and a link table, a pair scored by cosine."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class LinkEmbeddingModel(keras.Model):
    """Scores (movie, link) pairs by the cosine of their embeddings.

    Each table has one spare row past the real ones (row n_movies, row n_links):
    batches pad their row lists with it (trainer.sampler.BatchRows), so every full
    batch has one shape; it is never exported. The loss lives elsewhere
    (trainer.objectives), so swapping it does not touch the model.
    """

    def __init__(self, n_movies: int, n_links: int, dim: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.n_movies, self.n_links = n_movies, n_links
        self.movie_table = self.add_weight(
            shape=(n_movies + 1, dim), initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
            name="movie_embedding",
        )
        self.link_table = self.add_weight(
            shape=(n_links + 1, dim), initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + 1),
            name="link_embedding",
        )

    def rows(self, movie_rows, link_rows):
        """The raw table rows a batch reads: (movies [Um, d], links [Ul, d])."""
        return tf.gather(self.movie_table.value, movie_rows), tf.gather(self.link_table.value, link_rows)

    def score(self, movie_raw, link_raw, movie_slots, link_slots, negative_index):
        """Cosines of a batch (see trainer.sampler.Batch and BatchRows) from its gathered rows:
        (positive [P], negative [P, R]).

        Rows are normalised after they are gathered, so the gradient reaches only
        the rows the batch read: a step costs the same whatever the tables' size.
        """
        unit_movies = tf.gather(tf.math.l2_normalize(movie_raw, axis=-1), movie_slots)  # [P, 1 + A, d]
        unit_links = tf.gather(tf.math.l2_normalize(link_raw, axis=-1), link_slots)  # [P, 1 + B, d]
        positive = tf.reduce_sum(unit_movies[:, 0] * unit_links[:, 0], axis=-1)
        grid = tf.einsum("pad,pbd->pab", unit_movies[:, 1:], unit_links[:, 1:])
        cells = tf.reshape(grid, [tf.shape(grid)[0], -1])
        negative = tf.gather(cells, negative_index, batch_dims=1)
        return positive, negative

    def movie_vectors(self) -> np.ndarray:
        """L2-normalised float32 movie vectors, row i = movie id i."""
        return unit_rows(keras.ops.convert_to_numpy(self.movie_table)[: self.n_movies])

    def link_vectors(self) -> np.ndarray:
        """L2-normalised float32 link vectors, row j = link id j."""
        return unit_rows(keras.ops.convert_to_numpy(self.link_table)[: self.n_links])


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
