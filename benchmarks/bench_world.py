"""Benchmark: build the full `ishikawa` world (no SS-MIX2 files) and compare with the issue's budget.

Runs `rhin generate` as a subprocess (exactly what a user runs), samples the memory of its whole process
tree, then reads the world back with `rhin world stats`. Prints ratios against the targets:
  time ≤ 60 s, peak memory ≤ 2 GiB, sharing patients within 1 % of the profile's 13,257.

    .venv/bin/python benchmarks/bench_world.py [--patients N] [--jobs N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from procmem import run_sampled

TIME_BUDGET_S = 60.0
MEMORY_BUDGET = 2 * 1024**3
RHIN = str(Path(sys.executable).with_name("rhin"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="ishikawa")
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="rhin-bench-")) / "world"
    cmd = [
        RHIN,
        "generate",
        "--no-storage",
        "--profile",
        args.profile,
        "--seed",
        str(args.seed),
        "--out",
        str(out),
        "--jobs",
        str(args.jobs),
    ]
    if args.patients:
        cmd += ["--patients", str(args.patients)]
    try:
        run = run_sampled(cmd)
        elapsed, err = run.elapsed, run.stderr
        if run.returncode != 0:
            print(err, file=sys.stderr)
            return run.returncode
        stats = json.loads(
            subprocess.run(
                [RHIN, "world", "stats", str(out), "--json"], check=True, capture_output=True, text=True
            ).stdout
        )
        patients = stats["registered_patients"]
        db_bytes = (out / "world.sqlite").stat().st_size
        target = round(patients * 13257 / 52640) if args.profile == "ishikawa" else None
        print(f"profile {args.profile}, seed {args.seed}, {patients:,} patients, jobs {args.jobs or 'auto'}")
        print(
            f"  wall time            {elapsed:8.1f} s    "
            f"ratio to the 60 s budget   {elapsed / TIME_BUDGET_S:5.2f}"
        )
        print(f"  patients/s           {patients / elapsed:8.0f}")
        print(f"  events               {stats['events']:8,}   events/s {stats['events'] / elapsed:,.0f}")
        print(
            f"  peak memory (tree)   {run.peak / 2**20:8.0f} MiB  ratio to the 2 GiB budget  "
            f"{run.peak / MEMORY_BUDGET:5.2f}"
        )
        print(f"  world.sqlite         {db_bytes / 2**20:8.0f} MiB")
        if target:
            diff = (stats["sharing_patients"] - target) / target
            print(
                f"  sharing patients     {stats['sharing_patients']:8,}   profile {target:,}   "
                f"off by {diff:+.3%} "
                f"(budget ±1 %)"
            )
        print(
            f"  facilities           {stats['facilities_total']:8,}   by kind {stats['facilities_by_kind']}"
        )
        return 0
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
