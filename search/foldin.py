"""Fold-in: a movie vector for a film the index never trained on, fitted from its links.

The trainer learns a movie vector m and link vectors l so that `scale * cos(m, l) + bias`
separates a film's links from links drawn by popularity (trainer.objectives
LogisticObjective, trainer.sampler popularity_cdf). Fold-in keeps the link vectors
frozen and fits one unit vector per film to that same objective: the class-balanced
softplus loss of its links (positives) against a fixed sample of links drawn with
probability (films linking to them) ** power (negatives, the film's own links left out),
by projected gradient on the unit sphere with momentum, from the normalised average of
its link vectors. Unlike the plain average it pushes the film away from what popular
links have in common and weighs each link by how badly it is fitted, as training did.

    space = version_space(version)    # an index version's links, counts and recorded objective
    folded = fold_in(space, [[12, 40, 977], [5, 6]])   # link ids of two films
    folded.vectors        # float32 [2, dim], unit rows (a zero row where no link was known)

numpy only (no TensorFlow, no trainer), batch-first, deterministic: the negatives are
drawn once per space with a fixed seed, so the same links always give the same vector.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# The fallback where a version does not record its objective (built before it was
# recorded, or trained with --objective mse): the scale and bias that fit the 36k-film
# index's vectors best (a class-balanced logistic regression of its (film, link) pairs
# against popularity-drawn negatives, fitted once by hand: about 13 and -2).
DEFAULT_SCALE = 13.0
DEFAULT_BIAS = -2.0
# trainer.train.TrainConfig's default --negative-power, for versions whose params lack it.
DEFAULT_NEGATIVE_POWER = 0.5
# Negative links sampled once per space; each film is fitted against all of them.
DEFAULT_NEGATIVES = 512
# Projected-gradient steps: from the average of the links' vectors, 100 momentum steps
# reach the optimum of the loss to within 1e-4 for scales from 5 to 40.
DEFAULT_STEPS = 100
_MOMENTUM = 0.8
# The first step length times scale ** 2 (the loss's curvature grows with the scale squared).
_STEP_TIMES_SCALE_SQUARED = 300.0
# After a step that went uphill (gradient along the velocity) the velocity restarts at
# zero and the step shrinks by this factor: what keeps a too long first step stable.
_RESTART_SHRINK = 0.7
# Films fitted together: their [films, negatives] arrays stay in cache (a thousand at once is slower a film).
_FILMS_AT_ONCE = 128


@dataclasses.dataclass(frozen=True)
class Objective:
    """The trained objective's learned temperature and bias, and the negatives' power."""

    scale: float = DEFAULT_SCALE
    bias: float = DEFAULT_BIAS
    negative_power: float = DEFAULT_NEGATIVE_POWER

    @property
    def recorded(self) -> bool:
        """False where this is the documented fallback, not what the trainer learned."""
        return (self.scale, self.bias) != (DEFAULT_SCALE, DEFAULT_BIAS)

    @classmethod
    def from_manifest(cls, objective: Mapping[str, Any] | None, params: Mapping[str, Any] | None) -> Objective:
        """The objective a run or version manifest records (its `objective` {"name", "scale",
        "bias"} and `params` {"negative_power"}); DEFAULT_SCALE and DEFAULT_BIAS where it
        records none (older versions, or the mse objective, which has no scale)."""
        objective, params = objective or {}, params or {}
        power = params.get("negative_power", DEFAULT_NEGATIVE_POWER)
        if objective.get("name", "logistic") != "logistic" or "scale" not in objective or "bias" not in objective:
            return cls(negative_power=float(power))
        return cls(float(objective["scale"]), float(objective["bias"]), float(power))


@dataclasses.dataclass(frozen=True)
class FoldInSpace:
    """What fold-in needs of a version: its frozen link vectors, the objective and the
    negative links drawn once (ids int64 [R] and their vectors float32 [R, dim])."""

    link_vectors: np.ndarray
    objective: Objective
    negative_ids: np.ndarray
    negative_vectors: np.ndarray

    @property
    def n_links(self) -> int:
        return len(self.link_vectors)

    @property
    def dim(self) -> int:
        return int(self.link_vectors.shape[1])


@dataclasses.dataclass(frozen=True)
class FoldedIn:
    """Fold-in's answer for a batch of films, row i for film i.

    `vectors` float32 [B, dim]: unit rows, a zero row for a film with no known link;
    `unknown[i]`: the ids of film i that are no link of the space (ignored);
    `empty` bool [B]: film i had no known link, so it has no vector."""

    vectors: np.ndarray
    unknown: list[list[int]]
    empty: np.ndarray


def link_film_counts(movie_links: Any, n_links: int) -> np.ndarray:
    """How many films link to each link (int64 [n_links]), the popularity negatives are
    drawn by, from a version's movie links (common.movie_links.MovieLinks; every pair,
    where the trainer counted its training pairs only); all ones where there are none."""
    if movie_links is None:
        return np.ones(n_links, dtype=np.int64)
    return movie_links.films_per_link(n_links)


def fold_in_space(link_vectors: np.ndarray, film_counts: np.ndarray, objective: Objective = Objective(), *,
                  negatives: int = DEFAULT_NEGATIVES, seed: int = 0) -> FoldInSpace:
    """The space films are folded into: `negatives` links drawn with probability
    max(films linking to them, 1) ** objective.negative_power, as trainer.sampler
    popularity_cdf draws them (uniform for power 0), seeded, so fold-in is deterministic.

    Raises ValueError for link vectors that are not a non-empty [n, dim] matrix, counts of
    another length, or fewer than one negative.
    """
    link_vectors = np.asarray(link_vectors)
    if link_vectors.ndim != 2 or not len(link_vectors) or link_vectors.shape[1] < 1:
        raise ValueError(f"link vectors must be a non-empty [n_links, dim] matrix, got shape {link_vectors.shape}")
    if len(film_counts) != len(link_vectors):
        raise ValueError(f"{len(film_counts)} film counts for {len(link_vectors)} links")
    if negatives < 1:
        raise ValueError(f"negatives must be at least 1, got {negatives}")
    weights = np.maximum(np.asarray(film_counts, dtype=np.float64), 1.0) ** objective.negative_power
    cdf = np.cumsum(weights)
    draws = np.random.default_rng([seed, 0xF01D]).random(negatives) * cdf[-1]
    ids = np.searchsorted(cdf, draws, side="right").clip(max=len(cdf) - 1).astype(np.int64)
    return FoldInSpace(link_vectors, objective, ids, np.ascontiguousarray(link_vectors[ids], dtype=np.float32))


def version_space(version: Any) -> FoldInSpace:
    """The space of an index version (indexer.version.IndexVersion): its link vectors, how many of
    its films link to each, and the objective its manifest records (or the documented default)."""
    return fold_in_space(version.link_vectors, link_film_counts(version.movie_links, len(version.links)),
                         version_objective(version))


def version_objective(version: Any) -> Objective:
    """The objective an index version's manifest records (or the documented default)."""
    return Objective.from_manifest(version.manifest.objective, version.manifest.params)


