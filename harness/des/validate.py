"""``rhin simulate --validate LOAD_REPORT``: replay a ``rhin load`` run's conditions in the model and set
predicted beside measured, per operation.

The conditions come from the load report (``report.json``: world, seed, workload file, shape, multiplier,
duration, whether links were on) and the ``load-config.json`` Locust read beside it (rate override, think
scale, feeds, pacing, processes). The model then runs the same sessions (:meth:`WorldPlan.session` by
index), the same shape (:class:`Rates`) and, with feeds, the same "facility joins" burst, cut at the run's
end as Locust stops its users (no drain: sessions still thinking then never log out, in both).

Two replays (``arrivals``):

* ``locust`` (the default): the load run as Locust made it, not an idealised one — its user pool paced
  at ``pacing_s`` and started in bursts (:mod:`simulator.des.arrivals`), as large as Locust recorded it
  over time (``locust_stats_history.csv``: a run can lose users mid-way), its processes, each request's
  client part on them (the calibration's ``client`` times, of which the CPU the run spent per request —
  the ``raw.csv.cpu-*`` files each Locust process leaves, summed over the requests measured — is computed
  on the cores and the rest passes as a delay; for a calibration without client times that CPU is the
  whole client part), all on the machine's cores with the hub and the gateways (``machine``). The
  session rate is then an *output*: the throughput comparison means something.
* ``poisson``: the earlier, idealised replay — Poisson arrivals at the rate Locust *achieved*
  (``sizing.achieved_sessions_per_s``), no generator, no shared cores. Kept to show what each gap costs.

A step-shape run is replayed with its steps as windows: the model's step curve and knee are read by the
load report's own rules (:func:`harness.load.stats.knee`; each step's first fifth left out).

Repeats: a single live run is one draw of a noisy system (two runs of the same ``rhin load`` command here
differed by up to 64 % in a login p50, 38 % in a PDQ p95), and so is one model run (its seed). Several
repeats of one load command (:func:`check_repeats`) are pooled — every request of every run in one set of
statistics, by the load report's own rules — and each is replayed ``replications`` times from other model
seeds (:func:`simulator.des.run.replica_seed`), pooled the same way; the rows keep every run's and every
replica's p50 and p95 and the live runs' own spread (:func:`spreads`: how far one live run misses
another, by the same measure), so a reader sees what a miss is worth.

Service times (``service_times``): the calibration's CPU times describe the machine when it was
calibrated, and here the same code ran up to 2× apart within hours. Three replays:

* ``speed`` (the default): ``rhin calibrate`` and ``rhin load`` both read the machine's speed
  (:mod:`harness.load.speed`: the thread CPU of a fixed piece of Python and of one scrypt hash), and each
  run is replayed with the calibration at that run's speed (:func:`speed_factors`,
  :meth:`Calibration.at_speed`). Without either reading (files from before it) it is ``calibration``.
* ``calibration``: the calibration's times as measured.
* ``measured``: the run's own service demands (the utilisation law, D = U / X): a first replay gives the
  model's CPU for the hub, its password worker and the gateway shards; the calibration is scaled so that
  each equals what the run measured (:func:`measured_factors`), and replayed again. It takes an output of
  the run as an input — it checks the model's queueing given the demands, not the calibration's
  prediction — and separates the two sources of error.

Errors are relative, ``(predicted − measured) / measured``; the issue's goal is |p50|, |p95| ≤ 15 % and
|throughput| ≤ 5 % per operation. Besides the count of operations within the goals, each judged row has
``beyond_goal``: how far its errors go past their limits, summed (0 within the goals; a p95 25 % off adds
0.10), and the validation their sum. A count jumps when an error crosses its limit by a hair either way
(a model change that only reorders the random draws moves the rows near 15 % across it), while the sum
moves with the size of the misses: the figure to compare two models on. Operations with fewer than
``MIN_COUNT`` (100) measured requests are listed but not judged: below that a p95 rests on fewer than
five requests beyond it, and the measurement's own spread exceeds ±15 % (the nearest-rank p95 of 22
requests is their second largest).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from harness.load.config import HTTP_TIMEOUT_S
from harness.load.stats import RawRow, knee, op_stats, read_raw, step_multipliers
from simulator.des import Calibration, WhatIf
from simulator.des.run import SimulationOptions, simulate, simulate_pooled
from simulator.workload import Workload, default_workload, load_workload

__all__ = [
    "GOALS",
    "MAX_JSON_BYTES",
    "MIN_COUNT",
    "SERVICE_TIMES",
    "Factors",
    "ValidationError",
    "beyond_goals_text",
    "check_repeats",
    "compare",
    "cpu_comparison",
    "measured_factors",
    "pooled_measurement",
    "replay_options",
    "service_times_text",
    "speed_factors",
    "spreads",
    "validate",
]

GOALS: Final = {"p50_error": 0.15, "p95_error": 0.15, "per_s_error": 0.05}
SERVICE_TIMES: Final = ("speed", "calibration", "measured")
MIN_COUNT: Final = 100


class ValidationError(ValueError):
    """The load report cannot be read or replayed."""


@dataclass(frozen=True)
class LoadRun:
    report: dict[str, Any]
    config: dict[str, Any]
    path: Path


MAX_JSON_BYTES: Final = 64 * 1024 * 1024
"""The largest load report or load configuration read (a year-long run's report is a few MB: its series
are per-second aggregates, not requests); a larger file is refused before it is read."""


def _json_object(file: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``file``, at most :data:`MAX_JSON_BYTES`; any failure names the file."""
    try:
        size = file.stat().st_size
        if size > MAX_JSON_BYTES:
            limit = MAX_JSON_BYTES >> 20
            raise ValidationError(f"{file}: {size:,} bytes; a {what} over {limit} MiB is not read")
        data = json.loads(file.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {what} {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"{file}: a {what} is a JSON object, not {type(data).__name__}")
    return data


def read_load_run(path: Path) -> LoadRun:
    """A load report (its folder or its ``report.json``) and the ``load-config.json`` beside it."""
    file = path / "report.json" if path.is_dir() else path
    report = _json_object(file, "load report")
    if report.get("format") != "rhin-load-report":
        raise ValidationError(f"{file}: not a rhin load report (format {report.get('format')!r})")
    cfg_file = file.parent / "load-config.json"
    config = _json_object(cfg_file, "load configuration") if cfg_file.is_file() else {}
    return LoadRun(report, config, file)


def _workload(run: LoadRun) -> Workload:
    name = run.report.get("workload", {}).get("file") or ""
    workload = load_workload(Path(name)) if name else default_workload()
    shape = workload.shape.model_copy(
        update={"kind": run.report["shape"], "multiplier": float(run.report["multiplier"])}
    )
    return workload.model_copy(update={"shape": shape})


def client_cpu_per_request(run: LoadRun) -> float:
    """Seconds of load-generator CPU per measured request: every Locust process's ``raw.csv.cpu-<pid>``
    (its CPU over the test, start-up excluded) summed, over the report's requests. 0 when absent."""
    raw = Path(run.config.get("raw_log") or run.path.parent / "raw.csv")
    if not raw.is_absolute() or not raw.parent.is_dir():
        raw = run.path.parent / "raw.csv"
    total = 0.0
    for f in raw.parent.glob(f"{raw.name}.cpu-*"):
        try:
            total += float(f.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            raise ValidationError(f"unreadable generator CPU file {f}: {exc}") from exc
    requests = int(run.report.get("totals", {}).get("requests") or 0)
    return total / requests if requests and total > 0 else 0.0


def recorded_users(run: LoadRun) -> tuple[tuple[float, int], ...]:
    """Locust's own record of its viewer pool (``locust_stats_history.csv``: the ``Aggregated`` rows' user
    count, less the feeder when feeds were on), as (seconds since the first row, viewers). Empty when
    absent. Locust's pool is not always what the shape asked for (a run can lose users mid-way); the
    replay runs the pool the run had."""
    path = run.path.parent / "locust_stats_history.csv"
    if not path.is_file():
        return ()
    feeder = 1 if run.config.get("feeds", True) else 0
    points: list[tuple[float, int]] = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Name") != "Aggregated":
                continue
            try:
                t, users = float(row["Timestamp"]), int(float(row["User Count"]))
            except (KeyError, ValueError) as exc:
                raise ValidationError(f"{path}: unreadable row {row}: {exc}") from exc
            if users > 0:
                points.append((t, max(1, users - feeder)))
    if not points:
        return ()
    t0 = points[0][0]
    out: list[tuple[float, int]] = [(0.0, points[0][1])]
    for t, n in points[1:]:
        if n != out[-1][1]:
            out.append((t - t0, n))
    return tuple(out)


def replay_options(
    run: LoadRun, calibration: Calibration, world: Path | None = None, arrivals: str = "locust"
) -> SimulationOptions:
    """The model run that replays ``run``: same world, seed, workload, shape, duration, links, feeds; with
    ``arrivals="locust"`` also its paced users, processes and generator CPU on the shared cores."""
    if arrivals not in ("locust", "poisson"):
        raise ValidationError(f"replay arrivals {arrivals!r}: locust or poisson")
    r, c = run.report, run.config
    links = bool(r.get("target", {}).get("links", True))
    rate = c.get("rate_override")
    achieved = float(r.get("sizing", {}).get("achieved_sessions_per_s") or 0)
    multiplier = float(r["multiplier"])
    if arrivals == "poisson" and r["shape"] == "peak" and achieved > 0 and multiplier > 0:
        rate = achieved / multiplier
    paced = arrivals == "locust"
    workload = _workload(run)
    whatif = WhatIf(
        links=links,
        think_scale=float(c.get("think_scale", 1.0)),
        feeds=bool(c.get("feeds", True)),
    )
    return SimulationOptions(
        world=world or Path(r["world"]),
        calibration=calibration,
        workload=workload,
        whatifs=[whatif],
        duration_s=float(r.get("measured_s") or r["duration_s"]),
        seed=int(r["seed"]),
        rate_override=rate,
        join_burst=bool(c.get("feeds", True)),
        drain_s=0.0,
        arrivals="paced" if paced else "poisson",
        pacing_s=float(r.get("sizing", {}).get("pacing_s") or c.get("pacing_s") or 1.0),
        processes=int(c.get("processes") or r.get("processes") or 1),
        client_s=client_cpu_per_request(run) if paced else 0.0,
        machine=paced,
        window_s=workload.shape.step_s if r["shape"] == "step" else 0.0,
        users_series=recorded_users(run) if paced else (),
        client_timeouts=_client_timeouts(c) if paced else {},
    )


@dataclass(frozen=True)
class Factors:
    """How a replay scaled the calibration's CPU times (:meth:`Calibration.at_speed`): the hub's, the
    password hash's and the gateways'."""

    hub: float
    hashing: float
    gateways: float


def speed_factors(run: LoadRun, calibration: Calibration) -> Factors | None:
    """How much slower the machine computed during ``run`` than during the calibration: the ratios of the
    readings (Python work for the hub and the gateways, the hash for the password worker); None when
    either side has no reading."""
    read = run.report.get("machine_speed") or {}
    cal = calibration.machine.speed
    python, hashing = read.get("python_ms"), read.get("hash_ms")
    if cal is None or not python or not hashing:
        return None
    ratio = round(float(python) / cal.python_ms, 4)
    return Factors(ratio, round(float(hashing) / cal.hash_ms, 4), ratio)


def measured_factors(cpu: dict[str, Any]) -> Factors | None:
    """From :func:`cpu_comparison` of a replay: per part, the CPU the run measured over the CPU the model
    spent (% of a core each) — the hub, its password worker (1 when the run did not record it), the gateway
    shards together (the hub's factor when not recorded). None without the hub's row: nothing to scale by."""

    def ratio(names: list[str]) -> float | None:
        rows = [cpu[n] for n in names if n in cpu]
        measured = sum(r["measured_pct"] or 0.0 for r in rows)
        predicted = sum(r["predicted_pct"] or 0.0 for r in rows)
        return round(measured / predicted, 4) if rows and measured > 0 and predicted > 0 else None

    hub = ratio(["hub"])
    if hub is None:
        return None
    gateways = ratio(sorted(n for n in cpu if n.startswith("gateways-")))
    return Factors(hub, ratio(["hub-hasher"]) or 1.0, gateways or hub)


def _scaled(calibration: Calibration, f: Factors | None) -> Calibration:
    """The calibration a replay runs with: scaled by ``f``, or as it is."""
    return calibration.at_speed(f.hub, f.hashing, f.gateways) if f else calibration


def service_times_text(st: dict[str, Any] | None) -> str:
    """What a replay made of the calibration's times, in words (the console's and the HTML report's line)."""
    if st is None:
        return "service times: the calibration's (a report from before service-time modes)"

    def each() -> str:
        return "; ".join(
            f"hub × {f['hub']:.3f}, hash × {f['hashing']:.3f}, gateways × {f['gateways']:.3f}"
            if f
            else "as is"
            for f in st["factors"]
        )

    if st["used"] == "speed":
        return f"service times: the calibration's, at each load run's machine speed readings ({each()})"
    if st["used"] == "measured":
        return (
            "service times: the load run's own — the calibration's scaled so that the model's CPU for the "
            f"hub, its password worker and the gateways is what the run measured ({each()}); this checks the "
            "model's queueing, not the calibration"
        )
    why = "asked" if st["asked"] == "calibration" else "the calibration or a load run has no speed reading"
    return f"service times: the calibration's as measured ({why})"


def _client_timeouts(config: dict[str, Any]) -> dict[str, float]:
    """How long Locust's users waited before giving up: HTTP requests :data:`HTTP_TIMEOUT_S`, MLLP
    exchanges the run's ``timeout_s``."""
    mllp = float(config.get("timeout_s") or 10.0)
    http = dict.fromkeys(("login", "logout", "emergency"), HTTP_TIMEOUT_S)
    return {**http, **dict.fromkeys(("pix", "pdq", "pdq_next", "feed", "feed_fresh"), mllp)}


def _err(pred: float | None, meas: float | None) -> float | None:
    if pred is None or not meas:
        return None
    return round((pred - meas) / meas, 4)


def beyond_goal(row: dict[str, Any]) -> float | None:
    """How far a row's errors go past the goals' limits, summed; None when an error is missing."""
    past = 0.0
    for key, limit in GOALS.items():
        error = row.get(key)
        if error is None:
            return None
        past += max(0.0, abs(error) - limit)
    return round(past, 4)


def beyond_goals_text(validation: dict[str, Any]) -> str:
    """The validation's ``beyond_goals`` as a clause to follow its count ("" for a report without it)."""
    total = validation.get("beyond_goals")
    return "" if total is None else f"; errors beyond the goals sum to {total:.3f}"


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
        row["beyond_goal"] = beyond_goal(row) if judged else None
        rows.append(row)
    return rows


def cpu_comparison(measured: dict[str, Any], predicted: dict[str, Any]) -> dict[str, Any]:
    """Per process the load run monitored (hub, its password worker ``hub-hasher``, gateway shards, and the
    whole ``machine``): its mean CPU (% of one core) beside the model's busy share of the station of the
    same name — the hub's event loop for ``hub``, the password worker's, the shard's for ``gateways-i``,
    and for ``machine`` the cores' when the replay shares them (everything the model computes, the load
    generator's requests included; the kernel's and other processes' work is in the measured figure only).
    Load runs from before the password worker and the machine were monitored have neither row."""
    out: dict[str, Any] = {}
    for name, m in measured.items():
        parts = [name]
        busy = [predicted[p]["utilisation"] * predicted[p]["capacity"] for p in parts if p in predicted]
        out[name] = {
            "measured_pct": m.get("cpu_pct_mean"),
            "predicted_pct": round(100 * sum(busy), 2) if busy else None,
        }
    return out


def step_knees(run: LoadRun, options: SimulationOptions, predicted: dict[str, Any]) -> dict[str, Any]:
    """A step run's knee, measured and predicted, by the load report's rule over the step curves."""
    spec = options.workload.shape
    multipliers = step_multipliers(spec.step_start, spec.step_factor, spec.step_max)
    curve = [
        {**w, "multiplier": multipliers[w["window"]]}
        for w in predicted.get("windows", [])
        if w["window"] < len(multipliers)
    ]
    step = run.report.get("step", {})
    limit = float(step.get("slo_ms") or 800.0)
    held, broke = knee(curve, limit)
    measured = step.get("knee_multiplier")
    return {
        "slo_ms": limit,
        "measured": {"held": measured, "broke": step.get("broke_multiplier"), "curve": step.get("curve", [])},
        "predicted": {"held": held, "broke": broke, "curve": curve},
        "error": _err(held, measured),
    }


_SAME_REPORT = ("world", "seed", "shape", "multiplier", "duration_s", "processes")
_SAME_CONFIG = ("rate_override", "think_scale", "feeds", "processes", "timeout_s", "mode", "stop_on_slo")


def _conditions(run: LoadRun) -> dict[str, Any]:
    """What a run's replay is made of and a repeat must share (ports, paths and what Locust recorded —
    its users over time, its CPU — may differ)."""
    out = {f"report {k}": run.report.get(k) for k in _SAME_REPORT}
    out["report workload file"] = run.report.get("workload", {}).get("file") or ""
    out["report target links"] = bool(run.report.get("target", {}).get("links", True))
    out.update({f"load-config {k}": run.config.get(k) for k in _SAME_CONFIG})
    return out


def check_repeats(runs: Sequence[LoadRun]) -> None:
    """Runs pooled must be repeats of one command: the same conditions (:func:`_conditions`), a peak or
    diurnal shape (a step run's curve is read per run, by its own clock)."""
    first = _conditions(runs[0])
    for run in runs[1:]:
        for key, value in _conditions(run).items():
            if value != first[key]:
                raise ValidationError(
                    f"{run.path}: {key} is {value!r}, not {first[key]!r} as in {runs[0].path} — only repeats "
                    "of the same load command pool"
                )
    if len(runs) > 1 and runs[0].report["shape"] == "step":
        raise ValidationError("step-shape load runs are validated one at a time (their knees are per run)")


def _raw_rows(run: LoadRun) -> list[RawRow]:
    path = run.path.parent / "raw.csv"
    try:
        return read_raw(path)
    except (OSError, KeyError, ValueError) as exc:
        raise ValidationError(f"cannot read the raw timings {path} (pooling needs them): {exc}") from exc


def pooled_measurement(runs: Sequence[LoadRun]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The runs as one measurement: per operation the statistics of every run's requests together (the load
    report's own :func:`harness.load.stats.op_stats`, rates over the runs' spans added up), and per
    monitored process the mean of the runs' mean CPU. One run: its report's figures as they are."""
    if len(runs) == 1:
        return runs[0].report["operations"], runs[0].report.get("resources", {})
    rows = [row for run in runs for row in _raw_rows(run)]
    span = sum(float(run.report.get("measured_s") or run.report["duration_s"]) for run in runs)
    ops = {name: st.to_json() for name, st in op_stats(rows, span).items()}
    cpu: dict[str, list[float]] = {}
    for run in runs:
        for name, m in run.report.get("resources", {}).items():
            if m.get("cpu_pct_mean") is not None:
                cpu.setdefault(name, []).append(float(m["cpu_pct_mean"]))
    resources = {
        name: {"cpu_pct_mean": round(sum(v) / len(v), 2)} for name, v in cpu.items() if len(v) == len(runs)
    }
    return ops, resources


def spreads(
    rows: list[dict[str, Any]],
    measured_runs: Sequence[dict[str, dict[str, Any]]],
    predicted_replicas: Sequence[dict[str, dict[str, Any]]],
) -> None:
    """Add to each row its p50 and p95 in every live run (``measured_runs_p50_ms``…) and every model
    replica (``predicted_replicas_p50_ms``…), and ``live_spread``: the largest error one live run makes
    as a prediction of another, ``|a − b| / b`` over ordered pairs of runs, p50 and p95 — how well a
    repeat of the live run itself meets the goals. Nothing is added for a side with a single run."""
    for row in rows:
        op = row["operation"]
        for side, runs in (("measured_runs", measured_runs), ("predicted_replicas", predicted_replicas)):
            if len(runs) < 2:
                continue
            for stat in ("p50_ms", "p95_ms"):
                row[f"{side}_{stat}"] = [r[op][stat] if op in r else None for r in runs]
        gaps = [
            abs(a - b) / b
            for stat in ("p50_ms", "p95_ms")
            for a, b in itertools.permutations(row.get(f"measured_runs_{stat}", []), 2)
            if a is not None and b
        ]
        row["live_spread"] = round(max(gaps), 4) if gaps else None


def validate(
    load_reports: Path | Sequence[Path],
    calibration: Calibration,
    world: Path | None = None,
    arrivals: str = "locust",
    replications: int = 1,
    service_times: str = "speed",
) -> dict[str, Any]:
    """The model replaying the load run(s), with a ``validation`` section (rows from :func:`compare`).
    Several runs must be repeats of one load command (:func:`check_repeats`): each is replayed with what
    Locust recorded of it, ``replications`` times from different model seeds, and the two sides are
    compared pooled (:func:`pooled_measurement`), with each run's and replica's own figures beside.
    ``service_times`` (:data:`SERVICE_TIMES`) says how the calibration's CPU times are taken (see the
    module's docstring)."""
    paths = [load_reports] if isinstance(load_reports, Path) else list(load_reports)
    if not paths:
        raise ValidationError("no load report to validate against")
    if replications < 1:
        raise ValidationError(f"replications {replications}: at least 1")
    if service_times not in SERVICE_TIMES:
        raise ValidationError(f"service times {service_times!r}: one of {', '.join(SERVICE_TIMES)}")
    runs = [read_load_run(p) for p in paths]
    check_repeats(runs)
    measured, resources = pooled_measurement(runs)

    def replays(factors: list[Factors | None]) -> list[SimulationOptions]:
        return [
            replace(replay_options(r, _scaled(calibration, f), world, arrivals), replications=replications)
            for r, f in zip(runs, factors, strict=True)
        ]

    def replay(option_sets: list[SimulationOptions]) -> dict[str, Any]:
        if not option_sets[0].world.is_dir():
            raise ValidationError(f"the load run's world {option_sets[0].world} is not here (pass --world)")
        return simulate(option_sets[0]) if len(option_sets) == 1 else simulate_pooled(option_sets)

    factors: list[Factors | None] = [None] * len(runs)
    if service_times == "speed":
        factors = [speed_factors(r, calibration) for r in runs]
    elif service_times == "measured":
        first = replay(replays(factors))
        found = measured_factors(cpu_comparison(resources, first["runs"][0]["resources"]))
        if found is None:
            raise ValidationError(
                "measured service times need the hub's CPU, which the load run(s) did not record"
            )
        factors = [found] * len(runs)
    used = service_times if any(factors) else "calibration"
    option_sets = replays(factors)
    options = option_sets[0]
    report = replay(option_sets)
    predicted = report["runs"][0]
    rows = compare(measured, predicted["operations"])
    spreads(rows, [r.report["operations"] for r in runs], predicted.get("replicas", []))
    judged = [r for r in rows if r["within_goal"] is not None]
    measured_total = sum(o["per_s"] for o in measured.values())
    report["validation"] = {
        "load_report": str(runs[0].path),
        "load_reports": [str(r.path) for r in runs],
        "replications": replications,
        "goals": GOALS,
        "rows": rows,
        "judged": len(judged),
        "within_goal": sum(1 for r in judged if r["within_goal"]),
        "beyond_goals": round(sum(r["beyond_goal"] or 0.0 for r in judged), 4),
        "live_within_goal": sum(
            1 for r in judged if r["live_spread"] is not None and r["live_spread"] <= GOALS["p50_error"]
        )
        if len(runs) > 1
        else None,
        "throughput": {
            "measured_per_s": measured_total,
            "predicted_per_s": predicted["throughput_per_s"],
            "error": _err(predicted["throughput_per_s"], measured_total),
        },
        "replay": {
            "arrivals": arrivals,
            "pacing_s": options.pacing_s,
            "processes": options.processes,
            "client_cpu_ms_per_request": [round(o.client_s * 1000, 4) for o in option_sets]
            if len(option_sets) > 1
            else round(options.client_s * 1000, 4),
            "machine_cores": calibration.machine.cores if options.machine else None,
            "service_times": {
                "asked": service_times,
                "used": used,
                "factors": [dataclasses.asdict(f) if f else None for f in factors],
            },
            "recorded_users": [list(p) for p in options.users_series],
        },
        "cpu": cpu_comparison(resources, predicted["resources"]),
    }
    if runs[0].report["shape"] == "step":
        report["validation"]["knee"] = step_knees(runs[0], options, predicted)
    return report
