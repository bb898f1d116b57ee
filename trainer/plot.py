"""`trainer plot`: a 2D map of a run's movie space, as a PNG.

Up to `max_movies` movies are placed with t-SNE (or PCA) and coloured by cluster:
k-means on their vectors, each cluster named in the legend by the links that
point most towards it more than towards the whole map (for the 36k file these are
genres: "Western", "Silent", "Animated"; common.clusters, which the explorer's map uses too). A spread-out selection of well-known
titles is labelled; a line on stderr says what it is doing. Drawing uses matplotlib's Figure directly (the
Agg canvas), so no display and no global pyplot state are involved.
"""
from __future__ import annotations

import io
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from movielinks.common.clusters import name_clusters, short_title
from movielinks.common.files import atomic_write_bytes
from movielinks.common.records import MovieRecord
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.run import load_run

METHODS = ("tsne", "pca")
_METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA"}

_DPI = 150
_FIGURE_INCHES = 12


def plot_run(
    run_path: str | Path,
    out_path: str | Path,
    *,
    method: str = "tsne",
    max_movies: int = 4000,
    n_labels: int = 40,
    n_clusters: int = 12,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Draw the movie map of the run at `run_path` into the PNG `out_path` (replaced atomically); return it.

    Raises ValueError for an unknown method, TrainerError for an unreadable run, and
    TrainerError when fewer than 3 movies would be placed.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    run = load_run(run_path)
    chosen = choose_movies(run.movies, max_movies, seed)
    if len(chosen) < 3:
        raise TrainerError(f"{run_path}: a map needs at least 3 movies, got {len(chosen)} "
                           f"(the run has {len(run.movies)}; check --max-movies)")
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    movies = [run.movies[i] for i in chosen]
    vectors = run.movie_vectors[chosen]
    log(f"plot: [1/3] placing {len(chosen):,} of {len(run.movies):,} movies with {_METHOD_NAMES[method]}"
        f"{' (about a minute for 4,000)' if method == 'tsne' else ''}")
    points = reduce_to_2d(vectors, method, seed)
    log(f"plot: [2/3] {n_clusters} clusters (k-means), named by their links")
    cited = None if run.movie_links is None else run.movie_links.citation_links(len(run.links))
    cluster, names = name_clusters(vectors, run.link_vectors, run.links, n_clusters, seed, left_out=cited)
    labelled = spread_labels(points, label_order(movies), n_labels)
    title = (f"Movie map: {len(chosen):,} of {len(run.movies):,} films, placed by {_METHOD_NAMES[method]} of their vectors "
             f"(near = similar)\ncolour: cluster of similar films, named by the links that mark it; "
             f"run {Path(run.path).resolve().name}")
    log(f"plot: [3/3] drawing {out_path}")
    png = _draw(points, movies, labelled, title, cluster, names)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_path, png)
    return out_path


def prominence(movie: MovieRecord) -> int:
    """How much the data says about a movie: its numeric attributes count most, then its infobox fields."""
    return 1000 * len(movie.attributes) + len(movie.infobox)


def choose_movies(movies: list[MovieRecord], max_movies: int, seed: int) -> np.ndarray:
    """Indices of up to `max_movies` movies: those with numeric attributes (rated, grossing) first,
    the most described of them first, then a seeded random sample of the rest."""
    rng = np.random.default_rng(seed)
    attributes = np.array([len(m.attributes) for m in movies])
    richness = np.array([prominence(m) for m in movies])
    # Among movies without attributes, richness would favour one kind of infobox: sample them evenly.
    priority = np.where(attributes > 0, richness, 0)
    order = np.lexsort((rng.random(len(movies)), -priority))
    return np.sort(order[: max(0, max_movies)])


def reduce_to_2d(vectors: np.ndarray, method: str, seed: int) -> np.ndarray:
    """[n, dim] movie vectors -> [n, 2] map coordinates, deterministic for a seed."""
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(vectors)
    if method == "tsne":
        from sklearn.manifold import TSNE

        # Perplexity must stay below the number of points; 30 is the usual choice for thousands.
        perplexity = min(30.0, (len(vectors) - 1) / 3)
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(vectors)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def label_order(movies: list[MovieRecord]) -> np.ndarray:
    """Positions of `movies`, best-known first: by gross, then those with a Rotten Tomatoes
    rating, then by how much the data says about them."""
    gross = np.array([m.attributes.get("gross", 0.0) for m in movies])
    rated = np.array([1 if "rotten_tomatoes" in m.attributes else 0 for m in movies])
    richness = np.array([prominence(m) for m in movies])
    return np.lexsort((-richness, -rated, -gross))


def spread_labels(points: np.ndarray, order: np.ndarray, n_labels: int) -> list[int]:
    """Up to `n_labels` positions taken from `order`, each kept only if its label box does not
    crowd one already taken; the box shrinks until enough labels fit."""
    if n_labels <= 0 or len(points) == 0:
        return []
    span = np.ptp(points, axis=0)
    unit = (points - points.min(axis=0)) / np.where(span > 0, span, 1)
    # Titles are wide and short: a label claims a box about four times wider than high.
    height = 0.25 / math.sqrt(n_labels)
    chosen: list[int] = []
    for _ in range(6):
        for i in order:
            if len(chosen) == n_labels:
                return chosen
            if i in chosen:
                continue
            if not chosen:
                chosen.append(int(i))
                continue
            gaps = np.abs(unit[chosen] - unit[i])
            if not np.any((gaps[:, 0] < 4 * height) & (gaps[:, 1] < height)):
                chosen.append(int(i))
        height *= 0.6
    return chosen


def _draw(points: np.ndarray, movies: list[MovieRecord], labelled: list[int], title: str,
          cluster: np.ndarray, names: list[str]) -> bytes:
    from matplotlib import colormaps, patheffects
    from matplotlib.figure import Figure

    figure = Figure(figsize=(_FIGURE_INCHES, _FIGURE_INCHES), dpi=_DPI, layout="constrained")
    axes = figure.add_subplot()
    # tab20's strong colours first, then their light twins: neighbouring clusters stay tellable apart
    palette = colormaps["tab20"]
    colours = [palette(i) for i in [*range(0, 20, 2), *range(1, 20, 2)]]
    for c, name in enumerate(names):
        here = cluster == c
        axes.scatter(points[here, 0], points[here, 1], s=7, alpha=0.6, linewidths=0, color=colours[c % len(colours)],
                     label=f"{name} ({int(here.sum()):,})")
    outline = [patheffects.withStroke(linewidth=3, foreground="white")]
    axes.scatter(points[labelled, 0], points[labelled, 1], s=14, color="black", linewidths=0)
    for i in labelled:
        axes.annotate(short_title(movies[i].title), points[i], xytext=(3, 2), textcoords="offset points",
                      fontsize=8, path_effects=outline)
    legend = axes.legend(title="cluster: the links that mark it (films)", loc="upper left", bbox_to_anchor=(1.0, 1.0),
                         fontsize=8, title_fontsize=9, markerscale=2.5, frameon=False)
    for handle in legend.legend_handles:
        handle.set_alpha(1)
    axes.set_title(title, fontsize=11)
    axes.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
