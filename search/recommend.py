"""Recommendations from liked (positive) and disliked (negative) examples, by id.

Four strategies:

- neighbours (default): item-based. A movie's relevance is the sum, over the liked
  examples whose stored nearest neighbours it is among, of its locally scaled cosine
  to the fourth power (its closeness to what was liked, less half the mean of the two
  films' local scales, CSLS-style: close neighbours, for their region, counting most),
  scaled to 0..1; to it is added the person's era (how close its release year is to
  the years of the liked films, a kernel density whose width fits the person: people
  watch the films of their time), weighted up by the film's prominence (known box
  office and reviews: what people of that time have heard of), in full only for films
  near a liked one (prior_reach). The list is then picked by maximal marginal
  relevance (weight 0.2, search.diversity), so it covers the person's several tastes. Measured on
  real people's ratings (bench/bench_recommend.py, docs/quality.md), this beats
  every other strategy, with or without dislikes; disliked films are left out and
  their own neighbours are pushed down a little (they say the era only when no liked
  film's year is known).
- svm (the notebook's): a linear SVM on the liked (+1) films against a seeded sample
  of the catalogue, with disliked films as extra, much lighter negatives. A film's
  features are its vector, its prominence and its era affinity (as the neighbours
  strategy computes them), so the fit learns how much fame and the person's years
  count for this person beside the films' links; every movie is ranked by the
  decision function w.x + b. People dislike films they chose to watch, close to the
  ones they like, in their years and as well known: fitted on likes against
  dislikes alone, its direction points away from everything they watch.
- average_vector (Qdrant's): one query, normalise(avg(pos) + avg(pos) - avg(neg))
  (without negatives, avg(pos)), and the movies' cosine to it.
- best_score (Qdrant's): each movie's best cosine to a positive, if that beats its
  best cosine to a negative; else minus the square of the latter.

Examples are movie or link vectors: both live in one space.
"""
from __future__ import annotations

import importlib

import numpy as np

from movielinks.search.filters import row_maxima, row_products

NOTEBOOK_SVM_C = 1.0  # the notebook's SVC(kernel="linear") default: the trainer's recommendation check
# The svm strategy's fit (MovieLens 100K, bench/bench_recommend.py): a softer margin than the
# notebook's ranks what people liked far higher (hit@10 0.60 at C=1, 0.67 at 0.3; docs/recommendations.md).
SVM_C = 0.3
STAND_IN_DISLIKES_PER_LIKED = 10
MIN_STAND_IN_DISLIKES = 50
MAX_STAND_IN_DISLIKES = 5_000  # with at most 1,000 liked titles (server.limits), keeps one fit under about a second


def fit_linear_svm(features, labels: np.ndarray, weights: np.ndarray | None = None,
                   c: float = NOTEBOOK_SVM_C) -> tuple[np.ndarray, float]:
    """(w, b) of SVC(kernel="linear", C=c) fitted on `features` (dense or scipy sparse rows)
    with labels 1 (liked) and 0 (disliked), each row weighted by `weights` (None: 1)."""
    from sklearn.svm import SVC  # see load_svm

    if isinstance(features, np.ndarray):
        features = features.astype(np.float64)
    classifier = SVC(kernel="linear", C=c).fit(features, labels, sample_weight=weights)
    coef = classifier.coef_
    w = np.asarray(coef.todense() if hasattr(coef, "todense") else coef, dtype=np.float64)[0]
    return w, float(classifier.intercept_[0])


