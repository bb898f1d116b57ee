"""`indexer update`: new and changed films folded into the CURRENT version, published as a new one.

    CURRENT version + new_or_changed.ndjson (+ removed titles) --update_index--> versions/<name>/ --publish--> CURRENT

Without retraining: each film of the update file gets a unit vector fitted from its links
against the version's frozen link vectors with the training objective (search.foldin).
A film the version has is *changed* (its vector, links and record replaced, its id kept);
another is *new* (appended); the titles of `remove` are dropped (the ids after them move
up). Links the version does not know are ignored and counted. The movie index is rebuilt
with the version's factory (an HNSW graph that only gains films is extended instead), the
link index and link vectors are copied, the stored neighbours are refreshed
(indexer.stored_neighbours) and the title index rebuilt. The manifest's `folded_in` says
which films are folded in and from which update file; `indexer build` from a run trained on
the full data replaces them.

Like `indexer build`: the version is written in a staging directory, loaded back and
validated, and only then published; any bad input (a malformed or repeated film, a film with
no link the version knows, an unknown title to remove) raises IndexerError before anything
is written, and CURRENT keeps naming the old version.
"""
from __future__ import annotations

import dataclasses
import datetime
import shutil
import time
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from movielinks.common import movie_links as movie_links_file
from movielinks.common.artifacts import file_checksums, movie_line
from movielinks.common.files import atomic_directory, sha256_file, text_lines
from movielinks.common.film_record import FilmRecord, film_attributes, film_problem, read_films
from movielinks.common.records import MovieRecord
from movielinks.indexer import version
from movielinks.indexer.build import (all_movie_neighbours, build_params, calibrate_index, describe_index,
                                      faiss_reason, make_index, save_lists, unique_version_dir)
from movielinks.indexer.calibrate import DEFAULT_TARGET_RECALL
from movielinks.indexer.errors import IndexerError
from movielinks.indexer.root import load_current, publish
from movielinks.indexer.stored_neighbours import refreshed_neighbours
from movielinks.indexer.version import IndexVersion
from movielinks.search.foldin import fold_in, version_space

# Films folded in at a time: the progress bar moves, memory stays flat.
_FOLD_CHUNK = 1024
# Films named in one error message at most.
_NAMED = 5
_LINK_FILES = (version.LINK_INDEX, version.LINK_VECTORS, version.LINKS, version.ATTRIBUTE_MODELS)


