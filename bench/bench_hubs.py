"""Hubness of similar-movie lists, and what CSLS-style local scaling does to it.

    python -m bench.bench_hubs --index work/index [--show "Titanic (1997 film)" ...]

A hub is a film in many other films' top 10 (Star Wars in the top 5 of Titanic, Jaws
and The Silence of the Lambs on the Oscars index). For every film's top 10 (the index
version's stored neighbours) this counts how often each film occurs (its
k-occurrence N10) and prints the skewness of N10, its largest values, the share of
films in nobody's top 10, and franchise hit@10 (does another film of the franchise
reach a member's top 10?). Then the same for the lists re-ranked by CSLS (Conneau et
al., 2018): cos(x, y) - r(y) / 2, r(y) being y's mean cosine to its own 10 nearest, so a
film close to everything counts for less. Re-ranking reads each film's stored 100.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from movielinks.common.title_index import NO_FRANCHISE
from movielinks.indexer.root import load_index

TOP = 10


def csls_lists(ids: np.ndarray, scores: np.ndarray, top: int = TOP) -> tuple[np.ndarray, np.ndarray]:
    """Each row's stored candidates re-ranked by cosine - r(candidate) / 2, the best `top` kept."""
    found = ids >= 0
    density = np.where(found[:, :top], scores[:, :top], np.nan)
    r = np.nan_to_num(np.nanmean(density, axis=1), nan=0.0)
    adjusted = np.where(found, scores - r[np.maximum(ids, 0)] / 2, -np.inf)
    order = np.argsort(-adjusted, axis=1, kind="stable")[:, :top]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def hubness(top_ids: np.ndarray, n_movies: int) -> dict[str, float]:
    """Skewness of the k-occurrence, its largest value, and the share of films in no list."""
    counts = np.bincount(top_ids[top_ids >= 0].ravel(), minlength=n_movies).astype(np.float64)
    centred = counts - counts.mean()
    skew = float((centred ** 3).mean() / max(counts.std() ** 3, 1e-12))
    return {"skew": skew, "max": float(counts.max()), "never": float((counts == 0).mean()), "counts": counts}


def franchise_hit(top_ids: np.ndarray, franchises: np.ndarray) -> float | None:
    """Share of franchise members whose top 10 holds another member."""
    members = np.flatnonzero(franchises != NO_FRANCHISE)
    if not len(members):
        return None
    rows = top_ids[members]
    return float(((franchises[np.maximum(rows, 0)] == franchises[members][:, None]) & (rows >= 0)).any(axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="an index root (its CURRENT version) or a version directory")
    parser.add_argument("--show", action="append", default=[], help="also print this film's top 5 both ways")
    args = parser.parse_args(argv)
    version = load_index(args.index)
    if version.movie_neighbours is None:
        parser.error("the index version has no stored neighbours: build it with --neighbours-k 100")
    names, n = version.movie_names, len(version.movie_names)
    ids, scores = version.movie_neighbours.first(np.arange(n), version.movie_neighbours.k)  # scores from the vectors
    franchises = np.asarray(version.movie_titles.franchises)
    print(f"index {version.name}: {n:,} films, load average {os.getloadavg()[0]:.1f}")
    lists = {"cosine": (ids[:, :TOP], scores[:, :TOP]), "CSLS": csls_lists(ids.astype(np.int64), scores)}
    for name, (top, _) in lists.items():
        found = hubness(top, n)
        hubs = np.argsort(-found["counts"], kind="stable")[:5]
        hit = franchise_hit(top, franchises)
        print(f"{name:7s} N10 skew {found['skew']:.2f}, largest {found['max']:.0f}, in no top 10 {found['never']:.1%}, "
              f"franchise hit@10 {'-' if hit is None else f'{hit:.3f}'}; hubs: "
              + ", ".join(f"{names[i]} ({found['counts'][i]:.0f})" for i in hubs))
    for title in args.show:
        movie = list(names).index(title)
        for name, (top, _) in lists.items():
            print(f"  {title} by {name}: " + "; ".join(names[i] for i in top[movie, :5] if i >= 0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
