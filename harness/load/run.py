"""``rhin load``'s work: start (or reach) the target, run Locust on ``loadtests/locustfile.py``, then compute
the report from the raw timings and decide the exit code.

Locust runs as a subprocess (``python -m locust``): it monkey-patches the standard library on import, so
the harness never imports it (only ``loadtests`` does). ``processes > 1`` is Locust's own ``--processes``
(a master and N forked workers); ``role="master"``/``"worker"`` is the multi-host form. Headless runs show
Locust's live statistics in the terminal and write its CSV and HTML beside ours.

Sizing. Viewers pace themselves: each starts a session every ``pacing_s`` seconds, so the session rate is
users ÷ pacing. Pacing is 1.5 × the expected session time (think times + a second of requests), so a
healthy hub gets the rate asked for; ``users`` fixes the top of the user pool instead (pacing = users ÷ the
highest rate). When the hub is slower than the pacing allows, the rate falls short — the report gives the
achieved rate beside the target.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from harness.scenarios.world import WorldIndex
from harness.targets import ReferenceOptions, Target, load_target, reference_target
from simulator.workload import Rates, Slo, Workload, default_workload, load_workload, parse_slo

from .config import CONFIG_ENV, LoadConfig
from .monitor import ProcessMonitor
from .report import write_report
from .speed import SpeedProbe
from .stats import (
    knee,
    leaks,
    op_stats,
    per_facility,
    read_raw,
    slo_results,
    step_curve,
    step_multipliers,
    time_series,
)

__all__ = ["LoadError", "LoadOptions", "LoadOutcome", "local_processes_argv", "monitored_pids", "run_load"]


class LoadError(Exception):
    """The load run could not be set up or Locust failed to run."""


def _locustfile() -> Path:
    """loadtests/locustfile.py wherever the package is installed (found without importing it: importing
    locust monkey-patches the standard library, which the harness must not undergo)."""
    spec = importlib.util.find_spec("loadtests")
    if spec is None or spec.origin is None:
        raise LoadError("the loadtests package is not installed")
    return Path(spec.origin).parent / "locustfile.py"


LOCUSTFILE: Final = _locustfile()
ROOT: Final = LOCUSTFILE.parents[1]


@dataclass(frozen=True)
class LoadOptions:
    world: Path
    report: Path
    target_file: Path | None = None
    workload_file: Path | None = None
    shape: Literal["peak", "diurnal", "step"] | None = None  # None: the workload's
    multiplier: float | None = None  # None: the workload's
    users: int | None = None
    duration_s: float = 60.0
    processes: int = 1
    slo: tuple[str, ...] = ()
    seed: int = 42
    rate: float | None = None  # sessions/s at 1× instead of the world-derived peak
    think_scale: float = 1.0
    feeds: bool = True
    links: bool = True
    scrypt_cost: int = 14
    backend: str = "process"  # the reference network's launcher (ReferenceOptions.backend)
    docker_host: str | None = None
    ui: bool = False
    role: Literal["local", "master", "worker"] = "local"
    master_host: str = "127.0.0.1"
    master_port: int = 5557  # multi-host form only (Locust's default); a local run picks a free port
    expect_workers: int = 1
    quiet: bool = False  # Locust's output captured (tests) instead of shown
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadOutcome:
    ok: bool
    report: dict[str, Any]
    files: dict[str, Path]
    locust_output: str


def _workload(options: LoadOptions) -> Workload:
    workload = load_workload(options.workload_file) if options.workload_file else default_workload()
    update: dict[str, Any] = {}
    if options.shape is not None:
        update["kind"] = options.shape
    if options.multiplier is not None:
        update["multiplier"] = options.multiplier
    return workload.model_copy(update={"shape": workload.shape.model_copy(update=update)})


def _slos(workload: Workload, extra: tuple[str, ...]) -> list[Slo]:
    return [*workload.slos(), *(parse_slo(s) for s in extra)]


def _pacing(workload: Workload, rates: Rates, options: LoadOptions) -> tuple[float, int]:
    """(pacing seconds, the user pool's top) for the shape's highest rate."""
    top = rates.max_sessions_per_s(options.duration_s)
    if top <= 0:
        raise LoadError("the workload asks for no sessions at all (rate 0)")
    if options.users is not None:
        return options.users / top, options.users
    mix = workload.session
    total_k = sum(mix.fetch_k.values())
    mean_k = sum(k * w for k, w in mix.fetch_k.items()) / total_k
    session_s = options.think_scale * mix.think_time_s * (mean_k + 2) + 1.0
    pacing = max(0.5, 1.5 * session_s)
    return pacing, max(1, math.ceil(top * pacing))


@contextlib.contextmanager
def _target(options: LoadOptions, world: WorldIndex, data: Path) -> Iterator[Target]:
    if options.target_file is not None:
        yield load_target(options.target_file, world)
        return
    ref = ReferenceOptions(
        links=options.links,
        scrypt_cost=options.scrypt_cost,
        backend=options.backend,
        docker_host=options.docker_host,
    )
    with reference_target(world, data, options=ref) as target:
        yield target


HUB_CHILDREN: Final = {"hub-hasher": "hub"}  # the hub's password worker (a process pool of one)


def monitored_pids(target: Target) -> dict[str, int]:
    """The hub's and each gateway shard's process IDs, when the network file gives them."""
    pids: dict[str, int] = {}
    if target.network is None:
        return pids
    hub_pid = target.network.hub.get("pid")
    if isinstance(hub_pid, int):
        pids["hub"] = hub_pid
    for i, shard in enumerate(target.network.shards):
        if shard.pid is not None:
            pids[f"gateways-{i}"] = shard.pid
    return pids


def _config(
    options: LoadOptions, workload: Workload, target: Target, pacing: float, raw: Path, slos: list[Slo]
) -> LoadConfig:
    if target.mllp is None or target.http is None:
        raise LoadError(f"target {target.name} needs both MLLP and HTTP addresses for load")
    tls = target.mllp_tls
    return LoadConfig(
        world=str(options.world.resolve()),
        workload=str(options.workload_file.resolve()) if options.workload_file else None,
        seed=options.seed,
        shape=workload.shape.kind,  # the workload file's, unless --shape / --multiplier override it
        multiplier=workload.shape.multiplier,
        duration_s=options.duration_s,
        rate_override=options.rate,
        think_scale=options.think_scale,
        pacing_s=pacing,
        processes=options.processes if options.role == "local" else max(1, options.expect_workers),
        mllp_host=target.mllp[0],
        mllp_port=target.mllp[1],
        tls_ca=str(tls.ca_file) if tls else None,
        tls_certs=str(tls.certs) if tls else None,
        http=target.http,
        regional_namespace=target.regional_namespace,
        regional_oid=target.regional_oid,
        receiving_application=target.receiving_application,
        receiving_facility=target.receiving_facility,
        timeout_s=max(target.mllp_timeout, target.http_timeout),
        raw_log=str(raw),
        feeds=options.feeds,
        stop_on_slo=[str(s) for s in slos],
    )


def _locust_argv(options: LoadOptions, folder: Path) -> list[str]:
    """Locust's command line. A local run with ``--processes N`` binds its master to a free loopback port
    and points its forked workers at it: on Locust's fixed default (5557) a second run on the same machine
    (a test, another team's run) cannot bind, and its workers join the first run's master, whose users
    then run the wrong configuration and whose counts are no longer its own."""
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    if options.role == "worker":
        return [
            *argv,
            "--worker",
            "--master-host",
            options.master_host,
            "--master-port",
            str(options.master_port),
        ]
    if not options.ui:
        argv += ["--headless", "--csv", str(folder / "locust"), "--html", str(folder / "locust.html")]
    else:
        # The shape starts at once; the UI stays up for a minute after it ends, then the report is written.
        argv += ["--web-host", "127.0.0.1", "--autostart", "--autoquit", "60"]
    if options.role == "master":
        argv += ["--master", "--expect-workers", str(options.expect_workers)]
        argv += ["--master-bind-port", str(options.master_port)]
    elif options.processes > 1:
        argv += local_processes_argv(options.processes)
    return argv


def local_processes_argv(processes: int) -> list[str]:
    """``--processes N`` with the master on a free loopback port its forked workers are pointed at."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    return ["--processes", str(processes), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-host", "127.0.0.1", "--master-port", port]  # fmt: skip


def run_load(options: LoadOptions) -> LoadOutcome:
    """One load run, end to end. Raises :class:`LoadError` (or WorkloadError/TargetError) on set-up."""
    workload = _workload(options)
    slos = _slos(workload, options.slo)
    world = WorldIndex(options.world)
    registered = world.registered
    rates = Rates(workload, registered, options.rate)
    pacing, top_users = _pacing(workload, rates, options)
    folder = options.report.resolve()  # Locust runs in the project's folder: a relative path would miss
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.csv"
    raw.unlink(missing_ok=True)
    data = Path(tempfile.mkdtemp(prefix="rhin-load-"))
    try:
        with _target(options, world, data) as target:
            cfg = _config(options, workload, target, pacing, raw, slos)
            cfg_path = cfg.write(folder / "load-config.json")
            monitor = ProcessMonitor(monitored_pids(target), children=HUB_CHILDREN, machine=True).start()
            speed = SpeedProbe().start()
            started = time.time()
            output = _run_locust(options, folder, cfg_path)
            ended = time.time()
            resources = monitor.stop()
            machine_speed = speed.stop()
            described = target.describe()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    if options.role == "worker":
        return LoadOutcome(True, {}, {}, output)
    if not raw.is_file():
        raise LoadError(f"Locust wrote no raw timings ({raw}); its output:\n{output[-3000:]}")
    rows = read_raw(raw)
    report = _report(
        options, workload, slos, rates, pacing, top_users, rows, started, ended, described, resources
    )
    report["machine_speed"] = machine_speed
    files = write_report(report, folder)
    files["raw"] = raw
    return LoadOutcome(report["verdict"]["ok"], report, files, output)


def _run_locust(options: LoadOptions, folder: Path, cfg_path: Path) -> str:
    env = {**os.environ, CONFIG_ENV: str(cfg_path), "PYTHONPATH": str(ROOT), **options.extra_env}
    argv = _locust_argv(options, folder)
    limit = options.duration_s + 120 if not options.ui else None
    pipe = subprocess.PIPE if options.quiet else None
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=pipe, stderr=subprocess.STDOUT if pipe else None, text=True
    )
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait(10)
        raise LoadError(f"Locust did not finish within {limit:.0f} s") from exc
    except KeyboardInterrupt:  # Ctrl-C reaches Locust too (same process group): let it write its files
        output, _ = proc.communicate(timeout=60)
        return output or ""
    output = output or ""
    if proc.returncode not in (0, 1):  # 1: Locust saw failed requests, which our report judges
        raise LoadError(f"Locust exited {proc.returncode}:\n{output[-3000:]}")
    return output