def fold_in(space: FoldInSpace, films: Sequence[Sequence[int]], *, steps: int = DEFAULT_STEPS) -> FoldedIn:
    """Fit a unit movie vector for each film (a sequence of its link ids) against the
    space's frozen link vectors with the training objective (see the module docstring).

    Repeated ids count once; ids that are no link of the space are reported in
    `unknown` and ignored; a film with no known link gets a zero row and `empty` True.
    Raises ValueError for steps < 0.
    """
    if steps < 0:
        raise ValueError(f"steps must be 0 or more, got {steps}")
    known, unknown = _known_links(films, space.n_links)
    empty = np.array([len(ids) == 0 for ids in known], dtype=bool)
    vectors = np.zeros((len(films), space.dim), dtype=np.float32)
    rows = np.flatnonzero(~empty)
    for start in range(0, len(rows), _FILMS_AT_ONCE):
        chunk = rows[start:start + _FILMS_AT_ONCE]
        vectors[chunk] = _fit(space, [known[i] for i in chunk], steps)
    return FoldedIn(vectors, unknown, empty)


def _known_links(films: Sequence[Sequence[int]], n_links: int) -> tuple[list[np.ndarray], list[list[int]]]:
    """Each film's distinct link ids inside 0..n_links-1, and the ids outside it."""
    known, unknown = [], []
    for film in films:
        ids = np.unique(np.asarray(film, dtype=np.int64).reshape(-1))
        inside = (ids >= 0) & (ids < n_links)
        known.append(ids[inside])
        unknown.append(ids[~inside].tolist())
    return known, unknown


