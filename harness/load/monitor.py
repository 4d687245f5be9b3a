"""CPU and memory of the hub and each gateway shard over a run, sampled from ``/proc`` (Linux).

A thread reads ``/proc/<pid>/stat`` (utime + stime, in clock ticks) and ``/proc/<pid>/statm`` (resident
pages) once per ``interval_s``; CPU is reported as the percentage of one core over each interval. A process
that has gone (or a host without ``/proc``) yields no samples rather than an error: the report says so.

:func:`cpu_ns` is the precise counter for one request's cost (``rhin calibrate``): the scheduler's run time
of every thread of a process and of its child processes, in nanoseconds (``/proc/<pid>/task/*/schedstat``),
where ``stat``'s clock ticks (10 ms) are far coarser than a request.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["ProcessMonitor", "children", "cpu_ns", "cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _read(pid: int) -> tuple[float, int] | None:
    """(CPU seconds so far, resident bytes) of ``pid``, or None if it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of stat)
    return cpu, int(statm.split()[1]) * _PAGE


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` so far, its ended threads included (``stat``'s clock ticks: for spans of
    seconds, where :func:`cpu_ns` would lose the threads that ended meanwhile). ``OSError`` if gone."""
    found = _read(pid)
    if found is None:
        raise OSError(f"cannot read /proc/{pid}/stat")
    return found[0]


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (e.g. the hub's password worker), from ``/proc/*/stat``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def cpu_ns(pids: list[int]) -> int:
    """Nanoseconds the scheduler ran every thread of ``pids`` so far (threads that have ended no longer
    count: read before and after a request, the difference is that request's CPU). Raises ``OSError``
    when a process cannot be read: a calibration must not silently measure nothing."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended while being read
    return total


class ProcessMonitor:
    """Samples named processes (``{"hub": pid, "gateways-0": pid, …}``) until :meth:`stop`."""

    def __init__(self, pids: dict[str, int], interval_s: float = 1.0) -> None:
        self.pids = dict(pids)
        self.interval_s = interval_s
        self.samples: dict[str, list[dict[str, float]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rhin-load-monitor", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> ProcessMonitor:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        return self.summary()

    def _run(self) -> None:
        last: dict[str, tuple[float, float]] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            for name, pid in self.pids.items():
                found = _read(pid)
                if found is None:
                    continue
                cpu, rss = found
                if name in last:
                    t_prev, cpu_prev = last[name]
                    self.samples[name].append(
                        {
                            "t": round(now - self._t0, 3),
                            "cpu_pct": round(100 * (cpu - cpu_prev) / max(now - t_prev, 1e-6), 2),
                            "rss_mb": round(rss / 1_048_576, 2),
                        }
                    )
                last[name] = (now, cpu)
            self._stop.wait(self.interval_s)

    def summary(self) -> dict[str, Any]:
        """Per process: its samples, mean and max CPU %, max resident MB."""
        out: dict[str, Any] = {}
        for name, rows in self.samples.items():
            cpu = [r["cpu_pct"] for r in rows]
            out[name] = {
                "pid": self.pids[name],
                "samples": rows,
                "cpu_pct_mean": round(sum(cpu) / len(cpu), 2) if cpu else None,
                "cpu_pct_max": max(cpu) if cpu else None,
                "rss_mb_max": max((r["rss_mb"] for r in rows), default=None),
            }
        return out
