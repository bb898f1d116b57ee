"""What the web explorer asks besides the plain queries: names containing a text and
a 2D map of the space (its neighbours and their shared links are SimilarMovies with
reasons).

Plain numpy over a MovieService's index version, no gRPC; `explorer(service)` keeps
one Explorer per served version (an index version is immutable, so what is
derived from it once stays true).
"""
from __future__ import annotations

import dataclasses
import re
import threading
import weakref

import numpy as np

from movielinks.common.clusters import name_clusters
from movielinks.search.filters import aligned_blocks
from movielinks.search.neighbours import exhaustive_top
from movielinks.server import limits
from movielinks.server.errors import invalid
from movielinks.server.service import MovieService

DEFAULT_LIMIT = 10  # names a search returns when it does not say
DEFAULT_MAP_SAMPLE = 1500
MAX_MAP_SAMPLE = 5000
MAP_SEED = 0  # the background sample is the same for every request on a version
MAP_CLUSTERS = 8  # regions of the map named by their links (as `trainer plot` names its clusters)

@dataclasses.dataclass(frozen=True)
class MapPoint:
    title: str
    x: float
    y: float
    year: int | None


@dataclasses.dataclass(frozen=True)
class MapCluster:
    """A region of the map: the links that mark its films, where its films' median sits, how many."""

    name: str
    x: float
    y: float
    size: int


@dataclasses.dataclass(frozen=True)
class MapClusters:
    clusters: list[MapCluster]  # largest first
    of_sample: list[int]  # the cluster of each movie of the map's sample, in the sample's order


@dataclasses.dataclass(frozen=True)
class MovieMap:
    sample: list[MapPoint]
    titles: list[MapPoint]
    explained_variance: float


class Explorer:
    """The explorer's queries over one MovieService."""

    def __init__(self, service: MovieService):
        self.service = service
        version = service.version
        self.years = service.years
        self._names = {"movies": service.movie_titles.names, "links": version.links}
        self._folded: dict[str, FoldedNames] = {}  # made at a kind's first search: a map needs none
        self._folded_lock = threading.Lock()  # not _lock: a search need not wait for a map being made
        self._lock = threading.Lock()
        self._projection: tuple[np.ndarray, float] | None = None
        self._clusters: dict[int, MapClusters] = {}

    def search_names(self, text: str, kind: str = "movies", limit: int = 0) -> tuple[list[str], int]:
        """(names containing `text`, case-insensitive; how many in all). First the names `text` is up
        to case, qualifier, article, accents and punctuation ("godfather": The Godfather), most linked
        first, as LookupTitle picks; then those starting with it, then those starting with it past a
        leading article ("godf": The Godfather and its sequels before 3 Godfathers; "star w": the Star
        Wars films before The Star Witness), then the rest, each the shorter name without its qualifier
        first ("Jurassic": Jurassic Park before its sequels), then the most linked."""
        limits.check_string("text", text)
        limit = limit or DEFAULT_LIMIT
        limits.check_k(limit, "limit")
        resolver = self.service.movie_titles if kind == "movies" else self.service.link_names
        names = self._folded_names(kind)
        ids, places = names.containing(text.strip().casefold())
        matching = {i: rank for rank, i in enumerate(resolver.matching(text))}
        found, total = names.ranked(ids, places, matching, resolver.weights, limit)
        return [resolver.names[i] for i in found], total

    def _folded_names(self, kind: str) -> FoldedNames:
        """The FoldedNames of "movies" or "links", made once (about a second each at a million)."""
        with self._folded_lock:
            if kind not in self._folded:
                self._folded[kind] = FoldedNames(self._names[kind])
            return self._folded[kind]

    def movie_map(self, titles: list[str], sample: int = 0) -> MovieMap:
        """The background sample and `titles` placed by the first two principal components."""
        sample = sample or DEFAULT_MAP_SAMPLE
        if not 1 <= sample <= MAX_MAP_SAMPLE:
            raise invalid(f"sample must be between 1 and {MAX_MAP_SAMPLE}, got {sample}")
        limits.check_count("titles", titles, minimum=0)
        points, explained = self.projection()
        chosen = self.sample_ids(sample)
        ids = [self.service.resolve_title(t)[0] for t in titles]
        resolver = self.service.movie_titles
        return MovieMap([self._point(int(i), points) for i in chosen],
                        [self._point(resolver.exact[t], points) for t in ids], explained)

    def sample_ids(self, sample: int) -> np.ndarray:
        """The ids of the map's background sample of `sample` movies (fixed for a version), ascending."""
        n = len(self.service.movie_titles.names)
        return np.sort(np.random.default_rng(MAP_SEED).permutation(n)[: min(sample, n)])

    def map_clusters(self, sample: int = 0) -> MapClusters:
        """The map's sample in MAP_CLUSTERS clusters, each named by its links (common.clusters)
        and placed where its films sit on the map; computed once per sample size."""
        sample = sample or DEFAULT_MAP_SAMPLE
        if not 1 <= sample <= MAX_MAP_SAMPLE:
            raise invalid(f"sample must be between 1 and {MAX_MAP_SAMPLE}, got {sample}")
        points, _ = self.projection()
        with self._lock:
            if sample not in self._clusters:
                version = self.service.version
                chosen = self.sample_ids(sample)
                cited = None if version.movie_links is None else version.movie_links.citation_links(len(version.links))
                cluster, names = name_clusters(np.asarray(version.movie_vectors[chosen]), version.link_vectors,
                                               version.links, MAP_CLUSTERS, MAP_SEED, left_out=cited,
                                               nearest=exhaustive_top)
                placed = points[chosen]
                self._clusters[sample] = MapClusters(
                    [MapCluster(name, *map(float, np.median(placed[cluster == c], axis=0)), int((cluster == c).sum()))
                     for c, name in enumerate(names)], cluster.tolist())
            return self._clusters[sample]

    def projection(self) -> tuple[np.ndarray, float]:
        """Every movie's 2D coordinates and the variance fraction they explain (computed once)."""
        with self._lock:
            if self._projection is None:
                self._projection = principal_plane(self.service.version.movie_vectors)
            return self._projection

    def _point(self, movie_id: int, points: np.ndarray) -> MapPoint:
        return MapPoint(self.service.movie_titles.names[movie_id], float(points[movie_id, 0]),
                        float(points[movie_id, 1]), int(self.years[movie_id]) or None)


