"""The embedding model: a movie table and a link table, a pair scored by cosine."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class LinkEmbeddingModel(keras.Model):
    """Scores (movie, link) pairs by the cosine of their embeddings.

    The loss lives elsewhere (trainer.objectives), so swapping it does not touch
    the model.
    """

    def __init__(self, n_movies: int, n_links: int, dim: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.movie_embedding = keras.layers.Embedding(
            n_movies, dim, embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed), name="movie_embedding"
        )
        self.link_embedding = keras.layers.Embedding(
            n_links, dim, embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + 1), name="link_embedding"
        )
        self.movie_embedding.build((None,))
        self.link_embedding.build((None,))

    def call(self, inputs):
        """(movies [P], links [P], grid_movies [P, A], grid_links [P, B], negative_index [P, R])
        -> (positive cosines [P], negative cosines [P, R]); see trainer.sampler.Batch.

        Normalising the whole tables first (cheap: a few MB) and gathering the unit
        rows keeps the gradient dense and the compiled step simple.
        """
        movies, links, grid_movies, grid_links, negative_index = inputs
        unit_movies = tf.math.l2_normalize(self.movie_embedding.embeddings, axis=-1)
        unit_links = tf.math.l2_normalize(self.link_embedding.embeddings, axis=-1)
        positive = tf.reduce_sum(tf.gather(unit_movies, movies) * tf.gather(unit_links, links), axis=-1)
        grid = tf.einsum("pad,pbd->pab", tf.gather(unit_movies, grid_movies), tf.gather(unit_links, grid_links))
        cells = tf.reshape(grid, [tf.shape(grid)[0], -1])
        negative = tf.gather(cells, negative_index, batch_dims=1)
        return positive, negative

    def movie_vectors(self) -> np.ndarray:
        """L2-normalised float32 movie vectors, row i = movie id i."""
        return unit_rows(keras.ops.convert_to_numpy(self.movie_embedding.embeddings))

    def link_vectors(self) -> np.ndarray:
        """L2-normalised float32 link vectors, row j = link id j."""
        return unit_rows(keras.ops.convert_to_numpy(self.link_embedding.embeddings))


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
