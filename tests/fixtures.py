"""Synthetic training runs for the stages after the trainer (no TensorFlow needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from movielinks.common.artifacts import Records
from movielinks.common.records import AttributeModel, MovieRecord
from movielinks.trainer.run import RunManifest, save_run


def clustered_unit_vectors(rng: np.random.Generator, n: int, dim: int, n_clusters: int) -> np.ndarray:
    """Unit float32 rows scattered around `n_clusters` random centres."""
    centres = rng.standard_normal((n_clusters, dim))
    points = centres[rng.integers(n_clusters, size=n)] + 0.35 * rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def make_run(
    path: Path,
    seed: int = 0,
    *,
    n_movies: int = 300,
    n_links: int = 120,
    dim: int = 16,
    n_clusters: int = 6,
    titles: list[str] | None = None,
    years: bool = False,
    movie_links: bool = True,
    useless_models: tuple[str, ...] = (),
    cited_links: tuple[int, ...] = (),
    objective: dict | None = None,
    external_ids: dict[int, dict[str, str]] | None = None,
) -> Path:
    """Write a run directory with clustered vectors, movie attributes and two attribute models.

    `titles` (if given) name the first movies; the rest are 'Movie NNN, part "K"'.
    `years` gives every movie but each fifth a "released" year in its infobox.
    The models named in `useless_models` have a held-out MSE above always predicting the mean's.
    With `movie_links` each movie links to 3 to 8 links (movie_links.npz), else the
    run has no movie links (as runs written before them). The links of `cited_links` are
    marked as only in the movies' citations (every pair), the others as in their prose.
    `objective` is what the manifest records as learned ({"name", "scale", "bias"}); none
    by default, as runs written before it was recorded.
    `external_ids` gives movies (by id) their ids in other catalogues ({"imdb": "tt..."}).
    """
    rng = np.random.default_rng(seed)
    names = list(titles or [])
    names += [f'Movie {i:03d}, part "{i % 7}"' for i in range(len(names), n_movies)]
    movies = [
        MovieRecord(name, {"director": f"D{i % 11}", **({"released": f"May {1950 + i % 70}"} if years and i % 5 else {})},
                    {"rotten_tomatoes": float(rng.random())} if i % 3 else {}, (external_ids or {}).get(i, {}))
        for i, name in enumerate(names)
    ]
    models = {
        name: AttributeModel(name, unit, rng.standard_normal(dim).tolist(), 0.5, 200, 50,
                             0.26 if name in useless_models else 0.1, 0.2)
        for name, unit in (("rotten_tomatoes", "fraction"), ("gross", "USD"))
    }
    pairs = random_pairs(np.random.default_rng(seed + 1), n_movies, n_links) if movie_links else None
    cited = np.isin(pairs[:, 1], cited_links) if movie_links and cited_links else None
    return save_run(
        path,
        RunManifest(dataset={"n_movies": n_movies}, params={"dim": dim}, metrics={"link_auc": 0.9},
                    objective=objective or {}),
        movie_vectors=clustered_unit_vectors(rng, n_movies, dim, n_clusters),
        link_vectors=clustered_unit_vectors(rng, n_links, dim, n_clusters),
        records=Records(movies, [f"Link {i}" for i in range(n_links)], models),
        pairs=pairs,
        cited=cited,
    )


def random_pairs(rng: np.random.Generator, n_movies: int, n_links: int) -> np.ndarray:
    """(movie, link) pairs: each movie links to 3 to 8 distinct links, the low link ids more often."""
    weights = 1.0 / np.arange(1, n_links + 1)
    pairs = [(m, int(j)) for m in range(n_movies)
             for j in rng.choice(n_links, size=min(n_links, int(rng.integers(3, 9))), replace=False, p=weights / weights.sum())]
    return np.array(pairs, dtype=np.int32)


def svm_decision(version, liked_ids: list[int], disliked_ids: list[int], liked_links: list[int] = ()) -> np.ndarray:
    """Every movie's decision value under the svm strategy as docs/api.md defines it, fitted here
    with scikit-learn itself: a movie's features are its vector, its prominence and its era
    affinity to the liked films' years; the liked movies and links against the seeded catalogue
    sample (and, with links liked, a seeded sample of links) and the disliked movies (weighted
    SVM_DISLIKED_WEIGHT, together at most that times the liked), C=SVM_C. A link's prominence and
    era are the catalogue sample's means."""
    from sklearn.svm import SVC

    from movielinks.search.recommend import SVM_C, SVM_DISLIKED_WEIGHT, era_affinity, stand_in_dislike_ids

    years = np.asarray(version.years)
    features = np.column_stack([np.asarray(version.movie_vectors, np.float64), version.prominence,
                                era_affinity(years, years[liked_ids])])
    n_liked = len(liked_ids) + len(liked_links)
    sample = stand_in_dislike_ids(len(features), liked_ids + disliked_ids, n_liked).tolist()
    links = np.asarray(version.link_vectors, np.float64)
    link_rows = list(liked_links) + (stand_in_dislike_ids(len(links), list(liked_links), n_liked).tolist()
                                     if len(liked_links) else [])
    as_links = np.column_stack([links[link_rows], np.tile(features[sample, -2:].mean(axis=0), (len(link_rows), 1))])
    rows = np.concatenate([features[liked_ids], as_links[:len(liked_links)], features[sample], as_links[len(liked_links):],
                           features[disliked_ids]])
    labels = [1] * n_liked + [0] * (len(rows) - n_liked)
    disliked_weight = SVM_DISLIKED_WEIGHT * min(1.0, n_liked / max(1, len(disliked_ids)))
    weights = [1.0] * (len(rows) - len(disliked_ids)) + [disliked_weight] * len(disliked_ids)
    svm = SVC(kernel="linear", C=SVM_C).fit(rows, labels, sample_weight=weights)
    return svm.decision_function(features)
