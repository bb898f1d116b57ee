"""Build an index version from a training run and publish it.

    run dir --build_index--> INDEX_ROOT/versions/<name>/ --publish--> INDEX_ROOT/CURRENT

A version is written in a staging directory, loaded back and validated there, and
only then renamed into place and published, so CURRENT never names a version that
is incomplete or cannot be loaded. Older versions stay until `indexer prune`.
"""
from __future__ import annotations

import datetime
import re
import shutil
import sys
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from movielinks.common import movie_links as movie_links_file
from movielinks.common.artifacts import file_checksums
from movielinks.common.files import atomic_directory
from movielinks.search.neighbours import BATCH_ROWS, MAX_RESULTS_PER_BATCH, all_similar_rows, search
from movielinks.search.recommend import local_scales
from movielinks.indexer import version
from movielinks.indexer.calibrate import DEFAULT_TARGET_RECALL, Calibration, calibrate
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.root import new_version_name, publish, version_dir
from movielinks.indexer.validate import ranked_lists_problem
from movielinks.indexer.version import IndexDescription, IndexManifest
import movielinks.trainer.run
from movielinks import trainer
from movielinks.trainer.run import Run, load_run
from movielinks.trainer.errors import TrainerError

# Vectors are added in chunks so the progress bar moves on big catalogues (HNSW adds slowly).
_ADD_CHUNK = 16384
# Rows further than this from unit length mean the run broke its contract; inner
# product would then no longer be cosine similarity.
_UNIT_NORM_TOLERANCE = 1e-3
# The run's files travel into the version unchanged; both contracts name them.
_RUN_FILE = {
    version.MOVIE_VECTORS: trainer.run.MOVIE_VECTORS,
    version.LINK_VECTORS: trainer.run.LINK_VECTORS,
    version.MOVIES: trainer.run.MOVIES,
    version.LINKS: trainer.run.LINKS,
    version.ATTRIBUTE_MODELS: trainer.run.ATTRIBUTE_MODELS,
}
_FACTORY_HINT = (
    "use a FAISS index-factory string such as 'Flat' (exact), 'HNSW32' or 'IVF256,Flat'; "
    "see https://github.com/facebookresearch/faiss/wiki/The-index-factory"
)

DEFAULT_NEIGHBOURS_K = 100
# Each link's nearest movies, found at build time: LinkMovies with k up to this answers without
# searching the movie index, which a link's vector, unlike a movie's, asks at a costly setting.
DEFAULT_LINK_MOVIES_K = 20
AUTO = "auto"
# Up to this many vectors an exact search (a scan) answers within the service's latency
# budget; beyond, `auto` builds an HNSW graph. `python -m bench --size small` measures the exact
# index (36k vectors), `--size 1m` the graph; the 200,000 boundary itself was not measured.
EXACT_MAX_VECTORS = 200_000
APPROXIMATE_FACTORY = "HNSW32"
# The link graph beyond it keeps float16 codes of its vectors instead of float32: half the
# bytes (at a million films 160 MB of the server's resident pages), the same recall@10 for
# movies and links asking it, and faster searches (docs/scale.md). The server serves the link
# vectors from those codes (indexer.version); the movie graph keeps float32, since every svm
# Recommend scans every movie's vector (float16 has no fast matrix product in numpy).
APPROXIMATE_LINK_FACTORY = "HNSW32,SQfp16"
# Candidates kept while an HNSW graph is built (FAISS's default is 40). On 250,000 of the
# million weakly trained synthetic films, HNSW32 with efSearch 64 finds 67% of the exact top
# 10 when built with 40, 79% with 80, 88% with 120 and 94% with 200, and reaches 0.95 at
# efSearch 512, 256, 256 and 128 (docs/scale.md): a better graph is worth its longer build
# (docs/scale.md times it), since every query pays for a worse one. hnswlib's default is 200 too.
EF_CONSTRUCTION = 200


def choose_factory(factory: str, n_vectors: int, what: str = "movies") -> str:
    """`factory` itself, or for "auto": exact search ("Flat") up to EXACT_MAX_VECTORS, HNSW beyond
    (over float16 codes for "links")."""
    if factory != AUTO:
        return factory
    if n_vectors <= EXACT_MAX_VECTORS:
        return "Flat"
    return APPROXIMATE_LINK_FACTORY if what == "links" else APPROXIMATE_FACTORY