# Where a name has the text searched for (FoldedNames.containing), the order in which they come.
START, AFTER_ARTICLE, INSIDE = 0, 1, 2


class FoldedNames:
    """A catalogue's names casefolded, for substring search without a Python string a name (at a
    million films and 1.3 M links those strings held 185 MB of the server's memory): one UTF-8
    buffer, each name ended by a NUL byte (a NUL in a name is dropped), where each name starts, the
    length of each without its qualifier (common.title_index.base), which ranks the matches, and of
    its leading article ("the ", "a ", "an "), past which a match still starts the name."""

    def __init__(self, names, block: int = 100_000):
        buffer, lengths, base_lengths, articles = bytearray(), [np.zeros(1, np.int64)], [], []
        for start in range(0, len(names), block):  # a block of names at a time: no list of them all
            folded = [names[i].casefold().replace("\0", "") for i in range(start, min(start + block, len(names)))]
            text = "\0".join(folded) + "\0"
            encoded = text.encode()
            ends = np.flatnonzero(np.frombuffer(encoded, np.uint8) == 0)
            lengths.append(np.diff(ends, prepend=-1))
            base_lengths.append(_base_lengths(text))
            articles.append(_article_lengths(encoded, ends))
            buffer += encoded
        self.blob = bytes(buffer)
        self._bytes = np.frombuffer(self.blob, np.uint8)
        self.starts = np.cumsum(np.concatenate(lengths))
        self.base_lengths = np.concatenate([np.zeros(0, np.int32), *base_lengths])
        self.article_lengths = np.concatenate([np.zeros(0, np.int32), *articles])

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.starts[i]:self.starts[i + 1] - 1].decode()

    def containing(self, needle: str) -> tuple[np.ndarray, np.ndarray]:
        """(the ids, ascending, of the names that contain `needle`, already casefolded: every name
        for ""; where each has it first, int8: START, AFTER_ARTICLE (right after its leading article)
        or INSIDE)."""
        pattern = np.frombuffer(needle.replace("\0", "").encode(), np.uint8)
        if not len(pattern):
            return np.arange(len(self)), np.full(len(self), START, np.int8)
        # Where the first byte is, kept where each next byte follows: numpy's scans, however many names
        # match; a UTF-8 needle matches whole characters only, and never across a name's NUL.
        at = np.flatnonzero(self._bytes[:max(0, len(self._bytes) - len(pattern) + 1)] == pattern[0])
        for k in range(1, len(pattern)):
            at = at[self._bytes[at + k] == pattern[k]]
        ids = np.searchsorted(self.starts, at, side="right") - 1  # ascending, as `at` is
        first = np.flatnonzero(np.diff(ids, prepend=-1))  # each name's first match
        ids, offsets = ids[first], at[first] - self.starts[ids[first]]
        places = np.where(offsets == self.article_lengths[ids], AFTER_ARTICLE, INSIDE).astype(np.int8)
        places[offsets == 0] = START
        return ids, places

    def ranked(self, ids: np.ndarray, places: np.ndarray, matching: dict[int, int], weights: np.ndarray | None,
               limit: int) -> tuple[list[int], int]:
        """(the first `limit` of `ids` and `matching`'s ids in the explorer's order, how many in all):
        `matching`'s first by its rank (id: rank), then by the place of the text (`containing`'s); within
        each the shorter name without its qualifier first, the larger weight (None: all 0), the name, the id. The
        order is found by numpy; only the names that tie with the last one kept are decoded."""
        matched = np.fromiter(matching, dtype=np.int64, count=len(matching))
        found = np.isin(matched, ids)  # sorted merges below, not np.union1d (a hash of every id)
        extra = np.sort(matched[~found])
        candidates = np.insert(ids, np.searchsorted(ids, extra), extra)
        category = np.insert(1 + np.asarray(places, np.int64), np.searchsorted(ids, extra), 1 + INSIDE)
        rank = np.zeros(len(candidates), dtype=np.int64)
        if matching:
            where = np.searchsorted(candidates, matched)
            category[where], rank[where] = 0, np.fromiter(matching.values(), dtype=np.int64, count=len(matching))
        weight = np.zeros(len(candidates), np.int64) if weights is None else np.asarray(weights)[candidates]
        keys = np.stack([category, rank, self.base_lengths[candidates], -weight])
        order = np.lexsort(keys[::-1])  # the last key given is lexsort's first
        kept = min(limit, len(order))
        if kept < len(order):  # the names tied with the last kept one come too: the name breaks the tie
            ties = (keys[:, order[kept:]] == keys[:, order[kept - 1], None]).all(axis=0)
            kept += len(ties) if ties.all() else int(np.argmin(ties))
        head = sorted(order[:kept].tolist(), key=lambda j: (*keys[:, j].tolist(), self[candidates[j]], candidates[j]))
        return [int(candidates[j]) for j in head[:limit]], len(candidates)


