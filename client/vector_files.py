"""A caller's own vector read from a file, for `client query --vector` and `client recommend
--like-vector/--dislike-vector`: a .json list of numbers, or a .npy holding one vector (shape
(dim,), or (1, dim) as `client vectors NAME --out FILE.npy` writes one).

numpy is imported only to read a .npy (the client installs without it); a .json needs nothing.
Every problem is a VectorFileError whose message is one line naming the file. The length is the
server's to check (only it knows the served version's dimensions).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

VECTOR_FILE_SUFFIXES = (".npy", ".json")  # what a vector file is read from, and `client vectors --out` writes
# Far beyond any index's dimensions; a bigger file is not a vector (and would not fit in one request).
MAX_VECTOR_FILE_VALUES = 100_000
NPY_MAGIC = b"\x93NUMPY"


class VectorFileError(ValueError):
    """A vector file that is missing, unreadable or not one vector of finite numbers."""


def read_vector(path: str) -> list[float]:
    """The values of the one vector in `path` (.json or .npy), each a finite float."""
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_FILE_SUFFIXES:
        raise VectorFileError(f"{path}: a vector file is .npy (one vector) or .json (a list of numbers)")
    try:
        values = _read_npy(path) if suffix == ".npy" else _read_json(path)
    except OSError as e:
        raise VectorFileError(f"{path}: {e.strerror or e}") from None
    if not values:
        raise VectorFileError(f"{path}: the vector has no values")
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        what = "NaN" if math.isnan(values[bad]) else "infinite"
        raise VectorFileError(f"{path}: value {bad} is {what}; a vector's values must be finite numbers")
    return values


def _read_json(path: str) -> list[float]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VectorFileError(f"{path}: not JSON ({e})") from None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]  # one row, as [[...]]
    if not isinstance(data, list) or not all(_number(v) for v in data):
        raise VectorFileError(f"{path}: not a vector: give a JSON list of numbers, e.g. [0.12, -0.5, 0.03]")
    if len(data) > MAX_VECTOR_FILE_VALUES:
        raise VectorFileError(f"{path}: {len(data):,} values is not a vector (the limit is {MAX_VECTOR_FILE_VALUES:,})")
    return [float(v) for v in data]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_npy(path: str) -> list[float]:
    try:
        import numpy as np
    except ImportError:
        raise VectorFileError(f"{path}: reading .npy needs numpy (pip install 'movielinks[vectors]'); a .json list "
                              "of numbers does not") from None
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise VectorFileError(f"{path}: not a .npy file (it does not start as numpy.save writes one)")
    try:  # mapped, not read: the shape is checked before any value is
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise VectorFileError(f"{path}: not a .npy array ({' '.join(str(e).split())})") from None
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.floating)
                                                  or np.issubdtype(array.dtype, np.integer)):
        raise VectorFileError(f"{path}: not a vector of numbers (it holds {getattr(array, 'dtype', 'an archive')})")
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise VectorFileError(f"{path}: not a vector: its shape is {tuple(array.shape)}; give one vector, (dim,) or "
                              "(1, dim)")
    if array.size > MAX_VECTOR_FILE_VALUES:
        raise VectorFileError(f"{path}: {array.size:,} values is not a vector (the limit is {MAX_VECTOR_FILE_VALUES:,})")
    return [float(v) for v in np.asarray(array, dtype=np.float64)]
