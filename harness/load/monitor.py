"""CPU and memory of the hub, its password worker, each gateway shard and the whole machine over a run,
sampled from ``/proc`` (Linux).

A thread reads ``/proc/<pid>/stat`` (utime + stime, in clock ticks) and ``/proc/<pid>/statm`` (resident
pages) once per ``interval_s``; CPU is reported as the percentage of one core over each interval. A child
process that starts late (the hub's password worker, at the first login) is looked for at every sample
until found. ``machine`` is every core's non-idle time from ``/proc/stat`` (user, nice, system, irq,
softirq; not the hypervisor's steal), in % of one core like the rest, so a 2-core machine reads up to 200,
with the memory in use (``MemTotal − MemAvailable``): what the processes above leave unexplained is the
load generator's, the kernel's and everyone else's. A process that has gone (or a host without ``/proc``)
yields no samples rather than an error: the report says so.

:func:`cpu_ns` is the precise counter for one request's cost (``rhin calibrate``): the scheduler's run time
of every thread of a process and of its child processes, in nanoseconds (``/proc/<pid>/task/*/schedstat``),
where ``stat``'s clock ticks (10 ms) are far coarser than a request.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Final, Self

__all__ = [
    "MACHINE",
    "POOL_WORKER",
    "ProcessMonitor",
    "Sampler",
    "children",
    "cpu_ns",
    "cpu_seconds",
    "machine_cpu_seconds",
    "machine_read_bytes",
    "read_bytes",
]

MACHINE: Final = "machine"  # the name of the whole machine's row

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


def _read_machine() -> tuple[float, int] | None:
    """(CPU seconds all cores have been busy so far, bytes of memory in use), or None without ``/proc``."""
    try:
        cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in cpu[1:8])
    kb = {line.split(":")[0]: int(line.split()[1]) for line in meminfo.splitlines() if line.endswith("kB")}
    used = (kb.get("MemTotal", 0) - kb.get("MemAvailable", 0)) * 1024
    return (user + nice + system + irq + softirq) / _TICKS, used


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` so far, its ended threads included (``stat``'s clock ticks: for spans of
    seconds, where :func:`cpu_ns` would lose the threads that ended meanwhile). ``OSError`` if gone."""
    found = _read(pid)
    if found is None:
        raise OSError(f"cannot read /proc/{pid}/stat")
    return found[0]


def children(pid: int, marker: bytes = b"") -> list[int]:
    """The live child processes of ``pid`` (e.g. the hub's password worker), from ``/proc/*/stat``; with
    ``marker``, only those whose command line contains it."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) != pid:
                continue
            if marker and marker not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        out.append(int(entry.name))
    return out


POOL_WORKER: Final = b"spawn_main"  # a multiprocessing worker's command line (not its resource tracker's)


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


def machine_cpu_seconds() -> float | None:
    """CPU seconds all cores have been busy so far (as the ``machine`` row counts them), or None."""
    found = _read_machine()
    return None if found is None else found[0]


def machine_read_bytes() -> int | None:
    """Bytes the machine has read from its block devices so far (``/proc/vmstat`` ``pgpgin``, in KiB), or
    None without it."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("pgpgin "):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def read_bytes(pid: int) -> int:
    """Bytes ``pid`` has caused to be read from storage so far (``/proc/<pid>/io`` ``read_bytes``; its
    threads included); ``OSError`` if it cannot be read."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise OSError(f"/proc/{pid}/io has no read_bytes")


class Sampler:
    """A daemon thread that calls :meth:`sample` at once and every ``interval_s`` until :meth:`halt` (which
    waits at most ``join_s`` for a sample in progress): what a run reads beside itself — the processes'
    CPU here, the machine's speed (:class:`harness.load.speed.SpeedProbe`)."""

    def __init__(self, interval_s: float, name: str, join_s: float = 5.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s {interval_s}: must be > 0")
        self.interval_s, self.join_s = interval_s, join_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._t0 = time.monotonic()

    def sample(self) -> None:
        raise NotImplementedError

    def elapsed(self) -> float:
        """Seconds since the sampler was made."""
        return time.monotonic() - self._t0

    def start(self) -> Self:
        self._thread.start()
        return self

    def halt(self) -> None:
        self._stop.set()
        self._thread.join(self.join_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)


class ProcessMonitor(Sampler):
    """Samples named processes (``{"hub": pid, "gateways-0": pid, …}``) until :meth:`stop`; ``children``
    (``{"hub-hasher": "hub"}``) names a named process's multiprocessing worker (:data:`POOL_WORKER`),
    found once it exists; ``machine`` adds the whole machine's row (:data:`MACHINE`)."""

    def __init__(
        self,
        pids: dict[str, int],
        interval_s: float = 1.0,
        children: dict[str, str] | None = None,
        machine: bool = False,
    ) -> None:
        super().__init__(interval_s, "rhin-load-monitor")
        self.pids = dict(pids)
        self.children = {name: parent for name, parent in (children or {}).items() if parent in self.pids}
        self.machine = machine
        names = [*self.pids, *self.children, *([MACHINE] if machine else [])]
        self.samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        self._last: dict[str, tuple[float, float]] = {}  # per name: (when, CPU seconds) of its last read

    def stop(self) -> dict[str, Any]:
        self.halt()
        return self.summary()

    def sample(self) -> None:
        now = time.monotonic()
        for name, parent in self.children.items():
            if name not in self.pids and (kids := children(self.pids[parent], POOL_WORKER)):
                self.pids[name] = min(kids)
        readings = [(name, _read(pid)) for name, pid in self.pids.items()]
        if self.machine:
            readings.append((MACHINE, _read_machine()))
        for name, found in readings:
            if found is None:
                continue
            cpu, rss = found
            if name in self._last:
                t_prev, cpu_prev = self._last[name]
                self.samples[name].append(
                    {
                        "t": round(now - self._t0, 3),
                        "cpu_pct": round(100 * (cpu - cpu_prev) / max(now - t_prev, 1e-6), 2),
                        "rss_mb": round(rss / 1_048_576, 2),
                    }
                )
            self._last[name] = (now, cpu)

    def summary(self) -> dict[str, Any]:
        """Per process: its samples, mean and max CPU %, max resident MB."""
        out: dict[str, Any] = {}
        for name, rows in self.samples.items():
            cpu = [r["cpu_pct"] for r in rows]
            out[name] = {
                "pid": self.pids.get(name),
                "samples": rows,
                "cpu_pct_mean": round(sum(cpu) / len(cpu), 2) if cpu else None,
                "cpu_pct_max": max(cpu) if cpu else None,
                "rss_mb_max": max((r["rss_mb"] for r in rows), default=None),
            }
        return out
