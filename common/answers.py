"""What the service answers, as the server builds it and the client returns it.

Standard library only: the client imports this and installs with grpcio and protobuf alone.
"""
from __future__ import annotations

import dataclasses

# A ranked result: (movie title or link name, cosine score) pairs, best first.
Neighbours = list[tuple[str, float]]


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
