"""One viewer session in SimPy time, step by step as Locust's viewer takes it (``loadtests.users``): login,
PIX or PDQ, (emergency grant), timeline, k fetches (or one refused fetch for an outside viewer), logout,
with the plan's think times between steps.

* Each request first costs its client's part (``Calibration.client``: the client's own work, a new
  connection's TLS handshake, the loopback), then holds the hub's event loop for the hub's calibrated
  work; a login's password hash then waits for the hub's password worker (a one-process pool, so logins
  queue there). It then waits for its audit record's commit ("answer only what is audited"), in groups
  as the hub's writer commits them (:class:`.stations.GroupCommit`); operations calibrated with the
  commit inside their time (``includes_audit``) wait only for what ``audit_factor`` adds.
* Without a machine, holds are booked (:class:`.stations.Station`) and a step goes on past a hold's end
  without waiting for it whenever nothing else happens in the model before that end (the next scheduled
  event is later: :meth:`SessionSteps._horizon`) — a request's hub work, audit commit and gateway answer
  are then computed in one go, with the same figures as waiting (tested) and about half the events.
* A timeline is planned by the hub's own rules (:class:`.consent.HubDecisions`) and fanned out to the
  sources' gateway shards in parallel; a source that has not answered within the per-source timeout is
  ``timeout`` and the timeline *partial*. A down gateway answers nothing (the hub waits the timeout).
* With the load generator modelled (``client``, a replayed load run), the client's part is inside the
  timed window, as Locust's timing includes it: up to the generator's CPU per request (``client_s``,
  from the run's own CPU files) computed on the machine's cores, the rest a plain delay; without it, it
  is a fixed addition to the answer's time (it loads nothing the model shares). A calibration without
  client times uses ``client_s`` as each request's whole client part.
* An outside viewer tries an entry only when its Locust process saw one of the patient's entries
  earlier (``ctx.seen_entries``): the model keeps the same (process, patient) pairs.
* An outside viewer's timeline that lists an entry, or a fetch it gets, is a *leak*.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Generator
from functools import partial
from typing import Any, Final

import simpy
from simpy.events import Timeout

from simulator.hub.policy import EmergencyGrant, Purpose
from simulator.links import LinkModel
from simulator.workload import PlannedSession, Workload

from .calibration import Calibration
from .consent import HubDecisions, SourcePlan
from .figures import Proc
from .results import Results
from .scheduler import Scheduler
from .stations import GroupCommit, Interleaved, Station
from .whatif import WhatIf
from .world import DesWorld

__all__ = ["SessionSteps"]

Sampler = Callable[[random.Random], float]
_TAGS = {"care": "", "emergency": "emergency_", "outside": "outside_"}


COMMIT_PAUSE_S: Final = 0.00005
"""How long the hub's event loop sleeps in each commit of a request's, in a replay on the machine. The
loop commits synchronously (a feed's index write, the audit writer's group when it commits on the loop),
so it stops on the core and must wake for the rest of the request — a wake-up that waits on a crowded
core (:class:`.scheduler.WakeDelays`). The pause itself is short and taken out of the request's client
part, which carries its commits' time from the light run; the wake-up after it is what matters (stop 36's
replays: 0.01 and 0.05 ms scored alike, 0.2 ms, longer than most light runs' client parts, worse)."""


def commits_of(work: str, audited: bool) -> int:
    """The synchronous commits the hub makes on its loop for a ``work`` request answered alone
    (:meth:`SessionSteps._timed`): an ITI-8 feed two (the patient index, its audit record; on an open
    connection or on a new one), another audited request one. Logins are left out (their hub work ends
    on the password worker, which the model holds apart from the loop), and so are the timeline's and
    fetch's paths, which were not tried."""
    if not audited or work == "login":
        return 0
    return 2 if work in ("feed", "feed_fresh") else 1


