"""`trainer plot`: a 2D map of a run's movie space, as a PNG.

Up to `max_movies` movies are placed with t-SNE (or PCA), coloured by release
decade when the run's infoboxes have it, and a spread-out selection of
well-known titles is labelled. Drawing uses matplotlib's Figure directly (the
Agg canvas), so no display and no global pyplot state are involved.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np

from common.files import atomic_write_bytes
from common.records import MovieRecord, release_year
from trainer.errors import TrainerError
from trainer.run import load_run

METHODS = ("tsne", "pca")

_FILM_SUFFIX = re.compile(r"\s*\([^()]*\bfilm\)$")
_DPI = 150
_FIGURE_INCHES = 12


def plot_run(
    run_path: str | Path,
    out_path: str | Path,
    *,
    method: str = "tsne",
    max_movies: int = 4000,
    n_labels: int = 40,
    seed: int = 0,
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
    movies = [run.movies[i] for i in chosen]
    points = reduce_to_2d(run.movie_vectors[chosen], method, seed)
    labelled = spread_labels(points, label_order(movies), n_labels)
    title = f"{Path(run.path).resolve().name}: {len(chosen)} of {len(run.movies)} movies, {method.upper()}"
    png = _draw(points, movies, labelled, title)
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


def short_title(title: str) -> str:
    """'Avatar (2009 film)' -> 'Avatar'; Wikipedia's disambiguation suffix says nothing on a film map."""
    return _FILM_SUFFIX.sub("", title) or title


def release_decade(infobox: dict[str, str]) -> int | None:
    """The decade of the first year in the infobox's "released" field (1990 for "June 1995"), if any."""
    year = release_year(infobox)
    return year // 10 * 10 if year else None


def _draw(points: np.ndarray, movies: list[MovieRecord], labelled: list[int], title: str) -> bytes:
    from matplotlib import patheffects
    from matplotlib.figure import Figure

    figure = Figure(figsize=(_FIGURE_INCHES, _FIGURE_INCHES), dpi=_DPI, layout="constrained")
    axes = figure.add_subplot()
    decades = np.array([release_decade(m.infobox) or 0 for m in movies])
    dated = decades > 0
    marker = {"s": 5, "alpha": 0.55, "linewidths": 0}
    axes.scatter(points[~dated, 0], points[~dated, 1], color="0.6", **marker)
    if dated.any():
        dots = axes.scatter(points[dated, 0], points[dated, 1], c=decades[dated], cmap="viridis", **marker)
        colour_bar = figure.colorbar(dots, ax=axes, shrink=0.6, pad=0.01)
        colour_bar.set_label("release decade")
        colour_bar.solids.set_alpha(1)
    outline = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    axes.scatter(points[labelled, 0], points[labelled, 1], s=12, color="black", linewidths=0)
    for i in labelled:
        axes.annotate(short_title(movies[i].title), points[i], xytext=(3, 2), textcoords="offset points",
                      fontsize=7, path_effects=outline)
    axes.set_title(title, fontsize=10)
    axes.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
