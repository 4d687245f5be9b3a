"""Peak resident memory of a process tree, sampled from /proc (Linux), for benchmarks.

``ru_maxrss`` reports one process at a time; a build that fans out to worker processes needs the sum
over the tree at each moment, which is what :class:`TreeSampler` records.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task = Path(f"/proc/{pid}/task")
    for t in task.glob("*/children") if task.exists() else []:
        try:
            kids += [int(x) for x in t.read_text().split()]
        except OSError:
            continue
    return kids


def tree_rss_bytes(root: int) -> int:
    total, stack, seen = 0, [root], set()
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        stack += _children(pid)
    return total


class TreeSampler:
    """Samples the tree's total RSS every ``interval`` seconds until stopped; keeps the peak."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True, slots=True)
class SampledRun:
    elapsed: float  # wall seconds
    peak: int  # peak total RSS of the process tree, bytes
    returncode: int
    stderr: str


def run_sampled(cmd: list[str]) -> SampledRun:
    """Run ``cmd`` (stdout discarded) while sampling its process tree's memory; time it."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        _, err = proc.communicate()
    return SampledRun(time.perf_counter() - started, sampler.peak, proc.returncode, err)
