"""`trainer fetch`: download a named public dataset into the local cache.

Every file is pinned by repository commit and verified by its git blob SHA-1
(what `git hash-object FILE` prints), so a mirror can serve it but cannot change it.
Downloads are resumable and verified (common/download.py): a file under its final
name is always complete and verified.

    <cache>/<dataset name>/<file basename>
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from movielinks.common.download import BASE_URL_ENV, DownloadError, Expected, download_verified, locked

CACHE_ENV = "MOVIELINKS_CACHE"
DEFAULT_CACHE = "~/.cache/movielinks"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"


class FetchError(Exception):
    """A dataset could not be fetched: unknown name, network or HTTP failure, or a file that fails its hash."""


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path inside the repository and its git blob SHA-1."""

    path: str
    git_blob_sha1: str

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Files pinned at one commit of a public GitHub repository.

    A dataset of one file is used as that file; a dataset of several as their directory.
    """

    description: str
    repo: str
    commit: str
    files: tuple[DataFile, ...]


_WIKIPEDIA_MOVIE_DATA_SHA1 = {
    "1900s": "f981d51682abeb4beef13a5f50ee2a887483ce4a",
    "1910s": "9d0bc9f3a2598a46dad44f3d441e76ae7c348648",
    "1920s": "293d0477b2a0dfb0282c4817739304e6ded60c50",
    "1930s": "1b87a200bd9d57d43f8777390577dfc185fa856c",
    "1940s": "49aa2d99220a3b1889b057e367787b1a591d3a09",
    "1950s": "7a2a0fc7581afc97fa4be20636c01e45ccbfaf51",
    "1960s": "07b295413527f155cd3ef99cc5cc874c00ad8055",
    "1970s": "5009e128ebc40c9f143ecbc671044b873898e6b5",
    "1980s": "a5d63a3a22dad6c18a0152a234a8521ea5f01b7e",
    "1990s": "db0c0c9997ffb2694bb4da02011cbcc21d35c26e",
    "2000s": "e982095ca292eee0da5a62cbeb62d0a0d8c6b6b0",
    "2010s": "16c365053b9dd4c4120fbda7e9f4171c28f9cf57",
    "2020s": "35b9ce31dd8f423a0406f2cfbf1bd032feeea90b",
}

DATASETS: dict[str, Dataset] = {
    "wp-movies-10k": Dataset(
        description="the Deep Learning Cookbook's 10,000 films with every outgoing Wikipedia link (ndjson)",
        repo="DOsinga/deep_learning_cookbook",
        commit="04f56a7fe11e16c19ec6269bc5a138efdcb522a7",
        files=(DataFile("data/wp_movies_10k.ndjson", "85c76a92d7775974a01159502990e6da9773eea2"),),
    ),
    "wikipedia-movie-data": Dataset(
        description="American films 1900-2023 from Wikipedia: title, year, cast, genres (JSON, MIT licence)",
        repo="prust/wikipedia-movie-data",
        commit="91ae721d3672e8ef4f15b213c763a634250ef61a",
        files=tuple(DataFile(f"movies-{decade}.json", sha1) for decade, sha1 in _WIKIPEDIA_MOVIE_DATA_SHA1.items()),
    ),
}


def fetch(
    name: str,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> Path:
    """Make sure every file of dataset `name` is in the cache and verified; return the dataset's path.

    The path is the file itself for a one-file dataset, else the dataset's directory.
    Files already present with the right hash are not downloaded again. The cache is
    `cache_dir`, else $MOVIELINKS_CACHE, else ~/.cache/movielinks; files are fetched from
    `base_url`, else $MOVIELINKS_FETCH_BASE_URL, else GitHub's raw file host.
    Raises FetchError; a file under its final name is then still absent or complete.
    """
    if name not in DATASETS:
        raise FetchError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    dataset = DATASETS[name]
    cache = Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()
    base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    directory = cache / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"cannot create the cache directory {directory}: {e}; pass another with --cache "
                         f"or ${CACHE_ENV}") from e
    with locked(cache / f".{name}.lock"):
        for file in dataset.files:
            url = f"{base_url}/{dataset.repo}/{dataset.commit}/{file.path}"
            _fetch_file(url, directory / file.basename, file.git_blob_sha1, name, progress)
    return directory / dataset.files[0].basename if len(dataset.files) == 1 else directory


def git_blob_sha1(path: str | Path) -> str:
    """The file's git blob SHA-1: sha1(b"blob <size>\\0" + bytes), what `git hash-object` prints."""
    path = Path(path)
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_file(url: str, final: Path, expected_sha1: str, dataset_name: str, progress: bool) -> None:
    expected = Expected(expected_sha1, "git blob SHA-1", git_blob_sha1, f"trainer fetch {dataset_name}",
                        "a mirror keeps GitHub's <repo>/<commit>/<path> layout")
    try:
        download_verified(url, final, expected, progress)
    except DownloadError as e:
        raise FetchError(str(e)) from e
