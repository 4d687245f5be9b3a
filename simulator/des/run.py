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
from .figures import Totals, add_totals, totals_json
from .model import DesModel, Results
from .whatif import WhatIf
from .world import DesWorld

__all__ = [
    "Collected",
    "SimulationOptions",
    "broke_at",
    "collect",
    "knee_of",
    "parse_span",
    "replica_seed",
    "simulate",
    "simulate_pooled",
]

REPLICA_SEED_STEP = 1_000_003  # replica r of seed s: s + r × this, far from seeds picked by hand
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
    replications: int = 1  # runs from as many seeds (replica_seed), merged: the model's own spread shown
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


_FORKED: tuple[DesWorld, SimulationOptions, WhatIf, int] | None = None  # what forked chunk workers read


@dataclass
class Collected:
    """What model runs of the same conditions measured, merged: chunks of one long run, or replicas (runs
    from other seeds, or replaying other live runs of the same conditions) — with each replica's own
    operations kept for the spread between them."""

    results: Results
    stations: dict[str, Totals] = field(default_factory=dict)
    events: int = 0
    replicas: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, other: Collected) -> None:
        """Merge another replica."""
        self.results.merge(other.results, replica=True)
        for name, t in other.stations.items():
            add_totals(self.stations, name, t)
        self.events += other.events
        self.replicas.extend(other.replicas)


def replica_seed(seed: int, r: int) -> int:
    """The model's seed for replica ``r`` of a run seeded ``seed``: replica 0 is the run itself."""
    return seed + REPLICA_SEED_STEP * r


def _chunk(k: int) -> tuple[Results, dict[str, Totals], int]:
    assert _FORKED is not None
    world, options, whatif, seed = _FORKED
    span = options.duration_s / options.jobs
    model = _model(world, options, whatif, seed * 1000 + k, k * span, k * 100_000_000)
    results = model.run(span, drain_s=options.drain_s if k == options.jobs - 1 else 0.0)
    results.clock = None  # a closure over the environment: not sent back to the parent
    return results, {st.name: st.totals() for st in model.stations()}, model.events()


def _collect_chunks(world: DesWorld, options: SimulationOptions, whatif: WhatIf, seed: int) -> Collected:
    """``options.jobs`` consecutive chunks of the duration in forked processes (the world is shared by
    fork, not pickled), merged. Each chunk starts empty (no queue, grant or outage carried over: at
    realistic load the network drains every night) with its own seed (``seed × 1000 + k``) and session
    numbers from ``k × 10⁸`` — deterministic, but not the sessions of a one-process run."""
    global _FORKED
    _FORKED = (world, options, whatif, seed)
    try:
        with multiprocessing.get_context("fork").Pool(options.jobs) as pool:
            parts = pool.map(_chunk, range(options.jobs))
    finally:
        _FORKED = None
    out = Collected(Results())
    for part, stations, n in parts:
        out.results.merge(part)
        out.events += n
        for name, t in stations.items():
            add_totals(out.stations, name, t)
    return out


def _collect_one(
    world: DesWorld,
    options: SimulationOptions,
    whatif: WhatIf,
    seed: int,
    progress: Callable[[float], None] | None,
) -> Collected:
    if options.jobs > 1:
        out = _collect_chunks(world, options, whatif, seed)
    else:
        model = _model(world, options, whatif, seed, 0.0, 0)
        results = model.run(options.duration_s, progress, drain_s=options.drain_s)
        results.clock = None
        out = Collected(results, {st.name: st.totals() for st in model.stations()}, model.events())
    out.replicas.append(out.results.operations())
    return out


