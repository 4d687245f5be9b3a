"""``rhin load``: the typer command (registered in :mod:`harness.cli` with one line)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness.backends import Backend, DockerHost

__all__ = ["load_cmd", "parse_duration"]


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1h`` → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if m is None:
        raise typer.BadParameter(f"{text!r}: write e.g. 30s, 10m or 1h")
    return float(m[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[m[2]]


# The command's options, declared apart so that the command reads as what it does.
_World = Annotated[
    Path, typer.Option("--world", help="World directory (its reference network is the target).")
]
_Target = Annotated[Path | None, typer.Option("--target", help="An external hub's target YAML instead.")]
_Workload = Annotated[Path | None, typer.Option("--workload", help="Workload YAML (default: bundled).")]
_Shape = Annotated[
    str | None, typer.Option("--shape", help="peak | diurnal | step (default: the workload's).")
]
_Multiplier = Annotated[float | None, typer.Option("--multiplier", help="× the realistic weekday peak.")]
_Users = Annotated[
    int | None, typer.Option("--users", min=1, help="Top of the viewer pool (default: sized).")
]
_Duration = Annotated[str, typer.Option("--duration", help="e.g. 60s, 10m.")]
_Processes = Annotated[int, typer.Option("--processes", min=1, help="Locust workers (>1: master + N).")]
_Slo = Annotated[list[str] | None, typer.Option("--slo", help="e.g. 'timeline.p95<800ms' (repeatable).")]
_Report = Annotated[Path | None, typer.Option("--report", help="Report folder (reports/load-<time>).")]
_Seed = Annotated[int, typer.Option("--seed")]
_Rate = Annotated[float | None, typer.Option("--rate", help="Sessions/s at 1× instead of the world's peak.")]
_ThinkScale = Annotated[float, typer.Option("--think-scale", min=0, help="Think times × this (0: none).")]
_NoFeeds = Annotated[bool, typer.Option("--no-feeds", help="Viewers only, no ITI-8 feeder.")]
_NoLinks = Annotated[bool, typer.Option("--no-links", help="Reference network without link models.")]
_ScryptCost = Annotated[int, typer.Option("--scrypt-cost", min=4, max=20, help="Reference hub's login cost.")]
_Ui = Annotated[bool, typer.Option("--ui", help="Locust's web UI instead of a headless run.")]
_Master = Annotated[bool, typer.Option("--master", help="Multi-host: be the Locust master.")]
_ExpectWorkers = Annotated[int, typer.Option("--expect-workers", min=1, help="With --master.")]
_Worker = Annotated[bool, typer.Option("--worker", help="Multi-host: be a worker (needs --target).")]
_MasterHost = Annotated[str, typer.Option("--master-host", help="With --worker.")]
_MasterPort = Annotated[
    int, typer.Option("--master-port", min=1, max=65535, help="Multi-host: the master's port (both sides).")
]


def load_cmd(
    world: _World = Path("worlds/mini"),
    target: _Target = None,
    workload: _Workload = None,
    shape: _Shape = None,
    multiplier: _Multiplier = None,
    users: _Users = None,
    duration: _Duration = "60s",
    processes: _Processes = 1,
    slo: _Slo = None,
    report: _Report = None,
    seed: _Seed = 42,
    rate: _Rate = None,
    think_scale: _ThinkScale = 1.0,
    no_feeds: _NoFeeds = False,
    no_links: _NoLinks = False,
    scrypt_cost: _ScryptCost = 14,
    ui: _Ui = False,
    master: _Master = False,
    expect_workers: _ExpectWorkers = 1,
    worker: _Worker = False,
    master_host: _MasterHost = "127.0.0.1",
    master_port: _MasterPort = 5557,
    backend: Backend = "process",
    docker_host: DockerHost = None,
) -> None:
    """Load the network like its facilities would: viewers (login, PDQ/PIX, timeline, fetch) and ITI-8 feeds,
    shaped by the workload; exact percentiles, report.json + report.html. Exit 1 when an SLO is broken or any
    consent leak was seen."""
    import datetime as dt

    from harness.scenarios.errors import ScenarioError
    from simulator.workload import WorkloadError

    from .run import LoadError, LoadOptions, run_load

    if shape not in (None, "peak", "diurnal", "step"):
        raise typer.BadParameter(f"--shape {shape!r}: one of peak, diurnal, step")
    if backend not in ("process", "docker"):
        raise typer.BadParameter(f"--backend {backend!r}: process or docker")
    if worker and target is None:
        raise typer.BadParameter("--worker needs --target (the hub every host reaches)")
    folder = report or Path("reports") / f"load-{dt.datetime.now():%Y%m%d-%H%M%S}"
    options = LoadOptions(
        world=world,
        report=folder,
        target_file=target,
        workload_file=workload,
        shape=shape,  # type: ignore[arg-type]
        multiplier=multiplier,
        users=users,
        duration_s=parse_duration(duration),
        processes=processes,
        slo=tuple(slo or ()),
        seed=seed,
        rate=rate,
        think_scale=think_scale,
        feeds=not no_feeds,
        links=not no_links,
        scrypt_cost=scrypt_cost,
        ui=ui,
        role="master" if master else "worker" if worker else "local",
        master_host=master_host,
        master_port=master_port,
        expect_workers=expect_workers,
        backend=backend,
        docker_host=docker_host,
    )
    console = Console()
    try:
        outcome = run_load(options)
    except (LoadError, WorkloadError, ScenarioError) as exc:
        console.print(f"[red]rhin load:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if options.role == "worker":
        raise typer.Exit(0)
    _print_outcome(console, outcome.report, outcome.files)
    raise typer.Exit(0 if outcome.ok else 1)


def _print_outcome(console: Console, r: dict[str, Any], files: dict[str, Path]) -> None:
    """The run's figures in the terminal: exact percentiles per operation, SLOs, the knee, leaks, files."""
    table = Table(title="rhin load: exact percentiles (ms)")
    for col in ("operation", "count", "failures", "p50", "p95", "p99", "max", "req/s"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for name, o in r["operations"].items():
        table.add_row(
            name, str(o["count"]), str(o["failures"]), f"{o['p50_ms']:.1f}", f"{o['p95_ms']:.1f}",
            f"{o['p99_ms']:.1f}", f"{o['max_ms']:.1f}", f"{o['per_s']:.2f}",
        )  # fmt: skip
    console.print(table)
    for s in r["slo"]:
        colour = "green" if s["ok"] else "red"
        console.print(f"[{colour}]{'held' if s['ok'] else 'BROKEN'}[/] {s['slo']} (measured {s['value']})")
    if "step" in r:
        from .stats import knee_text

        console.print(knee_text(r["step"]))
    console.print(f"consent leaks: {r['verdict']['consent_leaks']}")
    for kind, path in files.items():
        console.print(f"  {kind}: {path}", highlight=False)
