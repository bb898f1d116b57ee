"""Held-out evaluation of a training run, on numpy arrays of unit vectors.

- link prediction: ROC AUC of held-out true pairs against as many random pairs
  that are not true pairs, and recall@10 (is a held-out link among the 10 links
  nearest to its movie, the movie's training links excluded?);
- attributes: a linear regression from the movie vector to each numeric attribute,
  its held-out MSE against always predicting the training mean;
- neighbour quality (common.franchises says what a franchise is, trainer.groups
  what a genre is), for the learned vectors and for a reference that learns nothing,
  the TF-IDF cosine kNN over the same training links: franchise hit@10 (is another
  film of a franchise among a member's 10 nearest?), genre agreement@10 (the share of
  the 10 nearest, among those with known genres, that share a genre with the query)
  and a recommendation check (like two films of a franchise and dislike three random
  films, the server's linear SVM: how many of the franchise's other films are in the
  top 10?).

Neighbour measures score queries x every movie: exact up to QUALITY_MAX_CELLS cells,
a seeded sample of the queries beyond, in chunks of QUALITY_CHUNK_CELLS.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LinearRegression
from sklearn.metrics import roc_auc_score

from movielinks.common.records import AttributeModel
from movielinks.search.recommend import fit_linear_svm
from movielinks.trainer.sampler import pair_keys, sample_non_pairs

ATTRIBUTE_UNITS = {"rotten_tomatoes": "fraction", "gross": "USD", "budget": "USD"}
MIN_ATTRIBUTE_FILMS = 20  # fewer films than this give no meaningful held-out error
# recall@k scores every link for each movie asked: exact up to this many (movie, link)
# cells, a sample of the movies beyond; a chunk of movies holds at most RECALL_CHUNK_CELLS.
RECALL_MAX_CELLS = 250_000_000
RECALL_CHUNK_CELLS = 16_000_000
QUALITY_MAX_CELLS = 250_000_000
QUALITY_CHUNK_CELLS = 16_000_000
GENRE_QUERIES = 5_000  # films asked for genre agreement, at most
RECOMMEND_CHECKS = 300  # franchises asked for the recommendation check, at most
RECOMMEND_DISLIKES = 3
NEIGHBOURS_K = 10


def evaluate_run(
    movie_vectors: np.ndarray,
    link_vectors: np.ndarray,
    train_pairs: np.ndarray,
    heldout_pairs: np.ndarray,
    attributes: Sequence[Mapping[str, float]],
    seed: int,
    *,
    franchises: Sequence[np.ndarray] = (),
    genres: Sequence[frozenset[str]] | None = None,
    heldout_cited: np.ndarray | None = None,
) -> tuple[dict, dict[str, AttributeModel]]:
    """Every held-out measure of a trained run: (metrics for the manifest, attribute models).

    `franchises` are arrays of movie ids (common.franchises.franchise_groups), `genres` each
    movie's genres or None where the dataset has none. With `heldout_cited` (bool per held-out
    pair: the film has the link only in citations or navigation boxes) link prediction is
    measured again on the other held-out pairs ("uncited"), the links a person reads as reasons.
    A new measure is added here; the training loop does not change.
    """
    all_pairs = np.concatenate([train_pairs, heldout_pairs])
    metrics = {
        "link_auc": link_auc(movie_vectors, link_vectors, heldout_pairs, all_pairs, seed),
        "recall_at_10": recall_at_k(movie_vectors, link_vectors, heldout_pairs, train_pairs, 10, seed=seed),
        "heldout_pairs": int(len(heldout_pairs)),
    }
    if heldout_cited is not None and not heldout_cited.all():
        uncited = heldout_pairs[~heldout_cited]
        metrics["uncited"] = {"link_auc": link_auc(movie_vectors, link_vectors, uncited, all_pairs, seed),
                              "recall_at_10": recall_at_k(movie_vectors, link_vectors, uncited, train_pairs, 10,
                                                          seed=seed),
                              "heldout_pairs": int(len(uncited))}
    models = fit_attribute_models(movie_vectors, attributes, seed)
    metrics["attributes"] = {
        name: {"heldout_mse": m.heldout_mse, "baseline_mse": m.baseline_mse, "films": m.n_train + m.n_test}
        for name, m in models.items()
    }
    metrics["neighbours"] = neighbour_quality(movie_vectors, train_pairs, len(link_vectors), franchises, genres, seed)
    return metrics, models


def neighbour_quality(
    movie_vectors: np.ndarray, train_pairs: np.ndarray, n_links: int,
    franchises: Sequence[np.ndarray], genres: Sequence[frozenset[str]] | None, seed: int,
) -> dict:
    """Franchise hit@10, genre agreement@10 and the recommendation check, for the learned vectors
    ("learned") and the TF-IDF reference ("tfidf"), the same queries for both."""
    n_movies = len(movie_vectors)
    tfidf = tfidf_rows(train_pairs, n_movies, n_links)
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "learned": lambda ids: movie_vectors[ids] @ movie_vectors.T,
        "tfidf": lambda ids: (tfidf[ids] @ tfidf.T).toarray(),
    }
    rng = np.random.default_rng([seed, 0xF11])
    members = np.unique(np.concatenate(franchises)) if len(franchises) else np.zeros(0, dtype=np.int64)
    members = _bounded_sample(rng, members, n_movies)
    group_of = np.full(n_movies, -1, dtype=np.int64)
    for g, ids in enumerate(franchises):
        group_of[ids] = g
    genre_queries = np.zeros(0, dtype=np.int64)
    genre_sets: list[frozenset[str]] = []
    if genres is not None:
        genre_sets = list(genres)
        known = np.flatnonzero([bool(g) for g in genre_sets])
        genre_queries = _bounded_sample(rng, known, n_movies, GENRE_QUERIES)
    checks = _recommendation_checks(rng, franchises, n_movies)
    result: dict = {"franchises": len(franchises), "franchise_films": int(len(members)),
                    "genre_films": int(len(genre_queries)), "recommendation_checks": len(checks)}
    for name, scores in methods.items():
        franchise = None  # None, not NaN: the metrics travel as JSON and a protobuf Struct, which refuse NaN
        if len(members):
            top = top_neighbours(scores, members, n_movies, NEIGHBOURS_K)
            franchise = float(np.mean((group_of[top] == group_of[members][:, None]).any(axis=1)))
        genre = None
        if len(genre_queries):
            genre = genre_agreement(top_neighbours(scores, genre_queries, n_movies, NEIGHBOURS_K), genre_queries, genre_sets)
        features = movie_vectors if name == "learned" else tfidf
        result[name] = {"franchise_hit_at_10": franchise, "genre_agreement_at_10": genre,
                        "recommendation_recall_at_10": recommendation_recall(features, checks, NEIGHBOURS_K)}
    return result


def tfidf_rows(pairs: np.ndarray, n_movies: int, n_links: int) -> sp.csr_matrix:
    """Unit-norm TF-IDF rows of the movies' links (a link counts once a film; idf as
    scikit-learn's smoothed ln((1 + n) / (1 + df)) + 1), float32 CSR [n_movies, n_links]."""
    df = np.bincount(pairs[:, 1], minlength=n_links)
    idf = (np.log((1 + n_movies) / (1 + df)) + 1).astype(np.float32)
    rows = sp.csr_matrix((idf[pairs[:, 1]], (pairs[:, 0], pairs[:, 1])), shape=(n_movies, n_links), dtype=np.float32)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    return sp.diags(1 / np.maximum(norms, 1e-12).astype(np.float32)) @ rows


