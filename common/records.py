"""Record types that travel unchanged from the training run to the index version."""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from movielinks.common.answers import mse_ratio, no_better_than_mean

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


@dataclasses.dataclass(frozen=True)
class MovieRecord:
    """What later stages need to know about a movie besides its vector.

    `attributes` holds the parsed numeric values the data has for the movie:
    rotten_tomatoes in 0..1, gross and budget in dollars.
    """

    title: str
    infobox: dict[str, str]
    attributes: dict[str, float]


@dataclasses.dataclass(frozen=True)
class AttributeModel:
    """A linear regression from a unit movie vector to a numeric attribute."""

    name: str
    unit: str
    coef: list[float]
    intercept: float
    n_train: int
    n_test: int
    heldout_mse: float
    baseline_mse: float  # held-out MSE of always predicting the training mean

    @property
    def no_better_than_mean(self) -> bool:
        return no_better_than_mean(self.heldout_mse, self.baseline_mse)

    def verdict(self) -> str:
        """What a user must be told of a model that predicts no better than the average ("" otherwise)."""
        if not self.no_better_than_mean:
            return ""
        return (f"the {self.name} model is no better than always predicting the average (held-out MSE "
                f"{mse_ratio(self.heldout_mse, self.baseline_mse):.2f} times the average's): not served")

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Predicted values for a [n, dim] (or [dim]) array of movie vectors."""
        return np.asarray(vectors, dtype=np.float64) @ np.asarray(self.coef, dtype=np.float64) + self.intercept


def release_year(infobox: dict[str, str]) -> int | None:
    """The first year in the infobox's "released" field (1995 for "June 1995"), if any."""
    match = _YEAR.search(infobox.get("released", ""))
    return int(match.group(1)) if match else None
