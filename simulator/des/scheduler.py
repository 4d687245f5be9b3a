"""The machine's cores as the kernel's scheduler shares them among processes — for replaying a load run, where
the hub, its password worker, the gateway shards and the load generator all run on one machine.

Why not processor sharing over all cores (each of n runnable jobs at min(1, cores / n) of a core, what the
model did before): it lets a short request use whatever core is free at every instant, and the kernel does
not. A waking task goes back to the core it last ran on; the kernel's search for an idle core is cut short
when the cache domain is busy, and its balancer moves tasks only now and then. So on a 2-core machine a busy
password worker keeps one core and the others crowd onto the other core, or onto the worker's.
``benchmarks/bench_sched.py`` measures it on this machine: a server doing 6 ms of CPU per request beside a
hashing process and one to three processes each busy 25 % of the time in 2-ms bursts answers at p50 8.1 /
10.0 / 11.2 ms and p95 10.2 / 13.6 / 16.1 ms. The rules below give 0.96–1.09 of every one of those figures
(and of the mixes without a hog); processor sharing gives 0.78–0.89 of the p50s and 0.69–0.86 of the
p95s of the mixes where a server shares. At ×400 on ``ishikawa`` (the password worker saturated) the
replay's PIX, PDQ, timeline, fetch and logout medians were 14–36 % short with processor sharing and 7–26 %
with these rules.

The rules, each the kernel's simplified:

* **Tasks** are processes (one thread each doing CPU work): a hub event loop, a password worker, a gateway
  shard, a Locust process. A task is runnable while it has work; the work items of one task (Locust's
  greenlets) share that task's share of its core equally. Tasks start spread over the cores in the order
  they are made.
* **Wake-up**: a task becoming runnable goes to the core it last ran on, busy or not.
* **Sharing**: the runnable tasks of a core share it equally (EEVDF at equal weights), as a fluid — no time
  slices.
* **Idle balance**: whenever a task's work ends, every idle core pulls, from the core with the most runnable
  tasks (at least two), the task that woke there last (the one there longest is cache-hot and stays). The
  kernel does this when a core goes idle and again at an idle core's balancing ticks; the model at its next
  completion anywhere. (Pulling only into the core that just went idle replayed the ``ishikawa`` runs no
  better or worse: 45 against 49 operations within the goals over twelve replays.)
* **Wake-up delay** (:class:`WakeDelays`): a task waking onto a core where others are runnable sometimes
  waits before it runs at all — the kernel runs a waker at once, or after the current task's slice. The
  fluid sharing alone slowed every short request a little where the kernel makes most wait not at all
  and a few a whole slice: ``bench_sched.py --work-ms 0.3`` (a 0.3-ms request beside 2–6 bursty
  processes) measured p95s 1.4–1.7× what the model gave with four or more of them; with the delays
  :data:`WAKE_DELAYS` draws, the model's p95s are 0.63–1.23× the live ones (fitted to those mixes; the
  default 6-ms mixes moved by at most 0.03).
* No time-driven balancer (between two completions nothing moves), no SMT, no kernel threads.

Exact and event-driven: at every arrival, completion and pull the tasks' progress is brought up to date and
one timer is set for the next completion (earlier timers are recognised as stale by a generation number).
There are only a handful of tasks, so each event walks them all.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import simpy

from .figures import Figures, Proc

__all__ = ["WAKE_DELAYS", "Scheduler", "Task", "WakeDelays"]


@dataclass(frozen=True, slots=True)
class WakeDelays:
    """How long a waking task waits before it runs, by how many other tasks are runnable on its core:
    ``table[i]`` is (probability, mean seconds) for ``i + 1`` others, the last row for that many or more;
    with none it runs at once. A delay is exponential about its mean."""

    table: tuple[tuple[float, float], ...]

    def draw(self, others: int, rng: random.Random) -> float:
        if others <= 0:
            return 0.0
        chance, mean_s = self.table[min(others, len(self.table)) - 1]
        return rng.expovariate(1 / mean_s) if rng.random() < chance else 0.0


WAKE_DELAYS: Final = WakeDelays(((0.15, 0.0010), (0.25, 0.0010), (0.35, 0.0015)))
"""Fitted to ``benchmarks/bench_sched.py --work-ms 0.3 --rate 100 --mixes 0:0,0:2,0:4,0:6,1:3,1:5`` on the
2-core reference machine (stop 36): with 1 / 2 / 3+ others runnable, 15 / 25 / 35 % of wake-ups wait, 1 /
1 / 1.5 ms on average."""


class Task:
    """One process on the machine: its pending work items and the core it runs on (or last ran on)."""

    __slots__ = ("core", "jobs", "name", "prev", "ready_at", "v", "woke")

    def __init__(self, name: str, prev: int) -> None:
        self.name = name
        self.core: int | None = None  # the core while runnable
        self.prev = prev  # the core it last ran on
        self.jobs: list[tuple[float, int, simpy.Event]] = []  # (v at which it ends, order, event)
        self.v = 0.0  # work each of its items has done since the start (items share the task equally)
        self.woke = 0.0
        self.ready_at = 0.0  # a wake-up delay (Scheduler.wake) ends then


class Scheduler(Figures):
    """``cores`` cores shared by :class:`Task` s (see the module's docstring for the rules).

    Its figures read as a station's: ``requests`` are work items, ``busy_s`` the core-seconds of work done,
    ``wait_s`` the seconds items took beyond their work (slowed by sharing); ``pulls`` counts idle-balance
    migrations."""

    counters = ("pulls",)
    __slots__ = (
        "_gen",
        "_made",
        "_on",
        "_seq",
        "_t",
        "busy_s",
        "capacity",
        "env",
        "name",
        "pulls",
        "requests",
        "wait_s",
        "wake",
    )

    def __init__(
        self, env: simpy.Environment, name: str, cores: int, wake: Callable[[int], float] | None = None
    ) -> None:
        """``wake`` (others runnable on the waker's core → seconds it waits; None: it never waits) is the
        wake-up delay rule, e.g. ``functools.partial(WAKE_DELAYS.draw, rng=rng)``."""
        if cores < 1:
            raise ValueError(f"a machine needs at least one core, not {cores}")
        self.env = env
        self.name = name
        self.capacity = cores
        self._on: list[list[Task]] = [[] for _ in range(cores)]  # runnable tasks per core
        self._made = 0  # tasks made so far
        self._seq = itertools.count()
        self._gen = 0
        self._t = env.now
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.requests = 0
        self.pulls = 0
        self.wake = wake

    def task(self, name: str) -> Task:
        """A new process; tasks start spread over the cores (their first 'last core')."""
        self._made += 1
        return Task(name, (self._made - 1) % self.capacity)

    # ------------------------------------------------------------------------------------ work

    def run(self, task: Task, seconds: float) -> Proc:
        """Do ``seconds`` of CPU work as ``task``, at the share its core gives it."""
        self.requests += 1
        if seconds <= 0:
            return
        self.busy_s += seconds
        env = self.env
        started = env.now
        if not task.jobs and self.wake is not None:
            if task.ready_at <= started:
                others = len(self._on[task.prev])
                task.ready_at = started + (self.wake(others) if others else 0.0)
            if task.ready_at > started:
                yield env.timeout(task.ready_at - started)
        self._advance()
        if not task.jobs:
            self._wake(task)
        done = env.event()
        heapq.heappush(task.jobs, (task.v + seconds, next(self._seq), done))
        self._schedule()
        yield done
        self.wait_s += env.now - started - seconds

    # ------------------------------------------------------------------------------------ scheduling

    def _rate(self, task: Task) -> float:
        """Work per second each of ``task``'s items gets now."""
        assert task.core is not None
        return 1.0 / (len(self._on[task.core]) * len(task.jobs))

    def _advance(self) -> None:
        now = self.env.now
        elapsed = now - self._t
        if elapsed > 0:
            for tasks in self._on:
                for t in tasks:
                    t.v += elapsed * self._rate(t)
        self._t = now

    def _wake(self, task: Task) -> None:
        task.core = task.prev
        task.woke = self.env.now
        self._on[task.prev].append(task)

    def _schedule(self) -> None:
        self._gen += 1
        soonest = math.inf
        for tasks in self._on:
            for t in tasks:
                soonest = min(soonest, (t.jobs[0][0] - t.v) / self._rate(t))
        if soonest < math.inf:
            timer = self.env.timeout(max(0.0, soonest))
            timer.callbacks.append(self._tick(self._gen))

    def _tick(self, gen: int) -> Callable[[simpy.Event], None]:
        def fire(_: simpy.Event) -> None:
            if gen != self._gen:
                return  # an arrival or completion since set a new timer
            self._advance()
            freed: list[int] = []
            for core, tasks in enumerate(self._on):
                for t in list(tasks):
                    eps = 1e-12 * max(1.0, abs(t.v))
                    while t.jobs and t.jobs[0][0] <= t.v + eps:
                        heapq.heappop(t.jobs)[2].succeed()
                    if not t.jobs:
                        tasks.remove(t)
                        t.prev, t.core = core, None
                if not tasks:
                    freed.append(core)
            for core in freed:
                self._pull(core)
            self._schedule()

        return fire

    def _pull(self, core: int) -> None:
        """Idle balance: the idle ``core`` takes the last-woken task of the most crowded core (on a tie the
        first of them in the core's order after the one there longest)."""
        busiest = max(range(self.capacity), key=lambda i: len(self._on[i]))
        if len(self._on[busiest]) < 2 or self._on[core]:
            return
        tasks = self._on[busiest]
        moved = max(tasks[1:], key=lambda t: t.woke)  # tasks[0] has run longest there: it stays
        tasks.remove(moved)
        moved.core = core
        self._on[core].append(moved)
        self.pulls += 1