def _fit(space: FoldInSpace, films: list[np.ndarray], steps: int) -> np.ndarray:
    """Unit vectors [B, dim] for films (each a non-empty array of known link ids)."""
    positives, positive_weights = _padded_links(space.link_vectors, films)
    negative_weights = _negative_weights(space.negative_ids, films)
    vectors = _unit(np.matmul(positive_weights[:, None, :], positives)[:, 0])
    velocity = np.zeros_like(vectors)
    step = np.full((len(films), 1), _STEP_TIMES_SCALE_SQUARED / space.objective.scale ** 2, dtype=np.float32)
    for _ in range(steps):
        gradient = _tangent(_gradient(space, vectors, positives, positive_weights, negative_weights), vectors)
        uphill = np.einsum("bd,bd->b", gradient, velocity) > 0
        velocity[uphill] = 0.0
        step[uphill] *= _RESTART_SHRINK
        velocity = _tangent(_MOMENTUM * velocity - step * gradient, vectors)
        vectors = _unit(vectors + velocity)
    return vectors


def _padded_links(link_vectors: np.ndarray, films: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each film's link vectors padded to the longest film's count (float32 [B, P, dim]) and
    the weights that average them (float32 [B, P]: 1 / count, 0 for padding)."""
    longest = max(len(ids) for ids in films)
    padded = np.zeros((len(films), longest), dtype=np.int64)
    weights = np.zeros((len(films), longest), dtype=np.float32)
    for row, ids in enumerate(films):
        padded[row, :len(ids)] = ids
        weights[row, :len(ids)] = 1.0 / len(ids)
    return np.asarray(link_vectors[padded], dtype=np.float32), weights


def _negative_weights(negative_ids: np.ndarray, films: list[np.ndarray]) -> np.ndarray:
    """float32 [B, R]: the weights that average each film's negatives, the sampled links
    that are its own links left out (training never draws a true pair as a negative)."""
    weights = np.ones((len(films), len(negative_ids)), dtype=np.float32)
    for row, ids in enumerate(films):
        weights[row, np.isin(negative_ids, ids)] = 0.0
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)


def _gradient(space: FoldInSpace, vectors: np.ndarray, positives: np.ndarray, positive_weights: np.ndarray,
              negative_weights: np.ndarray) -> np.ndarray:
    """The loss's gradient with respect to each film's vector, [B, dim]:
    (mean softplus(-(s cos + b)) over its links + mean softplus(s cos + b) over its negatives) / 2."""
    s, b = space.objective.scale, space.objective.bias
    positive_pull = positive_weights * _sigmoid(-(s * np.matmul(positives, vectors[:, :, None])[:, :, 0] + b))
    negative_push = negative_weights * _sigmoid(s * (vectors @ space.negative_vectors.T) + b)
    return (0.5 * s) * (negative_push @ space.negative_vectors - np.matmul(positive_pull[:, None, :], positives)[:, 0])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _tangent(directions: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """`directions` without their component along each (unit) vector: moves along the sphere."""
    return directions - np.einsum("bd,bd->b", directions, vectors)[:, None] * vectors


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)
