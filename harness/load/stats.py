"""Figures of a load run, computed from the raw timings (``raw.csv``), never from Locust's buckets.

Percentiles are nearest-rank (:func:`harness.scenarios.results.percentile`, the run report's definition:
the smallest observed value that p % of observations do not exceed) over the *successful* requests of an
operation: a refused connection answered in 0 ms must not make a hub look fast. Failures are counted by
reason. A ``consent-leak`` reason is a leak whatever the operation.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.scenarios.results import percentile
from simulator.workload import STEP_SETTLING, Slo

__all__ = [
    "LEAK",
    "OpStats",
    "RawRow",
    "http_failure",
    "knee",
    "knee_text",
    "leaks",
    "op_stats",
    "per_facility",
    "read_raw",
    "slo_results",
    "step_curve",
    "step_multipliers",
    "time_series",
]

LEAK: Final = "consent-leak"


def http_failure(r: Any) -> str:
    """A failed HTTP answer's reason as the raw timings record it: ``HTTP 409: <the hub's reason>``, or,
    when no answer came (Locust's status 0: its timeout, a reset), ``no answer: <the client's error>``
    (a timeout read as ``HTTP 0: no JSON body`` before, which sent readers looking for a hub bug)."""
    if not r.status_code:
        error = getattr(r, "error", None)
        return f"no answer: {type(error).__name__}: {error}"[:120] if error else "no answer"
    try:
        detail = r.json().get("detail")
    except Exception:
        return f"HTTP {r.status_code}: no JSON body"
    reason = detail.get("reason") if isinstance(detail, dict) else detail
    return f"HTTP {r.status_code}: {str(reason)[:80]}"  # bounded: a hub under test chooses its reasons


@dataclass(frozen=True, slots=True)
class RawRow:
    t: float
    name: str
    ms: float
    ok: bool
    reason: str
    facility: str
    worker: int
    size: int


def read_raw(path: Path) -> list[RawRow]:
    """The raw log Locust's master wrote (:mod:`loadtests.recorder`)."""
    with path.open(newline="", encoding="utf-8") as f:
        return [
            RawRow(
                float(r["t"]),
                r["name"],
                float(r["ms"]),
                r["ok"] == "1",
                r["reason"],
                r["facility"],
                int(r["worker"] or 0),
                int(r["size"] or 0),
            )
            for r in csv.DictReader(f)
        ]


@dataclass(frozen=True)
class OpStats:
    name: str
    count: int
    failures: int
    reasons: dict[str, int]
    p50: float
    p95: float
    p99: float
    max: float
    mean: float
    per_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "failures": self.failures,
            "failures_by_reason": self.reasons,
            "p50_ms": self.p50,
            "p95_ms": self.p95,
            "p99_ms": self.p99,
            "max_ms": self.max,
            "mean_ms": self.mean,
            "per_s": self.per_s,
        }

    def stat(self, name: str) -> float:
        """``p50``/``p95``/``p99``/``max`` in ms, or ``failures`` as a share of requests."""
        if name == "failures":
            return self.failures / self.count if self.count else 0.0
        return float(getattr(self, name))


def _reason_key(reason: str) -> str:
    """Group failures by their reason's head (``HTTP 500: internal`` → itself; long texts cut at ``:``)."""
    if reason.startswith(LEAK):
        return LEAK
    return reason if len(reason) <= 60 else reason[:60]


def op_stats(rows: Sequence[RawRow], duration_s: float | None = None) -> dict[str, OpStats]:
    """Per operation, in order of first appearance."""
    by: dict[str, list[RawRow]] = defaultdict(list)
    for r in rows:
        by[r.name].append(r)
    span = duration_s
    if span is None:
        span = (max(r.t for r in rows) - min(r.t for r in rows)) if rows else 0.0
    out = {}
    for name, group in by.items():
        ok = sorted(r.ms for r in group if r.ok)
        fails = Counter(_reason_key(r.reason) for r in group if not r.ok)
        out[name] = OpStats(
            name=name,
            count=len(group),
            failures=sum(fails.values()),
            reasons=dict(fails.most_common()),
            p50=percentile(ok, 50),
            p95=percentile(ok, 95),
            p99=percentile(ok, 99),
            max=round(ok[-1], 3) if ok else 0.0,
            mean=round(sum(ok) / len(ok), 3) if ok else 0.0,
            per_s=round(len(group) / span, 3) if span > 0 else 0.0,
        )
    return out