def build_index(
    run_path: str | Path,
    index_root: str | Path,
    *,
    factory: str = AUTO,
    neighbours_k: int = DEFAULT_NEIGHBOURS_K,
    link_movies_k: int = DEFAULT_LINK_MOVIES_K,
    target_recall: float = DEFAULT_TARGET_RECALL,
    progress: bool = True,
) -> str:
    """Build a version of `index_root` from the run at `run_path`, publish it, and return its name.

    Every run file's checksum is verified first. The new version is complete and
    loadable before CURRENT is switched to it; on any failure no version directory
    is left behind and CURRENT is unchanged. Raises IndexerError for a bad run or
    factory (OSError for unwritable paths).

    With `neighbours_k` > 0 every movie's `neighbours_k` most similar movies are
    found once here and stored with the version, so the server answers the most
    common query (similar movies, k <= neighbours_k) without a search.

    An approximate index gets the cheapest search setting whose recall@10 against
    exact search, measured on its own vectors, reaches `target_recall`
    (indexer.calibrate); the manifest records the setting and the recall reached.
    """
    _check_settings(neighbours_k, link_movies_k, target_recall)
    try:
        run = load_run(run_path)
    except TrainerError as e:
        raise IndexerError(str(e)) from e
    _check_unit_rows(run.movie_vectors, f"{run.path}: movie vectors")
    _check_unit_rows(run.link_vectors, f"{run.path}: link vectors")
    factories = {"movies": choose_factory(factory, len(run.movie_vectors)),
                 "links": choose_factory(factory, len(run.link_vectors), "links")}
    indexes = {
        "movies": make_index(run.movie_vectors, factories["movies"], what="movies", progress=progress),
        "links": make_index(run.link_vectors, factories["links"], what="links", progress=progress),
    }
    calibrations = {
        "movies": calibrate_index(indexes["movies"], run.movie_vectors, run.link_vectors, target_recall, "movies", progress),
        "links": calibrate_index(indexes["links"], run.link_vectors, run.movie_vectors, target_recall, "links", progress),
    }
    index_root = Path(index_root)
    created_at, final = unique_version_dir(index_root, run.checksum)
    with atomic_directory(final) as staging:
        _write_version_files(staging, run, indexes, calibrations["movies"].own_params, neighbours_k, link_movies_k,
                             progress)
        version_manifest(
            run, final.name, created_at, factories, indexes, calibrations, file_checksums(staging)
        ).save(staging)
        try:
            version.load_version(staging)
        except IndexerError as e:
            raise IndexerError(f"the built version failed validation, nothing was published: {e}") from e
    publish(index_root, final.name)
    return final.name


def _check_settings(neighbours_k: int, link_movies_k: int, target_recall: float) -> None:
    """IndexerError for a build setting out of range, named as the command line names it."""
    for flag, k in (("--neighbours-k", neighbours_k), ("--link-movies-k", link_movies_k)):
        if k < 0:
            raise IndexerError(f"{flag} must be 0 or more, got {k}")
    if not 0.0 < target_recall <= 1.0:
        raise IndexerError(f"--target-recall must be in (0, 1], got {target_recall}")


def calibrate_index(index: faiss.Index, vectors: np.ndarray, other: np.ndarray, target: float, what: str,
               progress: bool) -> Calibration:
    """`calibrate` (asked by its own rows and the other kind's), saying on stderr (with progress)
    what it chose, and always when it fell short."""
    calibration = calibrate(index, vectors, target, other=other)
    if calibration.params and (progress or not calibration.reached):
        setting = ", ".join(f"{name} {value}" for name, value in calibration.params.items())
        verdict = "" if calibration.reached else f", short of the target {target}: the ladder's last setting is kept"
        cross = "" if calibration.cross_recall_at_10 is None else f", {calibration.cross_recall_at_10:.3f} asked by the other kind's"
        tqdm.write(f"{what}: {setting}, recall@10 {calibration.recall_at_10:.3f} against exact search over "
                   f"{calibration.queries} sampled rows{cross}{verdict}", file=sys.stderr)
    return calibration


