"""Benchmark: what slows a hub's commit on this machine — other commits on the disk, or crowded cores.

Why: beside a ×400 load run a commit probe's p95 went from 0.56 ms (after the run) to 3.32 ms (during the
join burst, which makes more than 1,000 fsyncs a second), and the hub's own slowest feeds spent 2–3 ms in
their index write and audit commit. Whether the disk is a queue every commit waits at (so the capacity
model needs it as a station with the load's commit rate) or the commits only wake late on busy cores (which
the model's machine already has) decides what the model lacks. This separates the two.

A probe commits one audit-record-sized row every 4 ms through the hub's own store (WAL,
``synchronous=FULL``, in the system's temporary directory, where the reference network keeps its stores)
and times each commit, alone and beside:

* ``writers N`` — N processes committing rows back to back, each to its own file on the same disk (their
  commits per second are printed: the disk's rate with no CPU work between commits);
* ``busy N`` — N processes that never sleep (as a password worker with a queue of logins);
* ``bursty N`` — N processes busy 1 ms then asleep 1 ms (as gateways and Locust under load).

Printed per case: the companions' commits per second, the probe's p50 / p95 / p99 and their ratios to the
probe alone. No assertions; the ratios are the numbers to track.

    .venv/bin/python benchmarks/bench_commit.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_sched import _burn
from bench_wake import CommitRows

CASES: tuple[tuple[str, int], ...] = (
    ("alone", 0),
    ("writers", 1),
    ("writers", 2),
    ("busy", 2),
    ("busy", 4),
    ("busy", 6),
    ("bursty", 4),
    ("bursty", 6),
)
PROBE_GAP_S = 0.004
BURST_S = 0.001


def _writer(path: str, stop: Any, counts: Any) -> None:
    rows = CommitRows(Path(path))
    n = 0
    while not stop.is_set():
        rows.add()
        n += 1
    rows.close()
    counts.put(n)


def _busy(stop: Any, burst_s: float) -> None:
    while not stop.is_set():
        _burn(burst_s or 0.01)
        if burst_s:
            time.sleep(burst_s)


def probe(kind: str, n: int, seconds: float, tmp: Path) -> tuple[list[float], float]:
    """The probe's commit times (ms) beside ``n`` companions of ``kind``; the companions' commits/s."""
    stop = mp.Event()
    counts: Any = mp.Queue()
    side: list[mp.Process] = []
    for i in range(n):
        if kind == "writers":
            side.append(mp.Process(target=_writer, args=(str(tmp / f"writer-{i}.sqlite"), stop, counts)))
        else:
            side.append(mp.Process(target=_busy, args=(stop, BURST_S if kind == "bursty" else 0.0)))
    for p in side:
        p.start()
    time.sleep(0.5)
    rows = CommitRows(tmp / f"probe-{kind}-{n}.sqlite")
    took: list[float] = []
    started = time.perf_counter()
    end = started + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        rows.add()
        took.append((time.perf_counter() - t0) * 1000)
        time.sleep(PROBE_GAP_S)
    elapsed = time.perf_counter() - started + 0.5
    rows.close()
    stop.set()
    for p in side:
        p.join()
    rate = sum(counts.get() for _ in range(n)) / elapsed if kind == "writers" else 0.0
    return took, rate


def _q(ms: list[float], q: float) -> float:
    ms = sorted(ms)
    return ms[min(len(ms) - 1, int(len(ms) * q))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="the probe's time per case")
    args = ap.parse_args()
    print(f"probe: one commit every {PROBE_GAP_S * 1000:.0f} ms for {args.seconds:.0f} s per case")
    print(f"{'beside':<11} {'commits/s':>9}  {'p50':>5} {'p95':>5} {'p99':>5}   {'ratios to alone':>17}")
    base: tuple[float, float, float] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for kind, n in CASES:
            took, rate = probe(kind, n, args.seconds, Path(tmp))
            qs = (_q(took, 0.5), _q(took, 0.95), _q(took, 0.99))
            base = base or qs
            ratios = " ".join(f"{q / b:5.2f}" for q, b in zip(qs, base, strict=True))
            label = kind if not n else f"{kind} {n}"
            print(f"{label:<11} {rate:9.0f}  {qs[0]:5.2f} {qs[1]:5.2f} {qs[2]:5.2f}   {ratios}", flush=True)


if __name__ == "__main__":
    main()
