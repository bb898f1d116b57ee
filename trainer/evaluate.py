"""Held-out evaluation of a training run, on numpy arrays of unit vectors.

- link prediction: ROC AUC of held-out true pairs against as many random pairs
  that are not true pairs, and recall@10 (is a held-out link among the 10 links
  nearest to its movie, the movie's training links excluded?);
- attributes: a linear regression from the movie vector to each numeric attribute,
  its held-out MSE against always predicting the training mean.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.metrics import roc_auc_score

from common.records import AttributeModel
from trainer.sampler import pair_keys, sample_non_pairs

ATTRIBUTE_UNITS = {"rotten_tomatoes": "fraction", "gross": "USD", "budget": "USD"}
MIN_ATTRIBUTE_FILMS = 20  # fewer films than this give no meaningful held-out error
# recall@k scores every link for each movie asked: exact up to this many (movie, link)
# cells, a sample of the movies beyond; a chunk of movies holds at most RECALL_CHUNK_CELLS.
RECALL_MAX_CELLS = 250_000_000
RECALL_CHUNK_CELLS = 16_000_000


def evaluate_run(
    movie_vectors: np.ndarray,
    link_vectors: np.ndarray,
    train_pairs: np.ndarray,
    heldout_pairs: np.ndarray,
    attributes: Sequence[Mapping[str, float]],
    seed: int,
) -> tuple[dict, dict[str, AttributeModel]]:
    """Every held-out measure of a trained run: (metrics for the manifest, attribute models).

    A new measure is added here; the training loop does not change.
    """
    all_pairs = np.concatenate([train_pairs, heldout_pairs])
    metrics = {
        "link_auc": link_auc(movie_vectors, link_vectors, heldout_pairs, all_pairs, seed),
        "recall_at_10": recall_at_k(movie_vectors, link_vectors, heldout_pairs, train_pairs, 10, seed=seed),
        "heldout_pairs": int(len(heldout_pairs)),
    }
    models = fit_attribute_models(movie_vectors, attributes, seed)
    metrics["attributes"] = {
        name: {"heldout_mse": m.heldout_mse, "baseline_mse": m.baseline_mse, "films": m.n_train + m.n_test}
        for name, m in models.items()
    }
    return metrics, models


def link_auc(movie_vectors: np.ndarray, link_vectors: np.ndarray, heldout: np.ndarray, all_pairs: np.ndarray, seed: int) -> float:
    """ROC AUC of cosine scores: held-out true pairs vs the same number of random non-pairs."""
    if len(heldout) == 0:
        return float("nan")
    n_links = len(link_vectors)
    true_keys = np.sort(pair_keys(all_pairs, n_links))
    non_pairs = sample_non_pairs(np.random.default_rng([seed, 0xA0C]), len(heldout), len(movie_vectors), n_links, true_keys)
    scores = np.concatenate([_pair_scores(movie_vectors, link_vectors, heldout), _pair_scores(movie_vectors, link_vectors, non_pairs)])
    labels = np.concatenate([np.ones(len(heldout)), np.zeros(len(non_pairs))])
    return float(roc_auc_score(labels, scores))


def recall_at_k(
    movie_vectors: np.ndarray, link_vectors: np.ndarray, heldout: np.ndarray, train: np.ndarray, k: int = 10,
    *, seed: int = 0,
) -> float:
    """Fraction of held-out (movie, link) pairs whose link ranks in the movie's top k,
    the movie's training links excluded from the ranking.

    Exact while (movies with held-out pairs) x links is at most RECALL_MAX_CELLS;
    beyond, over a seeded sample of those movies (all of each one's held-out pairs),
    so that time and memory stay bounded on any catalogue. `heldout` and `train`
    are sorted by movie, as trainer.sampler.split_pairs returns them.
    """
    if len(heldout) == 0:
        return float("nan")
    n_links = len(link_vectors)
    movies = np.unique(heldout[:, 0])
    if len(movies) * n_links > RECALL_MAX_CELLS:
        wanted = max(1, RECALL_MAX_CELLS // n_links)
        movies = np.sort(np.random.default_rng([seed, 0x2EC]).choice(movies, wanted, replace=False))
    chunk_movies = max(1, RECALL_CHUNK_CELLS // n_links)
    hits = asked_total = 0
    row_of = np.full(len(movie_vectors), -1, dtype=np.int64)
    for start in range(0, len(movies), chunk_movies):
        chunk = movies[start : start + chunk_movies]
        row_of[chunk] = np.arange(len(chunk))
        seen = _pairs_of(train, chunk, row_of)
        asked = _pairs_of(heldout, chunk, row_of)
        scores = movie_vectors[chunk] @ link_vectors.T
        scores[row_of[seen[:, 0]], seen[:, 1]] = -np.inf
        top = np.argpartition(-scores, min(k, n_links - 1), axis=1)[:, :k]
        hits += int((top[row_of[asked[:, 0]]] == asked[:, 1:2]).any(axis=1).sum())
        asked_total += len(asked)
        row_of[chunk] = -1
    return hits / asked_total


def _pairs_of(pairs: np.ndarray, movies: np.ndarray, row_of: np.ndarray) -> np.ndarray:
    """The pairs (sorted by movie) whose movie is in the sorted `movies` (marked in `row_of`)."""
    lo, hi = np.searchsorted(pairs[:, 0], [movies[0], movies[-1] + 1])
    window = pairs[lo:hi]
    return window[row_of[window[:, 0]] >= 0]


def fit_attribute_models(
    movie_vectors: np.ndarray, attributes: Sequence[Mapping[str, float]], seed: int, test_fraction: float = 0.2
) -> dict[str, AttributeModel]:
    """One linear regression per attribute that at least MIN_ATTRIBUTE_FILMS movies carry,
    fitted on a seeded (1 - test_fraction) of them and scored on the rest."""
    models = {}
    for name, unit in ATTRIBUTE_UNITS.items():
        ids = np.array([i for i, a in enumerate(attributes) if name in a], dtype=np.int64)
        if len(ids) < MIN_ATTRIBUTE_FILMS:
            continue
        values = np.array([attributes[i][name] for i in ids], dtype=np.float64)
        order = np.random.default_rng([seed, 0xA77]).permutation(len(ids))
        n_test = max(1, int(round(test_fraction * len(ids))))
        test, fit = order[:n_test], order[n_test:]
        regression = LinearRegression().fit(movie_vectors[ids[fit]], values[fit])
        heldout_mse = float(np.mean((regression.predict(movie_vectors[ids[test]]) - values[test]) ** 2))
        baseline_mse = float(np.mean((values[fit].mean() - values[test]) ** 2))
        models[name] = AttributeModel(
            name=name,
            unit=unit,
            coef=[float(c) for c in regression.coef_],
            intercept=float(regression.intercept_),
            n_train=len(fit),
            n_test=len(test),
            heldout_mse=heldout_mse,
            baseline_mse=baseline_mse,
        )
    return models


def _pair_scores(movie_vectors: np.ndarray, link_vectors: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", movie_vectors[pairs[:, 0]], link_vectors[pairs[:, 1]])


def format_table(metrics: Mapping, models: Mapping[str, AttributeModel]) -> str:
    """The evaluation as a plain-text table for people."""
    lines = [
        "evaluation (held-out)",
        f"  link prediction ROC AUC   {metrics['link_auc']:.4f}   ({metrics['heldout_pairs']:,} held-out pairs vs as many random pairs)",
        f"  link recall@10            {metrics['recall_at_10']:.4f}",
        "",
        f"  {'attribute':<16} {'films':>6} {'held-out MSE':>14} {'mean-baseline MSE':>18} {'ratio':>6}",
    ]
    for name, m in models.items():
        ratio = m.heldout_mse / m.baseline_mse if m.baseline_mse else float("nan")
        lines.append(
            f"  {name:<16} {m.n_train + m.n_test:>6} {m.heldout_mse:>14.4g} {m.baseline_mse:>18.4g} {ratio:>6.3f}"
        )
    if not models:
        lines.append(f"  (no attribute is carried by {MIN_ATTRIBUTE_FILMS} or more films)")
    return "\n".join(lines)
