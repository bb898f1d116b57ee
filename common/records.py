"""Record types that travel unchanged from the training run to the index version."""
from __future__ import annotations

import dataclasses
import re

import numpy as np

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")

# A ranked result: (movie title or link name, cosine score) pairs, best first.
Neighbours = list[tuple[str, float]]


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


@dataclasses.dataclass(frozen=True)
class Prediction:
    """An attribute model's prediction for one movie, with the value the data knows (if any)
    and the model's held-out error against always predicting the mean."""

    title: str
    attribute: str
    unit: str
    predicted: float
    known: float | None
    heldout_mse: float
    baseline_mse: float
    index_version: str


def mse_ratio(heldout_mse: float, baseline_mse: float) -> float:
    """A model's held-out MSE over that of always predicting the training mean: below 1 it helps."""
    return heldout_mse / baseline_mse if baseline_mse > 0 else float("inf")


def no_better_than_mean(heldout_mse: float, baseline_mse: float) -> bool:
    """Whether a model's held-out error is no smaller than the average's (nothing learned worth serving)."""
    return not mse_ratio(heldout_mse, baseline_mse) < 1


def release_year(infobox: dict[str, str]) -> int | None:
    """The first year in the infobox's "released" field (1995 for "June 1995"), if any."""
    match = _YEAR.search(infobox.get("released", ""))
    return int(match.group(1)) if match else None