def _report(
    options: LoadOptions,
    workload: Workload,
    slos: list[Slo],
    rates: Rates,
    pacing: float,
    top_users: int,
    rows: list[Any],
    started: float,
    ended: float,
    target: dict[str, Any],
    resources: dict[str, Any],
) -> dict[str, Any]:
    # Rates over the span the requests really covered (a step shape may end before --duration).
    span = (max(r.t for r in rows) - min(r.t for r in rows)) if len(rows) > 1 else options.duration_s
    stats = op_stats(rows, span)
    slo = slo_results(slos, stats)
    leaked = leaks(rows)
    sessions = stats["login"].count if "login" in stats else 0
    report: dict[str, Any] = {
        "format": "rhin-load-report",
        "format_version": 1,
        "target": target,
        "world": str(options.world),
        "seed": options.seed,
        "workload": {
            "name": workload.name,
            "file": str(options.workload_file or ""),
            "remarks": workload.remarks,
        },
        "shape": workload.shape.kind,
        "multiplier": workload.shape.multiplier,
        "duration_s": options.duration_s,
        "measured_s": round(span, 3),
        "processes": options.processes,
        "sizing": {
            "peak_sessions_per_s_1x": rates.peak_per_s,
            "target_max_sessions_per_s": rates.max_sessions_per_s(options.duration_s),
            "achieved_sessions_per_s": round(sessions / span, 4) if span else 0,
            "pacing_s": pacing,
            "users_max": top_users,
        },
        "started": started,
        "ended": ended,
        "totals": {"requests": len(rows), "failures": sum(1 for r in rows if not r.ok)},
        "operations": {name: s.to_json() for name, s in stats.items()},
        "slo": slo,
        "per_facility": per_facility(rows),
        "series": time_series(rows),
        "resources": resources,
        "leaks": [
            {"t": r.t, "operation": r.name, "facility": r.facility, "reason": r.reason} for r in leaked[:50]
        ],
    }
    if workload.shape.kind == "step" and rows:
        spec = workload.shape
        timeline_slo = next((s for s in slos if s.operation == "timeline" and s.stat == "p95"), None)
        limit = timeline_slo.limit if timeline_slo else 800.0
        multipliers = step_multipliers(spec.step_start, spec.step_factor, spec.step_max)
        curve = step_curve(rows, min(r.t for r in rows), spec.step_s, multipliers)
        held, broke = knee(curve, limit)
        report["step"] = {"curve": curve, "slo_ms": limit, "knee_multiplier": held, "broke_multiplier": broke}
    report["verdict"] = {
        "ok": all(s["ok"] for s in slo) and not leaked,
        "consent_leaks": len(leaked),
        "slo_broken": [s["slo"] for s in slo if not s["ok"]],
    }
    return report
