"""SVM recommendations: a linear SVM on liked (+1) and disliked (0) movie vectors.

The SVM's decision function is w.x + b, so ranking every movie by it is an
inner-product search of w over the movie index (and of -w for the worst). With
no dislikes, a seeded sample of the catalogue stands in for them.
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


def svm_direction(vectors: np.ndarray, liked_ids: np.ndarray, disliked_ids: np.ndarray) -> tuple[np.ndarray, float]:
    """(w, b) of the SVM fitted on the liked and disliked rows of `vectors`; with no
    dislikes, `stand_in_dislike_ids` take their place."""
    if len(disliked_ids) == 0:
        disliked_ids = stand_in_dislike_ids(len(vectors), liked_ids)
    return fit_svm(vectors[np.asarray(liked_ids)], vectors[np.asarray(disliked_ids)])


def stand_in_dislike_ids(n_movies: int, liked_ids) -> np.ndarray:
    """Movie ids standing in for dislikes when there are none: a sample of the catalogue
    (liked movies excluded) of max(50, 10 per liked) movies, at most 5,000, seeded by the
    liked set so the same request always gets the same answer."""
    liked = np.unique(np.asarray(liked_ids, dtype=np.int64))
    wanted = min(max(MIN_STAND_IN_DISLIKES, STAND_IN_DISLIKES_PER_LIKED * len(liked)), MAX_STAND_IN_DISLIKES,
                 n_movies - len(liked))
    rng = np.random.default_rng([0x5EC, len(liked), *liked.tolist()])
    return np.sort(rng.choice(np.setdiff1d(np.arange(n_movies), liked), size=wanted, replace=False))


def load_svm() -> None:
    """Import scikit-learn's SVM now.

    Importing sklearn takes most of a second, more than the rest of the server's
    start together, so it is not imported at start: the server calls this in the
    background once it is serving, and fit_svm imports it on first use otherwise.
    """
    importlib.import_module("sklearn.svm")
