"""How fast this machine computes *now*: a fixed piece of Python work and one password hash, timed in the
probing thread's own CPU time.

Why. The SimPy model's service times are CPU per request measured by ``rhin calibrate``; they hold for the
machine as it was then. On the VM this project is tested on the same code ran up to 2× apart over a few
hours (bare SimPy 380k against 796k events/s; the hub's CPU per request read 0.66–0.74× and the scrypt hash
36 against 53 ms 70 minutes apart). A load run an hour after its calibration is then replayed on a machine
that no longer exists, and at a load near saturation that decides the result. So ``rhin calibrate``
records a speed reading beside its times and ``rhin load`` takes one every ``every_s`` over the run; the
validation scales the calibration's CPU times by the ratio (:meth:`simulator.des.Calibration.at_speed`).

What is read. ``python_ms``: the thread CPU of :func:`_python_work` — splitting pipe-delimited segments,
building dicts, a JSON round trip, a sort: the kind of work a hub request is made of. ``hash_ms``: one
scrypt at the hub's production cost (:class:`simulator.hub.accounts.ScryptParams`; memory-bound, so it
moves apart from the Python figure). Thread CPU time (``CLOCK_THREAD_CPUTIME_ID``) leaves out the time
spent waiting for a core — a probe on a busy machine reads how fast a core computes, not how busy it is —
but keeps what sharing the cores' caches costs, which the hub pays too. A reading is the least of
``repeats`` runs of the Python work (the noise of an interrupt only ever adds) and one hash.

Cost: 3 × ~8 ms of Python and ~45–55 ms of hashing per reading; every 30 s that is 0.25 % of one core.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from simulator.hub.accounts import ScryptParams, scrypt_hash

from .monitor import Sampler

__all__ = ["EVERY_S", "SpeedProbe", "SpeedReading", "read_speed", "summarise"]

EVERY_S: Final = 30.0
_SEGMENTS: Final = "\r".join(
    f"OBX|{i}|NM|3D0{i:02d}000002327101^検査{i}^JC10||{i * 3.5:.1f}|mg/dL|||N|||F|||20260401{i % 24:02d}00"
    for i in range(60)
)


def _python_work(rounds: int = 40) -> int:
    """A fixed amount of hub-like Python (its result is returned so that nothing is optimised away)."""
    total = 0
    for r in range(rounds):
        segments = [s.split("|") for s in _SEGMENTS.split("\r")]
        rows = {
            f"{s[1]}-{r}": {"code": s[3].split("^")[0], "value": float(s[5]), "at": s[14]} for s in segments
        }
        text = json.dumps(rows, ensure_ascii=False, sort_keys=True)
        back = json.loads(text)
        total += len(text) + len(sorted(back.values(), key=lambda v: (v["value"], v["code"])))
    return total


@dataclass(frozen=True, slots=True)
class SpeedReading:
    """One reading: ``t`` seconds since the probe started, thread-CPU milliseconds of each part."""

    t: float
    python_ms: float
    hash_ms: float


def read_speed(t: float = 0.0, repeats: int = 3) -> SpeedReading:
    """One reading now (see the module's docstring)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        _python_work()
        best = min(best, (time.thread_time_ns() - t0) / 1e6)
    t0 = time.thread_time_ns()
    scrypt_hash("speed-probe", b"rhin-speed-probe", ScryptParams())
    hashed = (time.thread_time_ns() - t0) / 1e6
    return SpeedReading(round(t, 3), round(best, 4), round(hashed, 4))


def summarise(readings: Sequence[SpeedReading]) -> dict[str, Any]:
    """The medians of the readings (what a validation scales by) and the readings themselves."""
    if not readings:
        return {"python_ms": None, "hash_ms": None, "readings": []}
    return {
        "python_ms": round(statistics.median(r.python_ms for r in readings), 4),
        "hash_ms": round(statistics.median(r.hash_ms for r in readings), 4),
        "readings": [asdict(r) for r in readings],
    }


class SpeedProbe(Sampler):
    """A reading at start and every ``every_s`` until :meth:`stop` (a daemon thread; :meth:`stop` returns
    :func:`summarise` of what was read and waits at most for the reading in progress)."""

    def __init__(self, every_s: float = EVERY_S) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s {every_s}: must be > 0")
        super().__init__(every_s, "rhin-speed-probe", join_s=10.0)
        self.readings: list[SpeedReading] = []

    def stop(self) -> dict[str, Any]:
        self.halt()
        return summarise(self.readings)

    def sample(self) -> None:
        self.readings.append(read_speed(self.elapsed()))
