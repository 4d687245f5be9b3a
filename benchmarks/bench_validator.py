"""Benchmark: `validate_storage` on a storage of N valid files, against the issue's 3,000 files/s target.

Builds the storage by copying the clean fixture (tests/fixtures/ssmix2/good) into many patients, each with
its own patient ID and order numbers, then validates it with one process per core (jobs=0) and checks the
result is clean. The files were just written, so they are in the page cache: this measures the validator,
not the disk.

    .venv/bin/python benchmarks/bench_validator.py [--files N] [--jobs N] [--keep] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from synthetic.validator import validate_storage
from synthetic.validator.storage import resolve_jobs

TARGET = 3000.0  # files per second
GOOD = Path(__file__).parents[1] / "tests" / "fixtures" / "ssmix2" / "good"
NO_ORDER = "999999999999999"


def templates() -> list[tuple[list[str], bytes]]:
    """``(name fields, bytes)`` of every file of the clean fixture."""
    out = []
    for path in sorted(p for p in GOOD.rglob("*") if p.is_file()):
        out.append((path.name.split("_"), path.read_bytes()))
    return out


def build(root: Path, n_files: int) -> int:
    """Write ``n_files`` files (whole patients' worth, the last one partial); returns the count written."""
    tpl = templates()
    written = 0
    patient = 0
    while written < n_files:
        pid = f"{3000000000 + patient * 7:010d}"
        for fields, data in tpl[: n_files - written]:
            old_pid, day, dtype, order, stamp, dept, flag = fields
            new_order = order if order == NO_ORDER else f"{patient:010d}{order[-5:]}"
            body = data.replace(old_pid.encode(), pid.encode())
            if new_order != order:
                body = body.replace(order.encode(), new_order.encode())
            folder = root / pid[0:3] / pid[3:6] / pid / day / dtype
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "_".join((pid, day, dtype, new_order, stamp, dept, flag))).write_bytes(body)
            written += 1
        patient += 1
    return written


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated storage")
    parser.add_argument("--profile", action="store_true", help="also profile a serial run (jobs=1)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rhin-bench-ssmix2-"))
    try:
        started = time.perf_counter()
        n = build(root, args.files)
        print(f"built {n:,} files in {time.perf_counter() - started:.1f} s under {root}")
        started = time.perf_counter()
        report = validate_storage(root, jobs=args.jobs)
        elapsed = time.perf_counter() - started
        rate = report.files / elapsed
        print(
            f"validated {report.files:,} files with {resolve_jobs(args.jobs)} process(es) of "
            f"{os.cpu_count()} cores in {elapsed:.2f} s: {rate:,.0f} files/s, "
            f"ratio to the {TARGET:,.0f} files/s target {rate / TARGET:.2f}"
        )
        if report.findings:
            print(f"unexpected findings: {report.by_rule()}", file=sys.stderr)
            return 1
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(validate_storage, root, 1)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return 0 if rate >= TARGET else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