def _write_version_files(
    staging: Path, run: Run, indexes: dict[str, faiss.Index], own_params: dict[str, int], neighbours_k: int,
    link_movies_k: int, progress: bool,
) -> None:
    """The indexes, the run's files, (with `link_movies_k` > 0) each link's nearest movies, searched
    as the file's setting searches, and (with `neighbours_k` > 0) the stored movie neighbours, searched
    with `own_params` (the movie index's setting for its own rows; the file keeps its own setting)."""
    for what, name in (("movies", version.MOVIE_INDEX), ("links", version.LINK_INDEX)):
        try:
            faiss.write_index(indexes[what], str(staging / name))
        except RuntimeError as e:
            raise IndexerError(f"{staging.parent}: cannot write {name}: {faiss_reason(e)}") from e
    for name, run_name in _RUN_FILE.items():
        shutil.copyfile(run.path / run_name, staging / name)
    if run.movie_links is not None:  # optional: runs before it have none
        # The run's file with the films of each link beside it (common.movie_links: what a server sorts otherwise).
        movie_links_file.save(staging / version.MOVIE_LINKS, run.movie_links, n_links=len(run.link_vectors))
    version.save_lookups(staging, version.build_lookups(staging))
    if min(link_movies_k, len(run.movies)) > 0:
        ids, scores = nearest_rows(indexes["movies"], run.link_vectors, min(link_movies_k, len(run.movies)),
                                   progress=progress, desc="link movies")
        save_lists(staging / version.LINK_MOVIES, ids, scores)
    k = min(neighbours_k, len(run.movies) - 1)
    if k > 0:
        for name, value in own_params.items():  # the file written above keeps the setting for both kinds
            faiss.ParameterSpace().set_index_parameter(indexes["movies"], name, value)
        ids, scores = all_movie_neighbours(indexes["movies"], run.movie_vectors, k, progress=progress)
        save_lists(staging / version.MOVIE_NEIGHBOURS, ids, scores, with_scales=True)


def save_lists(path: Path, ids: np.ndarray, scores: np.ndarray, *, with_scales: bool = False) -> None:
    """Write stored lists of movies (indexer.version): their ids only, once the scores they were
    ranked by are checked (the server computes a score from the vectors when it needs one); with
    `with_scales` (a movie's neighbours) each row's local scale (search.recommend.local_scales)
    of those scores too. IndexerError if the lists are not ranked best first with finite scores."""
    problem = ranked_lists_problem(ids, scores)
    if problem is not None:
        raise IndexerError(f"{path.name}: the lists found are wrong: {problem}; nothing was published")
    scales = {"scales": local_scales(scores)} if with_scales else {}
    np.savez(path, ids=np.asarray(ids, dtype=np.int32), **scales)