@dataclasses.dataclass(frozen=True)
class UpdateSummary:
    """What `update_index` published."""

    version: str
    base: str  # the version it was applied to
    new: int
    changed: int
    removed: int
    movies: int  # in the new version
    unknown_links: int  # link occurrences of the update file the version does not know (ignored)
    seconds: float


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Where every movie of the new catalogue comes from."""

    kept: np.ndarray  # int64: the base movies kept, in id order (changed ones included): new ids 0..len-1
    remap: np.ndarray  # int64 [n_base]: each base movie's new id, -1 if removed
    rows: np.ndarray  # int64 [n_films]: each update film's new id
    changed: int
    removed: list[str]

    @property
    def size(self) -> int:
        return len(self.kept) + len(self.rows) - self.changed


def update_index(index_root: str | Path, data: str | Path, *, remove: str | Path | None = None,
                 target_recall: float = DEFAULT_TARGET_RECALL, progress: bool = True) -> UpdateSummary:
    """Fold the films of `data` (film records, common.film_record) into `index_root`'s CURRENT
    version, drop the titles of `remove` (one a line), publish the result; see the module docstring.
    Raises IndexerError for bad input, naming it; nothing is published then."""
    started = time.monotonic()
    if not 0.0 < target_recall <= 1.0:
        raise IndexerError(f"--target-recall must be in (0, 1], got {target_recall}")
    data = Path(data)
    films = read_update_films(data)
    removed = text_lines(remove, IndexerError, "the titles to remove") if remove is not None else []
    base = load_current(index_root)
    plan = _plan(base, films, removed)
    link_ids, unknown = film_link_ids(base, films)
    vectors = _catalogue_vectors(base, plan, fold_films(base, link_ids, progress))
    digest = sha256_file(data)
    created_at, final = unique_version_dir(Path(index_root), digest)
    with atomic_directory(final) as staging:
        _write_movies(staging, base, plan, films)
        _write_movie_links(staging, base, plan, films, link_ids)
        movie_index = _movie_index(base, plan, vectors, progress)
        calibration = calibrate_index(movie_index, vectors, base.link_vectors, target_recall, "movies", progress)
        _write_index_files(staging, base, plan, movie_index, vectors, progress)
        folded_in = _folded_in(base, data, digest, created_at, films, plan, unknown)
        dataclasses.replace(
            base.manifest, version=final.name, created_at=created_at.isoformat(timespec="microseconds"),
            indexes={"movies": describe_index(movie_index, base.manifest.indexes["movies"].factory, calibration),
                     "links": base.manifest.indexes["links"]},
            files=file_checksums(staging), folded_in=folded_in).save(staging)
        try:
            version.load_version(staging)
        except IndexerError as e:
            raise IndexerError(f"the updated version failed validation, nothing was published: {e}") from e
    publish(index_root, final.name)
    return UpdateSummary(final.name, base.name, len(films) - plan.changed, plan.changed, len(removed), plan.size,
                         unknown, time.monotonic() - started)


def read_update_films(path: Path) -> list[FilmRecord]:
    """The films of an update file, one film record a line; IndexerError naming the first bad
    line or name, a title given twice, or an empty file."""
    films = read_films(path, IndexerError, "an update file (nothing was published)")
    if not films:
        raise IndexerError(f"{path}: no films; an update file holds one film record a line (`collector collect "
                           f"--changed-since` writes one)")
    for film in films:
        problem = film_problem(film)
        if problem is not None:
            raise IndexerError(f"{path}: film {film.title[:80]!r}: {problem}; nothing was published")
    return films


def _plan(base: IndexVersion, films: list[FilmRecord], removed: list[str]) -> _Plan:
    """Which base movies stay, and each update film's new id; IndexerError for a title to remove
    that the version lacks or that the update file also holds."""
    both = sorted({film.title for film in films} & set(removed))
    if both:
        raise IndexerError(f"{len(both)} films are both in the update file and to remove: "
                           f"{'; '.join(map(repr, both[:_NAMED]))}; nothing was published")
    removed_ids = [base.movie_titles.exact(title) for title in removed]
    unknown = [title for title, i in zip(removed, removed_ids) if i is None]
    if unknown:
        raise IndexerError(f"{len(unknown)} titles to remove are no movie of version {base.name}: "
                           f"{'; '.join(map(repr, unknown[:_NAMED]))}; nothing was published")
    remap = np.zeros(len(base.movie_names), dtype=np.int64)
    remap[removed_ids] = -1
    kept = np.flatnonzero(remap == 0)
    remap[kept] = np.arange(len(kept))
    base_ids = [base.movie_titles.exact(film.title) for film in films]
    changed = sum(i is not None for i in base_ids)
    appended = iter(range(len(kept), len(kept) + len(films) - changed))
    rows = np.array([remap[i] if i is not None else next(appended) for i in base_ids], dtype=np.int64)
    return _Plan(kept, remap, rows, changed, removed)


def film_link_ids(base: IndexVersion, films: list[FilmRecord]) -> tuple[list[np.ndarray], int]:
    """Each film's distinct link ids in the version (sorted), and how many link occurrences it
    does not know; IndexerError naming the films with no known link (no vector can be fitted)."""
    link_id = {name: i for i, name in enumerate(base.links)}
    ids, unknown, empty = [], 0, []
    for film in films:
        found = [link_id.get(link, -1) for link in film.links]
        unknown += found.count(-1)
        ids.append(np.array(sorted(set(found) - {-1}), dtype=np.int32))
        if not len(ids[-1]):
            empty.append(film.title)
    if empty:
        raise IndexerError(f"{len(empty)} films have no link that version {base.name} knows, so no vector can be "
                           f"fitted: {'; '.join(map(repr, empty[:_NAMED]))}; leave them out of the update (they "
                           f"need a retraining) — nothing was published")
    return ids, unknown


def fold_films(base: IndexVersion, link_ids: list[np.ndarray], progress: bool) -> np.ndarray:
    """Each film's folded-in unit vector (search.foldin), float32 [n_films, dim]."""
    space = version_space(base)
    vectors = np.empty((len(link_ids), base.dim), dtype=np.float32)
    with tqdm(total=len(link_ids), unit="film", desc="folding in", disable=not progress or None) as bar:
        for start in range(0, len(link_ids), _FOLD_CHUNK):
            chunk = link_ids[start:start + _FOLD_CHUNK]
            vectors[start:start + len(chunk)] = fold_in(space, chunk).vectors
            bar.update(len(chunk))
    return vectors


def _catalogue_vectors(base: IndexVersion, plan: _Plan, folded: np.ndarray) -> np.ndarray:
    vectors = np.empty((plan.size, base.dim), dtype=np.float32)
    vectors[:len(plan.kept)] = base.movie_vectors[plan.kept]
    vectors[plan.rows] = folded
    return vectors