def top_neighbours(scores: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, n_movies: int, k: int) -> np.ndarray:
    """[len(queries), k] ids of each query's k best-scoring movies, the query itself excluded,
    best first; `scores(ids)` gives the dense [len(ids), n_movies] scores of a chunk of queries."""
    k = min(k, n_movies - 1)
    chunk = max(1, QUALITY_CHUNK_CELLS // n_movies)
    out = [np.zeros((0, k), dtype=np.int64)]
    for start in range(0, len(queries), chunk):
        ids = queries[start : start + chunk]
        block = np.asarray(scores(ids), dtype=np.float32)
        block[np.arange(len(ids)), ids] = -np.inf
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def genre_agreement(top: np.ndarray, queries: np.ndarray, genres: Sequence[frozenset[str]]) -> float | None:
    """Mean over queries of the share of their neighbours (those with known genres) sharing a genre."""
    shares = []
    for query, neighbours in zip(queries.tolist(), top.tolist()):
        known = [genres[n] for n in neighbours if genres[n]]
        if known:
            shares.append(sum(bool(genres[query] & g) for g in known) / len(known))
    return float(np.mean(shares)) if shares else None


def _recommendation_checks(rng: np.random.Generator, franchises: Sequence[np.ndarray], n_movies: int) -> list:
    """(liked [2], disliked [3], others) for up to RECOMMEND_CHECKS franchises of 3 or more films."""
    big = [g for g in franchises if len(g) >= 3]
    wanted = max(1, min(RECOMMEND_CHECKS, QUALITY_MAX_CELLS // max(1, n_movies)))
    if len(big) > wanted:
        big = [big[i] for i in np.sort(rng.choice(len(big), wanted, replace=False))]
    checks = []
    for group in big:
        liked = rng.choice(group, 2, replace=False)
        disliked = rng.choice(n_movies, RECOMMEND_DISLIKES + len(group), replace=False)
        disliked = disliked[~np.isin(disliked, group)][:RECOMMEND_DISLIKES]
        checks.append((liked, disliked, np.setdiff1d(group, liked)))
    return checks


def recommendation_recall(features, checks: list, k: int) -> float | None:
    """Mean share of a franchise's other films (at most k of them) in the top k of the notebook's
    linear SVM (search.recommend.fit_linear_svm, C=1) fitted on the liked and disliked rows alone:
    a measure of the vectors (the server's svm strategy adds each film's prominence and era)."""
    shares = []
    for liked, disliked, others in checks:
        rows = np.concatenate([liked, disliked])
        labels = np.r_[np.ones(len(liked)), np.zeros(len(disliked))]
        w, _ = fit_linear_svm(features[rows], labels)
        scores = np.asarray(features @ w).ravel()
        scores[rows] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        shares.append(np.isin(others, top).sum() / min(len(others), k))
    return float(np.mean(shares)) if shares else None


def _bounded_sample(rng: np.random.Generator, ids: np.ndarray, n_movies: int, at_most: int | None = None) -> np.ndarray:
    """`ids`, or a sorted seeded sample of them, so that len x n_movies stays within QUALITY_MAX_CELLS."""
    wanted = max(1, QUALITY_MAX_CELLS // max(1, n_movies))
    if at_most is not None:
        wanted = min(wanted, at_most)
    if len(ids) <= wanted:
        return ids
    return np.sort(rng.choice(ids, wanted, replace=False))


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
        *_uncited_lines(metrics.get("uncited")),
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
    quality = metrics.get("neighbours")
    if quality:
        lines += ["", f"  {'neighbours (top 10)':<34} {'learned':>8} {'TF-IDF kNN':>11}"]
        for key, label, count in (
            ("franchise_hit_at_10", "franchise hit@10", f"{quality['franchise_films']:,} films of {quality['franchises']:,} franchises"),
            ("genre_agreement_at_10", "genre agreement@10", f"{quality['genre_films']:,} films" if quality["genre_films"] else "no genres known"),
            ("recommendation_recall_at_10", "recommendation check", f"{quality['recommendation_checks']:,} franchises: like 2, dislike 3"),
        ):
            lines.append(f"  {label:<34} {_figure(quality['learned'][key]):>8} {_figure(quality['tfidf'][key]):>11}   ({count})")
    return "\n".join(lines)


def _uncited_lines(uncited: Mapping | None) -> list[str]:
    """The table's lines for the held-out pairs that are not citation-only, if measured."""
    if not uncited:
        return []
    return [f"  ... not citation-only: AUC {_figure(uncited['link_auc'])}, recall@10 {_figure(uncited['recall_at_10'])}"
            f"   ({uncited['heldout_pairs']:,} held-out pairs)"]


def _figure(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"
