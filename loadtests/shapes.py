"""One ``LoadTestShape`` for the three time shapes of the workload (peak × multiplier, the diurnal day
compressed into ``day_s`` seconds, and the step-to-knee ramp), all from :class:`simulator.workload.Rates`
so the SimPy model sees the same rate at the same moment.

Viewers pace themselves (one session per ``pacing_s``), so the user count is the session rate × pacing;
the feeder is one more user while feeds are on. The step shape stops early once any ``stop_on_slo``
objective is broken in Locust's rolling window (the knee is then read from the raw timings).
"""

from __future__ import annotations

import math
from typing import Any

from locust import LoadTestShape

from simulator.workload import parse_slo

from .users import context

__all__ = ["RhinShape"]


class RhinShape(LoadTestShape):
    """Users over time for the run's shape (``--shape peak|diurnal|step``)."""

    def tick(self) -> tuple[int, float] | None:
        ctx = context()
        elapsed = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if elapsed >= ctx.cfg.duration_s:
            return None
        rate = ctx.rates.sessions_per_s(elapsed)
        if rate is None or (ctx.cfg.shape == "step" and self._slo_broken()):
            return None
        users = max(1, math.ceil(rate * ctx.cfg.pacing_s - 1e-9))
        total = users + (1 if ctx.cfg.feeds else 0)
        return total, float(max(total, 1))

    def _slo_broken(self) -> bool:
        runner: Any = self.runner
        if runner is None or self.get_run_time() < 5:  # type: ignore[no-untyped-call]
            return False
        for text in context().cfg.stop_on_slo:
            slo = parse_slo(text)
            if slo.stat == "failures" or slo.stat == "max":
                continue
            for entry in runner.stats.entries.values():
                if entry.name != slo.operation or entry.num_requests < 20:
                    continue
                current = entry.get_current_response_time_percentile(int(slo.stat[1:]) / 100)
                if current is not None and current > slo.limit:
                    return True
        return False
