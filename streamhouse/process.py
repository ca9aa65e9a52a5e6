"""Process-wide tuning for streamhouse's long-running processes (dataflows, the API)."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (100_000, 50, 1000)
"""Python's default (700, 10, 10) runs a collection every 700 new container objects.
A Kafka poll of 50 k messages makes 50 k of them, all alive until the batch is done, so the
defaults spent ~25 % of the windowed flows' time in collections that free nothing
(benchmarks/bench_windowed.py: 4.2 s -> 3.1 s for 1 M events), and in the API the
collections showed as its p99 (benchmarks/bench_api.py: 64 ms -> 23 ms at 2,000 POST/s).
These processes make few reference cycles; the thresholds still collect them, less often."""


def tune_gc() -> None:
    """Set this process's garbage-collection thresholds (GC_THRESHOLDS)."""
    gc.set_threshold(*GC_THRESHOLDS)
