"""What a model run measured: latency histograms per operation and counters only (no per-request records),
so memory stays flat over simulated time; chunks of a long run merge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.workload import STEP_SETTLING

from .histogram import Histogram

__all__ = ["Results"]


@dataclass
class Results:
    """Latency histograms per operation, counts, consent and source outcomes."""

    duration_s: float = 0.0
    ops: dict[str, Histogram] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    leaks: int = 0
    sessions: int = 0
    timelines: int = 0
    partial_timelines: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    # per number of sources a timeline asked: [timelines, partial ones] (outages grow with both)
    partial_by_sources: dict[int, list[int]] = field(default_factory=dict)
    events: int = 0
    # Windows (a step-shape replay): per window of ``window_s`` seconds, requests, failures and the timeline
    # histogram of the requests answered in it, each window's first fifth left out as the load report's
    # step curve does (``harness.load.stats.step_curve``). Off (0) otherwise.
    window_s: float = 0.0
    clock: Callable[[], float] | None = None
    windows: dict[int, list[Any]] = field(default_factory=dict)  # index → [requests, failures, Histogram]
    replicas: int = 1  # model runs of the same span merged into these figures (rates are per replica)

    def record(self, op: str, seconds: float, failed: bool = False, at: float | None = None) -> None:
        """One answer of ``op`` that took ``seconds``, answered at ``at`` (default: the clock's now — a
        step whose answer is still in its tail records ahead of it)."""
        h = self.ops.get(op)
        if h is None:
            h = self.ops[op] = Histogram()
        h.add(seconds)
        if self.window_s and self.clock is not None:
            self._window(op, seconds, failed, self.clock() if at is None else at)

    def _window(self, op: str, seconds: float, failed: bool, t: float) -> None:
        i = int(t // self.window_s)
        if t - i * self.window_s < self.window_s * STEP_SETTLING:
            return
        w = self.windows.get(i)
        if w is None:
            w = self.windows[i] = [0, 0, Histogram()]
        w[0] += 1
        if failed:
            w[1] += 1
        elif op == "timeline":
            w[2].add(seconds)

    def fail(self, op: str, reason: str, seconds: float, at: float | None = None) -> None:
        per = self.failures.setdefault(op, {})
        per[reason] = per.get(reason, 0) + 1
        self.record(op, seconds, failed=True, at=at)

    def window_curve(self) -> list[dict[str, Any]]:
        """Per window: requests/s over its last four fifths, timeline p95 (None: none), failures."""
        return [
            {
                "window": i,
                "per_s": round(n / (self.window_s * (1 - STEP_SETTLING)) / self.replicas, 3),
                "p95_ms": h.percentile_ms(95) if h.count else None,
                "failures": f,
            }
            for i, (n, f, h) in sorted(self.windows.items())
        ]

    def refuse(self, op: str, seconds: float, at: float | None = None) -> None:
        self.refused[op] = self.refused.get(op, 0) + 1
        self.record(op, seconds, at=at)

    def merge(self, other: Results, replica: bool = False) -> None:
        """Add another chunk's figures (durations add up), or with ``replica`` another run of the same span
        (durations add up too, so rates stay per run; its windows merge into the same windows)."""
        self.duration_s += other.duration_s
        if replica:
            self.replicas += other.replicas
            for i, (n, f, h) in other.windows.items():
                w = self.windows.get(i)
                if w is None:
                    w = self.windows[i] = [0, 0, Histogram()]
                w[0] += n
                w[1] += f
                w[2].merge(h)
        for name, h in other.ops.items():
            mine = self.ops.get(name)
            if mine is None:
                self.ops[name] = mine = Histogram()
            mine.merge(h)
        for op, reasons in other.failures.items():
            per = self.failures.setdefault(op, {})
            for k, v in reasons.items():
                per[k] = per.get(k, 0) + v
        for mine_d, theirs in ((self.refused, other.refused), (self.sources, other.sources)):
            for k, v in theirs.items():
                mine_d[k] = mine_d.get(k, 0) + v
        for n, (t, p) in other.partial_by_sources.items():
            row = self.partial_by_sources.setdefault(n, [0, 0])
            row[0] += t
            row[1] += p
        self.leaks += other.leaks
        self.sessions += other.sessions
        self.timelines += other.timelines
        self.partial_timelines += other.partial_timelines
        self.events += other.events

    def operations(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, h in self.ops.items():
            fails = self.failures.get(name, {})
            out[name] = {
                **h.to_json(),
                "failures": sum(fails.values()),
                "failures_by_reason": dict(fails),
                "refused": self.refused.get(name, 0),
                "per_s": round(h.count / self.duration_s, 6) if self.duration_s else 0.0,
            }
        return out
