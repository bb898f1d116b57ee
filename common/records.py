"""Record types that travel unchanged from the training run to the index version."""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from movielinks.common.answers import mse_ratio, no_better_than_mean

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


@dataclasses.dataclass(frozen=True)
class MovieRecord:
    """What later stages need to know about a movie besides its vector.

    `attributes` holds the parsed numeric values the data has for the movie:
    rotten_tomatoes in 0..1, gross and budget in dollars. `ids` are its ids in other
    catalogues, {"imdb": "tt0034583", "wikidata": "Q132689"} (common.external_ids), where
    its article names them.
    """

    title: str
    infobox: dict[str, str]
    attributes: dict[str, float]
    ids: dict[str, str] = dataclasses.field(default_factory=dict)


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


def prominence(attributes: dict[str, float]) -> float:
    """How well known and well reviewed a film is, 0..1, from what the data holds: a third for
    having a known box office or Rotten Tomatoes figure at all (films people have heard of
    are the ones the sources cover), a third for its Rotten Tomatoes share (a half when only
    the box office is known), a third for its gross on a log scale ($1 million -> 0, $1 billion -> 1)."""
    gross = attributes.get("gross") or 0.0
    reviews = attributes.get("rotten_tomatoes")
    if gross <= 0 and reviews is None:
        return 0.0
    reviewed = 0.5 if reviews is None else min(max(float(reviews), 0.0), 1.0)
    earned = min(max((math.log10(gross) - 6) / 3, 0.0), 1.0) if gross > 0 else 0.0
    return (1 + reviewed + earned) / 3


MAX_DIRECTOR_CHARS = 200


def director(infobox: dict[str, str]) -> str:
    """The infobox's director as an answer shows it: stripped, at most MAX_DIRECTOR_CHARS ("" if none)."""
    name = infobox.get("director", "")
    return name.strip()[:MAX_DIRECTOR_CHARS] if isinstance(name, str) else ""


def release_year(infobox: dict[str, str]) -> int | None:
    """The first year in the infobox's "released" field (1995 for "June 1995"), if any."""
    match = _YEAR.search(infobox.get("released", ""))
    return int(match.group(1)) if match else None