class SessionSteps:
    """The session's steps; :class:`.model.DesModel` builds the state they use."""

    env: simpy.Environment
    rng: random.Random
    results: Results
    world: DesWorld
    cal: Calibration
    w: WhatIf
    workload: Workload
    start: dt.datetime
    cores: Station
    hasher: Station
    login_room: int | None
    audit: GroupCommit
    shards: list[Station]
    machine: Scheduler | None
    client: Station | Interleaved | None
    client_s: float
    hub_time: dict[str, Sampler]
    hash_time: Sampler
    client_time: dict[str, Sampler]
    seen: set[tuple[int, int]]
    processes: int
    client_timeouts: dict[str, float]
    audit_time: Sampler
    list_base: list[Sampler]
    fetch_base: list[Sampler]
    list_per_entry_ms: list[float]
    fetch_per_kb_ms: list[float]
    timeout_s: float
    down: set[str]
    grants: dict[int, tuple[EmergencyGrant, ...]]
    decisions: HubDecisions
    _in_audit: frozenset[str]
    _commit_draws: dict[str, Callable[[], float] | None]  # operation → :meth:`_commit_draw`, made once
    _bytes: dict[str, float]  # item category → its entries' bytes (Calibration.bytes_of), asked once
    lookahead: bool = True  # go on past a booked hold's end when nothing happens before it (_horizon)
    _links: dict[str, LinkModel]
    _replicas: int
    _base_shards: int

    # ------------------------------------------------------------------------------------ resources

    def _hold(self, r: Station, seconds: float) -> Proc:
        return r.hold(seconds)

    def _commit_draw(self, op: str) -> Callable[[], float] | None:
        """How long an ``op`` request's audit commit takes (drawn when its group commits); for an operation
        calibrated with its commit inside its hub time, only what ``audit_factor`` adds (None: nothing)."""
        if op in self._commit_draws:
            return self._commit_draws[op]
        draw: Callable[[], float] | None
        if op in self._in_audit:
            draw = self._slower_commit if self.w.audit_factor > 1 else None
        else:
            draw = partial(self.audit_time, self.rng)  # no frame of ours between the writer and the draw
        self._commit_draws[op] = draw
        return draw

    def _client_part(self, seconds: float) -> Proc:
        """The client's part of a request on the load generator: as much of it as the generator's CPU per
        request (``client_s``, the replayed run's own) computes on the machine, the rest — the kernel,
        waits for a cold disk behind a gateway — passes without a core."""
        assert self.client is not None
        cpu = min(seconds, self.client_s) if self.client_s > 0 else seconds
        yield from self.client.hold(cpu)
        if seconds > cpu:
            yield self.env.timeout(seconds - cpu)

    def _client_and_pauses(self, work: str, audited: bool) -> tuple[float, tuple[float, ...]]:
        """A ``work`` request's client part and the hub loop's pauses inside its hold
        (:data:`COMMIT_PAUSE_S`, one per commit; on the machine only, where a waking loop can wait for a
        core), the pauses taken out of the client part."""
        extra = self._client_draw(work)
        if self.machine is None or not (n := commits_of(work, audited)):
            return extra, ()
        pauses = (COMMIT_PAUSE_S,) * n
        return max(0.0, extra - sum(pauses)), pauses

    def _client_draw(self, op: str) -> float:
        draw = self.client_time.get(op)
        return draw(self.rng) if draw is not None else self.client_s

    def _slower_commit(self) -> float:
        return self.audit_time(self.rng) * (1 - 1 / self.w.audit_factor)

    def _shard(self, base: int, s: PlannedSession) -> int:
        return base + (s.index % self._replicas) * self._base_shards

    def _gateway_booked(
        self, t: float, code: str, shard_index: int, work: float, nbytes: float
    ) -> tuple[float, bool]:
        """A gateway's answer without a machine, asked at ``t`` and booked at once
        (:meth:`.stations.Station.end_at`): (the seconds from ``t`` until the hub has it or stops waiting,
        whether it came). Queue at its shard, serve, then the link (delay + transfer); nothing comes from a
        down gateway or over a link in outage, and the hub waits its timeout for it."""
        if code in self.down:
            return self.timeout_s, False
        served = self.shards[shard_index].end_at(t, work) - t
        link = self._link_seconds(code, nbytes)
        if math.isinf(link):
            return max(served, self.timeout_s), False
        return served + link, True

    def _link(self, code: str) -> LinkModel:
        return self._links.get(code) or LinkModel.disabled()

    def _link_seconds(self, code: str, nbytes: float) -> float:
        """The answer's way back over the facility's link: its delay and the transfer of ``nbytes``; inf
        when the link is in an outage (nothing comes)."""
        link = self._link(code)
        delay = link.sample_delay(self.rng)
        if math.isinf(delay):
            return delay
        return delay + link.sample_transfer_seconds(self.rng, int(nbytes))

    def _gateway(
        self, code: str, shard_index: int, work: float, nbytes: float
    ) -> Generator[simpy.Event, Any, float | None]:
        """A gateway's answer on the machine: the shard's CPU hold runs on the cores, then the link. The
        seconds it took, or None when nothing came (after the hub's timeout, which is when the hub stops
        waiting for it). Without a machine it is booked instead (:meth:`_gateway_booked`)."""
        env = self.env
        t0 = env.now
        if code in self.down:
            yield env.timeout(self.timeout_s)
            return None
        yield from self.shards[shard_index].hold(work)
        link = self._link_seconds(code, nbytes)
        if math.isinf(link):
            yield env.timeout(max(0.0, self.timeout_s - (env.now - t0)))
            return None
        yield env.timeout(link)
        return env.now - t0

    def _now(self, t: float | None = None) -> dt.datetime:
        """The world's clock at simulated second ``t`` (default: now)."""
        return self.decisions.now(self.env.now if t is None else t)

    def _horizon(self) -> float:
        """Until when nothing else happens in the model: the next scheduled event's time. A step whose
        booked hold ends before it goes on at that end without waiting for it (conservative lookahead):
        no other process runs in between, so what it books there is still booked in simulated-time order
        and every random draw comes in the same order — the figures are exactly those of waiting (a test
        runs both). Only without a machine, whose holds are processes. ``lookahead = False``: −∞, wait
        always."""
        return self.env.peek() if self.lookahead else -math.inf

    # ------------------------------------------------------------------------------------ the session

    def _thinks(self, s: PlannedSession) -> tuple[float, ...]:
        """The plan's think times before find, timeline and each fetch (seconds; 0 when thinking is off),
        at least ``len(s.categories) + 2`` of them."""
        scale = self.w.think_scale
        n = len(s.categories) + 2
        if scale <= 0:
            return (0.0,) * n
        think = s.think_s if scale == 1 else tuple(x * scale for x in s.think_s)
        return think if len(think) >= n else think + (0.0,) * (n - len(think))

    def _last(
        self, station: Station, seconds: float, t: float, pauses: tuple[float, ...] = ()
    ) -> Generator[simpy.Event, Any, float]:
        """A request's last hold, from ``t`` (now, or ahead of it: :meth:`_horizon`): booked, the seconds
        from now until it ends are the step's tail (see :meth:`_session`); on the machine it is waited
        for here."""
        if station.cpu is None:
            return station.end_at(t, seconds) - self.env.now
        yield station.after(seconds, pauses)
        return 0.0

    def _through(
        self, station: Station, seconds: float, t: float, pauses: tuple[float, ...] = ()
    ) -> Generator[simpy.Event, Any, float]:
        """A hold of ``seconds`` at ``station`` from ``t`` (now, or ahead of it: :meth:`_horizon`); where the
        request is when it ends. Booked, the step goes on at once when nothing else happens before that end
        and waits for it otherwise; on the machine the hold is a process, waited for."""
        env = self.env
        if station.cpu is None:
            t = station.end_at(t, seconds)
            if t >= self._horizon():
                yield Timeout(env, t - env.now)
            return t
        yield station.after(seconds, pauses)
        return env.now

    def _timed(
        self, op: str, work: str = "", audited: bool = True, before: float = 0.0
    ) -> Generator[simpy.Event, Any, float | None]:
        """A request the hub answers alone (login, PIX / PDQ, grant, logout, feeds), recorded as ``op``,
        ``before`` seconds from now: the client's part, the hub's work for ``work`` (default ``op``), its
        audit commit. Returns its tail (:meth:`_session`), or None when the client gave up on it
        (``client_timeouts``). One generator deep on purpose: every level of ``yield from`` costs at each
        resume."""
        if self.client_timeouts and (limit := self.client_timeouts.get(work or op)):
            return (yield from self._timed_or_timeout(op, work or op, audited, limit, before))
        env = self.env
        if before > 0:
            yield Timeout(env, before)
        t0 = env.now
        work = work or op
        extra, pauses = self._client_and_pauses(work, audited)
        if self.client is not None:
            yield from self._client_part(extra)
            extra = 0.0
        if work == "login":
            tail = yield from self._answer(work, audited)
            if tail is None:
                self.results.fail(op, "busy", env.now - t0 + extra)
                return None
        else:  # :meth:`_answer` inlined: most requests, one generator level less (the year run's speed)
            seconds = self.hub_time[work](self.rng)
            if self.machine is None:
                if audited and (draw := self._commit_draw(work)) is not None:
                    t = self.cores.end_at(env.now, seconds)
                    if t >= self._horizon():
                        yield Timeout(env, t - env.now)
                    tail = self.audit.end_at(t, draw) - env.now
                else:
                    tail = self.cores.book(seconds)
            elif audited and (draw := self._commit_draw(work)) is not None:
                yield self.cores.after(seconds, pauses)
                tail = self.audit.book(draw)
            else:
                yield self.cores.after(seconds, pauses)
                tail = 0.0
        self.results.record(op, env.now - t0 + tail + extra, at=env.now + tail)
        return tail

    def _timed_or_timeout(
        self, op: str, work: str, audited: bool, limit_s: float, before: float
    ) -> Generator[simpy.Event, Any, float | None]:
        """:meth:`_timed` with the generator's timeout: the request goes on in the hub (a process of its own)
        while the client stops waiting after ``limit_s``: a ``timeout`` failure (None)."""
        env = self.env
        if before > 0:
            yield Timeout(env, before)
        t0 = env.now
        answered = env.process(self._client_then_answer(work, audited))
        yield answered | env.timeout(limit_s)
        if not answered.triggered:
            self.results.fail(op, "timeout", limit_s)
            return None
        extra = answered.value
        if extra is None:
            self.results.fail(op, "busy", env.now - t0)
            return None
        assert isinstance(extra, float)
        self.results.record(op, env.now - t0 + extra)
        return 0.0

    def _client_then_answer(self, work: str, audited: bool) -> Generator[simpy.Event, Any, float | None]:
        """The client's part and the hub's answer; the client's seconds not simulated, or None when the
        hub refused it (``busy``)."""
        extra, pauses = self._client_and_pauses(work, audited)
        if self.client is not None:
            yield from self._client_part(extra)
            extra = 0.0
        tail = yield from self._answer(work, audited, pauses)
        if tail is None:
            return None
        if tail > 0:
            yield Timeout(self.env, tail)
        return extra

    def _answer(
        self, work: str, audited: bool, pauses: tuple[float, ...] = ()
    ) -> Generator[simpy.Event, Any, float | None]:
        """The hub's part of a :meth:`_timed` request: its work (a login's hash on the password worker)
        and the audit commit; returns the tail, or None for a login the hub refused ``busy`` (no room
        left to wait for the password worker: ``login_queue``), answered after its own work and the
        refusal's audit commit."""
        env = self.env
        last = self.hasher if work == "login" else self.cores
        seconds = self.hub_time[work](self.rng)
        if work == "login" and self.login_room is not None and self.hasher.waiting() >= self.login_room:
            yield self.cores.after(seconds if self.cal.hub_measure == "cpu" else 0.0)
            if (draw := self._commit_draw(work)) is not None:
                yield self.audit.after(draw)
            return None
        t = env.now  # where the request is (booked: ahead of now while nothing else happens)
        if work == "login" and self.cal.hub_measure == "cpu":
            t = yield from self._through(self.cores, seconds, t)
            seconds = self.hash_time(self.rng)
        # (a wall-time calibration: the whole login, hash included, on the password worker)
        if audited and (draw := self._commit_draw(work)) is not None:
            t = yield from self._through(last, seconds, t, pauses)
            return self.audit.end_at(t, draw) - env.now
        return (yield from self._last(last, seconds, t, pauses))

    def _session(self, s: PlannedSession) -> Proc:
        """The session's steps. A step ends with its *tail*: the seconds between its last booked hold
        (:meth:`.stations.Station.book`) and its answer reaching the client, already counted in its
        latency; nothing happens in it, so the session waits it together with the think time before the
        next step — one timeout, not two."""
        self.results.sessions += 1
        tail = yield from self._timed("login")
        if tail is None:
            return  # Locust's viewer ends a session whose login failed
        think = self._thinks(s)
        tail = yield from self._timed(s.find, before=tail + think[0])
        if tail is None:
            return  # no regional ID: Locust's viewer aborts the session (no logout either)
        tail += think[1]
        purpose: Purpose = "emergency" if s.intent == "emergency" else "care"
        tag = _TAGS[s.intent]
        if s.intent == "emergency":
            tail = yield from self._timed("emergency", before=tail)
            if tail is None:
                return  # no grant: aborted too
            self._grant(s, self.env.now + tail)
        listed, tail = yield from self._timeline(s, purpose, tag + "timeline", tail)
        if s.intent == "outside":
            if (s.index % self.processes, s.patient.index) in self.seen:
                tail = yield from self._fetch(s, purpose, "outside_fetch", None, listed, tail)
        elif listed:
            left = sum(item[2] for item in listed)  # entries listed and not opened yet
            op = tag + "fetch"
            for n, category in enumerate(s.categories[:left]):  # each fetch opens one
                tail = yield from self._fetch(s, purpose, op, category, listed, tail + think[2 + n])
        tail = yield from self._timed("logout", audited=False, before=tail)
        if tail:  # the session ends with its answer (a paced user starts the next one then)
            yield Timeout(self.env, tail)

    def _grant(self, s: PlannedSession, t: float) -> None:
        """The hub's emergency grant, dated when its answer reaches the viewer (``t``: the same moment
        whether the step waited its holds out or went on past them)."""
        consent = self.world.plan.consents.get(s.patient.index)
        now = self._now(t)
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

    def _grants(self, s: PlannedSession, t: float) -> tuple[EmergencyGrant, ...]:
        """The patient's grants the model still holds at simulated second ``t``; once every one has ended
        they are dropped, and the patient's decisions are cacheable again (an ended grant opens nothing:
        ``EmergencyGrant.active``)."""
        grants = self.grants.get(s.patient.index, ())
        if grants:
            now = self._now(t)
            if all(g.end <= now for g in grants):
                del self.grants[s.patient.index]
                return ()
        return grants

    def _fanned(
        self, s: PlannedSession, plans: tuple[SourcePlan, ...], statuses: list[str]
    ) -> list[tuple[SourcePlan, int, float]]:
        """The planned sources the hub asks, as (plan, shard, the shard's work); the others' statuses
        (refused, not disclosed) go to ``statuses``."""
        fanned: list[tuple[SourcePlan, int, float]] = []
        for p in plans:
            if p.status is not None:
                statuses.append(p.status)
                continue
            shard = self._shard(p.shard, s)
            fanned.append(
                (p, shard, self.list_base[shard](self.rng) + self.list_per_entry_ms[shard] * p.entries / 1000)
            )
        return fanned

    def _fan_out_booked(
        self, t: float, fanned: list[tuple[SourcePlan, int, float]]
    ) -> tuple[list[float | None], float]:
        """Every source asked at ``t`` in parallel, booked at once: (each one's seconds, None for no answer;
        how long the hub waits — the slowest, or its per-source timeout)."""
        per_entry = self.cal.list_bytes_per_entry
        booked = [self._gateway_booked(t, p.code, h, w, p.entries * per_entry) for p, h, w in fanned]
        wait = min(max(took for took, _ in booked), self.timeout_s)
        return [took if came else None for took, came in booked], wait

    def _fan_out(
        self, fanned: list[tuple[SourcePlan, int, float]]
    ) -> Generator[simpy.Event, Any, list[float | None]]:
        """On the machine: every source asked in parallel; each one's seconds (None: no answer)."""
        per_entry = self.cal.list_bytes_per_entry
        if len(fanned) == 1:  # no sub-process, no condition events
            p, shard, work = fanned[0]
            return [(yield from self._gateway(p.code, shard, work, p.entries * per_entry))]
        procs = [self.env.process(self._gateway(p.code, h, w, p.entries * per_entry)) for p, h, w in fanned]
        yield self.env.all_of(procs)
        return [proc.value for proc in procs]

    def _listed(
        self, fanned: list[tuple[SourcePlan, int, float]], elapsed: list[float | None], statuses: list[str]
    ) -> list[list[Any]]:
        """What the sources that answered within the hub's timeout listed; their statuses."""
        listed: list[list[Any]] = []
        for (p, _, _), took in zip(fanned, elapsed, strict=True):
            if took is not None and took <= self.timeout_s:
                statuses.append("ok")
                code = p.code
                listed += [[code, c, n] for c, n in p.items]
            else:
                statuses.append("timeout")
        return listed

    def _timeline(
        self, s: PlannedSession, purpose: Purpose, op: str, before: float
    ) -> Generator[simpy.Event, Any, tuple[list[list[Any]], float]]:
        """The hub's timeline, ``before`` seconds from now; returns what it listed as ``[source, category,
        entries]`` items (counts, not one item per entry: a patient can have hundreds) and its tail."""
        r = self.results
        env = self.env
        if before > 0:
            yield Timeout(env, before)
        t0 = env.now
        knows, plans = self.decisions.timeline(s, self._grants(s, t0), t0, purpose)
        # a timeline that asks no gateway (refused, or nothing the viewer may see) costs the hub far less
        work = "timeline" if any(p.status is None for p in plans) else "refused"
        extra = self._client_draw(work)
        if self.client is not None:
            yield from self._client_part(extra)
            extra = 0.0
        draw = self._commit_draw("timeline")
        seconds = self.hub_time[work](self.rng)
        if not knows:
            if draw is None:
                tail = yield from self._last(self.cores, seconds, env.now)
            else:
                t = yield from self._through(self.cores, seconds, env.now)
                tail = self.audit.end_at(t, draw) - env.now
            r.refuse(op, env.now - t0 + tail + extra, at=env.now + tail)
            return [], tail
        statuses: list[str] = []
        overshoot = 0.0
        if self.machine is None:  # :meth:`_through` inlined (most timelines: the year run's speed)
            t = self.cores.end_at(env.now, seconds)
            if t >= self._horizon():
                yield Timeout(env, t - env.now)
        else:
            t = yield from self._through(self.cores, seconds, env.now)
        fanned = self._fanned(s, plans, statuses)
        if not fanned:
            listed = []
        elif self.machine is None:
            elapsed, wait = self._fan_out_booked(t, fanned)
            t += wait
            if t >= self._horizon():
                yield Timeout(env, t - env.now)
            listed = self._listed(fanned, elapsed, statuses)
        else:
            listed = self._listed(fanned, (yield from self._fan_out(fanned)), statuses)
            overshoot = max(0.0, env.now - t - self.timeout_s)
            t = env.now
        tail = (self.audit.end_at(t, draw) if draw is not None else t) - env.now
        r.timelines += 1
        for st in statuses:
            r.sources[st] = r.sources.get(st, 0) + 1
        partial = "timeout" in statuses or "error" in statuses
        if partial:
            r.partial_timelines += 1
        asked = statuses.count("ok") + statuses.count("timeout")
        if asked:
            row = r.partial_by_sources.get(asked)
            if row is None:
                row = r.partial_by_sources[asked] = [0, 0]
            row[0] += 1
            row[1] += partial
        latency = env.now - t0 - overshoot + tail + extra
        at = env.now + tail
        if listed and s.intent != "outside":
            self.seen.add((s.index % self.processes, s.patient.index))
        if s.intent == "outside":
            if listed or "ok" in statuses:
                r.leaks += 1
                r.fail(op, "consent-leak", latency, at=at)
                return listed, tail
            r.refused[op] = r.refused.get(op, 0) + 1
        r.record(op, latency, at=at)
        return listed, tail

    def _fetch(
        self,
        s: PlannedSession,
        purpose: Purpose,
        op: str,
        category: str | None,
        listed: list[list[Any]],
        before: float,
    ) -> Generator[simpy.Event, Any, float]:
        """One fetch, ``before`` seconds from now; returns its tail. The entry is chosen as Locust's viewer
        chooses (``loadtests.users._pick``): one of the wanted category not opened yet, else any entry
        left; its bytes are the category's mean size."""
        r = self.results
        env = self.env
        if before > 0:
            yield Timeout(env, before)
        t0 = env.now
        match = None  # the first unopened entry of the category, else the last unopened one
        for x in listed:
            if x[2]:
                match = x
                if x[1] == category:
                    break
        if match is not None:
            match[2] -= 1
            source, cat = match[0], match[1]
        else:  # an outside viewer tries an entry it saw elsewhere: the patient's first source
            source = sorted(self.world.entries[s.patient.index])[0]
            cat = sorted(self.world.entries[s.patient.index][source])[0]
        extra = self._client_draw("fetch")
        if self.client is not None:
            yield from self._client_part(extra)
            extra = 0.0
        t0 -= extra  # the client's part, when not simulated, counts as time already spent
        booked = self.machine is None
        seconds = self.hub_time["fetch"](self.rng)
        if booked:  # :meth:`_through` inlined (most requests are fetches: the year run's speed)
            t = self.cores.end_at(env.now, seconds)
            if t >= self._horizon():
                yield Timeout(env, t - env.now)
        else:
            t = yield from self._through(self.cores, seconds, env.now)
        d = self.decisions
        allowed = d.fetch(s, self._grants(s, t), t, purpose, source, cat)
        draw = self._commit_draw("fetch")
        if not allowed:
            tail = (self.audit.end_at(t, draw) if draw is not None else t) - env.now
            r.refuse(op, env.now - t0 + tail, at=env.now + tail)
            return tail
        if draw is not None:
            t = self.audit.end_at(t, draw)
            if not booked or t >= self._horizon():
                yield Timeout(env, t - env.now)
        nbytes = self._bytes.get(cat)
        if nbytes is None:
            nbytes = self._bytes[cat] = self.cal.bytes_of(cat)
        shard = self._shard(d.shard_of(source), s)
        work = self.fetch_base[shard](self.rng) + self.fetch_per_kb_ms[shard] * nbytes / 1000 / 1000
        took: float | None
        tail = 0.0
        if booked:  # the gateway's answer is the tail; the hub waits at most its timeout
            seconds, came = self._gateway_booked(t, source, shard, work, nbytes)
            tail = t - env.now + min(seconds, self.timeout_s)
            took = seconds if came else None
        else:
            took = yield from self._gateway(source, shard, work, nbytes)
        latency, at = env.now - t0 + tail, env.now + tail
        if s.intent == "outside":
            r.leaks += 1
            r.fail(op, "consent-leak", latency, at=at)
        elif took is None or took > self.timeout_s:
            overshoot = took - self.timeout_s if took is not None and self.machine is not None else 0.0
            r.fail(op, "gateway-timeout", latency - overshoot, at=at)
        else:
            r.record(op, latency, at=at)
        return tail
