"""Benchmark: the SimPy model's speed and memory, and (``--validate``) its accuracy against live runs.

(a) Bare SimPy: a trivial model (processes that only wait on timeouts) — this machine's events/s ceiling.
(b) One simulated year of the ``ishikawa`` world at realistic usage (the diurnal day, 1×; target ≤ 60 s)
    and one simulated day at 100× the realistic peak (target ≤ 60 s). Printed: wall time, sessions,
    events, events/s beside (a)'s, and resident memory at 10 % and at the end of the run (flat: the model
    keeps histograms, not requests).
(c) ``--validate``: ``rhin calibrate`` on the world's reference network, then ``rhin load`` at three load
    levels (``--levels``, × the realistic peak, links on) and ``rhin simulate --validate`` on each report;
    a step-shape load run and a model sweep over the same multipliers compare the knees. Prints predicted
    vs measured per operation and the share of operations within the issue's goals (p50/p95 ±15 %,
    throughput ±5 %; knee ±20 %). Takes long (each load level runs ``--seconds``): run it on a quiet machine.

    .venv/bin/python benchmarks/bench_des.py [--world worlds/ishikawa] [--calibration FILE]
    .venv/bin/python benchmarks/bench_des.py --validate [--world worlds/ishikawa] [--levels 10,100,300]
        [--seconds 300] [--step-seconds 660] [--rate R] [--out reports/bench-des]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import simpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.des import DesModel, DesWorld, WhatIf, load_calibration, nominal_calibration  # noqa: E402
from simulator.des.run import SimulationOptions, run_one  # noqa: E402
from simulator.workload import default_workload  # noqa: E402


def rss_mb() -> float:
    """Current resident set size (not the peak), from /proc."""
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def bare_simpy(events: int = 1_000_000) -> float:
    env = simpy.Environment()

    def ticker(n: int) -> Any:
        for _ in range(n):
            yield env.timeout(1.0)

    for _ in range(100):
        env.process(ticker(events // 100))
    started = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - started)


def chunked_run(
    world: DesWorld, cal: Any, whatif: WhatIf, seconds: float, workload: Any, label: str, jobs: int
) -> None:
    options = SimulationOptions(
        world=Path(), calibration=cal, workload=workload, whatifs=[whatif], duration_s=seconds, jobs=jobs
    )
    run = run_one(world, options, whatif)
    print(
        f"{label}, {jobs} chunks in parallel processes: {run['wall_s']:.1f} s wall (target ≤ 60 s) · "
        f"{run['sessions']} sessions · {run['events']} events"
    )
    for op in ("login", "timeline", "fetch"):
        o = run["operations"].get(op)
        if o:
            print(
                f"    {op:9s} p50 {o['p50_ms']:8.2f} ms  p95 {o['p95_ms']:8.2f} ms  p99 {o['p99_ms']:8.2f} ms"
            )


def model_run(
    world: DesWorld, cal: Any, whatif: WhatIf, seconds: float, workload: Any, label: str, bare: float
):
    model = DesModel(world, cal, whatif, seed=42, workload=workload)
    marks: dict[str, float] = {}

    def progress(t: float) -> None:
        if "10%" not in marks and t >= seconds / 10:
            marks["10%"] = rss_mb()

    started, cpu = time.perf_counter(), time.process_time()
    res = model.run(seconds, progress)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    events = model.events()
    end = rss_mb()
    ops = res.operations()
    print(
        f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU (target ≤ 60 s) · {res.sessions} sessions · "
        f"{events} events · "
        f"{events / wall:,.0f} events/s = {events / wall / bare:.2f}× bare SimPy · "
        f"RSS {marks.get('10%', 0):.0f} MB "
        f"at 10 % → {end:.0f} MB at the end"
    )
    for op in ("login", "timeline", "fetch"):
        if op in ops:
            o = ops[op]
            print(
                f"    {op:9s} p50 {o['p50_ms']:8.2f} ms  p95 {o['p95_ms']:8.2f} ms  p99 {o['p99_ms']:8.2f} ms"
            )
    util = ", ".join(f"{k} {v['utilisation'] * 100:.1f} %" for k, v in model.resources().items())
    print(f"    utilisation: {util}; partial timelines {res.partial_timelines}/{res.timelines}")
    return wall


def speed(args: argparse.Namespace) -> None:
    bare = bare_simpy()
    print(f"bare SimPy (timeouts only): {bare:,.0f} events/s")
    cal = load_calibration(args.calibration) if args.calibration else nominal_calibration()
    workload = default_workload()
    started = time.perf_counter()
    world = DesWorld.load(args.world, workload, 42, shards=cal.machine.gateway_shards)
    print(f"world {args.world}: read in {time.perf_counter() - started:.1f} s ({world.registered} patients)")
    diurnal = workload.model_copy(
        update={"shape": workload.shape.model_copy(update={"kind": "diurnal", "day_s": 86_400.0})}
    )
    model_run(world, cal, WhatIf(), 365 * 86_400, diurnal, "one year, realistic (diurnal, 1x)", bare)
    chunked_run(world, cal, WhatIf(), 365 * 86_400, diurnal, "one year, realistic (diurnal, 1x)", args.jobs)
    peak = workload.model_copy(update={"shape": workload.shape.model_copy(update={"kind": "peak"})})
    model_run(world, cal, WhatIf(multiplier=100), 86_400, peak, "one day at 100x the peak", bare)


def rhin(*argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(ROOT / ".venv" / "bin" / "rhin"), *argv]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=False)


def validate(args: argparse.Namespace) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cal = args.calibration or out / "calibration.yaml"
    if args.calibration is None:
        done = rhin("calibrate", "--world", str(args.world), "--out", str(cal), "--sessions", "60")
        print(done.stdout[-3000:], done.stderr[-2000:])
        if done.returncode:
            sys.exit(done.returncode)
    summary = []
    for level in args.levels:
        folder = out / f"load-x{level:g}"
        rate = ["--rate", f"{args.rate:g}"] if args.rate else []
        rhin("load", "--world", str(args.world), "--shape", "peak", "--multiplier", f"{level:g}", *rate,
             "--think-scale", f"{args.think_scale:g}",
             "--duration", f"{args.seconds}s", "--report", str(folder), "--seed", "42")  # fmt: skip
        v = rhin("simulate", "--validate", str(folder), "--calibration", str(cal),
                 "--report", str(out / f"sim-x{level:g}"))  # fmt: skip
        print(v.stdout[-6000:], v.stderr[-2000:])
        report = json.loads((out / f"sim-x{level:g}" / "report.json").read_text(encoding="utf-8"))
        val = report["validation"]
        summary.append((level, val["within_goal"], val["judged"], val["throughput"]["error"]))
    print("\nsummary (goals: p50/p95 ±15 %, throughput ±5 %, knee ±20 %)")
    for level, ok, judged, err in summary:
        print(f"  ×{level:g}: {ok}/{judged} operations within the goals; throughput error {err}")
    if not args.step_seconds:
        return
    step = out / "load-step"
    rhin("load", "--world", str(args.world), "--shape", "step", "--duration", f"{args.step_seconds}s",
         "--report", str(step), "--seed", "42")  # fmt: skip
    measured_knee = json.loads((step / "report.json").read_text(encoding="utf-8")).get("step", {})
    levels = ",".join(f"{2**i:g}" for i in range(10))  # the step shape's multipliers: 1, 2, 4 … 512
    sweep = rhin("simulate", "--world", str(args.world), "--calibration", str(cal), "--shape", "peak",
                 "--duration", "10m", "--sweep", f"multiplier={levels}",
                 "--report", str(out / "sim-step"))  # fmt: skip
    print(sweep.stdout[-3000:])
    predicted = json.loads((out / "sim-step" / "report.json").read_text(encoding="utf-8")).get("knee", {})
    print("\nsummary (goals: p50/p95 ±15 %, throughput ±5 %, knee ±20 %)")
    for level, ok, judged, err in summary:
        print(f"  ×{level:g}: {ok}/{judged} operations within the goals; throughput error {err}")
    print(
        f"  knee: measured {measured_knee.get('knee_multiplier')}×, predicted {predicted.get('multiplier')}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", type=Path, default=ROOT / "worlds" / "ishikawa")
    parser.add_argument("--calibration", type=Path)
    parser.add_argument("--validate", action="store_true")
    parser.add_argument("--jobs", type=int, default=2, help="chunks for the parallel year run")
    parser.add_argument(
        "--levels", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 10.0, 100.0]
    )
    parser.add_argument("--seconds", type=int, default=300, help="each load level's duration")
    parser.add_argument("--step-seconds", type=int, default=660, help="the step run (0: none)")
    parser.add_argument("--think-scale", type=float, default=1.0, help="rhin load's --think-scale")
    parser.add_argument("--rate", type=float, help="sessions/s at 1x instead of the world's (small worlds)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-des")
    args = parser.parse_args()
    if not (args.world / "world.json").is_file():
        sys.exit(f"no world at {args.world}: rhin generate --profile ishikawa --seed 42 --out {args.world}")
    if args.validate:
        validate(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
