"""``rhin simulate --validate LOAD_REPORT``: replay a ``rhin load`` run's conditions in the model and set
predicted beside measured, per operation.

The conditions come from the load report (``report.json``: world, seed, workload file, shape, multiplier,
duration, whether links were on) and the ``load-config.json`` Locust read beside it (rate override, think
scale, feeds). The model then runs the same sessions (:meth:`WorldPlan.session` by index), the same shape
(:class:`Rates`) and, with feeds, the same "facility joins" burst. Two choices, so that the comparison is of
the network and not of Locust's pacing: for the ``peak`` shape the model's session rate is the rate Locust
*achieved* (``sizing.achieved_sessions_per_s``), and the run is cut at its end as Locust stops its users
(no drain: sessions still thinking when the run ends never log out, in both).

Errors are relative, ``(predicted − measured) / measured``; the issue's goal is |p50|, |p95| ≤ 15 % and
|throughput| ≤ 5 % per operation. Operations with fewer than ``MIN_COUNT`` measured requests are listed but
not judged (a p95 of three requests says nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from simulator.des import Calibration, WhatIf
from simulator.des.run import SimulationOptions, simulate
from simulator.workload import Workload, default_workload, load_workload

__all__ = ["GOALS", "MIN_COUNT", "ValidationError", "compare", "replay_options", "validate"]

GOALS: Final = {"p50_error": 0.15, "p95_error": 0.15, "per_s_error": 0.05}
MIN_COUNT: Final = 20


class ValidationError(ValueError):
    """The load report cannot be read or replayed."""


@dataclass(frozen=True)
class LoadRun:
    report: dict[str, Any]
    config: dict[str, Any]
    path: Path


def read_load_run(path: Path) -> LoadRun:
    """A load report (its folder or its ``report.json``) and the ``load-config.json`` beside it."""
    file = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read load report {file}: {exc}") from exc
    if report.get("format") != "rhin-load-report":
        raise ValidationError(f"{file}: not a rhin load report (format {report.get('format')!r})")
    config: dict[str, Any] = {}
    cfg_file = file.parent / "load-config.json"
    if cfg_file.is_file():
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    return LoadRun(report, config, file)


def _workload(run: LoadRun) -> Workload:
    name = run.report.get("workload", {}).get("file") or ""
    workload = load_workload(Path(name)) if name else default_workload()
    shape = workload.shape.model_copy(
        update={"kind": run.report["shape"], "multiplier": float(run.report["multiplier"])}
    )
    return workload.model_copy(update={"shape": shape})


def replay_options(run: LoadRun, calibration: Calibration, world: Path | None = None) -> SimulationOptions:
    """The model run that replays ``run``: same world, seed, workload, shape, duration, links, feeds."""
    r, c = run.report, run.config
    links = bool(r.get("target", {}).get("links", True))
    rate = c.get("rate_override")
    achieved = float(r.get("sizing", {}).get("achieved_sessions_per_s") or 0)
    multiplier = float(r["multiplier"])
    if r["shape"] == "peak" and achieved > 0 and multiplier > 0:
        rate = achieved / multiplier
    whatif = WhatIf(
        links=links,
        think_scale=float(c.get("think_scale", 1.0)),
        feeds=bool(c.get("feeds", True)),
    )
    return SimulationOptions(
        world=world or Path(r["world"]),
        calibration=calibration,
        workload=_workload(run),
        whatifs=[whatif],
        duration_s=float(r.get("measured_s") or r["duration_s"]),
        seed=int(r["seed"]),
        rate_override=rate,
        join_burst=bool(c.get("feeds", True)),
        drain_s=0.0,
    )


def _err(pred: float | None, meas: float | None) -> float | None:
    if pred is None or not meas:
        return None
    return round((pred - meas) / meas, 4)


def compare(
    measured: dict[str, dict[str, Any]], predicted: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per operation seen in either, measured first; errors relative to the measurement, and
    ``within_goal`` (None when not judged: too few requests, or one side missing)."""
    rows = []
    for op in [*measured, *(o for o in predicted if o not in measured)]:
        m, p = measured.get(op), predicted.get(op)
        row: dict[str, Any] = {
            "operation": op,
            "measured_count": m["count"] if m else 0,
            "predicted_count": p["count"] if p else 0,
        }
        for stat in ("p50_ms", "p95_ms", "per_s"):
            mv = m.get(stat) if m else None
            pv = p.get(stat) if p else None
            row[f"measured_{stat}"] = mv
            row[f"predicted_{stat}"] = pv
            row[f"{stat.removesuffix('_ms')}_error"] = _err(pv, mv)
        judged = bool(m and p and m["count"] >= MIN_COUNT)
        row["within_goal"] = (
            all(row[k] is not None and abs(row[k]) <= limit for k, limit in GOALS.items()) if judged else None
        )
        rows.append(row)
    return rows


def validate(load_report: Path, calibration: Calibration, world: Path | None = None) -> dict[str, Any]:
    """The model replaying the load run, with a ``validation`` section (rows from :func:`compare`)."""
    run = read_load_run(load_report)
    options = replay_options(run, calibration, world)
    if not options.world.is_dir():
        raise ValidationError(f"the load run's world {options.world} is not here (pass --world)")
    report = simulate(options)
    rows = compare(run.report["operations"], report["runs"][0]["operations"])
    judged = [r for r in rows if r["within_goal"] is not None]
    measured_total = sum(o["per_s"] for o in run.report["operations"].values())
    report["validation"] = {
        "load_report": str(run.path),
        "goals": GOALS,
        "rows": rows,
        "judged": len(judged),
        "within_goal": sum(1 for r in judged if r["within_goal"]),
        "throughput": {
            "measured_per_s": measured_total,
            "predicted_per_s": report["runs"][0]["throughput_per_s"],
            "error": _err(report["runs"][0]["throughput_per_s"], measured_total),
        },
    }
    return report
