"""One ``LoadTestShape`` for the three time shapes of the workload (peak × multiplier, the diurnal day
compressed into ``day_s`` seconds, and the step-to-knee ramp), all from :class:`simulator.workload.Rates`
so the SimPy model sees the same rate at the same moment.

Viewers pace themselves (one session per ``pacing_s``), so the user count is the session rate × pacing;
the feeder is one more user while feeds are on. The step shape stops early once its step is broken by
the knee's own rule (``harness.load.stats.knee``): any ``stop_on_slo`` objective broken over the last 10 s
of raw timings, or any failed request since the step's first fifth (which the knee leaves out, as the user
pool is still growing) — a run whose logins fail while the few timelines that get through stay fast went
on stepping up, its knee long found (the knee is then read from the whole raw log).
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from locust import LoadTestShape

from simulator.workload import STEP_SETTLING, parse_slo

from .users import context

__all__ = ["RhinShape"]

WINDOW_S: Final = 10.0
MIN_RUN_S: Final = 5.0
MIN_REQUESTS: Final = 20


class RhinShape(LoadTestShape):
    """Users over time for the run's shape (``--shape peak|diurnal|step``)."""

    def tick(self) -> tuple[int, float] | None:
        ctx = context()
        elapsed = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if elapsed >= ctx.cfg.duration_s:
            return None
        rate = ctx.rates.sessions_per_s(elapsed)
        if rate is None or (ctx.cfg.shape == "step" and self._step_broken()):
            return None
        users = max(1, math.ceil(rate * ctx.cfg.pacing_s - 1e-9))
        total = users + (1 if ctx.cfg.feeds else 0)
        return total, float(max(total, 1))

    def _step_broken(self) -> bool:
        """A failure since the step's first fifth, or any ``stop_on_slo`` objective broken over the last
        :data:`WINDOW_S` seconds of raw timings (the recorder's rows: exact, and on a master they include
        what the workers have reported so far)."""
        runner: Any = self.runner
        recorder = getattr(getattr(runner, "environment", None), "rhin_recorder", None)
        if recorder is None or self.get_run_time() < MIN_RUN_S:  # type: ignore[no-untyped-call]
            return False
        now = time.time()
        since = now - WINDOW_S
        recent = [r for r in recorder.rows if r[0] >= since]
        ctx = context()
        step_s = ctx.workload.shape.step_s
        elapsed = float(self.get_run_time())  # type: ignore[no-untyped-call]
        settled = now - elapsed % step_s + step_s * STEP_SETTLING  # this step settles (wall clock)
        if any(not r[3] for r in recent if r[0] >= settled):
            return True
        for text in ctx.cfg.stop_on_slo:
            slo = parse_slo(text)
            rows = [r for r in recent if r[1] == slo.operation]
            if len(rows) < MIN_REQUESTS:
                continue
            if slo.stat == "failures":
                value = sum(1 for r in rows if not r[3]) / len(rows)
            else:
                ok = sorted(float(r[2]) for r in rows if r[3])
                if not ok:
                    return True
                value = (
                    ok[-1]
                    if slo.stat == "max"
                    else ok[max(1, math.ceil(len(ok) * int(slo.stat[1:]) / 100)) - 1]
                )
            if value >= slo.limit:
                return True
        return False
