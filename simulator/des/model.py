"""The network in SimPy time: viewer sessions and feeds from the workload, the hub's workers and audit
writer, gateway shards, links, per-source timeouts, outages — and the hub's own consent decision.

Entities (one :class:`simpy.Environment`):

* **Sessions** arrive as a Poisson process whose rate follows the workload's shape
  (:class:`simulator.workload.Rates`, thinned to the instantaneous rate) × the what-if multipliers. Session
  ``i`` is :meth:`WorldPlan.session` ``i`` — the same viewer, patient and steps Locust's session ``i`` has:
  login, PIX or PDQ, (emergency grant), timeline, k fetches (or one refused fetch for an outside viewer),
  logout, with the plan's think times between steps.
* **Hub workers**: a FIFO station (:class:`_Station`) of ``hub_cores`` (default: the calibration's hub
  processes); every request holds one for the operation's calibrated own work, except logins: the hub
  hashes passwords in a thread pool, so they queue at a ``hub-login`` station of the machine's cores.
  The **audit writer** is a station of one: every audited request (all but logout) waits for its commit
  before it is answered, as the hub's "answer only what is audited" demands. Group commit is not
  modelled (each request commits alone, the conservative side); operations calibrated with the commit
  inside their time (``includes_audit``) hold the writer only for what ``audit_factor`` adds.
* **Gateways**: one station per shard (a shard is one asyncio process: one request at a time of CPU);
  a list costs ``list_base + per_entry × entries``, a fetch ``fetch_base + per_kb × kB``, then the link:
  :meth:`LinkModel.sample_delay` (RTT, loss) and :meth:`LinkModel.sample_transfer_seconds` (bandwidth,
  lost segments) — the same pure functions the live gateways use.
* **Timeouts and partial timelines** as :mod:`simulator.hub.records` does them: sources are planned by the
  hub's own ``_plan_source`` (which calls :func:`simulator.hub.policy.may_view` per category), fanned out in
  parallel, and a source that has not answered within the per-source timeout is ``timeout``; a timeline
  with such a source is *partial*. A down gateway answers nothing (the hub waits the timeout).
* **Consent**: :func:`simulator.hub.policy.may_know` before anything, then the hub's planning per source
  (``may_view``), and ``may_view`` again at fetch time. Refusals cost the hub work they cost live. An
  outside viewer's timeline that lists an entry, or a fetch it gets, is counted as a *leak*.

Outputs are histograms and counters only (:class:`Results`), so memory does not grow with simulated time.
Everything random comes from one :class:`random.Random` seeded by ``seed`` (plus the plan's own seeded
sessions): the same inputs give the same JSON.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, cast

import simpy

from simulator.gateway.shard import partition
from simulator.hub import policy, records
from simulator.hub.policy import EmergencyGrant, PatientState, Viewer
from simulator.hub.service import HubServices
from simulator.links import LinkModel
from simulator.workload import PlannedSession, Rates, Workload

from .calibration import Calibration
from .histogram import Histogram
from .whatif import WhatIf
from .world import DesWorld

__all__ = ["DesModel", "Results"]

Proc = Generator[simpy.Event, Any, Any]


class _Station:
    """A FIFO server of ``capacity`` slots (hub workers, the audit writer, a gateway shard), with what the
    model measures of it (time-averaged, no per-request history).

    Leaner than :class:`simpy.Resource` on purpose: an uncontended hold costs one event (its timeout), not
    three (request, timeout, release), which is most of the model's speed at realistic load; a waiting
    request gets its slot handed over by the one leaving, in arrival order. The M/M/1 test checks it."""

    __slots__ = ("busy", "busy_s", "capacity", "env", "name", "queue", "requests", "wait_s")

    def __init__(self, env: simpy.Environment, name: str, capacity: int) -> None:
        self.env = env
        self.name = name
        self.capacity = capacity
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
        if seconds > 0:
            yield env.timeout(seconds)
        if self.queue:
            self.queue.popleft().succeed()
        else:
            self.busy -= 1

    def to_json(self, duration_s: float) -> dict[str, Any]:
        cap = self.capacity
        return {
            "capacity": cap,
            "requests": self.requests,
            "utilisation": round(self.busy_s / (duration_s * cap), 4) if duration_s > 0 else 0.0,
            "mean_queue": round(self.wait_s / duration_s, 4) if duration_s > 0 else 0.0,
            "mean_wait_ms": round(self.wait_s / self.requests * 1000, 3) if self.requests else 0.0,
        }


@dataclass
class Results:
    """What a run measured: latency histograms per operation, counts, consent and source outcomes."""

    duration_s: float = 0.0
    ops: dict[str, Histogram] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    leaks: int = 0
    sessions: int = 0
    timelines: int = 0
    partial_timelines: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    events: int = 0

    def record(self, op: str, seconds: float) -> None:
        h = self.ops.get(op)
        if h is None:
            h = self.ops[op] = Histogram()
        h.add(seconds)

    def fail(self, op: str, reason: str, seconds: float) -> None:
        per = self.failures.setdefault(op, {})
        per[reason] = per.get(reason, 0) + 1
        self.record(op, seconds)

    def merge(self, other: Results) -> None:
        """Add another chunk's figures (durations add up)."""
        self.duration_s += other.duration_s
        for name, h in other.ops.items():
            mine = self.ops.get(name)
            if mine is None:
                self.ops[name] = mine = Histogram()
            mine.merge(h)
        for table_name in ("failures",):
            for op, reasons in getattr(other, table_name).items():
                per = self.failures.setdefault(op, {})
                for k, v in reasons.items():
                    per[k] = per.get(k, 0) + v
        for mine_d, theirs in ((self.refused, other.refused), (self.sources, other.sources)):
            for k, v in theirs.items():
                mine_d[k] = mine_d.get(k, 0) + v
        self.leaks += other.leaks
        self.sessions += other.sessions
        self.timelines += other.timelines
        self.partial_timelines += other.partial_timelines
        self.events += other.events

    def operations(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, h in self.ops.items():
            fails = self.failures.get(name, {})
            out[name] = {
                **h.to_json(),
                "failures": sum(fails.values()),
                "failures_by_reason": dict(fails),
                "refused": self.refused.get(name, 0),
                "per_s": round(h.count / self.duration_s, 6) if self.duration_s else 0.0,
            }
        return out


class DesModel:
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
    ) -> None:
        """``t0`` and ``first_session`` start the model part-way (a chunk of a long run, :func:`.run.run_one`
        with ``jobs``): the clock at ``t0`` seconds, sessions numbered from ``first_session``."""
        self.world = world
        self.cal = calibration
        self.w = whatif or WhatIf()
        self.workload = workload or world.plan.workload
        self.rng = random.Random(seed)
        self.env = simpy.Environment(initial_time=t0)
        self._first_session = first_session
        self.results = Results()
        self.join_burst = join_burst
        self.start = start or dt.datetime.combine(world.plan.reference_date, dt.time())
        scale = self.w.patients * self.w.facilities
        self.rates = Rates(self.workload, world.registered, rate_override)
        self.load_scale = self.w.multiplier * scale
        cores = self.w.hub_cores or calibration.machine.hub_processes
        self.cores = _Station(self.env, "hub", cores)
        self.audit = _Station(self.env, "audit", 1)
        # The hub hashes passwords in a thread pool (run_in_threadpool; hashlib.scrypt releases the GIL),
        # so logins use the machine's cores beside the event loop, not the hub's worker.
        self.login_pool = _Station(self.env, "hub-login", self.w.hub_cores or calibration.machine.cores)
        # Gateways: the world's disclosing facilities partitioned over shards as the live network does
        # (re-partitioned for a ``shards`` what-if); ``facilities`` ×F adds F copies of them on as many
        # more shards, and session i's sources are copy i mod F (its patients are that copy's).
        self._shard_of = world.shard_of
        base = world.shards
        if self.w.shards is not None and self.w.shards != world.shards:
            groups = partition(world.meta, self.w.shards)
            self._shard_of = {code: i for i, group in enumerate(groups) for code in group}
            base = max(1, len(groups))
        self._base_shards = base
        self._replicas = max(1, math.ceil(self.w.facilities))
        n_shards = base * self._replicas
        self.shards = [_Station(self.env, f"gateways-{i}", 1) for i in range(n_shards)]
        self.hub_time = {op: d.sampler(self.w.hub_factor) for op, d in calibration.hub.items()}
        self.audit_time = calibration.audit_commit.sampler(self.w.audit_factor)
        self.list_base = [calibration.shard(i).list_base.sampler() for i in range(n_shards)]
        self.fetch_base = [calibration.shard(i).fetch_base.sampler() for i in range(n_shards)]
        self.timeout_s = self.w.gateway_timeout_ms / 1000
        self._in_audit = frozenset(calibration.includes_audit)
        self.down: set[str] = set()
        self.grants: dict[int, tuple[EmergencyGrant, ...]] = {}
        self._states: dict[int, PatientState] = {}
        self._viewers: dict[tuple[str, str], Viewer] = {}
        self._source_cache: dict[int, list[tuple[str, str, Any]]] = {}
        self.services = cast(HubServices, _HubView(world))
        self._links: dict[str, LinkModel] = {}
        disabled = LinkModel.disabled()
        for code, kind in world.link_type.items():
            name = self.w.link or kind
            self._links[code] = world.links.get(name, disabled) if self.w.links else disabled

    # ------------------------------------------------------------------------------------ resources

    def _hold(self, r: _Station, seconds: float) -> Proc:
        return r.hold(seconds)

    def _commit(self, op: str) -> Proc:
        """The audit commit of an ``op`` request; for an operation calibrated with its commit inside its hub
        time, only what ``audit_factor`` adds."""
        if op in self._in_audit:
            if self.w.audit_factor > 1:
                extra = self.audit_time(self.rng) * (1 - 1 / self.w.audit_factor)
                yield from self._hold(self.audit, extra)
            return
        yield from self._hold(self.audit, self.audit_time(self.rng))

    def _hub(self, op: str, audited: bool = True) -> Proc:
        station = self.login_pool if op == "login" else self.cores
        yield from self._hold(station, self.hub_time[op](self.rng))
        if audited:
            yield from self._commit(op)

    def _link(self, code: str) -> LinkModel:
        return self._links.get(code) or LinkModel.disabled()

    def _shard(self, code: str, s: PlannedSession) -> int:
        return self._shard_of.get(code, 0) + (s.index % self._replicas) * self._base_shards

    def _gateway(
        self, code: str, shard_index: int, work: float, nbytes: float
    ) -> Generator[simpy.Event, Any, float | None]:
        """A gateway's answer: queue at its shard, serve, then the link (delay + transfer). Returns the
        seconds it took, or None when nothing came (gateway down, link in outage) — after the hub's
        timeout, which is when the hub stops waiting for it."""
        t0 = self.env.now
        if code in self.down:
            yield self.env.timeout(self.timeout_s)
            return None
        yield from self.shards[shard_index].hold(work)
        link = self._link(code)
        delay = link.sample_delay(self.rng)
        if math.isinf(delay):
            yield self.env.timeout(max(0.0, self.timeout_s - (self.env.now - t0)))
            return None
        yield self.env.timeout(delay + link.sample_transfer_seconds(self.rng, int(nbytes)))
        return self.env.now - t0

    # ------------------------------------------------------------------------------------ arrivals

    def _now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.env.now)

    def _sessions(self, until: float) -> Proc:
        top = self.rates.max_sessions_per_s(until) * self.load_scale
        if top <= 0:
            return
        index = self._first_session
        while True:
            yield self.env.timeout(self.rng.expovariate(top))
            now = self.env.now
            if now >= until:
                return
            rate = self.rates.sessions_per_s(now)
            if rate is None:
                return
            if self.rng.random() * top <= rate * self.load_scale:
                self.env.process(self._session(self.world.plan.session(index)))
                index += 1

    def _feeds(self, until: float, rate_1x: float, register_share: float) -> Proc:
        top = rate_1x * self.rates.max_sessions_per_s(until) / self.rates.peak_per_s * self.load_scale
        if top <= 0:
            return
        while True:
            yield self.env.timeout(self.rng.expovariate(top))
            if self.env.now >= until:
                return
            m = self.rates.multiplier_at(self.env.now)
            if m is None:
                return
            if self.rng.random() * top <= rate_1x * m * self.load_scale:
                op = "feed_register" if self.rng.random() < register_share else "feed_update"
                self.env.process(self._feed(op))

    def _feed(self, op: str) -> Proc:
        t0 = self.env.now
        yield from self._hub("feed")
        self.results.record(op, self.env.now - t0)

    def _burst(self) -> Proc:
        yield self.env.timeout(self.workload.feeds.join_at_s)
        for _ in self.world.plan.join_burst():
            yield from self._feed("feed_join")

    def _outage(self, code: str) -> Proc:
        up = self.w.mtbf_days * 86_400
        down = self.w.mttr_hours * 3600
        while True:
            yield self.env.timeout(self.rng.expovariate(1 / up))
            self.down.add(code)
            yield self.env.timeout(self.rng.expovariate(1 / down))
            self.down.discard(code)

    def _named_down(self, code: str) -> Proc:
        start = self.w.down_start_h * 3600
        end = start + self.w.down_hours * 3600
        if self.env.now >= end:
            return
        yield self.env.timeout(max(0.0, start - self.env.now))
        self.down.add(code)
        yield self.env.timeout(end - self.env.now)
        self.down.discard(code)

    # ------------------------------------------------------------------------------------ sessions

    def _think(self, s: PlannedSession, step: int) -> simpy.Event | None:
        if step < len(s.think_s) and self.w.think_scale > 0:
            return self.env.timeout(s.think_s[step] * self.w.think_scale)
        return None

    def _state(self, s: PlannedSession) -> PatientState:
        """What the hub holds for the decision. The world does not change after its reference date, so
        the grant-free state of a patient is built once (a bounded cache: one per patient)."""
        p = s.patient
        grants = self.grants.get(p.index, ())
        if grants:
            return PatientState(self.world.plan.consents.get(p.index), frozenset(p.local_ids), grants)
        state = self._states.get(p.index)
        if state is None:
            state = PatientState(self.world.plan.consents.get(p.index), frozenset(p.local_ids))
            self._states[p.index] = state
        return state

    def _session(self, s: PlannedSession) -> Proc:
        r = self.results
        r.sessions += 1
        t0 = self.env.now
        yield from self._hub("login")
        r.record("login", self.env.now - t0)
        if (ev := self._think(s, 0)) is not None:
            yield ev
        t0 = self.env.now
        yield from self._hub(s.find)
        r.record(s.find, self.env.now - t0)
        if (ev := self._think(s, 1)) is not None:
            yield ev
        purpose: Any = "emergency" if s.intent == "emergency" else "care"
        tag = {"care": "", "emergency": "emergency_", "outside": "outside_"}[s.intent]
        if s.intent == "emergency":
            t0 = self.env.now
            yield from self._hub("emergency")
            self._grant(s)
            r.record("emergency", self.env.now - t0)
        listed = yield from self._timeline(s, purpose, tag + "timeline")
        if s.intent == "outside":
            if listed or self._has_entries(s):
                yield from self._fetch(s, purpose, "outside_fetch", None, listed)
        else:
            for n, category in enumerate(s.categories):
                if not any(item[2] for item in listed):
                    break  # every listed entry opened already
                if (ev := self._think(s, 2 + n)) is not None:
                    yield ev
                yield from self._fetch(s, purpose, tag + "fetch", category, listed)
        t0 = self.env.now
        yield from self._hub("logout", audited=False)
        r.record("logout", self.env.now - t0)

    def _grant(self, s: PlannedSession) -> None:
        consent = self.world.plan.consents.get(s.patient.index)
        now = self._now()
        minutes = self.workload.session.emergency_minutes
        grant = EmergencyGrant(
            viewer_facility=s.facility,
            user_id=s.user.user_id,
            reason="救急搬送 (model)",
            start=now,
            end=now + dt.timedelta(minutes=minutes),
            form_id=consent.form.form_id if consent is not None and consent.form.emergency_allowed else "",
        )
        kept = tuple(g for g in self.grants.get(s.patient.index, ()) if g.end > now)
        self.grants[s.patient.index] = (*kept, grant)

    def _has_entries(self, s: PlannedSession) -> bool:
        return bool(self.world.entries.get(s.patient.index))

    def _viewer(self, s: PlannedSession) -> Viewer:
        key = (s.facility, s.user.viewer_kind)
        viewer = self._viewers.get(key)
        if viewer is None:
            info = self.world.facilities.get(s.facility)
            viewer = self._viewers[key] = Viewer(s.facility, info.kind if info else "", s.user.viewer_kind)
        return viewer

    def _sources(self, s: PlannedSession) -> list[tuple[str, str, Any]]:
        """The patient's disclosing facilities with its local ID there, in the hub's order (by code)."""
        found = self._source_cache.get(s.patient.index)
        if found is None:
            found = []
            for code, local_id in sorted(s.patient.local_ids.items()):
                info = self.world.facilities.get(code)
                if info is not None and info.disclosing:
                    found.append((code, local_id, info))
            self._source_cache[s.patient.index] = found
        return found

    def _timeline(
        self, s: PlannedSession, purpose: Any, op: str
    ) -> Generator[simpy.Event, Any, list[list[Any]]]:
        """The hub's timeline; returns what it listed as ``[source, category, entries]`` items (counts,
        not one item per entry: a patient can have hundreds)."""
        r = self.results
        t0 = self.env.now
        now = self._now()
        state = self._state(s)
        yield from self._hold(self.cores, self.hub_time["timeline"](self.rng))
        if not policy.may_know(state, s.facility, now):
            yield from self._commit("timeline")
            r.refused[op] = r.refused.get(op, 0) + 1
            r.record(op, self.env.now - t0)
            return []
        viewer = self._viewer(s)
        per_source = self.world.entries.get(s.patient.index, {})
        fanned: list[tuple[str, frozenset[str], tuple[int, float, float]]] = []
        statuses: list[str] = []
        for code, local_id, info in self._sources(s):
            plan = records._plan_source(
                self.services, viewer, state, info, local_id, policy.ALL, now, purpose
            )
            if plan.status is not None:
                statuses.append(plan.status)
                continue
            counts = per_source.get(code, {})
            n = sum(counts.get(c, 0) for c in plan.allowed)
            shard = self._shard(code, s)
            fit = self.cal.shard(shard)
            work = self.list_base[shard](self.rng) + fit.list_per_entry_ms * n / 1000
            fanned.append((code, plan.allowed, (shard, work, n * self.cal.list_bytes_per_entry)))
        listed: list[list[Any]] = []
        overshoot = 0.0  # time a slow source kept the model waiting past the hub's timeout
        if fanned:
            started = self.env.now
            if len(fanned) == 1:  # most patients: no sub-process, no condition events
                code, allowed, (shard, work, nbytes) = fanned[0]
                elapsed = [(yield from self._gateway(code, shard, work, nbytes))]
            else:
                procs = [self.env.process(self._gateway(c, h, w, b)) for c, _, (h, w, b) in fanned]
                yield self.env.all_of(procs)
                elapsed = [p.value for p in procs]
            waited = self.env.now - started
            overshoot = max(0.0, waited - self.timeout_s)
            for (code, allowed, _), took in zip(fanned, elapsed, strict=True):
                if took is not None and took <= self.timeout_s:
                    statuses.append("ok")
                    counts = per_source.get(code, {})
                    listed.extend([code, c, counts[c]] for c in sorted(allowed) if counts.get(c))
                else:
                    statuses.append("timeout")
        yield from self._commit("timeline")
        r.timelines += 1
        for st in statuses:
            r.sources[st] = r.sources.get(st, 0) + 1
        if any(st in ("timeout", "error") for st in statuses):
            r.partial_timelines += 1
        latency = self.env.now - t0 - overshoot
        if s.intent == "outside":
            if listed or "ok" in statuses:
                r.leaks += 1
                r.fail(op, "consent-leak", latency)
                return listed
            r.refused[op] = r.refused.get(op, 0) + 1
        r.record(op, latency)
        return listed

    def _fetch(
        self, s: PlannedSession, purpose: Any, op: str, category: str | None, listed: list[list[Any]]
    ) -> Proc:
        """One fetch. The entry is chosen as Locust's viewer chooses (``loadtests.users._pick``): one of
        the wanted category not opened yet, else any entry left; its bytes are the category's mean size."""
        r = self.results
        t0 = self.env.now
        left = [x for x in listed if x[2]]
        if left:
            match = next((x for x in left if x[1] == category), left[-1])
            match[2] -= 1
            source, cat = match[0], match[1]
        else:  # an outside viewer tries an entry it saw elsewhere: the patient's first source
            source = sorted(self.world.entries[s.patient.index])[0]
            cat = sorted(self.world.entries[s.patient.index][source])[0]
        yield from self._hold(self.cores, self.hub_time["fetch"](self.rng))
        info = self.world.facilities.get(source)
        state = self._state(s)
        now = self._now()
        allowed = (
            info is not None
            and policy.may_know(state, s.facility, now)
            and policy.may_view(
                viewer=self._viewer(s),
                patient=state,
                source_facility=source,
                source_disclosure=info.disclosure,
                category=cat,
                now=now,
                purpose=purpose,
                rules=self.world.facilities.rules,
            ).allowed
        )
        yield from self._commit("fetch")
        if not allowed:
            r.refused[op] = r.refused.get(op, 0) + 1
            r.record(op, self.env.now - t0)
            return
        nbytes = self.cal.bytes_of(cat)
        shard = self._shard(source, s)
        work = self.fetch_base[shard](self.rng) + self.cal.shard(shard).fetch_per_kb_ms * nbytes / 1000 / 1000
        took = yield from self._gateway(source, shard, work, nbytes)
        if s.intent == "outside":
            r.leaks += 1
            r.fail(op, "consent-leak", self.env.now - t0)
        elif took is None or took > self.timeout_s:
            overshoot = 0.0 if took is None else took - self.timeout_s
            r.fail(op, "gateway-timeout", self.env.now - t0 - overshoot)
        else:
            r.record(op, self.env.now - t0)

    # ------------------------------------------------------------------------------------ run

    def run(
        self, duration_s: float, progress: Callable[[float], None] | None = None, drain_s: float = 120.0
    ) -> Results:
        """Simulate ``duration_s`` seconds: arrivals stop then, and requests in flight get ``drain_s`` more
        to finish (rates are per ``duration_s``)."""
        env = self.env
        begin = env.now
        until = begin + duration_s
        env.process(self._sessions(until))
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
        step = max(duration_s / 100, 1.0)
        t = begin
        while t < until:
            t = min(until, t + step)
            env.run(until=t)
            if progress is not None:
                progress(t - begin)
        if drain_s > 0:
            env.run(until=until + drain_s)
        self.results.duration_s = duration_s
        return self.results

    def events(self) -> int:
        """Events scheduled so far: SimPy's own event-id counter (``Environment._eid``, read by advancing
        it once, which only skips an id)."""
        return int(next(self.env._eid))

    def stations(self) -> list[_Station]:
        return [self.cores, self.login_pool, self.audit, *self.shards]

    def resources(self) -> dict[str, Any]:
        d = self.results.duration_s
        out = {
            "hub": self.cores.to_json(d),
            "hub-login": self.login_pool.to_json(d),
            "audit": self.audit.to_json(d),
        }
        for s in self.shards:
            out[s.name] = s.to_json(d)
        return out


class _HubView:
    """What :func:`simulator.hub.records._plan_source` reads of the hub: its facility directory (rules)."""

    def __init__(self, world: DesWorld) -> None:
        self.facilities = world.facilities
