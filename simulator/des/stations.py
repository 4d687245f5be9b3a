"""Service stations: FIFO ones (the hub's event loop, its password worker, a gateway shard), the load
generator's interleaved requests and the audit writer's group commit — with what the model measures of each
(time-averaged, no per-request history). On a replayed machine their CPU work runs on
:class:`.scheduler.Scheduler`'s cores."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy
from simpy.events import Timeout

from .figures import Figures, Proc

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["GroupCommit", "Interleaved", "Station"]


class Station(Figures):
    """A FIFO server of ``capacity`` slots.

    Without a machine a hold is *booked* (:meth:`book`): a request's service time is drawn when it
    arrives, so in a FIFO station its start is known then too — the earliest time a slot is free (the
    Kiefer–Wolfowitz recursion over the slots' free times) — and the whole hold, queueing included, is
    one timeout. Requests reach a station in simulated-time order (the booking happens at ``env.now``, or
    with :meth:`end_at` at a later time before which nothing else happens in the model), so this is the
    FIFO queue exactly, with no request, release or hand-over events: what makes the year run fast
    (:meth:`after` gives the event; the M/M/1 test checks the waits against the closed form). A caller
    that also knows what follows the hold without another station (a gateway's link) adds it to the same
    timeout.

    ``cpu`` (optional) is the machine (:class:`.scheduler.Scheduler`): each slot is then one process on it
    and a hold's service time is CPU work done at the share of a core the machine gives that process (hub,
    password worker, gateways and the load generator share the machine's cores as they do live); its end
    is not known in advance (it depends on what else arrives on the cores), so such a hold is a process:
    a waiting request gets its slot handed over by the one leaving, in arrival order."""

    counters = ("pauses",)  # sleeps inside holds (the hub loop's commits), each a wake-up after it

    __slots__ = (
        "busy",
        "busy_s",
        "capacity",
        "cpu",
        "env",
        "free",
        "free_at",
        "name",
        "pauses",
        "queue",
        "requests",
        "starting",
        "starts",
        "tasks",
        "wait_s",
    )

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        capacity: int,
        cpu: Scheduler | None = None,
        counted: bool = False,
    ) -> None:
        """``counted``: keep the booked holds' start times, so that :meth:`waiting` can tell how many have
        not started (only the password worker needs it: the hub bounds the logins waiting there)."""
        self.env = env
        self.starts: deque[float] | None = deque() if counted else None
        self.name = name
        self.capacity = capacity
        self.cpu = cpu
        self.tasks = [cpu.task(f"{name}-{i}") for i in range(capacity)] if cpu is not None else []
        self.free = list(range(capacity - 1, -1, -1))  # idle slots (with a machine: which process)
        self.free_at = [env.now] * capacity  # without a machine: when each slot is free (a heap)
        self.starting = 0  # with a machine: holds made by :meth:`after` whose process has not run yet
        self.busy = 0
        self.queue: deque[simpy.Event] = deque()
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0
        self.pauses = 0

    def book(self, seconds: float) -> float:
        """Without a machine: take the slot free first for ``seconds`` of service from now on (after
        whoever holds or booked it); the seconds until this hold ends."""
        now = self.env.now
        return self.end_at(now, seconds) - now

    def end_at(self, t: float, seconds: float) -> float:
        """:meth:`book` for a request arriving at ``t`` (``env.now`` or later, when the caller knows that
        nothing else happens in the model before ``t``: see :meth:`.sessions.SessionSteps._horizon`);
        when its hold ends."""
        free_at = self.free_at
        if self.capacity == 1:
            start = free_at[0] if free_at[0] > t else t
            free_at[0] = start + seconds
        else:
            first = heapq.heappop(free_at)
            start = first if first > t else t
            heapq.heappush(free_at, start + seconds)
        self.requests += 1
        self.busy_s += seconds
        self.wait_s += start - t
        if self.starts is not None and start > t:
            self.starts.append(start)  # FIFO: starts come in order
        return start + seconds

    def waiting(self) -> int:
        """Holds asked for and not started (booked ones: a ``counted`` station)."""
        if self.cpu is not None:
            # the processes not run yet take the free slots first
            return len(self.queue) + max(0, self.starting - (self.capacity - self.busy))
        starts = self.starts
        assert starts is not None, f"{self.name}: not a counted station"
        now = self.env.now
        while starts and starts[0] <= now:
            starts.popleft()
        return len(starts)

    def after(self, seconds: float, pauses: tuple[float, ...] = ()) -> simpy.Event:
        """The event of a hold of ``seconds`` ending: a booked timeout, or with a machine its process."""
        if self.cpu is None:
            return Timeout(self.env, self.book(seconds + sum(pauses)))
        self.starting += 1
        return self.env.process(self._started(seconds, pauses))

    def _started(self, seconds: float, pauses: tuple[float, ...] = ()) -> Proc:
        self.starting -= 1  # a process runs its first step a moment after it is made
        yield from self.hold(seconds, pauses)

    def hold(self, seconds: float, pauses: tuple[float, ...] = ()) -> Proc:
        """Hold a slot for ``seconds`` of work; with ``pauses``, the work is cut into as many more equal
        parts with the slot's process asleep between them for each pause (a commit's fsync: the slot
        stays taken, its core is free, and the next part starts with a wake-up, see
        :class:`.scheduler.WakeDelays`). Booked (no machine), pauses simply add to the hold."""
        env = self.env
        if self.cpu is None:
            yield Timeout(env, self.book(seconds + sum(pauses)))
            return
        if self.busy < self.capacity:
            self.busy += 1
            slot = self.free.pop()
        else:
            asked = env.now
            turn = env.event()
            self.queue.append(turn)
            slot = yield turn  # the slot is handed over: busy stays as it is
            self.wait_s += env.now - asked
        self.requests += 1
        part = seconds / (len(pauses) + 1)  # without pauses, the whole hold in one piece
        for pause in pauses:
            self.busy_s += part  # booked piece by piece, as the machine is asked for them
            yield from self.cpu.run(self.tasks[slot], part)
            self.pauses += 1
            yield Timeout(env, pause)
        self.busy_s += part
        yield from self.cpu.run(self.tasks[slot], part)
        if self.queue:
            self.queue.popleft().succeed(slot)
        else:
            self.busy -= 1
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
    once; callers arriving meanwhile form the next group, which starts when that commit ends. The
    batcher's short wait for more callers under load (``GROUP_WAIT``, 1 ms) is not modelled: groups here
    are what queued during the previous commit. (Since the batcher lowers its expectation after a wait
    that runs out short, a lone caller pays that wait at most once after callers met; before, it paid it
    on every record for a second, +1 ms a request at ×100–×200.)

    Booked as a :class:`Station` hold is (:meth:`after`: one timeout per caller, no writer process): a
    caller arriving while a commit runs joins the group that will start when it ends, or opens that group
    — drawing its commit's seconds then, with its own ``draw`` — so every caller learns at once when its
    group ends. Callers arrive in simulated-time order, so the groups are the writer's exactly.

    Its figures read as a station's: ``requests`` are records, ``busy_s`` the commits' time, ``wait_s`` the
    records' waits before their group's commit began; ``groups`` counts commits."""

    counters = ("groups",)

    __slots__ = (
        "_count",
        "_end",
        "_start",
        "busy_s",
        "capacity",
        "env",
        "groups",
        "limit",
        "name",
        "requests",
        "wait_s",
    )

    def __init__(self, env: simpy.Environment, name: str, limit: int = 1000) -> None:
        self.env = env
        self.name = name
        self.capacity = 1
        self.limit = limit
        self._start = self._end = env.now  # the last group booked: its commit's start and end
        self._count = 0  # its records
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0
        self.groups = 0

    def book(self, draw: Callable[[], float]) -> float:
        """Add a record now; the seconds until its group has committed (``draw``: one commit's seconds,
        asked when this record opens a group)."""
        now = self.env.now
        return self.end_at(now, draw) - now

    def end_at(self, t: float, draw: Callable[[], float]) -> float:
        """:meth:`book` for a record arriving at ``t`` (as :meth:`Station.end_at`); when its group has
        committed."""
        self.requests += 1
        if self._start > t and self._count < self.limit:  # a group waiting for the commit before it
            self._count += 1
            self.wait_s += self._start - t
            return self._end
        start = self._end if self._end > t else t  # after the commit running, or at once
        seconds = draw()
        self._start, self._end, self._count = start, start + seconds, 1
        self.groups += 1
        self.busy_s += seconds
        self.wait_s += start - t
        return self._end

    def after(self, draw: Callable[[], float]) -> simpy.Event:
        """The event of this caller's record having committed."""
        return Timeout(self.env, self.book(draw))

    def commit(self, draw: Callable[[], float]) -> Proc:
        """Wait until this caller's record has committed; ``draw`` gives one commit's seconds."""
        yield Timeout(self.env, self.book(draw))
