"""The network in SimPy time: viewer sessions and feeds from the workload, the hub's workers and audit
writer, gateway shards, links, per-source timeouts, outages — and the hub's own consent decision.

Entities (one :class:`simpy.Environment`), by module:

* :mod:`.arrivals` — sessions (Poisson, or Locust's paced users when replaying a load run), feeds, the
  join burst, gateway outages (random MTBF/MTTR per disclosing facility, or one named facility down).
  Session ``i`` is :meth:`WorldPlan.session` ``i``: the same viewer, patient and steps Locust's session
  ``i`` has.
* :mod:`.sessions` — a session's steps and the requests' paths through the stations.
* :mod:`.stations` — FIFO stations: the hub's event loops (``hub_cores``, default the calibration's hub
  processes), its password worker (a process pool of ``hash_workers``), the audit writer (group
  commit), one per gateway shard (a shard is one asyncio process), and when a load run is replayed the
  load generator's processes, and the machine's cores that all of them share as the kernel places them
  (``machine=True``, :mod:`.scheduler`).
* :mod:`.consent` — the hub's own ``may_know`` / ``_plan_source`` / ``may_view``, asked once per case.
* Links: the world's link models through :meth:`LinkModel.sample_delay` and
  :meth:`LinkModel.sample_transfer_seconds` — the same pure functions the live gateways use.

Outputs are histograms and counters only (:class:`.results.Results`), so memory does not grow with simulated
time. Everything random comes from one :class:`ModelRandom` seeded by ``seed`` (a :class:`random.Random`
whose normals come from a NumPy generator of the same seed; plus the plan's own seeded sessions): the same
inputs give the same JSON.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import random
from collections.abc import Callable
from functools import partial
from typing import Any, Final, Literal

import numpy as np
import simpy

from simulator.gateway.shard import partition
from simulator.hub.policy import EmergencyGrant
from simulator.hub.routes.auth import LOGIN_THREADS
from simulator.links import LinkModel
from simulator.workload import Rates, Workload

from .arrivals import Arrivals
from .calibration import BATCH, FALLBACKS, Calibration
from .consent import HubDecisions
from .results import Results
from .scheduler import WAKE_DELAYS, Scheduler
from .stations import GroupCommit, Interleaved, Station
from .whatif import WhatIf
from .world import DesWorld

__all__ = ["DesModel", "ModelRandom", "Results"]


RUN_GC_THRESHOLDS: Final = (50_000, 100, 100)
"""The cyclic collector's thresholds while the model runs (restored after). A session allocates scores of
short-lived containers (events, generators, lists) and almost no cycles; at Python's default (700, 10, 10)
the collector ran ~2,700 young and 5 full collections — each full one walking the world's millions of
objects — in 120 simulated days of ``ishikawa``, ~5 % of the run (``gc.freeze`` of the world did not
help: the full collections came more often). At these it runs ~36 young ones and no full one; the
resident memory is the same."""


class ModelRandom(random.Random):
    """The model's :class:`random.Random`, whose normal draws (``gauss``: every link's RTT, through
    :meth:`LinkModel.sample_rtt`) come from NumPy a batch at a time — :meth:`random.Random.gauss` is Python
    code, ~3 % of a simulated year — from a generator seeded with the same seed."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self._numpy = np.random.default_rng(seed)
        self._normals: list[float] = []

    def gauss(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        normals = self._normals
        if not normals:
            normals = self._normals = self._numpy.standard_normal(BATCH).tolist()
        return mu + normals.pop() * sigma


class DesModel(Arrivals):
    """One model run. Build, then :meth:`run` for ``duration_s`` simulated seconds."""

    def __init__(
        self,
        world: DesWorld,
        calibration: Calibration,
        whatif: WhatIf | None = None,
        *,
        seed: int = 42,
        workload: Workload | None = None,
        rate_override: float | None = None,
        join_burst: bool = False,
        start: dt.datetime | None = None,
        t0: float = 0.0,
        first_session: int = 0,
        arrivals: Literal["poisson", "paced"] = "poisson",
        pacing_s: float = 1.0,
        processes: int = 1,
        client_s: float = 0.0,
        machine: bool = False,
        users_series: tuple[tuple[float, int], ...] = (),
        client_timeouts: dict[str, float] | None = None,
    ) -> None:
        """``t0`` and ``first_session`` start the model part-way (a chunk of a long run, :func:`.run.run_one`
        with ``jobs``): the clock at ``t0`` seconds, sessions numbered from ``first_session``.
        ``arrivals="paced"`` with ``pacing_s`` and ``processes`` is Locust's user pool (:mod:`.arrivals`);
        ``client_s`` is the load generator's CPU seconds per request, on ``processes`` processes;
        ``machine`` puts hub, password worker, gateways and generator on the calibration's machine cores;
        ``users_series`` (seconds → viewers) replaces the paced pool's size by the one a run recorded;
        ``client_timeouts`` (operation → seconds): the generator gives up on such a request (login, PIX/PDQ,
        grant, logout, feed) after that long — a failure, and after a login, a PIX/PDQ or a grant the
        session ends as Locust's does (``loadtests.users``: aborted, no logout) — while the hub still
        does it."""
        self.world = world
        self.cal = calibration
        self.w = whatif or WhatIf()
        self.workload = workload or world.plan.workload
        self.rng = ModelRandom(seed)
        self.env = simpy.Environment(initial_time=t0)
        self._first_session = first_session
        self.results = Results()
        self.join_burst = join_burst
        self.arrivals = arrivals
        self.pacing_s = pacing_s
        self.processes = max(1, processes)
        self.users_series = tuple(sorted(users_series))
        self.client_timeouts = dict(client_timeouts or {})
        self.start = start or dt.datetime.combine(world.plan.reference_date, dt.time())
        self.rates = Rates(self.workload, world.registered, rate_override)
        self.load_scale = self.w.multiplier * self.w.patients * self.w.facilities
        self._build_stations(calibration, machine, client_s)
        self.hub_time = {op: d.sampler(self.w.hub_factor) for op, d in calibration.hub.items()}
        self.hash_time = calibration.login_hash.sampler(self.w.hub_factor)
        self.client_time = {op: d.sampler() for op, d in calibration.client.items()}
        in_audit = set(calibration.includes_audit)
        for op, instead in FALLBACKS.items():  # files from before the optional operations were measured
            for times in (self.hub_time, self.client_time):
                if op not in times and instead in times:
                    times[op] = times[instead]
            if op not in calibration.hub and instead in in_audit:
                in_audit.add(op)
        self.seen: set[tuple[int, int]] = set()
        self.audit_time = calibration.audit_commit.sampler(self.w.audit_factor)
        fits = [calibration.shard(i) for i in range(len(self.shards))]
        self.list_base = [f.list_base.sampler() for f in fits]
        self.fetch_base = [f.fetch_base.sampler() for f in fits]
        self.list_per_entry_ms = [f.list_per_entry_ms for f in fits]
        self.fetch_per_kb_ms = [f.fetch_per_kb_ms for f in fits]
        self.timeout_s = self.w.gateway_timeout_ms / 1000
        self._in_audit = frozenset(in_audit)
        self._commit_draws = {}
        self._bytes = {}
        self.down: set[str] = set()
        self.grants: dict[int, tuple[EmergencyGrant, ...]] = {}
        self.decisions = HubDecisions(world, self._shard_of, self.start)
        self._links: dict[str, LinkModel] = {}
        disabled = LinkModel.disabled()
        for code, kind in world.link_type.items():
            name = self.w.link or kind
            self._links[code] = world.links.get(name, disabled) if self.w.links else disabled

    def _build_stations(self, calibration: Calibration, machine: bool, client_s: float) -> None:
        """Hub event loop, password worker, audit writer, gateway shards; the generator and the machine.

        The hub answers on one event loop per process (``hub_cores`` what-if, default the calibration's hub
        processes) and hashes passwords in a worker *process* pool (``hash_workers``, one live), so logins
        queue there one at a time. With ``machine`` every CPU hold runs on the calibration's cores, shared
        among their processes as the kernel places them (:class:`.scheduler.Scheduler`), and the generator's
        requests interleave on them (:class:`Interleaved`: Locust's users are greenlets, not a queue).

        Gateways: the world's disclosing facilities partitioned over shards as the live network does
        (re-partitioned for a ``shards`` what-if); ``facilities`` ×F adds F copies of them on as many more
        shards, and session i's sources are copy i mod F (its patients are that copy's)."""
        env = self.env
        wake = partial(WAKE_DELAYS.draw, rng=self.rng)
        self.machine = Scheduler(env, "machine", calibration.machine.cores, wake) if machine else None
        cpu = self.machine
        self.cores = Station(env, "hub", self.w.hub_cores or calibration.machine.hub_processes, cpu)
        self.audit = GroupCommit(env, "audit")
        self.hasher = Station(env, "hub-hasher", calibration.machine.hash_workers, cpu, counted=True)
        # the hub's bound counts logins waiting for a login thread; those in threads (all but the one
        # hashing) wait at the worker too
        queue = self.w.login_queue
        self.login_room = None if queue is None else queue + LOGIN_THREADS - 1
        self.client: Station | Interleaved | None = None
        if cpu is not None:
            self.client = Interleaved(env, "load-generator", self.processes, cpu)
        elif client_s > 0:
            self.client = Station(env, "load-generator", self.processes)
        self.client_s = client_s
        self._shard_of = self.world.shard_of
        base = self.world.shards
        if self.w.shards is not None and self.w.shards != self.world.shards:
            groups = partition(self.world.meta, self.w.shards)
            self._shard_of = {code: i for i, group in enumerate(groups) for code in group}
            base = max(1, len(groups))
        self._base_shards = base
        self._replicas = max(1, math.ceil(self.w.facilities))
        self.shards = [Station(env, f"gateways-{i}", 1, cpu) for i in range(base * self._replicas)]

    # ------------------------------------------------------------------------------------ run

    def run(
        self, duration_s: float, progress: Callable[[float], None] | None = None, drain_s: float = 120.0
    ) -> Results:
        """Simulate ``duration_s`` seconds: arrivals stop then, and requests in flight get ``drain_s`` more
        to finish (rates are per ``duration_s``)."""
        env = self.env
        begin = env.now
        until = begin + duration_s
        if self.arrivals == "paced":
            env.process(self._paced(until, self.pacing_s, self.processes))
        else:
            env.process(self._sessions(until))
        self._start_side_processes(begin, until)
        step = max(duration_s / 100, 1.0)
        t = begin
        thresholds = gc.get_threshold()
        gc.set_threshold(*RUN_GC_THRESHOLDS)
        try:
            while t < until:
                t = min(until, t + step)
                env.run(until=t)
                if progress is not None:
                    progress(t - begin)
            if drain_s > 0:
                env.run(until=until + drain_s)
        finally:
            gc.set_threshold(*thresholds)
        self.results.duration_s = duration_s
        return self.results

    def _start_side_processes(self, begin: float, until: float) -> None:
        env = self.env
        if self.w.feeds:
            reg, upd = self.world.plan.feed_rate_per_s()
            if reg + upd > 0:
                env.process(self._feeds(until, reg + upd, reg / (reg + upd)))
            if self.join_burst and begin == 0:
                env.process(self._burst())
        if self.w.mtbf_days > 0:
            for f in self.world.facilities.disclosing():
                env.process(self._outage(f.code))
        if self.w.down:
            if self.world.facilities.get(self.w.down) is None:
                raise ValueError(f"what-if down: no facility {self.w.down} in the world")
            env.process(self._named_down(self.w.down))

    def events(self) -> int:
        """Events scheduled so far: SimPy's own event-id counter (``Environment._eid``, read by advancing
        it once, which only skips an id)."""
        return int(next(self.env._eid))

    def stations(self) -> list[Station | GroupCommit | Scheduler | Interleaved]:
        extra = [s for s in (self.client, self.machine) if s is not None]
        return [self.cores, self.hasher, self.audit, *self.shards, *extra]

    def resources(self) -> dict[str, Any]:
        d = self.results.duration_s
        return {s.name: s.to_json(d) for s in self.stations()}
