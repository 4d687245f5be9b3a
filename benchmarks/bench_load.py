"""Benchmark: is the load generator what limits a load test? Locust against bare drivers, same hub, same run.

(a) ITI-9. bench_pix.py's set-up (a mini world fed to `rhin hub --plain-mllp` over ITI-8 and linked): its bare
    asyncio driver (K persistent connections, QBP^Q23 back to back) and then Locust's MLLP users
    (:class:`loadtests.users.PixLoop`, the same queries on the same hub) with 1 and 2 worker processes.
    Printed: queries/s, Locust ÷ bare (target ≥ 0.7 for the better of 1 or 2 processes), and the generator's
    CPU per request (every Locust process's, test start to stop; the bare driver's own).
(b) Timelines. The reference network for a mini world with its storage (hub + gateways, links off): a bare
    aiohttp client (K sessions, logged in once, timelines back to back) and Locust's ``FastHttpUser``
    (:class:`loadtests.users.TimelineLoop`, the same viewers and patients). Printed the same way.
(c) ``--full``: the capacity run the issue asks for, on the ``ishikawa`` world (generated into
    worlds/ishikawa if missing, ~1 min): 100× the realistic peak for 10 minutes, then the step shape to the
    knee; each writes its report under reports/bench-load-*/ and the figures are printed. Takes ~40 min
    with the bootstrap; run it on a quiet machine:

    .venv/bin/python benchmarks/bench_load.py [--seconds 5] [--clients 8] [--procs 1,2]
    .venv/bin/python benchmarks/bench_load.py --full [--world worlds/ishikawa] [--processes 2]

Both drivers share the 2 cores with the hub, so the ratio is what matters, not the absolute rate; both
CPU figures leave out start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from bench_pix import hub_process, load, prepared_world, read_records  # noqa: E402

import harness.scenarios  # noqa: E402, F401  (before harness.targets: their imports are circular)
from harness.load.config import CONFIG_ENV, LoadConfig  # noqa: E402
from harness.load.run import local_processes_argv  # noqa: E402
from harness.targets import ReferenceOptions, launch_reference  # noqa: E402
from simulator.workload import WorldPlan, default_workload  # noqa: E402
from synthetic import load_profile, write_world  # noqa: E402

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"


def run_locust(cfg: LoadConfig, folder: Path, users: int, seconds: float, procs: int) -> tuple[float, float]:
    """(successful requests/s after a 1 s warm-up, generator CPU µs per request) of one headless run. The
    CPU is what every Locust process (master and workers) spent between test start and stop, as the
    locustfile records it: start-up and imports excluded, like the bare drivers'."""
    path = cfg.write(folder / "load-config.json")
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
    argv += ["-u", str(users), "-r", str(users), "-t", f"{seconds + 1:.0f}s", "--loglevel", "ERROR"]
    if procs > 1:
        argv += local_processes_argv(procs)
    env = {**os.environ, CONFIG_ENV: str(path), "PYTHONPATH": str(ROOT)}
    subprocess.run(argv, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw = Path(cfg.raw_log)
    cpu = sum(float(p.read_text()) for p in raw.parent.glob(f"{raw.name}.cpu-*"))
    with Path(cfg.raw_log).open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] != "login"]
    if not rows:
        return 0.0, float("nan")
    t0 = min(float(r["t"]) for r in rows)
    counted = [r for r in rows if float(r["t"]) >= t0 + 1.0 and r["ok"] == "1"]
    span = max(float(r["t"]) for r in rows) - (t0 + 1.0)
    return len(counted) / span if span > 0 else 0.0, cpu / len(rows) * 1e6


def pix_items(world: Path) -> list[list[str]]:
    doc = json.loads((world / "world.json").read_text(encoding="utf-8"))
    auth = {f["code"]: f["assigning_authority"] for f in doc["facilities"]}
    return [
        [r.facility, r.local_id, auth[r.facility]["namespace"], auth[r.facility]["oid"]]
        for r in read_records(world)
    ]


def iti9(args: argparse.Namespace, tmp: Path) -> None:
    opts = SimpleNamespace(feed_connections=4, driver_procs=1, warmup=1.0, seconds=args.seconds)
    world, data, records, *_ = prepared_world(opts, tmp)
    items = tmp / "pix.json"
    items.write_text(json.dumps(pix_items(world)), encoding="utf-8")
    with hub_process(world, data) as (_, port):
        bare = load(port, records, opts, args.clients)  # type: ignore[arg-type]
        bare_cpu = bare.driver_cpu / bare.sent * 1e6 if bare.sent else float("nan")
        print(f"ITI-9  bare asyncio   {bare.rate:8.0f} q/s   driver CPU {bare_cpu:6.0f} µs/req")
        best = 0.0
        for procs in args.procs:
            cfg = LoadConfig(
                world=str(world), mllp_port=port, mode="pix", bench_items=str(items), feeds=False,
                raw_log=str(tmp / f"pix-{procs}.csv"), processes=procs,
            )  # fmt: skip
            rate, cpu = run_locust(cfg, tmp, args.clients, args.seconds, procs)
            best = max(best, rate)
            print(f"ITI-9  Locust ×{procs} proc  {rate:8.0f} q/s   generator CPU {cpu:6.0f} µs/req")
    print(f"ITI-9  Locust ÷ bare: {best / bare.rate if bare.rate else float('nan'):.2f} (target ≥ 0.7)")


