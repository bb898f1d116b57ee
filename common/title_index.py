"""A compact, memory-mappable title index: names and the keys title resolution looks them up by.

No Python object per name: the names are one UTF-8 blob with offsets (`NameTable`),
and each way of matching a name (case-insensitive, without its qualifier, normalised)
is a sorted array of 64-bit keyed hashes with the ids in the same order. A lookup
hashes the query's key, finds its run of equal hashes with a binary search and
checks each candidate's own key, so a hash collision can never resolve a wrong
title. A film's ids in other catalogues (common.external_ids: "imdb:tt0111161") are
sorted arrays of their numbers with the ids in the same order, one pair a scheme. Prefix and close-spelling searches walk id orders sorted by the folded
names (and by the folded names reversed), decoding only the names they visit.

The indexer writes these arrays into an index version (indexer.version); the server
memory-maps them (server.titles resolves over them). The key functions live here,
once, because both stages must compute the same keys.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np

from movielinks.common.external_ids import SCHEMES, id_number

_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
_ARTICLE = re.compile(r"^(the|a|an)\s+")
_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
# A sequel's marker at the end of a title: "2", "II", "Part 3", "Chapter Two", "Episode IV".

# The ways a name is matched, each a key of the name (see `key`).
KEYS = ("lower", "base", "normal")
# Id orders for prefix and close-spelling searches: by a key, and by the key reversed.
ORDERS = ("lower", "base", "lower_reversed", "base_reversed")
NO_FRANCHISE = np.uint64(0)  # the franchise label of a film in none
T = TypeVar("T")


def fold(text: str) -> str:
    """Case and accents folded: "Amélie" -> "amelie"."""
    if text.isascii():  # nothing to decompose: most titles, and much faster
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalised(name: str) -> str:
    """The name without qualifier, leading article, accents and punctuation: "The Godfather (film)" -> "godfather"."""
    text = _PUNCTUATION.sub(" ", fold(_QUALIFIER.sub("", name)))
    return _ARTICLE.sub("", _SPACES.sub(" ", text).strip())


def base(name: str) -> str:
    """The name without its "(... film)" qualifier, case folded: "The Martian (film)" -> "the martian"."""
    return _QUALIFIER.sub("", name).casefold()


def key(kind: str, name: str) -> str:
    """The key of `name` that matching of `kind` (one of KEYS or ORDERS) compares."""
    if kind.endswith("_reversed"):
        return key(kind[: -len("_reversed")], name)[::-1]
    if kind == "lower":
        return name.casefold()
    if kind == "base":
        return base(name)
    return normalised(name)


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process (Python's `hash` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class ById(Sequence[T]):
    """A read-only sequence whose items are made when asked for (`_item`), from offsets int64 [n + 1]."""

    offsets: np.ndarray
    what = "id"

    def _item(self, i: int) -> T:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"{self.what} {i} out of range")
        return self._item(i)

    def __iter__(self) -> Iterator[T]:
        return (self._item(i) for i in range(len(self)))


class NameTable(ById[str]):
    """Names by id, as one UTF-8 blob (uint8) and offsets (int64 [n + 1]): a read-only sequence of str."""

    what = "name id"

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob, self.offsets = blob, offsets
        self._bytes = memoryview(blob)
        # Offsets as Python ints when indexed (a memoryview's items are; numpy's are numpy scalars, several
        # times slower to slice with), without a Python object per name.
        self._bounds = memoryview(np.ascontiguousarray(offsets, dtype=np.int64)).cast("B").cast("q")
        self._count = len(offsets) - 1

    @classmethod
    def from_names(cls, names: Iterable[str]) -> NameTable:
        encoded = [n.encode("utf-8", "surrogatepass") for n in names]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def _item(self, i: int) -> str:
        bounds = self._bounds
        return str(self._bytes[bounds[i]:bounds[i + 1]], "utf-8", "surrogatepass")

    def __getitem__(self, i):  # type: ignore[override]
        if type(i) is int and 0 <= i < self._count:  # the common case first: one answer names thousands
            bounds = self._bounds
            return str(self._bytes[bounds[i]:bounds[i + 1]], "utf-8", "surrogatepass")
        return super().__getitem__(i)


class _SortedKeys(Sequence[str]):
    """The keys of some names in one of ORDERS, computed as a binary search visits them."""

    def __init__(self, names: NameTable, order: np.ndarray, kind: str):
        self.names, self.order, self.kind = names, order, kind

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, j):  # type: ignore[override]
        return key(self.kind, self.names[int(self.order[j])])


class TitleIndex:
    """Names and their lookup arrays; see the module docstring. Built once (`build`), or from saved arrays."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        # Plain ndarray views of memory-mapped arrays (no copy): every lookup indexes and
        # searches them, and np.memmap's Python-level __getitem__ doubled each one's cost.
        self.arrays = {name: np.asarray(array) for name, array in arrays.items()}
        # Each lookup binary-searches the hashes. A member of a memory-mapped .npz lies where
        # the zip put it, often unaligned, and numpy searches an unaligned array about ten
        # times slower: those arrays alone are copied when unaligned, 24 bytes a name.
        for kind in KEYS:
            if f"{kind}_hashes" in self.arrays:
                self.arrays[f"{kind}_hashes"] = np.require(self.arrays[f"{kind}_hashes"], requirements="A")
        self.names = NameTable(self.arrays["blob"], self.arrays["offsets"])
        # uint64 [n] per id: films with the same label (not NO_FRANCHISE) are one franchise; movies only
        self.franchises = arrays.get("franchise")

    @classmethod
    def build(cls, names: Sequence[str], *, franchises: Sequence[np.ndarray] | None = None,
              external: Sequence[dict[str, str]] | None = None) -> TitleIndex:
        """The index of `names` (ids are positions); with `franchises` (the ids of each franchise,
        common.franchises.franchise_groups) each name's franchise label too, and with `external`
        (each name's {scheme: id}, common.external_ids) the ids it is also known by."""
        table = NameTable.from_names(names)
        arrays = {"blob": table.blob, "offsets": table.offsets}
        n = len(names)
        keys = {"lower": [name.casefold() for name in names]}
        keys["base"] = [base(name) for name in names]
        keys["normal"] = [normalised(name) for name in names]
        for kind in KEYS:
            hashes = np.fromiter(map(stable_hash, keys[kind]), dtype=np.uint64, count=n)
            order = np.argsort(hashes, kind="stable")
            arrays[f"{kind}_hashes"], arrays[f"{kind}_ids"] = hashes[order], order.astype(np.int32)
        for kind in ORDERS:  # each key computed once: building is most of `indexer build`'s added time
            reversed_ = kind.endswith("_reversed")
            sort_keys = [k[::-1] for k in keys[kind.removesuffix("_reversed")]] if reversed_ else keys[kind]
            arrays[f"{kind}_order"] = np.array(sorted(range(n), key=sort_keys.__getitem__), dtype=np.int32)
        if franchises is not None:
            arrays["franchise"] = np.full(n, NO_FRANCHISE, dtype=np.uint64)
            for label, ids in enumerate(franchises, 1):
                arrays["franchise"][ids] = label
        if external is not None:
            arrays |= _external_arrays(external)
        return cls(arrays)

    def __len__(self) -> int:
        return len(self.names)

    def ids(self, kind: str, wanted: str) -> list[int]:
        """Ids (ascending) of the names whose `kind` key (one of KEYS) is `wanted`."""
        return [i for i in self._same_hash(kind, wanted) if key(kind, self.names[i]) == wanted]

    def exact(self, name: str) -> int | None:
        """The id of exactly `name` (the lowest, were it there twice), or None."""
        return next((i for i in self._same_hash("lower", name.casefold()) if self.names[i] == name), None)

    def _same_hash(self, kind: str, wanted: str) -> Iterator[int]:
        """Ids of the names whose `kind` key hashes as `wanted` does, ascending (a stable sort
        keeps each run of equal hashes in id order); a collision is for the caller to rule out."""
        hashes, ids = self.arrays[f"{kind}_hashes"], self.arrays[f"{kind}_ids"]
        h = np.uint64(stable_hash(wanted))
        j = int(hashes.searchsorted(h))
        while j < len(hashes) and hashes[j] == h:  # a run is one id, or a few names that fold alike
            yield int(ids[j])
            j += 1

    def sorted_keys(self, kind: str) -> _SortedKeys:
        """The keys in one of ORDERS, as a sequence `bisect` can search; `order(kind)[j]` is the id at j."""
        return _SortedKeys(self.names, self.arrays[f"{kind}_order"], kind)

    def order(self, kind: str) -> np.ndarray:
        return self.arrays[f"{kind}_order"]

    def knows(self, scheme: str) -> int:
        """How many names have an id of `scheme` (common.external_ids.SCHEMES); 0 for an index built without."""
        return len(self.arrays.get(f"{scheme}_numbers", ()))

    def with_external_id(self, scheme: str, number: int) -> list[int]:
        """Ids (ascending) of the names known by id `number` of `scheme` (common.external_ids.id_number)."""
        numbers = self.arrays.get(f"{scheme}_numbers")
        if numbers is None:
            return []
        wanted = np.uint64(number)
        start, end = numbers.searchsorted(wanted, "left"), numbers.searchsorted(wanted, "right")
        return sorted(self.arrays[f"{scheme}_ids"][start:end].tolist())

    def problem(self) -> str | None:
        """What is inconsistent in the arrays (sizes, id ranges), or None."""
        n = len(self.names)
        if self.arrays["offsets"].ndim != 1 or n < 0 or int(self.arrays["offsets"][-1]) != len(self.arrays["blob"]):
            return "the title index's names do not match their offsets"
        for kind in KEYS:
            if not len(self.arrays[f"{kind}_hashes"]) == len(self.arrays[f"{kind}_ids"]) == n:
                return f"the title index's {kind} keys do not cover every name"
        for kind in ORDERS:
            order = self.arrays[f"{kind}_order"]
            if len(order) != n or (n and (int(order.min()) < 0 or int(order.max()) >= n)):
                return f"the title index's {kind} order does not cover every name"
        if self.franchises is not None and len(self.franchises) != n:
            return "the title index's franchises do not cover every name"
        for scheme in SCHEMES:
            numbers, ids = self.arrays.get(f"{scheme}_numbers"), self.arrays.get(f"{scheme}_ids")
            if (numbers is None) != (ids is None) or (ids is not None and (
                    len(numbers) != len(ids) or (len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= n)))):
                return f"the title index's {scheme} ids do not match its names"
        return None


def _external_arrays(external: Sequence[dict[str, str]]) -> dict[str, np.ndarray]:
    """{scheme}_numbers (uint64, sorted) and {scheme}_ids (int32, the name of each) for every
    scheme; a name without an id of a scheme is in neither."""
    arrays = {}
    for scheme in SCHEMES:
        pairs = [(id_number(scheme, ids[scheme]), i) for i, ids in enumerate(external) if scheme in ids]
        pairs = sorted((number, i) for number, i in pairs if number is not None)
        arrays[f"{scheme}_numbers"] = np.array([number for number, _ in pairs], dtype=np.uint64)
        arrays[f"{scheme}_ids"] = np.array([i for _, i in pairs], dtype=np.int32)
    return arrays
