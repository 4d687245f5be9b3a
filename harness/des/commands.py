"""``rhin calibrate`` and ``rhin simulate``: the typer commands (registered in :mod:`harness.cli`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["calibrate_cmd", "simulate_cmd"]


def calibrate_cmd(
    world: Annotated[Path, typer.Option("--world", help="World directory.")] = Path("worlds/mini"),
    target: Annotated[
        Path | None, typer.Option("--target", help="An external hub's target YAML instead.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Calibration YAML to write.")] = Path("calibration.yaml"),
    sessions: Annotated[int, typer.Option("--sessions", min=1, help="Viewer sessions to measure.")] = 40,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    scrypt_cost: Annotated[
        int, typer.Option("--scrypt-cost", min=4, max=20, help="Reference hub's login cost (as rhin load).")
    ] = 14,
    client_seconds: Annotated[
        float,
        typer.Option(
            "--client-seconds", min=0, help="Then a light Locust run this long: the client parts (0: none)."
        ),
    ] = 0.0,
    client_rate: Annotated[
        float, typer.Option("--client-rate", min=0.01, help="Its sessions/s (think times on, links off).")
    ] = 1.0,
    processes: Annotated[int, typer.Option("--processes", min=1, help="Its Locust processes.")] = 2,
    gateway_lists: Annotated[
        int,
        typer.Option(
            "--gateway-lists",
            min=0,
            max=1000,  # the Theil-Sen fit compares every two points: bounded, as every input is
            help="Cold listings per gateway shard beyond the sessions' (list fit).",
        ),
    ] = 100,
) -> None:
    """Measure the network's service times at low load (links off) and write the model's calibration."""
    from harness.load.run import LoadError
    from harness.scenarios.errors import TargetError
    from simulator.des.calibration import write_calibration
    from simulator.workload import WorkloadError

    from .calibrate import CalibrationRunError, calibrate, describe, warnings

    console = Console()
    try:
        cal = calibrate(
            world,
            target,
            sessions=sessions,
            seed=seed,
            scrypt_cost=scrypt_cost,
            client_seconds=client_seconds,
            client_rate=client_rate,
            processes=processes,
            gateway_lists=gateway_lists,
        )
    except (CalibrationRunError, TargetError, WorkloadError, LoadError) as exc:
        console.print(f"[red]rhin calibrate:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    write_calibration(cal, out)
    for name, text in describe(cal):
        console.print(f"  {name}: {text}", highlight=False)
    for text in warnings(cal):
        console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)
    console.print(f"calibration: {out}", highlight=False)


def simulate_cmd(
    world: Annotated[Path, typer.Option("--world", help="World directory.")] = Path("worlds/mini"),
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="From rhin calibrate (default: nominal guesses).")
    ] = None,
    workload: Annotated[
        Path | None, typer.Option("--workload", help="Workload YAML (default: bundled).")
    ] = None,
    shape: Annotated[
        str | None, typer.Option("--shape", help="peak | diurnal | step (default: the workload's).")
    ] = None,
    duration: Annotated[str, typer.Option("--duration", help="e.g. 3600, 10m, 1d, 1y.")] = "1d",
    what_if: Annotated[
        list[str] | None, typer.Option("--what-if", help="key=value (repeatable), e.g. hub_cores=4.")
    ] = None,
    overlay: Annotated[
        Path | None, typer.Option("--what-if-file", help="A YAML overlay of what-if keys.")
    ] = None,
    sweep: Annotated[
        str | None, typer.Option("--sweep", help="key=v1,v2,… : one run per value (a curve).")
    ] = None,
    validate: Annotated[
        list[Path] | None,
        typer.Option(
            "--validate",
            help="A rhin load report to replay and compare (repeatable: repeats of one command, pooled).",
        ),
    ] = None,
    replications: Annotated[
        int,
        typer.Option(
            "--replications",
            min=1,
            help="Model runs from other seeds, pooled (with --validate: per load run).",
        ),
    ] = 1,
    replay: Annotated[
        str,
        typer.Option(
            "--replay", help="With --validate: locust (its paced users, CPU, shared cores) or poisson."
        ),
    ] = "locust",
    service_times: Annotated[
        str,
        typer.Option(
            "--service-times",
            help="With --validate: speed (the calibration at each load run's machine speed readings), "
            "calibration (as measured) or measured (the run's own CPU per process: checks the queueing).",
        ),
    ] = "speed",
    report: Annotated[
        Path | None, typer.Option("--report", help="Report folder (reports/simulate-<time>).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, help="Cut the duration into N chunks run in parallel (long runs).")
    ] = 1,
) -> None:
    """Predict the network in SimPy time: latency per operation, throughput, utilisation, queues, partial
    timelines; what-ifs and sweeps; or replay a load run (--validate) and print predicted vs measured."""
    from simulator.des import CalibrationError, WhatIf, WhatIfError, nominal_calibration
    from simulator.des.calibration import load_calibration
    from simulator.des.run import SimulationOptions, parse_span, simulate
    from simulator.des.whatif import apply_pairs, load_overlay, parse_sweep
    from simulator.workload import WorkloadError, default_workload, load_workload

    from .report import write_report
    from .validate import ValidationError
    from .validate import validate as run_validation

    console = Console()
    folder = report or Path("reports") / f"simulate-{dt.datetime.now():%Y%m%d-%H%M%S}"
    try:
        cal = load_calibration(calibration) if calibration else nominal_calibration()
        if validate:
            result = run_validation(
                validate, cal, arrivals=replay, replications=replications, service_times=service_times
            )
        else:
            if shape not in (None, "peak", "diurnal", "step"):
                raise WorkloadError(f"--shape {shape!r}: one of peak, diurnal, step")
            wl = load_workload(workload) if workload else default_workload()
            if shape is not None:
                spec = {"kind": shape}
                if shape == "diurnal":
                    spec["day_s"] = 86_400  # type: ignore[assignment]
                wl = wl.model_copy(update={"shape": wl.shape.model_copy(update=spec)})
            base = load_overlay(overlay) if overlay else WhatIf()
            base = apply_pairs(what_if or [], base)
            key, whatifs = parse_sweep(sweep, base) if sweep else (None, [base])
            options = SimulationOptions(
                world=world,
                calibration=cal,
                workload=wl,
                whatifs=whatifs,
                duration_s=parse_span(duration),
                seed=seed,
                sweep_key=key,
                jobs=jobs,
                replications=replications,
            )
            result = simulate(options)
    except (CalibrationError, WhatIfError, WorkloadError, ValidationError, ValueError) as exc:
        console.print(f"[red]rhin simulate:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    _print(console, result)
    files = write_report(result, folder)
    for kind, path in files.items():
        console.print(f"  {kind}: {path}", highlight=False)


def _print(console: Console, result: dict[str, Any]) -> None:
    if result.get("validation"):
        from .validate import beyond_goals_text, service_times_text

        v = result["validation"]
        table = Table(title="predicted vs measured (ms; errors relative to measured)")
        for col in ("operation", "n meas", "n pred", "p50 meas", "p50 pred", "err", "p95 meas", "p95 pred",
                    "err", "req/s meas", "req/s pred", "err", "goal"):  # fmt: skip
            table.add_column(col, justify="left" if col == "operation" else "right")
        for r in v["rows"]:
            table.add_row(
                r["operation"], str(r["measured_count"]), str(r["predicted_count"]),
                _f(r["measured_p50_ms"]), _f(r["predicted_p50_ms"]), _pct(r["p50_error"]),
                _f(r["measured_p95_ms"]), _f(r["predicted_p95_ms"]), _pct(r["p95_error"]),
                _f(r["measured_per_s"]), _f(r["predicted_per_s"]), _pct(r["per_s_error"]),
                {True: "met", False: "missed", None: "-"}[r["within_goal"]],
            )  # fmt: skip
        console.print(table)
        t = v["throughput"]
        console.print(
            f"throughput: measured {t['measured_per_s']:.3f}/s, predicted {t['predicted_per_s']:.3f}/s "
            f"({_pct(t['error'])}); {v['within_goal']} of {v['judged']} judged operations within the goals"
            + beyond_goals_text(v),
            highlight=False,
        )
        cpu = ", ".join(
            f"{name} {c['measured_pct']}/{c['predicted_pct']} %" for name, c in (v.get("cpu") or {}).items()
        )
        if cpu:
            console.print(f"CPU, measured/predicted (% of a core): {cpu}", highlight=False)
        console.print(service_times_text(v["replay"].get("service_times")), highlight=False)
        _print_spread(console, v)
        if v.get("knee"):
            k = v["knee"]
            console.print(
                f"knee (timeline p95 < {k['slo_ms']:g} ms): measured {k['measured']['held']}×, predicted "
                f"{k['predicted']['held']}× ({_pct(k['error'])})",
                highlight=False,
            )
        return
    for i, run in enumerate(result["runs"]):
        table = Table(title=f"run {i + 1}: {run['whatif'] or 'as calibrated'}")
        for col in ("operation", "count", "failures", "refused", "p50", "p95", "p99", "req/s"):
            table.add_column(col, justify="left" if col == "operation" else "right")
        for name, o in run["operations"].items():
            table.add_row(
                name, str(o["count"]), str(o["failures"]), str(o["refused"]), _f(o["p50_ms"]),
                _f(o["p95_ms"]), _f(o["p99_ms"]), _f(o["per_s"]),
            )  # fmt: skip
        console.print(table)
        util = ", ".join(f"{k} {v['utilisation'] * 100:.1f} %" for k, v in run["resources"].items())
        console.print(
            f"utilisation: {util}; partial timelines {run['partial_share'] * 100:.2f} %; consent leaks "
            f"{run['consent_leaks']}; {run['events']} events in {run['wall_s']} s",
            highlight=False,
        )
    if result.get("knee"):
        from .report import knee_text

        console.print(knee_text(result["knee"]), highlight=False)


def _print_spread(console: Console, v: dict[str, Any]) -> None:
    """Each live run's and each model replica's p50 and p95 (ms), when there are several."""
    rows = [r for r in v["rows"] if r["measured_count"] and r["predicted_count"]]
    if not any("measured_runs_p50_ms" in r or "predicted_replicas_p50_ms" in r for r in rows):
        return
    table = Table(title="each live run and each model replica (ms)")
    for col in ("operation", "p50 live runs", "p50 model", "p95 live runs", "p95 model", "live spread"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for r in rows:
        table.add_row(
            r["operation"],
            _range(r.get("measured_runs_p50_ms")),
            _range(r.get("predicted_replicas_p50_ms")),
            _range(r.get("measured_runs_p95_ms")),
            _range(r.get("predicted_replicas_p95_ms")),
            _pct(r.get("live_spread")),
        )
    console.print(table)
    if v.get("live_within_goal") is not None:
        console.print(
            f"one live run predicts another within {v['goals']['p50_error'] * 100:g} % (p50 and p95) on "
            f"{v['live_within_goal']} of {v['judged']} judged operations",
            highlight=False,
        )


def _range(values: list[float | None] | None) -> str:
    return " ".join(_f(x) for x in values) if values else ""


def _f(v: Any) -> str:
    return "" if v is None else f"{v:.4g}"


def _pct(v: Any) -> str:
    return "" if v is None else f"{v * 100:+.1f} %"