def nearest_rows(index: faiss.Index, queries: np.ndarray, k: int, *, progress: bool = False,
                 desc: str = "nearest") -> tuple[np.ndarray, np.ndarray]:
    """Each query row's k nearest rows of `index`: ids int32 and scores float32, [n, k], a batch at a time."""
    size = max(1, min(BATCH_ROWS, MAX_RESULTS_PER_BATCH // k))
    batches = ((rows, *search(index, queries[rows], k))
               for rows in (np.arange(start, min(start + size, len(queries))) for start in range(0, len(queries), size)))
    return _gathered(batches, len(queries), k, progress, desc)


def all_movie_neighbours(
    index: faiss.Index, vectors: np.ndarray, k: int, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Every movie's k nearest movies in `index` (itself excluded): ids int32 and scores float32, [n, k]."""
    return _gathered(all_similar_rows(index, vectors, k), len(vectors), k, progress, "movie neighbours")


def _gathered(batches, n: int, k: int, progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32, scores float32) [n, k] filled from batches of (row ids, ids, scores), with a progress bar."""
    ids = np.empty((n, k), dtype=np.int32)
    scores = np.empty((n, k), dtype=np.float32)
    with tqdm(total=n, unit="row", desc=desc, disable=not progress or None) as bar:
        for rows, found, found_scores in batches:
            ids[rows], scores[rows] = found, found_scores
            bar.update(len(rows))
    return ids, scores


def make_index(vectors: np.ndarray, factory: str, *, what: str, progress: bool = False) -> faiss.Index:
    """An inner-product FAISS index over `vectors` built from `factory`, trained if it needs it.

    `what` names the catalogue in errors and the progress bar. Its search settings
    are FAISS's defaults; `build_index` then chooses them by measured recall.
    """
    try:
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise IndexerError(f"invalid index factory {factory!r}: {faiss_reason(e)}; {_FACTORY_HINT}") from e
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IndexerError(f"index factory {factory!r} does not support inner product; {_FACTORY_HINT}")
    for name, value in build_params(index).items():
        faiss.ParameterSpace().set_index_parameter(index, name, value)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not index.is_trained:
        nlist = _nlist(index)
        if nlist is not None and len(vectors) < nlist:
            raise IndexerError(
                f"index factory {factory!r}: the {what} catalogue has {len(vectors)} vectors, too few to train "
                f"{nlist} IVF lists; use at most {len(vectors)} lists (FAISS advises 39 vectors a list) or 'Flat'"
            )
        try:
            index.train(vectors)
        except RuntimeError as e:
            raise IndexerError(
                f"index factory {factory!r}: training on {len(vectors)} {what} vectors failed: "
                f"{faiss_reason(e)}; use a smaller index (fewer lists or codes) or 'Flat'"
            ) from e
    try:
        with tqdm(total=len(vectors), desc=f"indexing {what}", unit="vectors", disable=not progress or None) as bar:
            for start in range(0, len(vectors), _ADD_CHUNK):
                chunk = vectors[start : start + _ADD_CHUNK]
                index.add(chunk)
                bar.update(len(chunk))
    except RuntimeError as e:
        raise IndexerError(
            f"index factory {factory!r}: adding {what} vectors failed: {faiss_reason(e)}; {_FACTORY_HINT}"
        ) from e
    return index


def build_params(index: faiss.Index) -> dict[str, int]:
    """The build settings `make_index` gives `index` beyond its factory string: HNSW's efConstruction."""
    return {"efConstruction": EF_CONSTRUCTION} if _hnsw(index) is not None else {}


def _hnsw(index: faiss.Index) -> faiss.HNSW | None:
    """The HNSW graph of `index` (also behind a pre-transform), None if it has none."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index.hnsw if hasattr(index, "hnsw") else None


def version_manifest(
    run: Run,
    name: str,
    created_at: datetime.datetime,
    factories: dict[str, str],
    indexes: dict[str, faiss.Index],
    calibrations: dict[str, Calibration],
    files: dict[str, str],
) -> IndexManifest:
    """The manifest of a version built from `run` (see indexer.version for the layout)."""
    return IndexManifest(
        version=name,
        created_at=created_at.isoformat(timespec="microseconds"),
        source_run={"path": str(run.path.resolve()), "checksum": run.checksum},
        indexes={what: describe_index(index, factories[what], calibrations[what]) for what, index in indexes.items()},
        files=files,
        dataset=run.manifest.dataset,
        metrics=run.manifest.metrics,
        params=run.manifest.params,
        objective=run.manifest.objective,
    )


def describe_index(index: faiss.Index, factory: str, calibration: Calibration) -> IndexDescription:
    """The manifest's description of an index built from `factory` and calibrated so."""
    return IndexDescription(
        type=type(faiss.downcast_index(index)).__name__, factory=factory, size=int(index.ntotal), dim=int(index.d),
        search_params=calibration.params, build_params=build_params(index),
        recall_at_10=calibration.recall_at_10 if calibration.params else None,
        cross_recall_at_10=calibration.cross_recall_at_10 if calibration.params else None,
        own_search_params=calibration.own_params if calibration.own_params != calibration.params else {},
        own_recall_at_10=calibration.own_recall_at_10 if calibration.own_params != calibration.params else None,
        recall_queries=calibration.queries,
    )


def unique_version_dir(index_root: Path, source_checksum: str) -> tuple[datetime.datetime, Path]:
    """A creation time and a version directory that does not exist yet (time moves on until it is free)."""
    while True:
        created_at = datetime.datetime.now(datetime.timezone.utc)
        final = version_dir(index_root, new_version_name(created_at, source_checksum))
        if not final.exists():
            return created_at, final


def _check_unit_rows(vectors: np.ndarray, what: str) -> None:
    norms = np.linalg.norm(vectors.astype(np.float64, copy=False), axis=1)
    bad = np.flatnonzero(~(np.abs(norms - 1.0) <= _UNIT_NORM_TOLERANCE))
    if len(bad):
        raise IndexerError(
            f"{what}: row {bad[0]} has norm {norms[bad[0]]:.6g} ({len(bad)} rows are not unit length); "
            "the run must hold L2-normalised vectors, retrain it"
        )


def _nlist(index: faiss.Index) -> int | None:
    """The number of IVF lists of `index` (also inside a pre-transform), None if it is not IVF."""
    ivf = faiss.try_extract_index_ivf(index)
    return None if ivf is None else int(ivf.nlist)


def faiss_reason(error: RuntimeError) -> str:
    """The human part of a FAISS exception, without the C++ signature and source location."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    match = re.search(r" at \S+:\d+: (.*)$", text)
    return match.group(1) if match else text