async def _bare_timelines(
    http: str, items: list[list[str]], clients: int, seconds: float
) -> tuple[int, float]:
    import aiohttp

    done = 0
    begin = time.monotonic() + 1.0
    end = begin + seconds

    async def client(number: int, session: aiohttp.ClientSession) -> None:
        nonlocal done
        facility, user_id, password, rid = items[number % len(items)]
        body = {"facility": facility, "user_id": user_id, "password": password}
        async with session.post(f"{http}/auth/login", json=body) as r:
            token = (await r.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        while (now := time.monotonic()) < end:
            async with session.get(f"{http}/patients/{rid}/timeline", headers=headers) as r:
                await r.read()
                done += now >= begin and r.status == 200

    started = time.process_time()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    return done, time.process_time() - started


def timelines(args: argparse.Namespace, tmp: Path) -> None:
    world = tmp / "mini-storage"
    world.mkdir()
    write_world(load_profile("mini"), 7, world)
    plan = WorldPlan(world, default_workload(), 42)
    with launch_reference(world, tmp / "net", ReferenceOptions(scrypt_cost=4)) as ep:
        assert ep.http is not None
        assert ep.regional_ids is not None
        care = [s for s in (plan.session(i) for i in range(400)) if s.intent == "care"]
        items = [
            [s.facility, s.user.user_id, s.user.password, ep.regional_ids[s.patient.patient_id]] for s in care
        ]
        path = tmp / "timeline.json"
        path.write_text(json.dumps(items), encoding="utf-8")
        done, cpu = asyncio.run(_bare_timelines(ep.http, items, args.clients, args.seconds))
        bare = done / args.seconds
        print(f"timeline bare aiohttp {bare:8.0f} req/s  driver CPU {cpu / max(done, 1) * 1e6:6.0f} µs/req")
        best = 0.0
        for procs in args.procs:
            cfg = LoadConfig(
                world=str(world), http=ep.http, mode="timeline", bench_items=str(path), feeds=False,
                raw_log=str(tmp / f"tl-{procs}.csv"), processes=procs,
            )  # fmt: skip
            rate, gen_cpu = run_locust(cfg, tmp, args.clients, args.seconds, procs)
            best = max(best, rate)
            print(f"timeline FastHttpUser ×{procs} {rate:8.0f} req/s  generator CPU {gen_cpu:6.0f} µs/req")
    print(f"timeline Locust ÷ bare: {best / bare if bare else float('nan'):.2f} (target ≥ 0.7)")


def full(args: argparse.Namespace) -> None:
    from harness.load.run import LoadOptions, run_load
    from harness.load.stats import knee_text
    from harness.targets import ensure_world

    world = ensure_world(args.world, profile="ishikawa")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    common: dict[str, Any] = {"world": world, "processes": args.processes, "seed": 42}
    peak = run_load(
        LoadOptions(report=Path(f"reports/bench-load-{stamp}-peak100"), shape="peak", multiplier=100,
                    duration_s=args.full_seconds, **common)
    )  # fmt: skip
    ops = peak.report["operations"]
    verdict = "PASSED" if peak.ok else "FAILED"
    print(f"100× peak, {args.full_seconds:g} s: {verdict}; {peak.report['totals']}")
    for name in ("timeline", "fetch", "pdq", "pix", "login"):
        if name in ops:
            o = ops[name]
            ms = f"p50 {o['p50_ms']:.1f}  p95 {o['p95_ms']:.1f}  p99 {o['p99_ms']:.1f} ms"
            print(f"  {name:<9} n={o['count']:<7} {ms}")
    workload = Path(f"reports/bench-load-{stamp}-step.yaml")
    workload.parent.mkdir(parents=True, exist_ok=True)
    workload.write_text(f"schema_version: 1\nname: step\nshape: {{kind: step, step_s: {args.step_s}}}\n")
    folder = Path(f"reports/bench-load-{stamp}-step")
    step = run_load(LoadOptions(report=folder, workload_file=workload, duration_s=36_000, **common))
    print(knee_text(step.report["step"]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--procs", type=lambda t: [int(n) for n in t.split(",")], default=[1, 2])
    parser.add_argument("--full", action="store_true", help="(c): ishikawa at 100× for 10 min, then the step")
    parser.add_argument("--world", type=Path, default=Path("worlds/ishikawa"))
    parser.add_argument("--processes", type=int, default=2, help="--full: Locust worker processes")
    parser.add_argument("--full-seconds", type=float, default=600.0, help="--full: the 100× run's length")
    parser.add_argument("--step-s", type=float, default=60.0, help="--full: seconds per step")
    args = parser.parse_args()
    if args.full:
        full(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_load-") as tmp:
        iti9(args, Path(tmp))
        timelines(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
