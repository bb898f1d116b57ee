"""Numpy helpers the trainer's stages share."""
from __future__ import annotations

import numpy as np


def distinct_sorted(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)`, by sorting: numpy 2.4's np.unique hashes integer arrays, which is
    far slower on the millions of (film, link) keys of a large dataset."""
    ordered = np.sort(values, axis=None)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