_QUALIFIER_AT_END = re.compile(r"\s*\([^()\0]*\)\s*(?=\0)")  # common.title_index's qualifier, before a NUL


_ARTICLES = (b"the", b"an", b"a")  # common.title_index's leading articles, casefolded
_BLANKS = np.frombuffer(b" \t", np.uint8)


def _article_lengths(encoded: bytes, ends: np.ndarray) -> np.ndarray:
    """The bytes of each name's leading article and the blanks after it ("the godfather": 4; 0 for
    none), int32, for the names of `encoded` (UTF-8, each ended by a NUL at `ends`): numpy over the
    names' first bytes, not a pass over every byte. No read passes a name's NUL, which matches nothing."""
    data = np.frombuffer(encoded, np.uint8)
    starts = np.concatenate([np.zeros(1, np.int64), ends[:-1] + 1])
    lengths = np.zeros(len(ends), np.int32)
    for word in _ARTICLES:
        ids = np.flatnonzero(lengths == 0)
        for k, byte in enumerate(word):
            ids = ids[data[starts[ids] + k] == byte]
        ids = ids[np.isin(data[starts[ids] + len(word)], _BLANKS)]  # an article is a word: a blank follows
        size = np.full(len(ids), len(word) + 1)
        more = np.isin(data[starts[ids] + size], _BLANKS)
        while more.any():
            size[more] += 1
            more &= np.isin(data[starts[ids] + size], _BLANKS)
        lengths[ids] = size
    return lengths


def _base_lengths(text: str) -> np.ndarray:
    """len(common.title_index.base(name)) of each casefolded name of `text` (each ended by a NUL;
    base casefolds again, which leaves a casefolded name as it is), int32: one regular-expression
    pass over them all, not one call a name."""
    bases = _QUALIFIER_AT_END.sub("", text).split("\0")[:-1]
    return np.fromiter(map(len, bases), dtype=np.int32, count=len(bases))


def principal_plane(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows projected on the first two principal components, and the variance fraction those explain.

    In float64 a block of rows at a time (search.filters.aligned_blocks): a float64 copy of every
    row, then a centred one, held 1 GB more at a million movies (2.9 s); the blocks hold 8 MB."""
    vectors = np.asarray(vectors)
    mean = sum(rows.sum(axis=0, dtype=np.float64) for _, rows in aligned_blocks(vectors)) / max(1, len(vectors))
    covariance = np.zeros((vectors.shape[1], vectors.shape[1]))
    for _, rows in aligned_blocks(vectors):
        centred = rows.astype(np.float64) - mean
        covariance += centred.T @ centred
    values, axes = np.linalg.eigh(covariance / max(1, len(vectors) - 1))  # ascending
    top = axes[:, ::-1][:, :2]
    # An eigenvector's sign is arbitrary: fix it so the map does not flip between versions of numpy.
    top *= np.where(top[np.abs(top).argmax(axis=0), range(top.shape[1])] < 0, -1, 1)
    points = np.empty((len(vectors), 2), np.float32)
    for start, rows in aligned_blocks(vectors):
        points[start:start + len(rows)] = (rows.astype(np.float64) - mean) @ top
    total = float(values.sum())
    return points, float(values[::-1][:2].sum() / total) if total > 0 else 0.0


_EXPLORERS: "weakref.WeakKeyDictionary[MovieService, Explorer]" = weakref.WeakKeyDictionary()
_EXPLORERS_LOCK = threading.Lock()


def explorer(service: MovieService) -> Explorer:
    """The Explorer of `service`, made on first use; dropped with the service after a reload."""
    with _EXPLORERS_LOCK:
        found = _EXPLORERS.get(service)
        if found is None:
            found = _EXPLORERS[service] = Explorer(service)
        return found
