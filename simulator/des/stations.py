"""Service stations: FIFO ones (the hub's event loop, its password worker, a gateway shard), the load
generator's interleaved requests and the audit writer's group commit — with what the model measures of each
(time-averaged, no per-request history). On a replayed machine their CPU work runs on
:class:`.scheduler.Scheduler`'s cores."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import simpy

from .figures import Figures, Proc, station_json

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["GroupCommit", "Interleaved", "Station"]


class Station(Figures):
    """A FIFO server of ``capacity`` slots.

    Leaner than :class:`simpy.Resource` on purpose: an uncontended hold costs one event (its timeout), not
    three (request, timeout, release), which is most of the model's speed at realistic load; a waiting
    request gets its slot handed over by the one leaving, in arrival order. The M/M/1 test checks it.

    ``cpu`` (optional) is the machine (:class:`.scheduler.Scheduler`): each slot is then one process on it
    and a hold's service time is CPU work done at the share of a core the machine gives that process (hub,
    password worker, gateways and the load generator share the machine's cores as they do live). Without
    it a hold is a plain timeout, so the model without a machine is unchanged."""

    __slots__ = (
        "busy",
        "busy_s",
        "capacity",
        "cpu",
        "env",
        "free",
        "name",
        "queue",
        "requests",
        "tasks",
        "wait_s",
    )

    def __init__(
        self, env: simpy.Environment, name: str, capacity: int, cpu: Scheduler | None = None
    ) -> None:
        self.env = env
        self.name = name
        self.capacity = capacity
        self.cpu = cpu
        self.tasks = [cpu.task(f"{name}-{i}") for i in range(capacity)] if cpu is not None else []
        self.free = list(range(capacity - 1, -1, -1))  # idle slots (with a machine: which process)
        self.busy = 0
        self.queue: deque[simpy.Event] = deque()
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0

    def hold(self, seconds: float) -> Proc:
        env = self.env
        if self.busy < self.capacity:
            self.busy += 1
            slot = self.free.pop() if self.cpu is not None else 0
        else:
            asked = env.now
            turn = env.event()
            self.queue.append(turn)
            slot = yield turn  # the slot is handed over: busy stays as it is
            self.wait_s += env.now - asked
        self.requests += 1
        self.busy_s += seconds
        if self.cpu is not None:
            yield from self.cpu.run(self.tasks[slot], seconds)
        elif seconds > 0:
            yield env.timeout(seconds)
        if self.queue:
            self.queue.popleft().succeed(slot)
        else:
            self.busy -= 1
            if self.cpu is not None:
                self.free.append(slot)


class Interleaved(Figures):
    """Processes whose requests interleave instead of queueing — Locust's workers, where each user is a
    greenlet and a request's client work is cut at every socket wait: a request's work joins its process's
    work on the machine at once and shares that process's core time with the others in flight
    (:class:`.scheduler.Scheduler`). Requests go to the processes in turn (Locust spreads users evenly).
    (A FIFO station made a feed wait behind thousands of viewers' requests at ×2048: seconds where Locust
    took milliseconds.)"""

    __slots__ = ("busy_s", "capacity", "cpu", "env", "name", "requests", "tasks", "wait_s")

    def __init__(self, env: simpy.Environment, name: str, capacity: int, cpu: Scheduler) -> None:
        self.env = env
        self.name = name
        self.capacity = capacity
        self.cpu = cpu
        self.tasks = [cpu.task(f"{name}-{i}") for i in range(capacity)]
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0

    def hold(self, seconds: float) -> Proc:
        task = self.tasks[self.requests % self.capacity]
        self.requests += 1
        self.busy_s += seconds
        started = self.env.now
        yield from self.cpu.run(task, seconds)
        self.wait_s += self.env.now - started - seconds


class GroupCommit(Figures):
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
