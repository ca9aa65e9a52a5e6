"""Business metrics to watch for anomalies, and the live detector settings per metric."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

import msgspec

from models.base import Event, Finite, Id, Name

Dims = Annotated[dict[Id, Id], msgspec.Meta(max_length=32)]


class BusinessMetric(Event, frozen=True, kw_only=True, tag="business_metric"):
    """One observation of `metric` for `entity` (a store, a region, a product line)."""

    metric: Name
    entity: Id
    value: Finite
    dims: Dims = msgspec.field(default_factory=dict)

    def key(self) -> str:
        """The series key; an anomaly model with the same `model_key` applies to it."""
        return f"{self.metric}:{self.entity}"


class DetectorMethod(StrEnum):
    EWMA = "ewma"
    MAD = "mad"
    SEASONAL = "seasonal"
    THRESHOLD = "threshold"


class AnomalyModel(Event, frozen=True, kw_only=True, tag="anomaly_model"):
    """The detector and parameters for one series; the newest record per key wins."""

    model_key: Id
    method: DetectorMethod
    params: Annotated[dict[Name, Finite], msgspec.Meta(max_length=32)] = msgspec.field(
        default_factory=dict
    )
    enabled: bool = True
    key_field: ClassVar[str] = "model_key"
