"""Diverse lists: at most N films of one franchise, and maximal marginal relevance (MMR).

A ranked candidate list (longer than the answer) goes in, the k picked out of it come
out, best first. MMR (Carbonell and Goldstein, 1998) picks, one at a time, the candidate
with the highest (1 - weight) x its score - weight x its largest cosine to the films
already picked; scores are first scaled to 0..1 over the candidates, so a weight means
the same whatever the strategy's score. Weight 0 keeps the ranking as it came (only the
franchise cap applies); 1 picks by novelty alone.
"""
from __future__ import annotations

import numpy as np

from movielinks.common.limits import MAX_NEIGHBOURS_K

# How many candidates a diverse answer of k is picked from: enough for a franchise cap or
# MMR to find others, few enough to stay a small matrix product.
CANDIDATES_PER_RESULT = 5
MIN_CANDIDATES = 50
# At most this many, whatever k: MMR's work is candidates x picks. A list already widened for a
# request's diversity (5 x the largest k) and then picked by the neighbours strategy's own MMR was
# widened again, to 25,000 candidates for one Recommend.
MAX_CANDIDATES = CANDIDATES_PER_RESULT * MAX_NEIGHBOURS_K
NO_GROUP = 0  # the group label of a film in none (common.title_index.NO_FRANCHISE)


def candidates_for(k: int, n_movies: int) -> int:
    """How many ranked candidates to ask for to pick a diverse k: 5 a result (at least 50), at most
    MAX_CANDIDATES unless k itself is more."""
    return max(k, min(n_movies, max(CANDIDATES_PER_RESULT * k, MIN_CANDIDATES), MAX_CANDIDATES))


def diversify(ids: np.ndarray, scores: np.ndarray, k: int, vectors: np.ndarray, *, weight: float = 0.0,
              groups: np.ndarray | None = None, max_per_group: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The k picked from the ranked candidates (ids best first, padded with -1): by MMR with
    `weight` (0..1), and with `max_per_group` > 0 at most that many of one group
    (groups[id], NO_GROUP for none). Returns (ids int64 [k], scores float32 [k]) with the
    candidates' own scores, padded with -1 / -inf where fewer could be picked."""
    ids, scores = np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float32)
    found = ids >= 0
    ids, scores = ids[found], scores[found]
    picked: list[int] = []
    if len(ids):
        spread = float(scores.max() - scores.min())
        relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(len(scores), np.float32)
        # The candidates' vectors, not their cosines to each other: each pick adds one row of those
        # (candidates x dim of memory, not candidates x candidates; k rows computed, not every one).
        candidates = np.asarray(vectors[ids], dtype=np.float32) if weight else None
        closest = np.full(len(ids), -np.inf, dtype=np.float32)  # each candidate's largest cosine to the picks
        open_ = np.ones(len(ids), dtype=bool)
        counts: dict[int, int] = {}
        labels = None if groups is None or max_per_group <= 0 else np.asarray(groups)[ids]
        while len(picked) < k and open_.any():
            if not weight:  # the ranking as it came (it may be a strategy's own MMR order), capped
                best = int(np.argmax(open_))
            else:
                gain = relevance if not picked else (1 - weight) * relevance - weight * closest
                best = int(np.argmax(np.where(open_, gain, -np.inf)))
            open_[best] = False
            if labels is not None and labels[best] != NO_GROUP:
                label = int(labels[best])
                if counts.get(label, 0) >= max_per_group:
                    continue
                counts[label] = counts.get(label, 0) + 1
            picked.append(best)
            if candidates is not None:
                np.maximum(closest, candidates @ candidates[best], out=closest)
    out_ids = np.full(k, -1, dtype=np.int64)
    out_scores = np.full(k, -np.inf, dtype=np.float32)
    out_ids[:len(picked)], out_scores[:len(picked)] = ids[picked], scores[picked]
    return out_ids, out_scores