def collect(
    world: DesWorld,
    options: SimulationOptions,
    whatif: WhatIf,
    progress: Callable[[float], None] | None = None,
) -> Collected:
    """``options.replications`` runs of one what-if (seeds from :func:`replica_seed`), merged."""
    out: Collected | None = None
    for r in range(options.replications):
        cb = progress
        if progress is not None and options.replications > 1:
            cb = lambda t, r=r: progress((r + t) / options.replications)  # noqa: E731
        part = _collect_one(world, options, whatif, replica_seed(options.seed, r), cb)
        if out is None:
            out = part
        else:
            out.add(part)
    assert out is not None
    return out


def figures(whatif: WhatIf, c: Collected, options: SimulationOptions, wall: float) -> dict[str, Any]:
    """A run's figures from what it collected: rates are per replica (per simulated second of one run)."""
    results = c.results
    d = results.duration_s
    ops = results.operations()
    requests = sum(o["count"] for o in ops.values())
    extra: dict[str, Any] = {}
    if results.window_s:
        extra["windows"] = results.window_curve()
    if len(c.replicas) > 1:
        extra["replicas"] = c.replicas
    return {
        "whatif": whatif.model_dump(exclude_defaults=True),
        "operations": ops,
        "throughput_per_s": round(requests / d, 6) if d else 0.0,
        "sessions": results.sessions,
        "sessions_per_s": round(results.sessions / d, 6) if d else 0.0,
        "timelines": results.timelines,
        "partial_timelines": results.partial_timelines,
        "partial_share": round(results.partial_timelines / results.timelines, 6)
        if results.timelines
        else 0.0,
        "sources": dict(sorted(results.sources.items())),
        "partial_by_sources": {str(n): v for n, v in sorted(results.partial_by_sources.items())},
        "refused": dict(sorted(results.refused.items())),
        "consent_leaks": results.leaks,
        "resources": {name: totals_json(t, d) for name, t in c.stations.items()},
        "events": c.events,
        "jobs": options.jobs,
        "replications": len(c.replicas),
        "wall_s": round(wall, 3),
        "events_per_s": round(c.events / wall) if wall > 0 else 0,
        **extra,
    }


def run_one(
    world: DesWorld,
    options: SimulationOptions,
    whatif: WhatIf,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """One what-if's model run (its replicas merged) → its figures."""
    started = time.perf_counter()
    c = collect(world, options, whatif, progress)
    return figures(whatif, c, options, time.perf_counter() - started)


def simulate(
    options: SimulationOptions, progress: Callable[[str, float], None] | None = None
) -> dict[str, Any]:
    """Every what-if of ``options`` on one world; the report dict."""
    world = _world(options)
    runs = []
    for i, whatif in enumerate(options.whatifs):
        label = f"run {i + 1}/{len(options.whatifs)}"
        cb = (lambda t, label=label: progress(label, t)) if progress else None
        runs.append(run_one(world, options, whatif, cb))
    return _report(options, world, runs)


def simulate_pooled(option_sets: Sequence[SimulationOptions]) -> dict[str, Any]:
    """One what-if under several sets of conditions that differ only in what a replay takes from each
    live run (its users over time, its generator's CPU, its span): each set's replications, all merged
    into one run — the model's side of a comparison with several live runs pooled. The world, seed,
    workload and what-if are the first set's (the caller checks they agree)."""
    if not option_sets:
        raise ValueError("no conditions to simulate")
    first = option_sets[0]
    if len(first.whatifs) != 1:
        raise ValueError("pooled replays take exactly one what-if")
    world = _world(first)
    started = time.perf_counter()
    merged: Collected | None = None
    for options in option_sets:
        part = collect(world, options, first.whatifs[0])
        if merged is None:
            merged = part
        else:
            merged.add(part)
    assert merged is not None
    run = figures(first.whatifs[0], merged, first, time.perf_counter() - started)
    return _report(first, world, [run])


def _world(options: SimulationOptions) -> DesWorld:
    return DesWorld.load(
        options.world, options.workload, options.seed, shards=options.calibration.machine.gateway_shards
    )


def _report(options: SimulationOptions, world: DesWorld, runs: list[dict[str, Any]]) -> dict[str, Any]:
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
