"""Search settings of an approximate index, chosen by the recall they measure on its own vectors.

    calibrate(index, vectors, target=0.95) -> Calibration(params={"efSearch": 256}, recall_at_10=0.96, ...)

How far an approximate search is from exact depends on the vectors far more than on
their number: on the 36k real films HNSW32 finds 99% of the exact top 10 with 64
candidates, on a million weakly trained synthetic films 57%. So no fixed setting is
right; like FAISS's own auto-tuning (`faiss.ParameterSpace`, "OperatingPoints"), the
indexer measures. It samples catalogue rows as queries (as a similar-movies query is
one), finds their exact top 10 by a scan (`faiss.knn`), and walks a ladder of
settings from the cheapest up until the index's top 10 (the query itself left out)
holds `target` of the exact ones. The setting and the recall it reached go into the
manifest, and the index file carries the setting, so the server inherits it.

Each index is also asked the other kind's vectors (LinkMovies searches the movie index
with a link's vector, MovieLinks the link index with a movie's), and those queries are
harder for a graph built over the other kind: on the 1M synthetic version HNSW32 with
efSearch 320 finds 0.954 of a movie's exact neighbours but 0.898 of a link's nearest
movies. The setting kept is the cheapest where both kinds reach `target`; the cheapest
where the index's own rows reach it is kept too (`own_params`): the stored neighbour lists,
every movie asking the movie index, are searched with it, at a fraction of the cost where
the other kind needs many more candidates.
"""
from __future__ import annotations

import dataclasses
import math

import faiss
import numpy as np

DEFAULT_TARGET_RECALL = 0.95
DEFAULT_QUERIES = 1000
K = 10
# HNSW: candidates kept while searching. Steps of about 1.25-1.5x above 64: a query's
# cost grows about linearly with it, so a doubling ladder could pay up to twice what
# the target needs.
EF_SEARCH_LADDER = (16, 32, 64, 96, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024, 1536, 2048)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What `calibrate` chose: the search settings and the recall@10 they measured."""

    params: dict[str, int]
    recall_at_10: float  # queries by the index's own rows, each left out of its answer
    queries: int
    target: float
    cross_recall_at_10: float | None = None  # queries by the other kind's rows; None: not asked
    # The cheapest setting where the index's own rows alone reach `target` (params where
    # none does), with the recall@10 they measured there.
    own_params: dict[str, int] = dataclasses.field(default_factory=dict)
    own_recall_at_10: float = 1.0

    @property
    def reached(self) -> bool:
        cross = 1.0 if self.cross_recall_at_10 is None else self.cross_recall_at_10
        return min(self.recall_at_10, cross) >= self.target


def tunable(index: faiss.Index) -> str | None:
    """The search setting that trades speed for recall in `index` ("efSearch", "nprobe"), None if exact."""
    space = faiss.ParameterSpace()
    space.initialize(index)
    names = {space.parameter_ranges.at(i).name for i in range(space.parameter_ranges.size())}
    return next((name for name in ("efSearch", "nprobe") if name in names), None)


def ladder(index: faiss.Index) -> list[dict[str, int]]:
    """The settings `calibrate` tries, cheapest first; [] for an exact index."""
    name = tunable(index)
    if name == "efSearch":
        return [{"efSearch": ef} for ef in EF_SEARCH_LADDER]
    if name == "nprobe":
        nlist = int(faiss.extract_index_ivf(index).nlist)
        steps = {min(nlist, max(1, math.ceil(math.sqrt(nlist))) << i) for i in range(32)}
        return [{"nprobe": n} for n in sorted(steps)]
    return []


def calibrate(
    index: faiss.Index,
    vectors: np.ndarray,
    target: float = DEFAULT_TARGET_RECALL,
    *,
    other: np.ndarray | None = None,
    queries: int = DEFAULT_QUERIES,
    seed: int = 0,
) -> Calibration:
    """Set `index`'s cheapest search setting whose recall@10 against exact search reaches `target`.

    `vectors` are the rows the index holds, in id order. Queries are `queries` rows
    sampled with `seed`, and as many rows of `other` (the other kind's vectors, of the
    same dimension) where given: the setting must reach `target` for both. An exact
    index is left as it is (recall 1). When no setting of the ladder reaches `target`,
    the last one is kept and `reached` is False: the caller says so. Raises ValueError
    for a target outside (0, 1].
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"the target recall must be in (0, 1], got {target}")
    settings = ladder(index)
    if not settings or len(vectors) <= K:
        return Calibration(params={}, recall_at_10=1.0, queries=0, target=target)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), min(queries, len(vectors)), replace=False))
    _, exact = faiss.knn(vectors[rows], vectors, K + 1, faiss.METRIC_INNER_PRODUCT)
    truth = _top_without_self(exact, rows)
    cross_queries = cross_truth = None
    if other is not None and len(other):
        picked = np.sort(np.random.default_rng(seed + 1).choice(len(other), min(queries, len(other)), replace=False))
        cross_queries = np.ascontiguousarray(other[picked], dtype=np.float32)
        _, cross_exact = faiss.knn(cross_queries, vectors, K, faiss.METRIC_INNER_PRODUCT)
        cross_truth = _tops(cross_exact)
    space = faiss.ParameterSpace()
    best: Calibration | None = None
    own: tuple[dict[str, int], float] | None = None
    for params in settings:
        for name, value in params.items():
            space.set_index_parameter(index, name, value)
        _, found = index.search(vectors[rows], K + 1)
        recall = _recall(_top_without_self(found, rows), truth)
        cross = None
        if cross_queries is not None:
            _, found = index.search(cross_queries, K)
            cross = _recall(_tops(found), cross_truth)
        if own is None and recall >= target:
            own = (params, recall)
        own_params, own_recall = own or (params, recall)
        best = Calibration(params=params, recall_at_10=recall, queries=len(rows), target=target,
                           cross_recall_at_10=cross, own_params=own_params, own_recall_at_10=own_recall)
        if best.reached:
            break
    return best


def _tops(ids: np.ndarray) -> list[set[int]]:
    return [set(found[found >= 0].tolist()) for found in ids]


def _top_without_self(ids: np.ndarray, rows: np.ndarray) -> list[set[int]]:
    return [set(found[(found != row) & (found >= 0)][:K].tolist()) for found, row in zip(ids, rows)]


def _recall(found: list[set[int]], truth: list[set[int]]) -> float:
    return float(np.mean([len(f & t) / max(1, len(t)) for f, t in zip(found, truth)]))
