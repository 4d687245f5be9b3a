"""What every station of the model reports — time-averaged figures, no per-request history — and the type of
a SimPy process the stations' methods are."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

__all__ = ["Figures", "Proc", "Totals", "add_totals", "launch", "station_json", "totals_json"]

Proc = Generator[simpy.Event, Any, Any]


def launch(proc: Proc) -> None:
    """Run ``proc`` now, up to its first wait, and resume it as each event it waits for is processed —
    a :class:`simpy.Process` without the process: no ``Initialize`` event, no process event, no
    interrupts, and nobody can wait for it. For the model's sessions and feeds, which nobody waits for:
    a year of ``ishikawa`` starts ~480,000 of them (``benchmarks/bench_des.py``).

    It runs at once, where SimPy would start a process after the current event's callbacks: the caller
    launches after it has scheduled its own next event (the sessions' lookahead,
    :meth:`.sessions.SessionSteps._horizon`, reads the next scheduled event). An exception in ``proc``
    propagates out of the event's callback, which stops :meth:`simpy.Environment.run` as an unhandled
    process failure does; a failed event is thrown into ``proc``."""

    def resume(event: simpy.Event | None) -> None:
        while True:
            try:
                if event is None:
                    target = next(proc)
                elif event._ok:
                    target = proc.send(event._value)
                else:
                    event._defused = True
                    target = proc.throw(event._value)
            except StopIteration:
                return
            if target.callbacks is not None:  # not processed yet: resume when it is
                target.callbacks.append(resume)
                return
            event = target  # processed already: go on at once, as a process does

    resume(None)


class Figures:
    """What every station reports (its subclasses keep ``name``, ``capacity``, ``busy_s``, ``wait_s`` and
    ``requests``, and the counters named in ``counters``)."""

    __slots__ = ()
    counters: tuple[str, ...] = ()  # the station's own counts (commits, pulls), added up like the rest
    name: str
    capacity: int
    busy_s: float
    wait_s: float
    requests: int

    def totals(self) -> Totals:
        """What runs of the model add up (chunks of a long run, replicas): capacity, busy and waiting
        seconds, requests and the station's own counters."""
        out: Totals = {
            "capacity": self.capacity,
            "busy_s": self.busy_s,
            "wait_s": self.wait_s,
            "requests": self.requests,
        }
        for k in self.counters:
            out[k] = getattr(self, k)
        return out

    def to_json(self, duration_s: float) -> dict[str, Any]:
        return totals_json(self.totals(), duration_s)


Totals = dict[str, float]


def add_totals(into: dict[str, Totals], name: str, totals: Totals) -> None:
    """Add one run's totals of station ``name`` (its capacity is the same in every run)."""
    mine = into.get(name)
    if mine is None:
        into[name] = dict(totals)
        return
    for k, v in totals.items():
        if k != "capacity":
            mine[k] += v


def totals_json(t: Totals, duration_s: float) -> dict[str, Any]:
    """A station's figures over ``duration_s`` from its totals: utilisation, mean queue length, mean wait,
    and its own counters."""
    out = station_json(int(t["capacity"]), t["busy_s"], t["wait_s"], int(t["requests"]), duration_s)
    for k, v in t.items():
        if k not in out and k not in ("busy_s", "wait_s"):
            out[k] = int(v)
    return out


def station_json(cap: int, busy_s: float, wait_s: float, requests: int, duration_s: float) -> dict[str, Any]:
    """A station's figures over ``duration_s``: utilisation, mean queue length, mean wait."""
    return {
        "capacity": cap,
        "requests": requests,
        "utilisation": round(busy_s / (duration_s * cap), 4) if duration_s > 0 else 0.0,
        "mean_queue": round(wait_s / duration_s, 4) if duration_s > 0 else 0.0,
        "mean_wait_ms": round(wait_s / requests * 1000, 3) if requests else 0.0,
    }
