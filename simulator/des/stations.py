"""FIFO service stations: the hub's workers, its login thread pool, the audit writer, a gateway shard, the
load generator's process and the machine's cores — with what the model measures of each (time-averaged, no
per-request history)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

__all__ = ["GroupCommit", "Proc", "Station", "station_json"]

Proc = Generator[simpy.Event, Any, Any]


class Station:
    """A FIFO server of ``capacity`` slots.

    Leaner than :class:`simpy.Resource` on purpose: an uncontended hold costs one event (its timeout), not
    three (request, timeout, release), which is most of the model's speed at realistic load; a waiting
    request gets its slot handed over by the one leaving, in arrival order. The M/M/1 test checks it.

    ``cpu`` (optional) is the machine's cores: a hold then also waits for a core for its whole service time
    (hub, gateways and the load generator share the machine's cores as they do live). Without it a hold
    is a plain timeout, so the model without a machine station is unchanged."""

    __slots__ = ("busy", "busy_s", "capacity", "cpu", "env", "name", "queue", "requests", "wait_s")

    def __init__(self, env: simpy.Environment, name: str, capacity: int, cpu: Station | None = None) -> None:
        self.env = env
        self.name = name
        self.capacity = capacity
        self.cpu = cpu
        self.busy = 0
        self.queue: deque[simpy.Event] = deque()
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0

    def hold(self, seconds: float) -> Proc:
        env = self.env
        if self.busy < self.capacity:
            self.busy += 1
        else:
            asked = env.now
            turn = env.event()
            self.queue.append(turn)
            yield turn  # the slot is handed over: busy stays as it is
            self.wait_s += env.now - asked
        self.requests += 1
        self.busy_s += seconds
        if self.cpu is not None:
            yield from self.cpu.hold(seconds)
        elif seconds > 0:
            yield env.timeout(seconds)
        if self.queue:
            self.queue.popleft().succeed()
        else:
            self.busy -= 1

    def totals(self) -> tuple[str, int, float, float, int]:
        """(name, capacity, busy seconds, waiting seconds, requests): what chunks of a long run add up."""
        return self.name, self.capacity, self.busy_s, self.wait_s, self.requests

    def to_json(self, duration_s: float) -> dict[str, Any]:
        return station_json(self.capacity, self.busy_s, self.wait_s, self.requests, duration_s)


def station_json(cap: int, busy_s: float, wait_s: float, requests: int, duration_s: float) -> dict[str, Any]:
    """A station's figures over ``duration_s``: utilisation, mean queue length, mean wait."""
    return {
        "capacity": cap,
        "requests": requests,
        "utilisation": round(busy_s / (duration_s * cap), 4) if duration_s > 0 else 0.0,
        "mean_queue": round(wait_s / duration_s, 4) if duration_s > 0 else 0.0,
        "mean_wait_ms": round(wait_s / requests * 1000, 3) if requests else 0.0,
    }


class GroupCommit:
    """The hub's audit writer as :class:`simulator.hub.auditbatch.AuditBatcher` runs it: one writer takes
    everything queued, in order, as one group (at most ``limit`` records) — one transaction, one commit —
    and answers every caller of the group when it has committed. An idle writer commits a lone caller at
    once (the fast path costs one event, as a :class:`Station` hold does); callers arriving meanwhile form
    the next group. The batcher's short wait for more callers under load (``GROUP_WAIT``, 1 ms) is not
    modelled: groups here are what queued during the previous commit.

    Its figures read as a station's: ``requests`` are records, ``busy_s`` the commits' time, ``wait_s`` the
    records' waits before their group's commit began; ``groups`` counts commits."""

    __slots__ = (
        "busy",
        "busy_s",
        "capacity",
        "env",
        "groups",
        "limit",
        "name",
        "queue",
        "requests",
        "wait_s",
    )

    def __init__(self, env: simpy.Environment, name: str, limit: int = 1000) -> None:
        self.env = env
        self.name = name
        self.capacity = 1
        self.limit = limit
        self.busy = False
        self.queue: list[tuple[simpy.Event, float]] = []
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0
        self.groups = 0

    def commit(self, draw: Callable[[], float]) -> Proc:
        """Wait until this caller's record has committed; ``draw`` gives one commit's seconds."""
        env = self.env
        if not self.busy:
            self.busy = True
            seconds = draw()
            self.requests += 1
            self.groups += 1
            self.busy_s += seconds
            if seconds > 0:
                yield env.timeout(seconds)
            if self.queue:
                env.process(self._drain(draw))
            else:
                self.busy = False
            return
        done = env.event()
        self.queue.append((done, env.now))
        yield done

    def _drain(self, draw: Callable[[], float]) -> Proc:
        env = self.env
        while self.queue:
            group = self.queue[: self.limit]
            del self.queue[: self.limit]
            now = env.now
            for _, asked in group:
                self.wait_s += now - asked
            seconds = draw()
            self.requests += len(group)
            self.groups += 1
            self.busy_s += seconds
            if seconds > 0:
                yield env.timeout(seconds)
            for done, _ in group:
                done.succeed()
        self.busy = False

    def totals(self) -> tuple[str, int, float, float, int]:
        return self.name, self.capacity, self.busy_s, self.wait_s, self.requests

    def to_json(self, duration_s: float) -> dict[str, Any]:
        out = station_json(self.capacity, self.busy_s, self.wait_s, self.requests, duration_s)
        out["groups"] = self.groups
        return out