def _write_movies(staging: Path, base: IndexVersion, plan: _Plan, films: list[FilmRecord]) -> None:
    """movies.jsonl: the kept movies' lines as they were, the update films' new records in their rows."""
    replaced = {int(row): film for row, film in zip(plan.rows.tolist(), films)}
    offsets = base.movies.offsets
    with open(base.path / version.MOVIES, "rb") as old, open(staging / version.MOVIES, "wb") as out:
        for row in range(plan.size):
            film = replaced.get(row)
            if film is not None:
                record = MovieRecord(film.title, film.infobox, film_attributes(film), film.ids)
                out.write(movie_line(record).encode("utf-8"))
                continue
            start = int(offsets[plan.kept[row]])
            old.seek(start)
            line = old.read(int(offsets[plan.kept[row] + 1]) - start)
            out.write(line if line.endswith(b"\n") else line + b"\n")


def _write_movie_links(staging: Path, base: IndexVersion, plan: _Plan, films: list[FilmRecord],
                       link_ids: list[np.ndarray]) -> None:
    """movie_links.npz where the version has one: kept movies' links, the update films' known links."""
    old = base.movie_links
    if old is None:
        return
    names, appended = base.links, [None] * (plan.size - len(plan.kept))
    rows: list[np.ndarray] = [old.of(i) for i in plan.kept.tolist()] + appended
    cited_rows = None if old.cited is None else (
        [old.cited[old.offsets[i]:old.offsets[i + 1]] for i in plan.kept.tolist()] + appended)
    for row, film, ids in zip(plan.rows.tolist(), films, link_ids):
        rows[row] = ids
        if cited_rows is not None:
            only_cited = film.cited_only()
            cited_rows[row] = np.array([names[i] in only_cited for i in ids.tolist()], dtype=bool)
    offsets = np.zeros(plan.size + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    links = movie_links_file.MovieLinks(offsets, np.concatenate(rows).astype(np.int32) if rows else np.empty(0, np.int32),
                                        None if cited_rows is None else np.concatenate(cited_rows).astype(bool))
    movie_links_file.save(staging / version.MOVIE_LINKS, links, n_links=len(base.links))


def _movie_index(base: IndexVersion, plan: _Plan, vectors: np.ndarray, progress: bool) -> faiss.Index:
    """The new catalogue's movie index: the version's HNSW graph extended when films were only
    added, else built again from the version's factory."""
    factory = base.manifest.indexes["movies"].factory
    if build_params(base.movie_index) and not plan.changed and not plan.removed:
        index = faiss.read_index(str(base.path / version.MOVIE_INDEX))  # a writable copy, not the mapped file
        try:
            index.add(np.ascontiguousarray(vectors[len(plan.kept):]))
        except RuntimeError as e:
            raise IndexerError(f"{base.path}: cannot add to its movie index: {faiss_reason(e)}") from e
        return index
    return make_index(vectors, factory, what="movies", progress=progress)


def _write_index_files(staging: Path, base: IndexVersion, plan: _Plan, movie_index: faiss.Index,
                       vectors: np.ndarray, progress: bool) -> None:
    """The movie index and vectors, the link files copied, the title index, the stored neighbours.
    Each link's stored movies (link_movies.npz) are not carried: they would miss the films added,
    and LinkMovies searches the movie index until the next `indexer build`."""
    faiss.write_index(movie_index, str(staging / version.MOVIE_INDEX))
    np.save(staging / version.MOVIE_VECTORS, vectors)
    for name in _LINK_FILES:
        shutil.copyfile(base.path / name, staging / name)
    version.save_lookups(staging, version.build_lookups(staging))
    if base.movie_neighbours is None or plan.size < 2:
        return
    fresh = np.zeros(plan.size, dtype=bool)
    fresh[plan.rows] = True
    if base.movie_neighbours.k <= plan.size - 1:
        ids, scores = refreshed_neighbours(base.movie_neighbours, plan.remap, fresh, movie_index, vectors,
                                           progress=progress)
    else:  # fewer movies than the lists were long: every list is found again, shorter
        ids, scores = all_movie_neighbours(movie_index, vectors, plan.size - 1, progress=progress)
    save_lists(staging / version.MOVIE_NEIGHBOURS, ids, scores, with_scales=True)


def _folded_in(base: IndexVersion, data: Path, digest: str, created_at: datetime.datetime, films: list[FilmRecord],
               plan: _Plan, unknown: int) -> dict:
    """The manifest's record of the films folded in: the base's, less those removed or replaced, and this
    update's (the file, its SHA-256 `digest`, the new version's `created_at`)."""
    earlier = base.manifest.folded_in or {}
    updates = list(earlier.get("updates", []))
    gone = set(plan.removed) | {film.title for film in films}
    titles = {title: at for title, at in earlier.get("films", {}).items() if title not in gone}
    updates.append({"file": str(data.resolve()), "sha256": digest, "applied_to": base.name,
                    "at": created_at.isoformat(timespec="seconds"),
                    "new": len(films) - plan.changed, "changed": plan.changed, "removed": len(plan.removed),
                    "unknown_links": unknown})
    titles.update({film.title: len(updates) - 1 for film in films})
    return {"films": titles, "updates": updates}
