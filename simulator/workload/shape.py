"""Load in time: the weekday diurnal curve, the realistic peak, and the shapes' session rates.

Pure functions of the workload, so Locust's shapes (``loadtests``) and the SimPy model give the same rate at
the same moment. The curve is a choice (docs/world.md gives only the 70 % share): within 9–18 the hourly rate
follows a half-sine bump (``1 + sin``, highest around 13:30), outside it is flat; the two parts are scaled
so that ``weekday_hours_share`` of the day's sessions fall within 9–18 and the day's mean factor is 1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Final

from .model import ShapeSpec, Workload

__all__ = ["STEP_SETTLING", "Rates", "diurnal_factor", "peak_factor", "step_multiplier"]

STEP_SETTLING: Final = 0.2
"""The share of each step of the step shape (or each window of a model sweep) left out of its figures:
the user pool is still growing there. The load report's curve, the model's and the live run's early stop
all read a step from this point on."""

OPEN: Final = 9.0
CLOSE: Final = 18.0
_BUMP_MEAN: Final = 1.0 + 2.0 / math.pi  # mean of 1 + sin(pi x) over x in [0, 1]


def diurnal_factor(hour: float, weekday_hours_share: float = 0.7) -> float:
    """Rate at ``hour`` (0–24, wraps) relative to the day's mean rate (its integral over 24 h is 24)."""
    h = hour % 24.0
    if OPEN <= h < CLOSE:
        x = (h - OPEN) / (CLOSE - OPEN)
        inside_mean = weekday_hours_share * 24.0 / (CLOSE - OPEN)
        return inside_mean * (1.0 + math.sin(math.pi * x)) / _BUMP_MEAN
    return (1.0 - weekday_hours_share) * 24.0 / (24.0 - (CLOSE - OPEN))


@functools.cache  # asked at every arrival the model thins; one share per workload
def peak_factor(weekday_hours_share: float = 0.7) -> float:
    """The curve's maximum — the bump's middle, or the flat night when less than 9/24 of the day's sessions
    fall in clinic hours: the realistic peak relative to the day's mean."""
    return max(
        diurnal_factor((OPEN + CLOSE) / 2, weekday_hours_share), diurnal_factor(0.0, weekday_hours_share)
    )


def step_multiplier(spec: ShapeSpec, elapsed_s: float) -> float | None:
    """The step shape's multiplier ``elapsed_s`` into the run; None once past ``step_max`` (the run ends)."""
    step = int(elapsed_s // spec.step_s)
    if step * math.log(spec.step_factor) > math.log(spec.step_max / spec.step_start) + 1e-9:
        return None  # decided in logs: a long run's step count would overflow the power
    return float(spec.step_start * spec.step_factor**step)


@dataclass(frozen=True)
class Rates:
    """Session rates for one world under one workload: ``peak_per_s`` is the realistic weekday peak (1×)."""

    workload: Workload
    registered_patients: int
    rate_override: float | None = None  # sessions/s at 1× (tests, benchmarks: a world too small to load)

    @property
    def mean_per_s(self) -> float:
        return self.workload.views_per_day(self.registered_patients) / 86_400

    @property
    def peak_per_s(self) -> float:
        if self.rate_override is not None:
            return self.rate_override
        return self.mean_per_s * peak_factor(self.workload.weekday_hours_share)

    def multiplier_at(self, elapsed_s: float) -> float | None:
        """The shape's multiplier of the realistic peak at ``elapsed_s`` (None: the shape is over)."""
        spec = self.workload.shape
        if spec.kind == "peak":
            return spec.multiplier
        if spec.kind == "diurnal":
            hour = 24.0 * (elapsed_s % spec.day_s) / spec.day_s
            share = self.workload.weekday_hours_share
            return spec.multiplier * diurnal_factor(hour, share) / peak_factor(share)
        return step_multiplier(spec, elapsed_s)

    def sessions_per_s(self, elapsed_s: float) -> float | None:
        m = self.multiplier_at(elapsed_s)
        return None if m is None else m * self.peak_per_s

    def bound(self, elapsed_s: float) -> tuple[float, float] | None:
        """A piece of a majorant of the shape for thinning a Poisson process: (a multiplier no lower than
        the shape's anywhere on [``elapsed_s``, end), end). Exact where the shape is flat (peak, a step,
        the diurnal night); the diurnal day's bump is bounded by its top. None once the shape is over.
        (One bound over the whole run, the peak, made the model draw and reject four of five candidate
        arrivals at night.)"""
        spec = self.workload.shape
        if spec.kind == "peak":
            return spec.multiplier, math.inf
        if spec.kind == "step":
            m = step_multiplier(spec, elapsed_s)
            return None if m is None else (m, (elapsed_s // spec.step_s + 1) * spec.step_s)
        day_start = elapsed_s - elapsed_s % spec.day_s
        hour = 24.0 * (elapsed_s - day_start) / spec.day_s
        share = self.workload.weekday_hours_share
        if hour < OPEN:
            until, factor = OPEN, diurnal_factor(0.0, share)
        elif hour < CLOSE:
            until, factor = CLOSE, diurnal_factor((OPEN + CLOSE) / 2, share)
        else:
            until, factor = 24.0, diurnal_factor(0.0, share)
        end = max(day_start + until * spec.day_s / 24.0, math.nextafter(elapsed_s, math.inf))
        return spec.multiplier * factor / peak_factor(share), end

    def max_sessions_per_s(self, duration_s: float) -> float:
        """The highest rate the shape asks for within ``duration_s`` (sizing the user pool)."""
        spec = self.workload.shape
        if spec.kind == "step":
            last = step_multiplier(spec, max(0.0, min(duration_s, 1e12) - 1e-9))
            top = last if last is not None else _last_step(spec)
            return top * self.peak_per_s
        return spec.multiplier * self.peak_per_s


def _last_step(spec: ShapeSpec) -> float:
    value = spec.step_start
    while value * spec.step_factor <= spec.step_max * (1 + 1e-9):
        value *= spec.step_factor
    return value
