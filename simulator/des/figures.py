"""What every station of the model reports — time-averaged figures, no per-request history — and the type of
a SimPy process the stations' methods are."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

__all__ = ["Figures", "Proc", "station_json"]

Proc = Generator[simpy.Event, Any, Any]


class Figures:
    """What every station reports (its subclasses keep ``name``, ``capacity``, ``busy_s``, ``wait_s`` and
    ``requests``)."""

    __slots__ = ()
    name: str
    capacity: int
    busy_s: float
    wait_s: float
    requests: int

    def totals(self) -> tuple[str, int, float, float, int]:
        """(name, capacity, busy seconds, waiting seconds, requests): what chunks of a long run add up."""
        return self.name, self.capacity, self.busy_s, self.wait_s, self.requests

    def to_json(self, duration_s: float) -> dict[str, Any]:
        return station_json(self.capacity, self.busy_s, self.wait_s, self.requests, duration_s)


def station_json(cap: int, busy_s: float, wait_s: float, requests: int, duration_s: float) -> dict[str, Any]:
    """A station's figures over ``duration_s``: utilisation, mean queue length, mean wait."""
    return {
        "capacity": cap,
        "requests": requests,
        "utilisation": round(busy_s / (duration_s * cap), 4) if duration_s > 0 else 0.0,
        "mean_queue": round(wait_s / duration_s, 4) if duration_s > 0 else 0.0,
        "mean_wait_ms": round(wait_s / requests * 1000, 3) if requests else 0.0,
    }
