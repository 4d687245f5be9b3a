"""One ``rhin simulate``: the world read once, the model run per what-if (a sweep is several), and the
figures as one JSON-ready dict (the HTML report is the harness's, from this dict).

The knee: when the sweep is over ``multiplier``, the highest multiplier whose timeline p95 stayed below
the workload's ``timeline.p95`` SLO with no failures, as :func:`harness.load.stats.knee` reads a step
curve (the same rule, restated here so the simulator does not import the harness: last held, not first
broken — the safe side for a capacity plan).
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from simulator.workload import Workload

from .calibration import Calibration
from .figures import station_json
from .model import DesModel, Results
from .whatif import WhatIf
from .world import DesWorld

__all__ = ["SimulationOptions", "broke_at", "knee_of", "parse_span", "simulate"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400, None: 1}


def parse_span(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``6h``, ``1d``, ``2w``, ``1y`` (365 days) → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdwy])?\s*", text)
    if m is None or float(m[1]) <= 0:
        raise ValueError(f"duration {text!r}: write e.g. 3600, 10m, 1d or 1y")
    return float(m[1]) * _UNITS[m[2]]


@dataclass(frozen=True)
class SimulationOptions:
    world: Path
    calibration: Calibration
    workload: Workload
    whatifs: Sequence[WhatIf]
    duration_s: float
    seed: int = 42
    sweep_key: str | None = None
    rate_override: float | None = None
    join_burst: bool = False
    drain_s: float = 120.0  # requests in flight at the end get this long to finish (0: cut, as Locust stops)
    jobs: int = 1  # >1: the duration cut into as many chunks, simulated in parallel processes (long runs)
    # Replaying a load run (harness.des.validate): Locust's paced users, its processes and CPU per request,
    # the machine's cores shared by all, and per-window curves for a step shape (see DesModel).
    arrivals: Literal["poisson", "paced"] = "poisson"
    pacing_s: float = 1.0
    processes: int = 1
    client_s: float = 0.0
    machine: bool = False
    window_s: float = 0.0
    users_series: tuple[tuple[float, int], ...] = ()  # Locust's recorded viewer count (seconds → users)
    # operation → seconds after which the load generator gives up on a request (none: it waits)
    client_timeouts: dict[str, float] = field(default_factory=dict)


def _slo_ms(workload: Workload, op: str = "timeline", stat: str = "p95") -> float | None:
    return next((s.limit for s in workload.slos() if s.operation == op and s.stat == stat), None)


def _broke(point: dict[str, Any], limit_ms: float) -> bool:
    return bool(point["p95_ms"] is None or point["p95_ms"] >= limit_ms or point["failures"])


def knee_of(curve: Sequence[dict[str, Any]], limit_ms: float) -> float | None:
    """Highest multiplier held (p95 < limit, no failures) before the first that broke; None if the first
    broke."""
    held: float | None = None
    for point in sorted(curve, key=lambda p: p["multiplier"]):
        if _broke(point, limit_ms):
            break
        held = point["multiplier"]
    return held


def broke_at(curve: Sequence[dict[str, Any]], limit_ms: float) -> float | None:
    """The first multiplier that broke the SLO (None: the whole sweep held — the knee is beyond it)."""
    return next(
        (p["multiplier"] for p in sorted(curve, key=lambda p: p["multiplier"]) if _broke(p, limit_ms)), None
    )


def _model(
    world: DesWorld, options: SimulationOptions, whatif: WhatIf, seed: int, t0: float, first: int
) -> DesModel:
    model = DesModel(
        world,
        options.calibration,
        whatif,
        seed=seed,
        workload=options.workload,
        rate_override=options.rate_override,
        join_burst=options.join_burst,
        t0=t0,
        first_session=first,
        arrivals=options.arrivals,
        pacing_s=options.pacing_s,
        processes=options.processes,
        client_s=options.client_s,
        machine=options.machine,
        users_series=options.users_series,
        client_timeouts=options.client_timeouts,
    )
    if options.window_s > 0:
        env = model.env
        model.results.window_s = options.window_s
        model.results.clock = lambda: env.now
    return model


_FORKED: tuple[DesWorld, SimulationOptions, WhatIf] | None = None  # what forked chunk workers read


def _chunk(k: int) -> tuple[Results, list[tuple[str, int, float, float, int]], int]:
    assert _FORKED is not None
    world, options, whatif = _FORKED
    span = options.duration_s / options.jobs
    model = _model(world, options, whatif, options.seed * 1000 + k, k * span, k * 100_000_000)
    results = model.run(span, drain_s=options.drain_s if k == options.jobs - 1 else 0.0)
    results.clock = None  # a closure over the environment: not sent back to the parent
    return results, [st.totals() for st in model.stations()], model.events()


def _run_chunks(
    world: DesWorld, options: SimulationOptions, whatif: WhatIf
) -> tuple[Results, dict[str, Any], int]:
    """``options.jobs`` consecutive chunks of the duration in forked processes (the world is shared by
    fork, not pickled), merged. Each chunk starts empty (no queue, grant or outage carried over: at
    realistic load the network drains every night) with its own seed (``seed × 1000 + k``) and session
    numbers from ``k × 10⁸`` — deterministic, but not the sessions of a one-process run."""
    global _FORKED
    _FORKED = (world, options, whatif)
    try:
        with multiprocessing.get_context("fork").Pool(options.jobs) as pool:
            parts = pool.map(_chunk, range(options.jobs))
    finally:
        _FORKED = None
    results = Results()
    totals: dict[str, list[float]] = {}
    events = 0
    for part, stations, n in parts:
        results.merge(part)
        events += n
        for name, cap, busy, wait, requests in stations:
            t = totals.setdefault(name, [cap, 0.0, 0.0, 0])
            t[1] += busy
            t[2] += wait
            t[3] += requests
    d = results.duration_s
    resources = {
        name: station_json(int(cap), busy, wait, int(req), d)
        for name, (cap, busy, wait, req) in totals.items()
    }
    return results, resources, events


def run_one(
    world: DesWorld,
    options: SimulationOptions,
    whatif: WhatIf,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """One model run → its figures."""
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if options.jobs > 1:
        results, resources, events = _run_chunks(world, options, whatif)
    else:
        model = _model(world, options, whatif, options.seed, 0.0, 0)
        results = model.run(options.duration_s, progress, drain_s=options.drain_s)
        resources, events = model.resources(), model.events()
        if results.window_s:
            extra["windows"] = results.window_curve()
    wall = time.perf_counter() - started
    ops = results.operations()
    requests = sum(o["count"] for o in ops.values())
    return {
        "whatif": whatif.model_dump(exclude_defaults=True),
        "operations": ops,
        "throughput_per_s": round(requests / options.duration_s, 6),
        "sessions": results.sessions,
        "sessions_per_s": round(results.sessions / options.duration_s, 6),
        "timelines": results.timelines,
        "partial_timelines": results.partial_timelines,
        "partial_share": round(results.partial_timelines / results.timelines, 6)
        if results.timelines
        else 0.0,
        "sources": dict(sorted(results.sources.items())),
        "partial_by_sources": {str(n): v for n, v in sorted(results.partial_by_sources.items())},
        "refused": dict(sorted(results.refused.items())),
        "consent_leaks": results.leaks,
        "resources": resources,
        "events": events,
        "jobs": options.jobs,
        "wall_s": round(wall, 3),
        "events_per_s": round(events / wall) if wall > 0 else 0,
        **extra,
    }


def simulate(
    options: SimulationOptions, progress: Callable[[str, float], None] | None = None
) -> dict[str, Any]:
    """Every what-if of ``options`` on one world; the report dict."""
    shards = options.calibration.machine.gateway_shards
    world = DesWorld.load(options.world, options.workload, options.seed, shards=shards)
    runs = []
    for i, whatif in enumerate(options.whatifs):
        label = f"run {i + 1}/{len(options.whatifs)}"
        cb = (lambda t, label=label: progress(label, t)) if progress else None
        runs.append(run_one(world, options, whatif, cb))
    cal = options.calibration
    report: dict[str, Any] = {
        "format": "rhin-des-report",
        "format_version": 1,
        "world": str(options.world),
        "registered_patients": world.registered,
        "seed": options.seed,
        "duration_s": options.duration_s,
        "workload": {"name": options.workload.name, "shape": options.workload.shape.model_dump()},
        "calibration": {"source": cal.source, "date": cal.date, "machine": cal.machine.model_dump()},
        "mean_sessions_per_s_1x": options.workload.views_per_day(world.registered) / 86_400,
        "runs": runs,
        "sweep": None,
    }
    if options.sweep_key is not None:
        key = options.sweep_key
        report["sweep"] = {"key": key, "values": [w.model_dump()[key] for w in options.whatifs]}
        limit = _slo_ms(options.workload)
        if key == "multiplier" and limit is not None:
            curve = [
                {
                    "multiplier": w.multiplier,
                    "p95_ms": r["operations"].get("timeline", {}).get("p95_ms"),
                    "failures": sum(o["failures"] for o in r["operations"].values()),
                }
                for w, r in zip(options.whatifs, runs, strict=True)
            ]
            report["knee"] = {
                "slo_ms": limit,
                "multiplier": knee_of(curve, limit),
                "broke": broke_at(curve, limit),
                "curve": curve,
            }
    return report
