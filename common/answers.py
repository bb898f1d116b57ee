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
