"""Fold-in (search.foldin): a unit vector fitted to a film's links with the training objective,
checked against the loss written out here, on synthetic link vectors."""
from __future__ import annotations

import numpy as np
import pytest

from movielinks.common.movie_links import from_pairs
from movielinks.search.foldin import (DEFAULT_BIAS, DEFAULT_NEGATIVE_POWER, DEFAULT_SCALE, Objective, fold_in,
                                      fold_in_space, link_film_counts)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def space():
    rng = np.random.default_rng(7)
    links = unit_rows(rng.normal(size=(300, 16)))
    counts = rng.integers(1, 200, 300)
    return fold_in_space(links, counts, Objective(scale=10.0, bias=-1.5, negative_power=0.75), negatives=256)


def loss(space, vector: np.ndarray, links: list[int]) -> float:
    """The class-balanced logistic loss of trainer.objectives, its negatives the space's less the film's links."""
    s, b = space.objective.scale, space.objective.bias
    negatives = space.negative_vectors[~np.isin(space.negative_ids, links)]
    positive = np.logaddexp(0, -(s * space.link_vectors[links] @ vector + b)).mean()
    negative = np.logaddexp(0, s * negatives @ vector + b).mean()
    return float(positive + negative) / 2


def test_the_vector_is_a_minimum_of_the_training_loss_on_the_sphere(space):
    links = [3, 17, 42, 99, 150, 151]
    vector = fold_in(space, [links]).vectors[0].astype(np.float64)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    average = space.link_vectors[links].mean(axis=0)
    average /= np.linalg.norm(average)
    best = loss(space, vector, links)
    assert best < loss(space, average, links) - 1e-3  # not the plain average
    rng = np.random.default_rng(0)
    for _ in range(20):  # every small move along the sphere costs more
        moved = vector + 0.02 * rng.normal(size=vector.shape)
        assert loss(space, moved / np.linalg.norm(moved), links) >= best - 1e-6


def test_a_batch_answers_as_each_film_alone_and_repeats_and_order_do_not_matter(space):
    films = [[1, 2, 3], [200, 10, 10, 10, 55], [7]]
    batch = fold_in(space, films).vectors
    for film, row in zip(films, batch):
        np.testing.assert_allclose(fold_in(space, [film]).vectors[0], row, atol=1e-5)
    np.testing.assert_allclose(fold_in(space, [[55, 200, 10]]).vectors[0], batch[1], atol=1e-5)
    np.testing.assert_array_equal(fold_in(space, films).vectors, batch)  # deterministic


def test_unknown_links_are_reported_and_ignored_and_a_film_without_known_links_is_empty(space):
    folded = fold_in(space, [[5, -1, 300, 8], [1000], []])
    assert folded.unknown == [[-1, 300], [1000], []]
    assert folded.empty.tolist() == [False, True, True]
    np.testing.assert_allclose(folded.vectors[0], fold_in(space, [[5, 8]]).vectors[0], atol=1e-6)
    assert not folded.vectors[1:].any()


def test_a_films_own_links_are_never_its_negatives(space):
    popular = int(np.bincount(space.negative_ids).argmax())  # drawn several times
    links = [popular, 4, 9]
    vector = fold_in(space, [links]).vectors[0].astype(np.float64)
    rng = np.random.default_rng(1)
    best = loss(space, vector, links)  # the loss without it among the negatives is the one minimised
    for _ in range(10):
        moved = vector + 0.02 * rng.normal(size=vector.shape)
        assert loss(space, moved / np.linalg.norm(moved), links) >= best - 1e-6


def test_negatives_are_drawn_by_popularity_to_the_power():
    links = unit_rows(np.random.default_rng(0).normal(size=(3, 4)))
    counts = np.array([1, 16, 81])
    drawn = fold_in_space(links, counts, Objective(negative_power=0.5), negatives=60_000).negative_ids
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / 60_000, np.array([1, 4, 9]) / 14, atol=0.01)
    uniform = fold_in_space(links, counts, Objective(negative_power=0.0), negatives=60_000).negative_ids
    np.testing.assert_allclose(np.bincount(uniform, minlength=3) / 60_000, [1 / 3] * 3, atol=0.01)


def test_the_objective_comes_from_the_manifest_or_the_documented_default():
    recorded = Objective.from_manifest({"name": "logistic", "scale": 9.5, "bias": -1.25}, {"negative_power": 0.75})
    assert (recorded.scale, recorded.bias, recorded.negative_power, recorded.recorded) == (9.5, -1.25, 0.75, True)
    older = Objective.from_manifest({}, {})
    assert (older.scale, older.bias, older.negative_power) == (DEFAULT_SCALE, DEFAULT_BIAS, DEFAULT_NEGATIVE_POWER)
    assert not older.recorded
    mse = Objective.from_manifest({"name": "mse"}, {"negative_power": 0.25})
    assert (mse.scale, mse.bias, mse.negative_power) == (DEFAULT_SCALE, DEFAULT_BIAS, 0.25)


def test_link_popularity_counts_the_films_linking_to_each_link():
    links = from_pairs(np.array([[0, 1], [1, 1], [1, 2], [2, 1]]), 3)
    assert link_film_counts(links, 4).tolist() == [0, 3, 1, 0]
    assert link_film_counts(None, 3).tolist() == [1, 1, 1]


def test_bad_spaces_and_steps_are_refused():
    links = unit_rows(np.ones((3, 2)))
    with pytest.raises(ValueError, match="film counts"):
        fold_in_space(links, np.ones(2))
    with pytest.raises(ValueError, match="negatives"):
        fold_in_space(links, np.ones(3), negatives=0)
    with pytest.raises(ValueError, match="non-empty"):
        fold_in_space(np.zeros((0, 2)), np.ones(0))
    with pytest.raises(ValueError, match="steps"):
        fold_in(fold_in_space(links, np.ones(3)), [[0]], steps=-1)
