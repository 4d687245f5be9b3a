"""The hub's consent decisions as the model asks them — the hub's own functions, asked once per case.

Every decision comes from :func:`simulator.hub.policy.may_know`,
:func:`simulator.hub.records._plan_source` (which calls :func:`simulator.hub.policy.may_view` per item
category) and ``may_view`` at fetch time, looked up on their modules at the moment of asking (a test
that replaces the policy changes the model's refusals).
What is cached is *their answer*, per (patient, viewing facility, user kind, purpose, consent version):

* the *consent version* of a patient on a day is how many of its consent's dates (form signed, each
  addition signed, withdrawal) fall on or before that day. The policy reads the clock only as
  ``now.date()`` compared with those dates (its docstring: "consent dates compare with ``now.date()``"), so
  within one version its answer for a grant-free patient cannot change — a simulated year re-asks only
  when a patient's consent moves, not every day;
* a fetch's answer is the timeline's of the same key where it planned that source: ``may_know`` (cached)
  and the category among those ``may_view`` allowed there (``SourcePlan.allowed``) — the same questions,
  asked once;
* a patient holding a live emergency grant is never cached (a grant's window is minutes, its answer moves
  with the clock): the hub is asked every time, as before.

``tests/test_des.py`` checks cached against freshly asked answers over many sessions and days.
The model asks at simulated seconds ``t``; the world's clock there (``start`` + ``t``, a datetime) is made
only when the hub's functions are really asked (a cache miss, a grant): most asks are cache hits, and a
year's ~2 million datetimes were ~3 % of its time. The day of ``t`` (:meth:`HubDecisions.date`) comes from
the current day's bounds in seconds, with a microsecond's margin either side inside which the datetime
is made after all (``timedelta`` rounds to microseconds), so it is always the datetime's own date.
Per patient the disclosing sources, their entry counts per allowed category and their gateway shard are
built once with the first plan that needs them. The answer caches are bounded (:data:`CACHE_LIMIT` keys
each, emptied when full): they grow with the distinct (patient, viewer) pairs a run meets, not with
simulated time, and the bound keeps a long run's memory flat (a year of ``ishikawa`` met ~70,000 timeline
keys).
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right
from typing import Any, NamedTuple

from simulator.hub import policy, records
from simulator.hub.facilities import FacilityInfo
from simulator.hub.policy import EmergencyGrant, PatientState, Purpose, Viewer
from simulator.hub.service import HubServices
from simulator.workload import PlannedSession

from .world import DesWorld

__all__ = ["CACHE_LIMIT", "HubDecisions", "SourcePlan"]

CACHE_LIMIT = 100_000


class SourcePlan(NamedTuple):
    """One source of a timeline as the hub plans it: ``status`` set when the hub asks it nothing (denied,
    not disclosed), else the entries it will list (``entries``) and their ``(category, count)`` items."""

    code: str
    status: str | None
    entries: int
    shard: int  # the source's gateway shard in the world (before a ``facilities`` what-if's copies)
    items: tuple[tuple[str, int], ...]
    allowed: frozenset[str] = frozenset()  # the categories ``may_view`` allowed (what a fetch is asked)


class _HubView:
    """What :func:`simulator.hub.records._plan_source` reads of the hub: its facility directory (rules)."""

    def __init__(self, world: DesWorld) -> None:
        self.facilities = world.facilities


class HubDecisions:
    """The hub's answers for one model run (one policy, one world), cached as the module docstring says."""

    def __init__(self, world: DesWorld, shard_of: dict[str, int], start: dt.datetime) -> None:
        self.world = world
        self.start = start
        self._day: tuple[float, float, dt.date] = (math.inf, -math.inf, start.date())  # lo, hi, the date
        self.services: HubServices = _HubView(world)  # type: ignore[assignment]
        self._shard_of = shard_of
        self._states: dict[int, PatientState] = {}
        self._dates: dict[int, tuple[dt.date, ...]] = {}
        self._sources: dict[int, list[tuple[str, str, FacilityInfo]]] = {}
        self._viewers: dict[tuple[str, str], Viewer] = {}
        self._know: dict[tuple[Any, ...], bool] = {}
        self._plans: dict[tuple[Any, ...], tuple[SourcePlan, ...]] = {}
        # per timeline key, the fetches' answers by (source, category): as many keys as plans (a flat key
        # with source and category had ~3× as many, and a year of ``ishikawa`` filled the bound every
        # two months, asking the hub afresh ~40,000 times a month)
        self._views: dict[tuple[Any, ...], dict[tuple[str, str], bool]] = {}
        self._sets: dict[frozenset[str], frozenset[str]] = {}

    # ------------------------------------------------------------------------------------ the clock

    def now(self, t: float) -> dt.datetime:
        """The world's clock at simulated second ``t``."""
        return self.start + dt.timedelta(seconds=t)

    def date(self, t: float) -> dt.date:
        """``now(t).date()``, from the last day's bounds when ``t`` is inside them (module docstring)."""
        lo, hi, today = self._day
        if lo <= t < hi:
            return today
        today = self.now(t).date()
        lo = (dt.datetime.combine(today, dt.time()) - self.start).total_seconds()
        self._day = (lo + 1e-6, lo + 86_400 - 1e-6, today)
        return today

    # ------------------------------------------------------------------------------------ inputs

    def state(self, s: PlannedSession, grants: tuple[EmergencyGrant, ...]) -> tuple[PatientState, bool]:
        """What the hub holds for the decision, and whether its answers may be cached (no grant). The
        world does not change after its reference date, so a grant-free state is built once per patient."""
        p = s.patient
        if grants:
            consent = self.world.plan.consents.get(p.index)
            return PatientState(consent, frozenset(p.local_ids), grants), False
        state = self._states.get(p.index)
        if state is None:
            state = PatientState(self.world.plan.consents.get(p.index), frozenset(p.local_ids))
            self._states[p.index] = state
        return state, True

    def version(self, patient: int, today: dt.date) -> int:
        """The patient's consent version on ``today`` (see the module docstring)."""
        dates = self._dates.get(patient)
        if dates is None:
            c = self.world.plan.consents.get(patient)
            found: set[dt.date] = set()
            if c is not None:
                found.add(c.form.signed_on)
                found.update(a.signed_on for a in c.additions)
                if c.withdrawal is not None:
                    found.add(c.withdrawal.withdrawn_on)
            dates = self._dates[patient] = tuple(sorted(found))
        return bisect_right(dates, today)

    def viewer(self, s: PlannedSession) -> Viewer:
        key = (s.facility, s.user.viewer_kind)
        viewer = self._viewers.get(key)
        if viewer is None:
            info = self.world.facilities.get(s.facility)
            viewer = self._viewers[key] = Viewer(s.facility, info.kind if info else "", s.user.viewer_kind)
        return viewer

    def _patient_sources(self, s: PlannedSession) -> list[tuple[str, str, FacilityInfo]]:
        """The patient's disclosing facilities with its local ID there, in the hub's order (by code)."""
        found = self._sources.get(s.patient.index)
        if found is None:
            found = []
            for code, local_id in sorted(s.patient.local_ids.items()):
                info = self.world.facilities.get(code)
                if info is not None and info.disclosing:
                    found.append((code, local_id, info))
            self._sources[s.patient.index] = found
        return found

    def shard_of(self, code: str) -> int:
        """The source's gateway shard in the world (before a ``facilities`` what-if's copies)."""
        return self._shard_of.get(code, 0)

    # ------------------------------------------------------------------------------------ decisions

    def timeline(
        self, s: PlannedSession, grants: tuple[EmergencyGrant, ...], t: float, purpose: Purpose
    ) -> tuple[bool, tuple[SourcePlan, ...]]:
        """A timeline's decisions at simulated second ``t``: :meth:`knows`, and if so :meth:`plan`."""
        state, cached = self.state(s, grants)
        v = self.version(s.patient.index, self.date(t))
        if not self.knows(s, state, cached, t, v):
            return False, ()
        return True, self.plan(s, state, cached, t, purpose, v)

    def fetch(
        self,
        s: PlannedSession,
        grants: tuple[EmergencyGrant, ...],
        t: float,
        purpose: Purpose,
        source: str,
        category: str,
    ) -> bool:
        """A fetch's decision at simulated second ``t`` (:meth:`may_fetch`)."""
        state, cached = self.state(s, grants)
        return self.may_fetch(
            s, state, cached, t, purpose, self.version(s.patient.index, self.date(t)), source, category
        )

    def knows(self, s: PlannedSession, state: PatientState, cached: bool, t: float, v: int) -> bool:
        """``policy.may_know`` for the session's facility at simulated second ``t``."""
        if not cached:
            return policy.may_know(state, s.facility, self.now(t))
        key = (s.patient.index, s.facility, v)
        known = self._know.get(key)
        if known is None:
            if len(self._know) >= CACHE_LIMIT:
                self._know.clear()
            known = self._know[key] = policy.may_know(state, s.facility, self.now(t))
        return known

    def plan(
        self,
        s: PlannedSession,
        state: PatientState,
        cached: bool,
        t: float,
        purpose: Purpose,
        v: int,
    ) -> tuple[SourcePlan, ...]:
        """The hub's plan of a timeline at simulated second ``t``, source by source (``records._plan_source``
        over every category)."""
        key = (s.patient.index, s.facility, s.user.viewer_kind, purpose, v)
        if cached:
            found = self._plans.get(key)
            if found is not None:
                return found
        now = self.now(t)
        viewer = self.viewer(s)
        per_source = self.world.entries.get(s.patient.index, {})
        out = []
        for code, local_id, info in self._patient_sources(s):
            plan = records._plan_source(
                self.services, viewer, state, info, local_id, policy.ALL, now, purpose
            )
            if plan.status is not None:
                out.append(SourcePlan(code, plan.status, 0, 0, ()))
                continue
            counts = per_source.get(code, {})
            items = tuple((c, counts[c]) for c in sorted(plan.allowed) if counts.get(c))
            n = sum(count for _, count in items)  # the allowed categories' entries
            allowed = self._sets.setdefault(plan.allowed, plan.allowed)  # a few distinct sets, shared
            out.append(SourcePlan(code, None, n, self._shard_of.get(code, 0), items, allowed))
        plans = tuple(out)
        if cached:
            if len(self._plans) >= CACHE_LIMIT:
                self._plans.clear()
            self._plans[key] = plans
        return plans

    def may_fetch(
        self,
        s: PlannedSession,
        state: PatientState,
        cached: bool,
        t: float,
        purpose: Purpose,
        v: int,
        source: str,
        category: str,
    ) -> bool:
        """The fetch's decision at simulated second ``t``: ``may_know``, then ``may_view`` for the entry's
        source and category."""
        views: dict[tuple[str, str], bool] | None = None
        if cached:
            key = (s.patient.index, s.facility, s.user.viewer_kind, purpose, v)
            views = self._views.get(key)
            if views is None:
                if len(self._views) >= CACHE_LIMIT:
                    self._views.clear()
                views = self._views[key] = {}
            else:
                found = views.get((source, category))
                if found is not None:
                    return found
            # the timeline of the same key asked may_view for every category of its sources already
            planned = next((p for p in self._plans.get(key, ()) if p.code == source), None)
            if planned is not None:
                found = category in planned.allowed and self.knows(s, state, cached, t, v)
                views[(source, category)] = found
                return found
        now = self.now(t)
        info = self.world.facilities.get(source)
        allowed = (
            info is not None
            and policy.may_know(state, s.facility, now)
            and policy.may_view(
                viewer=self.viewer(s),
                patient=state,
                source_facility=source,
                source_disclosure=info.disclosure,
                category=category,
                now=now,
                purpose=purpose,
                rules=self.world.facilities.rules,
            ).allowed
        )
        if views is not None:
            views[(source, category)] = allowed
        return allowed
