"""Latency histograms with bounded memory: what the model keeps instead of per-request records.

Buckets are logarithmic, each 1 % wider than the last, from 1 µs to ~30 h: a percentile read from them is
within 0.5 % of the exact value (it reports the bucket's geometric middle, clamped to the observed min and
max). Memory is the bucket array (≈ 2,200 ints) whatever the number of requests, so a simulated year costs
what a simulated minute does.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any, Final

__all__ = ["Histogram"]

_LOW: Final = 1e-6  # seconds
_GROWTH: Final = 1.01
_LOG_GROWTH: Final = math.log(_GROWTH)
_BUCKETS: Final = int(math.log(1e5 / _LOW) / _LOG_GROWTH) + 2
_BOUNDS: Final = [_LOW * _GROWTH**i for i in range(_BUCKETS - 1)]  # upper bounds; the last bucket is open


class Histogram:
    """Counts of durations in seconds; percentiles in milliseconds."""

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float) -> None:
        i = bisect_left(_BOUNDS, seconds)  # bucket i holds (LOW·G^(i−1), LOW·G^i]; a bisection beats a log
        self.buckets[i] += 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        for i, n in enumerate(other.buckets):
            if n:
                self.buckets[i] += n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile_ms(self, p: float) -> float:
        """Nearest rank, as the load report's: the smallest value that ``p`` % do not exceed."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                value = _LOW if i == 0 else _LOW * _GROWTH ** (i - 0.5)
                return round(min(max(value, self.min), self.max) * 1000, 3)
        return round(self.max * 1000, 3)

    @property
    def mean_ms(self) -> float:
        return round(self.total / self.count * 1000, 3) if self.count else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50_ms": self.percentile_ms(50),
            "p95_ms": self.percentile_ms(95),
            "p99_ms": self.percentile_ms(99),
            "max_ms": round(self.max * 1000, 3),
            "mean_ms": self.mean_ms,
        }
