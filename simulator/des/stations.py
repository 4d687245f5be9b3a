"""Service stations: FIFO ones (the hub's event loop, its password worker, a gateway shard, the load
generator's processes), the audit writer's group commit, and the machine's cores shared among whatever
runs (processor sharing) — with what the model measures of each (time-averaged, no per-request history)."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

__all__ = ["GroupCommit", "Interleaved", "Proc", "SharedCores", "Station", "station_json"]

Proc = Generator[simpy.Event, Any, Any]


class _Figures:
    """What every station reports (its subclasses keep ``name``, ``capacity``, ``busy_s``, ``wait_s`` and
    ``requests``)."""

    __slots__ = ()
    name: str
    capacity: int
    busy_s: float
    wait_s: float
    requests: int

    def totals(self) -> tuple[str, int, float, float, int]:
        """(name, capacity, busy seconds, waiting seconds, requests): what chunks of a long run add up."""
        return self.name, self.capacity, self.busy_s, self.wait_s, self.requests

    def to_json(self, duration_s: float) -> dict[str, Any]:
        return station_json(self.capacity, self.busy_s, self.wait_s, self.requests, duration_s)


class Station(_Figures):
    """A FIFO server of ``capacity`` slots.

    Leaner than :class:`simpy.Resource` on purpose: an uncontended hold costs one event (its timeout), not
    three (request, timeout, release), which is most of the model's speed at realistic load; a waiting
    request gets its slot handed over by the one leaving, in arrival order. The M/M/1 test checks it.

    ``cpu`` (optional) is the machine's cores (:class:`SharedCores`): a hold's service time is then CPU
    work done at the share of a core the machine gives it (hub, password worker, gateways and the load
    generator share the machine's cores as they do live). Without it a hold is a plain timeout, so the
    model without a machine station is unchanged."""

    __slots__ = ("busy", "busy_s", "capacity", "cpu", "env", "name", "queue", "requests", "wait_s")

    def __init__(
        self, env: simpy.Environment, name: str, capacity: int, cpu: SharedCores | None = None
    ) -> None:
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
            yield from self.cpu.run(seconds)
        elif seconds > 0:
            yield env.timeout(seconds)
        if self.queue:
            self.queue.popleft().succeed()
        else:
            self.busy -= 1


def station_json(cap: int, busy_s: float, wait_s: float, requests: int, duration_s: float) -> dict[str, Any]:
    """A station's figures over ``duration_s``: utilisation, mean queue length, mean wait."""
    return {
        "capacity": cap,
        "requests": requests,
        "utilisation": round(busy_s / (duration_s * cap), 4) if duration_s > 0 else 0.0,
        "mean_queue": round(wait_s / duration_s, 4) if duration_s > 0 else 0.0,
        "mean_wait_ms": round(wait_s / requests * 1000, 3) if requests else 0.0,
    }


class SharedCores(_Figures):
    """The machine's ``cores`` shared by everything runnable, as the kernel's scheduler shares them:
    egalitarian processor sharing. With ``n`` jobs running each does ``min(1, cores / n)`` seconds of its
    work per second, so a 2-ms query beside forty 30-ms hashes is slowed, not queued behind them (a FIFO
    core queue made it wait for all of them).

    Kept exact and cheap with a virtual clock: ``v`` is the work every running job has done since the
    start; a job of ``w`` seconds arriving at ``v0`` ends when ``v`` reaches ``v0 + w``, so only the
    smallest such end matters. Each arrival or departure reschedules one timeout for it; earlier timeouts
    are recognised as stale by a generation number and do nothing. The M/G/1-PS test checks the mean
    response time of a job of size ``x``, ``x / (1 − ρ)``."""

    __slots__ = (
        "_gen",
        "_jobs",
        "_seq",
        "_t",
        "_v",
        "busy_s",
        "capacity",
        "env",
        "name",
        "requests",
        "wait_s",
    )

    def __init__(self, env: simpy.Environment, name: str, cores: int) -> None:
        self.env = env
        self.name = name
        self.capacity = cores
        self._jobs: list[tuple[float, int, simpy.Event]] = []
        self._seq = itertools.count()
        self._gen = 0
        self._v = 0.0
        self._t = env.now
        self.busy_s = 0.0  # core-seconds of work done
        self.wait_s = 0.0  # seconds jobs took beyond their work (slowed by sharing)
        self.requests = 0

    def _advance(self) -> None:
        now = self.env.now
        n = len(self._jobs)
        if n and now > self._t:
            self._v += (now - self._t) * min(1.0, self.capacity / n)
        self._t = now

    def run(self, seconds: float) -> Proc:
        """Do ``seconds`` of CPU work at the share the machine gives."""
        self.requests += 1
        if seconds <= 0:
            return
        self.busy_s += seconds
        started = self.env.now
        self._advance()
        done = self.env.event()
        heapq.heappush(self._jobs, (self._v + seconds, next(self._seq), done))
        self._schedule()
        yield done
        self.wait_s += self.env.now - started - seconds

    def _schedule(self) -> None:
        self._gen += 1
        end_v = self._jobs[0][0]
        rate = min(1.0, self.capacity / len(self._jobs))
        timer = self.env.timeout(max(0.0, (end_v - self._v) / rate))
        timer.callbacks.append(self._tick(self._gen))

    def _tick(self, gen: int) -> Callable[[simpy.Event], None]:
        def fire(_: simpy.Event) -> None:
            if gen != self._gen:
                return  # an arrival or departure since rescheduled the next end
            self._advance()
            jobs = self._jobs
            eps = 1e-12 * max(1.0, abs(self._v))
            while jobs and jobs[0][0] <= self._v + eps:
                heapq.heappop(jobs)[2].succeed()
            if jobs:
                self._schedule()

        return fire


class Interleaved(_Figures):
    """Processes whose requests interleave instead of queueing — Locust's workers, where each user is a
    greenlet and a request's client work is cut at every socket wait: each request's work runs at once on
    the machine's shared cores (:class:`SharedCores`), counted here. (A FIFO station made a feed wait
    behind thousands of viewers' requests at ×2048: seconds where Locust took milliseconds.)"""

    __slots__ = ("busy_s", "capacity", "cpu", "env", "name", "requests", "wait_s")

    def __init__(self, env: simpy.Environment, name: str, capacity: int, cpu: SharedCores) -> None:
        self.env = env
        self.name = name
        self.capacity = capacity
        self.cpu = cpu
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0

    def hold(self, seconds: float) -> Proc:
        self.requests += 1
        self.busy_s += seconds
        started = self.env.now
        yield from self.cpu.run(seconds)
        self.wait_s += self.env.now - started - seconds


class GroupCommit(_Figures):
    """The hub's audit writer as :class:`simulator.hub.auditbatch.AuditBatcher` runs it: one writer takes
    everything queued, in order, as one group (at most ``limit`` records) — one transaction, one commit —
    and answers every caller of the group when it has committed. An idle writer commits a lone caller at
    once (the fast path costs one event, as a :class:`Station` hold does); callers arriving meanwhile form
    the next group. The batcher's short wait for more callers under load (``GROUP_WAIT``, 1 ms) is not
    modelled: groups here are what queued during the previous commit. (Since the batcher lowers its
    expectation after a wait that runs out short, a lone caller pays that wait at most once after callers
    met; before, it paid it on every record for a second, +1 ms a request at ×100–×200.)

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

    def to_json(self, duration_s: float) -> dict[str, Any]:
        out = station_json(self.capacity, self.busy_s, self.wait_s, self.requests, duration_s)
        out["groups"] = self.groups
        return out
