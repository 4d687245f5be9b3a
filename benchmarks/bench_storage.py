"""Benchmark: `rhin generate` of a whole network's storage, documents and images, against the budget.

Targets (issue "SS-MIX2 storage, DICOM and documents"): the full `ishikawa` world with all its files in
at most 10 minutes and 4 GiB; generation time at most 4× a plain Python loop that writes the same files
(same relative paths, same sizes, zeros) — the file system's limit on this machine.

    .venv/bin/python benchmarks/bench_storage.py [--patients N] [--jobs N] [--keep DIR]

Prints patients/min, files/s, bytes on disk, the baseline ratio and memory as ratios to the budgets,
the MFER waveform count, and then validates the standardized storage with ``rhin validate-storage
--strict`` (issue 16: the project's worlds have 0 errors and 0 warnings under --strict; ``--no-validate``
skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from procmem import run_sampled

TIME_BUDGET_S = 600.0
MEMORY_BUDGET = 4 * 1024**3
BASELINE_RATIO_TARGET = 4.0
RHIN = str(Path(sys.executable).with_name("rhin"))


def inventory(root: Path) -> tuple[list[tuple[str, int]], int]:
    files, dirs = [], 0
    for folder, subdirs, names in os.walk(root):
        dirs += len(subdirs)
        for name in names:
            path = os.path.join(folder, name)
            files.append((os.path.relpath(path, root), os.path.getsize(path)))
    return files, dirs


def baseline(files: list[tuple[str, int]], target: Path) -> float:
    """A plain loop writing the same files: makedirs as needed, one write each."""
    made: set[str] = set()
    started = time.perf_counter()
    for relative, size in files:
        path = os.path.join(target, relative)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(path, "wb") as fh:
            fh.write(b"\0" * size)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="ishikawa")
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, default=None, help="write the world here and keep it")
    parser.add_argument("--no-validate", action="store_true", help="skip validate-storage --strict")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="rhin-bench-storage-"))
    out = args.keep or scratch / "world"
    cmd = [RHIN, "generate", "--profile", args.profile, "--seed", str(args.seed), "--out", str(out),
           "--jobs", str(args.jobs), "--force"]  # fmt: skip
    if args.patients:
        cmd += ["--patients", str(args.patients)]
    try:
        run = run_sampled(cmd)
        elapsed, err = run.elapsed, run.stderr
        if run.returncode != 0:
            print(err, file=sys.stderr)
            return run.returncode
        summary = [line.strip() for line in err.splitlines() if "SS-MIX2 files" in line or "MiB" in line]
        files, dirs = inventory(out)
        total_bytes = sum(size for _, size in files)
        patients = args.patients or 52640
        base = baseline(files, scratch / "baseline")
        print(f"profile {args.profile}, seed {args.seed}, {patients:,} patients, jobs {args.jobs or 'auto'}")
        print("  " + " ".join(summary))
        print(
            f"  wall time             {elapsed:8.1f} s   "
            f"ratio to the 10 min budget  {elapsed / TIME_BUDGET_S:5.2f}"
        )
        print(f"  patients/min          {patients / elapsed * 60:8.0f}   (Synthea: ~1,000/min per instance)")
        print(
            f"  files                 {len(files):8,}   in {dirs:,} folders; "
            f"files/s {len(files) / elapsed:,.0f}"
        )
        print(f"  bytes on disk         {total_bytes / 2**30:8.2f} GiB")
        print(
            f"  plain-loop baseline   {base:8.1f} s   generation / baseline  {elapsed / base:5.2f}  (aim ≤ 4)"
        )
        print(
            f"  peak memory (tree)    {run.peak / 2**20:8.0f} MiB ratio to the 4 GiB budget  "
            f"{run.peak / MEMORY_BUDGET:5.2f}"
        )
        waveforms = sum(1 for name, _ in files if name.endswith("main_document.mwf"))
        print(f"  MFER ECG waveforms    {waveforms:8,}")
        sys.stdout.flush()
        if not args.no_validate:
            return validate(out)
        return 0
    finally:
        print("removing the scratch trees (slow on a file system with discard) …", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)


def validate(world: Path) -> int:
    """``rhin validate-storage --strict`` over every facility root: files, errors, warnings, files/s."""
    started = time.perf_counter()
    cmd = [RHIN, "validate-storage", str(world), "--json", "--strict"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    report = json.loads(done.stdout)
    print(
        f"  validate --strict     {report['files']:8,} files, {report['errors']:,} errors, "
        f"{report['warnings']:,} warnings in {elapsed:.1f} s ({report['files'] / elapsed:,.0f} files/s)"
    )
    if report["errors"]:
        print(f"  by rule: {report['by_rule']}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