# The neighbours strategy. Its weights were chosen on MovieLens 100K people (bench/bench_recommend.py):
# round values near the best, not the best found, since the service is judged on other people.
NEIGHBOURS_PER_EXAMPLE = 100  # each liked example's nearest movies that count for it (the stored lists hold 100)
NEIGHBOUR_POWER = 4  # a close neighbour counts for far more than a distant one (the scaled cosine ** 4)
# Local scaling (CSLS's, at half strength): a pair's cosine is first lowered by LOCAL_SCALING x the
# mean of the two films' local scales (each one's mean cosine to its LOCAL_SCALE_NEIGHBOURS nearest
# films), so a film counts for a liked film where it is close for the region they sit in, not where the
# region is merely dense. Full CSLS (1.0) scores higher on MovieLens and gives most people the same
# few well-known films (docs/recommendations.md); a half gains most of it with lists as close as before.
LOCAL_SCALING = 0.5
LOCAL_SCALE_NEIGHBOURS = 20  # CSLS's paper takes 10; 20 measures a little better (docs/recommendations.md)
# The era and prominence break ties among the films near what was liked; they do not bring in films
# from elsewhere: the prior counts in full for a film whose plain (unscaled) relevance to the liked
# films is at least PRIOR_NEAR of the largest, in proportion below that, and PRIOR_ELSEWHERE of it for
# a film in no liked film's neighbour list (MovieLens: without this, local scaling lets the prior give
# most people the same few famous films of their years, whatever they liked).
PRIOR_NEAR = 0.05
PRIOR_ELSEWHERE = 0.6
DISLIKED_WEIGHT = 0.2  # how much a disliked film's own neighbours are pushed down, against 1 for liked
# The era: a kernel density of the release years of the liked films (of the disliked ones when no
# liked film's year is known), its bandwidth chosen for each person by Silverman's rule of thumb
# (era_spread): narrow for one whose films come from a few years, wide for one whose films span decades.
# A few films say little about how widely a person's years spread, so the rule's bandwidth is
# shrunk towards ERA_SPREAD_YEARS as if that had been measured on ERA_SPREAD_PRIOR_FILMS more films.
ERA_SPREAD_YEARS = 3.0
ERA_SPREAD_PRIOR_FILMS = 3
ERA_SPREAD_RANGE = (1.5, 10.0)  # the rule's bandwidth kept within this many years
ERA_WEIGHT = 0.3
PROMINENCE_WEIGHT = 1.2  # times the era term: what people of that time have heard of
# The list is then picked by maximal marginal relevance (search.diversity) with this weight: a
# person's likes are several tastes, and a list that covers them finds more of what they like.
NEIGHBOURS_DIVERSITY = 0.2
# The SVM: dislikes are negatives beside the catalogue's sample, each counting this much, and all of
# them together at most this much times the liked examples. They are films the person chose to watch,
# in their years and as well known as the liked ones: in full they taught the fit that fame and era
# count against (MovieLens: hit@10 0.64 with dislikes at 0.2, 0.67 at 0.05; docs/recommendations.md).
SVM_DISLIKED_WEIGHT = 0.05

