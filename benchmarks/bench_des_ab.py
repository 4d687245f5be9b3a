"""Benchmark: the SimPy model's CPU per session, this tree against another checkout, measured side by side.

This VM's speed drifts by ±15 % from minute to minute and by 2× over hours (bare SimPy 796k events/s at
16:40 and 380k at 19:10 UTC on 2026-12-06), so two runs of the year made at different times compare the
machine, not the code. Here both trees run in their own process, pinned to the same core, each first
warmed on the same simulated days (consent caches filled), then they take turns — one simulated segment
each, the order swapped every round (ABBA) — so both meet the same machine within seconds. Printed: each
tree's CPU seconds and sessions over the timed segments, µs per session, and the ratio new / reference.
Both trees simulate the same sessions (same seed), so the ratio is per the same work.

    .venv/bin/python benchmarks/bench_des_ab.py --reference /path/to/other/checkout
        [--world /work/worlds/ishikawa] [--warm-days 30] [--segment-days 1] [--rounds 30] [--multiplier 1]
        [--core 1]

Make the reference with ``git worktree add /tmp/ref <commit>`` (it uses this tree's virtualenv).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What each process runs: its tree's model on the diurnal day at --multiplier, warmed, then one segment per
# line read from stdin, answering "<cpu seconds> <sessions>".
_WORKER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from simulator.des import DesModel, DesWorld, WhatIf, nominal_calibration
from simulator.workload import default_workload
cal, workload = nominal_calibration(), default_workload()
world = DesWorld.load(Path(sys.argv[2]), workload, 42, shards=cal.machine.gateway_shards)
shape = workload.shape.model_copy(update={"kind": "diurnal", "day_s": 86_400.0})
model = DesModel(world, cal, WhatIf(multiplier=float(sys.argv[4])), seed=42,
                 workload=workload.model_copy(update={"shape": shape}))
model.run(float(sys.argv[3]) * 86_400, None, drain_s=0)
print("ready", flush=True)
for line in sys.stdin:
    before, t = model.results.sessions, time.process_time()
    model.run(float(line), None, drain_s=0)
    print(time.process_time() - t, model.results.sessions - before, flush=True)
"""


def _worker(tree: Path, args: argparse.Namespace) -> subprocess.Popen[str]:
    cmd = [
        "taskset", "-c", str(args.core), sys.executable, "-c", _WORKER,
        str(tree), str(args.world), str(args.warm_days), str(args.multiplier),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", type=Path, required=True, help="another checkout of rhin")
    parser.add_argument("--world", type=Path, default=Path("/work/worlds/ishikawa"))
    parser.add_argument("--warm-days", type=float, default=30.0)
    parser.add_argument("--segment-days", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--multiplier", type=float, default=1.0)
    parser.add_argument("--core", type=int, default=1, help="the core both processes are pinned to")
    args = parser.parse_args()
    if not (args.reference / "simulator" / "des").is_dir():
        sys.exit(f"{args.reference}: not a checkout of rhin with simulator/des")
    if not (args.world / "world.json").is_file():
        sys.exit(f"no world at {args.world}")
    trees = [args.reference.resolve(), ROOT]
    procs = [_worker(tree, args) for tree in trees]
    for tree, p in zip(trees, procs, strict=True):
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            sys.exit(f"the worker for {tree} failed (see its error above)")
    cpu, sessions = [0.0, 0.0], [0, 0]
    segment = args.segment_days * 86_400
    for r in range(args.rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            p = procs[i]
            assert p.stdin is not None
            assert p.stdout is not None
            p.stdin.write(f"{segment}\n")
            p.stdin.flush()
            seconds, count = p.stdout.readline().split()
            cpu[i] += float(seconds)
            sessions[i] += int(count)
    for p in procs:
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    for name, c, n in zip(("reference", "this tree"), cpu, sessions, strict=True):
        print(f"{name:10} {c:8.2f} s CPU  {n:8d} sessions  {c / max(n, 1) * 1e6:7.1f} µs per session")
    print(
        f"this tree / reference: {cpu[1] / cpu[0]:.3f} of the CPU "
        f"for {sessions[1] / max(sessions[0], 1):.3f} of the sessions"
    )


if __name__ == "__main__":
    main()
