"""trainer.plot: the movie map of a small synthetic run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from movielinks.common.artifacts import Records
from movielinks.common.clusters import name_clusters, short_title
from movielinks.common.records import MovieRecord
from movielinks.trainer.errors import TrainerError
from movielinks.trainer.plot import (
    choose_movies,
    label_order,
    plot_run,
    spread_labels,
)
from movielinks.trainer.run import RunManifest, save_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def movie(i: int, attributes: dict[str, float] | None = None, released: str | None = None) -> MovieRecord:
    infobox = {"name": f"Film {i}"} | ({"released": released} if released else {})
    return MovieRecord(f"Film {i} (film)", infobox, attributes or {})


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """200 movies in 5 clusters of unit vectors; every 4th has a gross and a rating, most a release year."""
    rng = np.random.default_rng(7)
    n_movies, n_clusters, dim = 200, 5, 16
    centres = rng.normal(size=(n_clusters, dim))
    vectors = centres[np.arange(n_movies) % n_clusters] + 0.3 * rng.normal(size=(n_movies, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    movies = [
        movie(i, {"gross": 1e6 * (i + 1), "rotten_tomatoes": 0.5} if i % 4 == 0 else {},
              f"{1950 + i % 70}" if i % 10 else None)
        for i in range(n_movies)
    ]
    links = [f"Link {j}" for j in range(12)]
    link_vectors = rng.normal(size=(len(links), dim))
    link_vectors /= np.linalg.norm(link_vectors, axis=1, keepdims=True)
    manifest = RunManifest(dataset={"path": "synthetic"}, params={}, metrics={})
    return save_run(tmp_path / "run", manifest, vectors, link_vectors, Records(movies, links, {}))


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width = image.imread(path).shape[:2]
    assert height > 0 and width > 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left beside it


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_plot_run_writes_a_png(run_dir: Path, tmp_path: Path, method: str) -> None:
    out = plot_run(run_dir, tmp_path / "maps" / "map.png", method=method, max_movies=150, n_labels=10)
    assert out == tmp_path / "maps" / "map.png"
    assert_png(out)


def test_plot_run_replaces_an_existing_map(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps" / "map.png"
    out.parent.mkdir()
    out.write_bytes(b"an old map")
    plot_run(run_dir, out, method="pca")
    assert_png(out)


def test_unknown_method_lists_the_choices(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="umap.*tsne, pca"):
        plot_run(run_dir, tmp_path / "map.png", method="umap")
    assert not (tmp_path / "map.png").exists()


def test_too_few_movies_is_a_trainer_error(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="at least 3 movies"):
        plot_run(run_dir, tmp_path / "map.png", method="pca", max_movies=2)
    assert not (tmp_path / "map.png").exists()


def test_choose_movies_prefers_movies_with_attributes_and_is_seeded() -> None:
    movies = [movie(i, {"gross": 1.0} if i % 10 == 0 else {}) for i in range(100)]
    chosen = choose_movies(movies, 30, seed=1)
    assert len(chosen) == len(set(chosen.tolist())) == 30
    assert {i for i in range(0, 100, 10)} <= set(chosen.tolist())
    assert np.array_equal(chosen, choose_movies(movies, 30, seed=1))
    assert not np.array_equal(chosen, choose_movies(movies, 30, seed=2))
    assert len(choose_movies(movies, 1000, seed=1)) == 100


def test_label_order_puts_the_highest_gross_first_then_rated_movies() -> None:
    movies = [movie(0), movie(1, {"rotten_tomatoes": 0.9}), movie(2, {"gross": 5e6}), movie(3, {"gross": 9e8})]
    assert label_order(movies).tolist() == [3, 2, 1, 0]


def test_spread_labels_skips_crowded_candidates() -> None:
    rng = np.random.default_rng(0)
    points = np.vstack([[[0.5, 0.5]] * 5, rng.random((200, 2))])  # five stacked at the centre, listed first
    labelled = spread_labels(points, np.arange(len(points)), 10)
    assert len(labelled) == len(set(labelled)) == 10
    assert labelled[0] == 0 and not {1, 2, 3, 4} & set(labelled)


def test_spread_labels_relaxes_until_enough_fit() -> None:
    points = np.random.default_rng(1).random((30, 2))
    assert len(spread_labels(points, np.arange(30), 30)) == 30
    assert spread_labels(points, np.arange(30), 0) == []


@pytest.mark.parametrize(("title", "label"), [
    ("Avatar (2009 film)", "Avatar"),
    ("Heat (1995 American film)", "Heat"),
    ("Up (film)", "Up"),
    ("Titanic (1996 TV miniseries)", "Titanic (1996 TV miniseries)"),
    ("Casablanca", "Casablanca"),
])
def test_short_title_drops_the_film_suffix(title: str, label: str) -> None:
    assert short_title(title) == label


def test_clusters_are_named_by_the_links_that_mark_them() -> None:
    rng = np.random.default_rng(3)
    centres = np.linalg.qr(rng.normal(size=(16, 4)))[0].T  # 4 orthonormal directions
    vectors = centres[np.arange(120) % 4] + 0.1 * rng.normal(size=(120, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    noise = rng.normal(size=(20, 16))
    links = ["Western", "Animated", "Horror", "Musical", "Everywhere"] + [f"Actor {i}" for i in range(20)]
    link_vectors = np.vstack([centres, centres.mean(axis=0) / np.linalg.norm(centres.mean(axis=0)),
                              noise / np.linalg.norm(noise, axis=1, keepdims=True)])
    cluster, names = name_clusters(vectors, link_vectors, links, 4, seed=0, n_names=1)
    assert sorted(names) == ["Animated", "Horror", "Musical", "Western"]  # not the link every film is near
    for c, name in enumerate(names):
        assert set(np.arange(120)[cluster == c] % 4) == {links.index(name)}


def test_links_left_out_never_name_a_cluster() -> None:
    rng = np.random.default_rng(3)
    centres = np.linalg.qr(rng.normal(size=(16, 4)))[0].T
    vectors = centres[np.arange(120) % 4] + 0.1 * rng.normal(size=(120, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Each cluster has a source link nearest it (as Internet Movie Database is in the Oscars map), then its genre.
    links = ["IMDb A", "IMDb B", "IMDb C", "IMDb D", "Western", "Animated", "Horror", "Musical"] + [
        f"Actor {i}" for i in range(20)]
    actors = rng.normal(size=(20, 16))
    actors -= actors @ centres.T @ centres  # near no cluster
    link_vectors = np.vstack([centres, 0.9 * centres + 0.1 * rng.normal(size=(4, 16)), actors])
    link_vectors /= np.linalg.norm(link_vectors, axis=1, keepdims=True)
    _, named = name_clusters(vectors, link_vectors, links, 4, seed=0, n_names=1)
    assert any(name.startswith("IMDb") for name in named)
    left_out = np.array([True] * 4 + [False] * 24)
    cluster, names = name_clusters(vectors, link_vectors, links, 4, seed=0, n_names=1, left_out=left_out)
    assert sorted(names) == ["Animated", "Horror", "Musical", "Western"]
    for c, name in enumerate(names):
        assert set(np.arange(120)[cluster == c] % 4) == {links.index(name) - 4}


def test_plot_says_what_it_is_doing(run_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    out = plot_run(run_dir, tmp_path / "maps" / "map.png", method="pca", n_clusters=3, log=lines.append)
    assert [line.split("]")[0] for line in lines] == ["plot: [1/3", "plot: [2/3", "plot: [3/3"]
    assert_png(out)
