"""Recommendations from liked (positive) and disliked (negative) example vectors.

Three strategies, named as Qdrant's recommendation API names the last two:

- svm (default, the notebook's): a linear SVM on positive (+1) and negative (0)
  vectors. Its decision function is w.x + b, so ranking every movie by it is an
  inner-product search of w over the movie index (and of -w for the worst). With
  no negatives, a seeded sample of the catalogue stands in for them.
- average_vector: one query, normalise(avg(pos) + avg(pos) - avg(neg)) (without
  negatives, avg(pos)), and the movies' cosine to it.
- best_score: each movie's best cosine to a positive, if that beats its best cosine
  to a negative; else minus the square of the latter (without negatives, the best
  positive cosine).

Examples are movie or link vectors: both live in one space.
"""
from __future__ import annotations

import importlib

import numpy as np

SVM_C = 1.0  # the notebook's SVC(kernel="linear") default
STAND_IN_DISLIKES_PER_LIKED = 10
MIN_STAND_IN_DISLIKES = 50
MAX_STAND_IN_DISLIKES = 5_000  # with at most 1,000 liked titles (server.limits), keeps one fit under about a second


def fit_svm(liked: np.ndarray, disliked: np.ndarray) -> tuple[np.ndarray, float]:
    """(w, b) of SVC(kernel="linear", C=1) fitted on liked (label 1) and disliked (label 0) rows."""
    from sklearn.svm import SVC  # see load_svm

    features = np.concatenate([liked, disliked]).astype(np.float64)
    labels = np.concatenate([np.ones(len(liked)), np.zeros(len(disliked))])
    classifier = SVC(kernel="linear", C=SVM_C).fit(features, labels)
    return classifier.coef_[0].astype(np.float64), float(classifier.intercept_[0])


STRATEGIES = ("svm", "average_vector", "best_score")
SCORE_MEANING = {
    "svm": "the linear SVM's decision value w.x + b: above 0 the movie is on the liked side of the boundary, below 0 "
           "on the disliked side (with no dislikes, against a random sample of the catalogue, so most scores are "
           "below 0 and only the order matters)",
    "average_vector": "the cosine (-1..1) to the average liked vector pushed away from the average disliked one",
    "best_score": "the cosine (-1..1) to the closest liked example when that is closer than every disliked one; "
                  "otherwise minus the squared cosine to the closest disliked example",
}


def average_vector_query(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Qdrant's average_vector query, normalised: avg(pos) + (avg(pos) - avg(neg)), or avg(pos) without negatives."""
    mean = positives.mean(axis=0)
    query = 2 * mean - negatives.mean(axis=0) if len(negatives) else mean
    norm = float(np.linalg.norm(query))
    return (query / norm if norm > 0 else query).astype(np.float32)


def best_scores(vectors: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Qdrant's best_score of every row of `vectors`, float32 [n]."""
    best_positive = (vectors @ positives.T).max(axis=1)
    if not len(negatives):
        return best_positive.astype(np.float32)
    best_negative = (vectors @ negatives.T).max(axis=1)
    return np.where(best_positive > best_negative, best_positive, -(best_negative ** 2)).astype(np.float32)


def svm_direction(vectors: np.ndarray, liked_ids: np.ndarray, disliked_ids: np.ndarray,
                  liked_extra: np.ndarray | None = None, disliked_extra: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(w, b) of the SVM fitted on the liked and disliked rows of `vectors` (and the
    extra example vectors, e.g. links'); with no negatives at all,
    `stand_in_dislike_ids` take their place."""
    dim = vectors.shape[1]
    liked_extra = np.empty((0, dim), np.float32) if liked_extra is None else liked_extra
    disliked_extra = np.empty((0, dim), np.float32) if disliked_extra is None else disliked_extra
    if len(disliked_ids) == 0 and len(disliked_extra) == 0:
        disliked_ids = stand_in_dislike_ids(len(vectors), liked_ids, max(1, len(liked_ids) + len(liked_extra)))
    positives = np.concatenate([vectors[np.asarray(liked_ids, dtype=np.int64)], liked_extra])
    negatives = np.concatenate([vectors[np.asarray(disliked_ids, dtype=np.int64)], disliked_extra])
    return fit_svm(positives, negatives)


def stand_in_dislike_ids(n_movies: int, liked_ids, n_liked: int | None = None) -> np.ndarray:
    """Movie ids standing in for dislikes when there are none: a sample of the catalogue
    (liked movies excluded) of max(50, 10 per liked example) movies, at most 5,000, seeded
    by the liked set so the same request always gets the same answer."""
    liked = np.unique(np.asarray(liked_ids, dtype=np.int64))
    n_liked = len(liked) if n_liked is None else n_liked
    wanted = min(max(MIN_STAND_IN_DISLIKES, STAND_IN_DISLIKES_PER_LIKED * n_liked), MAX_STAND_IN_DISLIKES,
                 n_movies - len(liked))
    rng = np.random.default_rng([0x5EC, len(liked), *liked.tolist()])
    # The movies not liked, as np.setdiff1d would give them, without its sort of every id
    # (2.4 s at a million movies here; a mask takes milliseconds).
    others = np.ones(n_movies, dtype=bool)
    others[liked] = False
    return np.sort(rng.choice(np.flatnonzero(others), size=wanted, replace=False))


def load_svm() -> None:
    """Import scikit-learn's SVM now.

    Importing sklearn takes most of a second, more than the rest of the server's
    start together, so it is not imported at start: the server calls this in the
    background once it is serving, and fit_svm imports it on first use otherwise.
    """
    importlib.import_module("sklearn.svm")