def leaks(rows: Iterable[RawRow]) -> list[RawRow]:
    return [r for r in rows if not r.ok and r.reason.startswith(LEAK)]


def slo_results(slos: Sequence[Slo], stats: dict[str, OpStats]) -> list[dict[str, Any]]:
    """Each objective with the measured value and whether it held. An objective on an operation the run
    never performed is *broken*: an SLO nobody measured must not pass silently."""
    out: list[dict[str, Any]] = []
    for slo in slos:
        st = stats.get(slo.operation)
        if st is None or (slo.stat != "failures" and st.count - st.failures == 0):
            out.append({"slo": str(slo), "value": None, "ok": False, "note": "not measured in this run"})
            continue
        value = st.stat(slo.stat)
        out.append({"slo": str(slo), "value": round(value, 6), "ok": value < slo.limit})
    return out


def time_series(rows: Sequence[RawRow], bucket_s: float = 1.0) -> dict[str, Any]:
    """Per time bucket since the first request: requests/s (all), and per operation p95 of successes."""
    if not rows:
        return {"t": [], "per_s": [], "p95": {}}
    t0 = min(r.t for r in rows)
    n = int((max(r.t for r in rows) - t0) // bucket_s) + 1
    counts = [0] * n
    lat: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(n)])
    for r in rows:
        i = int((r.t - t0) // bucket_s)
        counts[i] += 1
        if r.ok:
            lat[r.name][i].append(r.ms)
    p95 = {name: [percentile(sorted(b), 95) if b else None for b in buckets] for name, buckets in lat.items()}
    return {
        "t": [round(i * bucket_s, 3) for i in range(n)],
        "per_s": [c / bucket_s for c in counts],
        "p95": p95,
    }


def per_facility(rows: Iterable[RawRow]) -> dict[str, int]:
    """Requests per viewing facility (feeds included under their sender), most first."""
    counts = Counter(r.facility for r in rows if r.facility)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def step_curve(
    rows: Sequence[RawRow],
    t0: float,
    step_s: float,
    multipliers: Sequence[float],
    operation: str = "timeline",
) -> list[dict[str, Any]]:
    """The step shape's throughput–latency curve: per step, its multiplier, requests/s over all operations,
    and ``operation``'s p95 (successes) in that step. Requests in a step's first fifth are left out (the
    user pool is still growing)."""
    out = []
    for i, m in enumerate(multipliers):
        start, end = t0 + i * step_s, t0 + (i + 1) * step_s
        inside = [r for r in rows if start + step_s * STEP_SETTLING <= r.t < end]
        ok = sorted(r.ms for r in inside if r.ok and r.name == operation)
        failures = sum(1 for r in inside if not r.ok)
        if not inside:
            continue
        out.append(
            {
                "multiplier": m,
                "per_s": round(len(inside) / (step_s * (1 - STEP_SETTLING)), 3),
                "p95_ms": percentile(ok, 95) if ok else None,
                "failures": failures,
            }
        )
    return out


def knee(curve: Sequence[dict[str, Any]], limit_ms: float) -> tuple[float | None, float | None]:
    """(held, broke): the highest multiplier whose step kept ``p95 < limit_ms`` with no failures, and the
    first step that broke that (None: none did). A step with no timeline measured neither holds nor
    breaks. The knee is "the load where p95 breaks the SLO": we report the last multiple that held, so a
    capacity plan built on it is on the safe side."""
    held: float | None = None
    for point in curve:
        p95 = point["p95_ms"]
        if point["failures"] or (p95 is not None and p95 >= limit_ms):
            return held, point["multiplier"]
        if p95 is not None:
            held = point["multiplier"]
    return held, None


def knee_text(step: dict[str, Any]) -> str:
    """The step shape's finding in words, as a multiple of the realistic peak."""
    held, broke = step["knee_multiplier"], step["broke_multiplier"]
    if broke is None:
        top = "no step" if held is None else f"{held:g}× the realistic peak"
        return f"knee: not reached — the SLO held up to {top} (the last step measured)"
    if held is None:
        return f"knee: below the first step ({broke:g}× broke the SLO at once)"
    return f"knee: {held:g}× the realistic peak held the SLO; {broke:g}× broke it"


def step_multipliers(start: float, factor: float, upto: float) -> list[float]:
    out = [start]
    while out[-1] * factor <= upto * (1 + 1e-9):
        out.append(out[-1] * factor)
    return out


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