STRATEGIES = ("neighbours", "svm", "average_vector", "best_score")
DEFAULT_STRATEGY = STRATEGIES[0]
SCORE_MEANING = {
    "neighbours": f"closeness to the liked films' nearest neighbours (0..1, less {DISLIKED_WEIGHT:g} x that to the "
                  f"disliked films'), plus how close its release year is to the years of the liked films (0..1) "
                  f"times ({ERA_WEIGHT:g} + {PROMINENCE_WEIGHT:g} x how well known and reviewed it is, 0..1), that "
                  f"in full only for films near a liked one ({PRIOR_ELSEWHERE:g} of it elsewhere): at most "
                  f"{1 + ERA_WEIGHT + PROMINENCE_WEIGHT:g}, higher is better; the list is picked by maximal marginal "
                  f"relevance (weight {NEIGHBOURS_DIVERSITY:g}), so a film much like one above it may come lower "
                  f"than its score alone would place it",
    "svm": f"the linear SVM's decision value w.x + b over the film's vector, its prominence (0..1) and the "
           f"closeness of its release year to the liked films' years (0..1), fitted on the liked films against a "
           f"random sample of the catalogue (and of the links, where links are liked) and the disliked films (each "
           f"counting {SVM_DISLIKED_WEIGHT:g}, "
           f"together at most {SVM_DISLIKED_WEIGHT:g} x the liked ones): above 0 "
           f"the movie is on the liked side of the boundary; most are below 0, and the order is what matters",
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
    best_positive = row_maxima(positives, vectors)
    if not len(negatives):
        return best_positive
    best_negative = row_maxima(negatives, vectors)
    return np.where(best_positive > best_negative, best_positive, -(best_negative ** 2)).astype(np.float32)


def svm_disliked_weight(n_liked: int, n_disliked: int) -> float:
    """The weight of each disliked example in the svm's fit: SVM_DISLIKED_WEIGHT, shared out so
    that the dislikes together count at most SVM_DISLIKED_WEIGHT x the liked examples (three
    liked films and thirty disliked ones: with each at 0.05, MovieLens people given three of their
    liked films got less from their dislikes than without them)."""
    return SVM_DISLIKED_WEIGHT * min(1.0, n_liked / n_disliked) if n_disliked else SVM_DISLIKED_WEIGHT


def svm_scores(vectors: np.ndarray, prominence: np.ndarray, era: np.ndarray, liked_ids: np.ndarray,
               disliked_ids: np.ndarray, liked_extra: np.ndarray | None = None,
               disliked_extra: np.ndarray | None = None, stand_in_links: np.ndarray | None = None) -> np.ndarray:
    """The svm strategy's decision value of every movie, float32 [n_movies]: the SVM (C=SVM_C)
    fitted on the liked movies (and the extra example vectors, e.g. links') against
    `stand_in_dislike_ids` and the disliked movies and vectors, these weighted
    svm_disliked_weight each. A movie's features are its row of `vectors`, its `prominence` and
    its `era` affinity (era_affinity of the liked films' years); an extra example has no year or
    fame of its own, so it takes the sample's means there and counts for its vector alone.

    A link's vector is not distributed like the films' (the index's calibration shows it): a
    liked link against films alone is separated by what every link has and no film has, and
    the direction ranks films by that (Joel Coen and Frances McDormand liked: Transformers:
    Dark of the Moon first). `stand_in_links`, a sample of link vectors given where extra
    examples are liked, count as negatives beside the films' sample, so that what separates
    the liked link is what sets it apart from other links (Fargo first)."""
    dim = vectors.shape[1]
    liked_extra = np.empty((0, dim), np.float32) if liked_extra is None else liked_extra
    disliked_extra = np.empty((0, dim), np.float32) if disliked_extra is None else disliked_extra
    stand_in_links = np.empty((0, dim), np.float32) if stand_in_links is None else stand_in_links
    liked_ids = np.asarray(liked_ids, dtype=np.int64)
    disliked_ids = np.asarray(disliked_ids, dtype=np.int64)
    priors = np.stack([np.asarray(prominence, dtype=np.float32), np.asarray(era, dtype=np.float32)], axis=1)
    sample = stand_in_dislike_ids(len(vectors), np.concatenate([liked_ids, disliked_ids]),
                                  max(1, len(liked_ids) + len(liked_extra)))
    neutral = priors[sample].mean(axis=0)

    def rows(ids: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([np.hstack([vectors[ids], priors[ids]]),
                               np.hstack([extra, np.broadcast_to(neutral, (len(extra), 2))])])

    positives, negatives = rows(liked_ids, liked_extra), rows(disliked_ids, disliked_extra)
    stand_ins = rows(sample, stand_in_links)
    features = np.concatenate([positives, stand_ins, negatives])
    labels = np.r_[np.ones(len(positives)), np.zeros(len(stand_ins) + len(negatives))]
    weights = np.r_[np.ones(len(positives) + len(stand_ins)), np.full(len(negatives), svm_disliked_weight(
        len(positives), len(negatives)))]
    w, b = fit_linear_svm(features, labels, weights, c=SVM_C)
    w = w.astype(np.float32)
    return (row_products(w[None, :dim], vectors)[0] + priors @ w[dim:] + np.float32(b)).astype(np.float32)


LOCAL_SCALE_BLOCK = 1 << 15  # rows at a time: float64 copies of a block, not of a million rows (about 0.5 GB)


def local_scales(neighbour_scores: np.ndarray) -> np.ndarray:
    """float32 [rows]: each row's mean cosine to its LOCAL_SCALE_NEIGHBOURS nearest (rows of
    cosines sorted best first, as stored neighbour lists and searches give them; padding
    (-inf or NaN past the films there are) left out). A block of rows at a time."""
    means = np.zeros(len(neighbour_scores), dtype=np.float32)
    for start in range(0, len(neighbour_scores), LOCAL_SCALE_BLOCK):
        # Slice first: the stored lists are a memory map.
        nearest = np.asarray(neighbour_scores[start:start + LOCAL_SCALE_BLOCK, :LOCAL_SCALE_NEIGHBOURS],
                             dtype=np.float64)
        finite = np.isfinite(nearest)
        counts = finite.sum(axis=1)
        sums = np.where(finite, nearest, 0.0).sum(axis=1)
        means[start:start + len(nearest)] = np.divide(sums, counts, out=np.zeros(len(nearest)), where=counts > 0)
    return means


def neighbour_relevance(neighbour_ids: np.ndarray, neighbour_scores: np.ndarray, n_movies: int,
                        example_scales: np.ndarray | None = None, movie_scales: np.ndarray | None = None) -> np.ndarray:
    """float32 [n_movies], 0..1: for each movie, the sum of max(0, locally scaled cosine) **
    NEIGHBOUR_POWER over the rows (one row per example: its nearest movies, ids padded with -1)
    it is in, divided by the largest such sum. The cosine of example x and movie y is lowered by
    LOCAL_SCALING x (example_scales[x] + movie_scales[y]) / 2 (local_scales; None: no scaling)."""
    ids = np.asarray(neighbour_ids)
    scores = np.asarray(neighbour_scores, dtype=np.float64)
    if example_scales is not None and movie_scales is not None and ids.size:
        scales = np.asarray(movie_scales, dtype=np.float64)[np.maximum(ids, 0)]
        scores = scores - LOCAL_SCALING * (scales + np.asarray(example_scales, dtype=np.float64)[:, None]) / 2
    ids, scores = ids.ravel(), scores.ravel()
    found = ids >= 0
    total = np.bincount(ids[found], weights=np.maximum(scores[found], 0) ** NEIGHBOUR_POWER, minlength=n_movies)
    largest = total.max(initial=0.0)
    return (total / largest if largest > 0 else total).astype(np.float32)


def era_years(years: np.ndarray, liked_ids: np.ndarray, disliked_ids: np.ndarray) -> np.ndarray:
    """The release years the era is estimated from: the liked films' (0: unknown), or the disliked
    films' when no liked film's year is known (people dislike films they chose to watch, so those
    still say when they watch). Disliked films do not count beside liked ones: disliking Titanic
    (1997) is no reason to be offered other films of 1997 (MovieLens: +0.004 NDCG@10 without them)."""
    liked = np.asarray(years)[np.asarray(liked_ids, dtype=np.int64)]
    return liked if (liked > 0).any() else np.asarray(years)[np.asarray(disliked_ids, dtype=np.int64)]


def era_spread(known_years: np.ndarray) -> float:
    """The era kernel's bandwidth in years for these (known) years: Silverman's rule of thumb,
    0.9 x min(standard deviation, interquartile range / 1.34) x n ** -1/5 (the standard deviation
    alone when the range is 0, at least half a year), within ERA_SPREAD_RANGE, then shrunk towards
    ERA_SPREAD_YEARS with the weight of ERA_SPREAD_PRIOR_FILMS films (ERA_SPREAD_YEARS itself for
    fewer than two years)."""
    known = np.asarray(known_years, dtype=np.float64)
    n = len(known)
    if n < 2:
        return ERA_SPREAD_YEARS
    q75, q25 = np.percentile(known, [75, 25])
    sigma = min(known.std(), (q75 - q25) / 1.34) or known.std()
    rule = float(np.clip(0.9 * max(sigma, 0.5) * n ** -0.2, *ERA_SPREAD_RANGE))
    return (n * rule + ERA_SPREAD_PRIOR_FILMS * ERA_SPREAD_YEARS) / (n + ERA_SPREAD_PRIOR_FILMS)


def era_affinity(years: np.ndarray, example_years: np.ndarray) -> np.ndarray:
    """float32 [n_movies], 0..1: the mean over the examples' known release years of a
    Gaussian (of era_spread's bandwidth) of each movie's distance in years to it; 0 for a
    movie of unknown year, and everywhere when no example's year is known."""
    known = np.asarray(example_years, dtype=np.float64)
    known = known[known > 0]
    years = np.asarray(years)
    if not len(known) or not len(years):
        return np.zeros(len(years), np.float32)
    spread = era_spread(known)
    every_year = np.arange(int(years.max()) + 1, dtype=np.float64)  # one kernel value per year, then a gather
    distinct, counts = np.unique(known, return_counts=True)  # a thousand films given span a few dozen years
    by_year = np.exp(-0.5 * ((every_year[:, None] - distinct[None, :]) / spread) ** 2) @ counts / len(known)
    by_year[0] = 0.0
    return by_year[years].astype(np.float32)


def neighbours_scores(liked_neighbours: tuple[np.ndarray, np.ndarray], disliked_neighbours: tuple[np.ndarray, np.ndarray],
                      years: np.ndarray, example_years: np.ndarray, prominence: np.ndarray,
                      movie_scales: np.ndarray | None = None) -> np.ndarray:
    """The neighbours strategy's score of every movie, float32 [n_movies] (see the module
    docstring): relevance to the liked examples' neighbour rows (locally scaled with
    `movie_scales`, each movie's local_scales, each example's own read from its row), less
    DISLIKED_WEIGHT x that to the disliked ones', plus the prior: the era term (era_affinity of
    `example_years`, as era_years picks them) times (ERA_WEIGHT + PROMINENCE_WEIGHT x prominence),
    times prior_reach. A well-known film counts for more only in the era of the films liked,
    so a fan of 1940s films is not offered this decade's box-office hits, and only near what
    they liked."""
    n_movies = len(prominence)
    plain = neighbour_relevance(*liked_neighbours, n_movies)
    scores = plain
    if movie_scales is not None:
        scores = neighbour_relevance(*liked_neighbours, n_movies, local_scales(liked_neighbours[1]), movie_scales)
    if np.size(disliked_neighbours[0]):
        scales = None if movie_scales is None else local_scales(disliked_neighbours[1])
        scores = scores - DISLIKED_WEIGHT * neighbour_relevance(*disliked_neighbours, n_movies, scales, movie_scales)
    era = era_affinity(years, example_years)
    prior = era * (ERA_WEIGHT + PROMINENCE_WEIGHT * np.asarray(prominence, dtype=np.float32))
    return (scores + prior * prior_reach(plain)).astype(np.float32)


def prior_reach(relevance: np.ndarray) -> np.ndarray:
    """float32 [n_movies]: how much of the prior a movie gets for its plain relevance (0..1) to
    the liked films: PRIOR_ELSEWHERE at 0, rising in proportion to 1 at PRIOR_NEAR and above."""
    near = np.minimum(np.asarray(relevance, dtype=np.float32) / PRIOR_NEAR, 1.0)
    return (PRIOR_ELSEWHERE + (1 - PRIOR_ELSEWHERE) * near).astype(np.float32)


def stand_in_dislike_ids(n_movies: int, example_ids, n_liked: int | None = None) -> np.ndarray:
    """The catalogue sample the svm fits the liked examples against (beside any dislikes):
    max(50, 10 per liked example) movies, at most 5,000, the example movies (liked and
    disliked) left out, seeded by them so the same request always gets the same answer.
    `n_liked` counts the liked examples, links included (default: every example id)."""
    liked = np.unique(np.asarray(example_ids, dtype=np.int64))
    n_liked = len(liked) if n_liked is None else n_liked
    wanted = min(max(MIN_STAND_IN_DISLIKES, STAND_IN_DISLIKES_PER_LIKED * n_liked), MAX_STAND_IN_DISLIKES,
                 n_movies - len(liked))
    rng = np.random.default_rng([0x5EC, len(liked), *liked.tolist()])
    # The movies not liked, as np.setdiff1d would give them, without its sort of every id
    # (seconds at a million movies; a mask is one linear pass).
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
