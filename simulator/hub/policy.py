"""Who may view what: the hub's access decision, as one pure function over stored state.

``may_view`` answers whether a user at a viewing facility may see one item category of a patient's data
held at a source facility, at a given time, for a purpose. The hub calls it before every fetch, and
``may_view_each`` — the same answers for several categories — for every source of a timeline; the SimPy
model reuses both unchanged. They read only their arguments: no clock, no database, no globals.

The rules, in the order they are checked (the first that fails gives the reason):

1. ``unknown-category``: the category is one of :data:`synthetic.model.ITEM_CATEGORIES`.
2. ``not-disclosed``: the source facility discloses that category (its disclosure settings).
3. ``viewer-kind``: the viewing facility's kind may see that category (profile ``viewer_rules``), and so
   may the user's kind where the profile limits it (clerks: patient basics only).
4. ``no-consent`` / ``not-yet-signed`` / ``withdrawn``: the patient has a consent form, signed on or before
   ``now``'s date, not withdrawn on or before it. A withdrawal (同意撤回) is effective immediately and
   absolute: it ends emergency access too.
5. ``source-outside-consent``: the source facility is within the consent on that date (pattern, list and
   additions, per :meth:`synthetic.consent.ConsentState.covers`).
6. For ``purpose="care"``: ``viewer-outside-consent`` unless the viewing facility is within the consent,
   and ``not-linked`` unless the viewing facility has linked its own patient ID to the patient (ID-Link:
   viewing follows linking).
   For ``purpose="emergency"`` (break-glass): ``emergency-not-consented`` unless the consent form allows
   emergency viewing, and ``no-emergency-grant`` unless a grant for this viewing facility is active at
   ``now`` (start ≤ now < end) *and was given under the form in force now*. The viewer need not be in the
   consent or linked: that is the point of it, and every grant is audited by the hub.

A grant belongs to the form it was given under (``EmergencyGrant.form_id``): a withdrawal of that form, or a
new form replacing it, ends the grant for good — it never revives under a later form, whatever that form
says about emergencies or the grant's facility. A grant with no form (``""``) opens nothing.

:func:`may_know` is the weaker question the hub asks before it even admits that a patient exists (patient
lookups, timelines, fetches, consent papers): only facilities linked to the patient, within the consent in
force, or holding a live grant under it may; everyone else is told "unknown patient".

Times are naive datetimes on the network's clock (JST); consent dates compare with ``now.date()``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from synthetic.consent import ConsentState
from synthetic.model import ITEM_CATEGORIES
from synthetic.profile import ViewerRules

Purpose = Literal["care", "emergency"]
ALL = frozenset(ITEM_CATEGORIES)


@dataclass(frozen=True, slots=True)
class EmergencyGrant:
    """A time-limited break-glass grant for one viewing facility on one patient, with its stated reason."""

    viewer_facility: str
    user_id: str
    reason: str
    start: dt.datetime
    end: dt.datetime
    form_id: str = ""  # the consent form it was given under; "" (no form) never opens anything

    def active(self, now: dt.datetime) -> bool:
        return self.start <= now < self.end

    def opens(self, facility: str, consent: ConsentState, now: dt.datetime) -> bool:
        """Does this grant let ``facility`` view at ``now`` under ``consent`` (the form in force then)?"""
        return (
            bool(self.form_id)
            and self.form_id == consent.form.form_id
            and self.viewer_facility == facility
            and self.active(now)
        )


@dataclass(frozen=True, slots=True)
class PatientState:
    """What the hub holds about one patient that decides access."""

    consent: ConsentState | None
    linked_facilities: frozenset[str] = frozenset()
    grants: tuple[EmergencyGrant, ...] = ()


@dataclass(frozen=True, slots=True)
class Viewer:
    facility: str
    facility_kind: str
    user_kind: str = "physician"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # "ok" or the first rule that failed (see the module docstring)

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Viewer-kind rules as sets, built once from a profile's ``viewer_rules``."""

    facility_kinds: Mapping[str, frozenset[str]]
    user_kinds: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, rules: ViewerRules) -> AccessRules:
        kinds: dict[str, frozenset[str]] = {
            k: ALL if v == "all" else frozenset(v) for k, v in rules.facilities.items()
        }
        users = {k: frozenset(v) for k, v in rules.users.items()}
        return cls(kinds, users)

    def allows(self, viewer: Viewer, category: str) -> bool:
        if category not in self.facility_kinds.get(viewer.facility_kind, frozenset()):
            return False
        limit = self.user_kinds.get(viewer.user_kind)
        return limit is None or category in limit


_DENIALS: dict[str, Decision] = {}


def _deny(reason: str) -> Decision:
    """The refusal for ``reason``: one shared (frozen) instance per reason, since a timeline asks up to
    18 categories per source and most are refused."""
    found = _DENIALS.get(reason)
    if found is None:
        found = _DENIALS[reason] = Decision(False, reason)
    return found


OK = Decision(True, "ok")


def may_view(
    *,
    viewer: Viewer,
    patient: PatientState,
    source_facility: str,
    source_disclosure: Iterable[str],
    category: str,
    now: dt.datetime,
    purpose: Purpose,
    rules: AccessRules,
) -> Decision:
    """May ``viewer`` see ``category`` of the patient's data held at ``source_facility`` at ``now``?"""
    denial = _item_denial(viewer, _as_set(source_disclosure), category, rules)
    if denial is not None:
        return denial
    return _patient_decision(viewer, patient, source_facility, now, purpose)


def may_view_each(
    *,
    viewer: Viewer,
    patient: PatientState,
    source_facility: str,
    source_disclosure: Iterable[str],
    categories: Iterable[str],
    now: dt.datetime,
    purpose: Purpose,
    rules: AccessRules,
) -> dict[str, Decision]:
    """:func:`may_view` for each of ``categories`` (a timeline asks every category of every source): the
    same answers, the rules checked in the same order, with rules 4–6 — which read no category — asked
    once for the source instead of once per category."""
    shared = _as_set(source_disclosure)
    common: Decision | None = None
    out: dict[str, Decision] = {}
    for category in categories:
        decision = _item_denial(viewer, shared, category, rules)
        if decision is None:
            if common is None:
                common = _patient_decision(viewer, patient, source_facility, now, purpose)
            decision = common
        out[category] = decision
    return out


def _as_set(source_disclosure: Iterable[str]) -> frozenset[str] | set[str]:
    if isinstance(source_disclosure, frozenset | set):
        return source_disclosure
    return set(source_disclosure)


def _item_denial(
    viewer: Viewer, shared: frozenset[str] | set[str], category: str, rules: AccessRules
) -> Decision | None:
    """Rules 1–3 (the category's own): the refusal, or None when they pass."""
    if category not in ALL:
        return _deny("unknown-category")
    if category not in shared:
        return _deny("not-disclosed")
    if not rules.allows(viewer, category):
        return _deny("viewer-kind")
    return None


def _patient_decision(
    viewer: Viewer, patient: PatientState, source_facility: str, now: dt.datetime, purpose: Purpose
) -> Decision:
    """Rules 4–6 (consent, purpose, link, grants): the same for every category of one source."""
    consent = patient.consent
    today = now.date()
    if consent is None:
        return _deny("no-consent")
    if today < consent.form.signed_on:
        return _deny("not-yet-signed")
    if consent.withdrawal is not None and today >= consent.withdrawal.withdrawn_on:
        return _deny("withdrawn")
    if not consent.covers(source_facility, today):
        return _deny("source-outside-consent")
    if purpose == "emergency":
        if not consent.form.emergency_allowed:
            return _deny("emergency-not-consented")
        if not any(g.opens(viewer.facility, consent, now) for g in patient.grants):
            return _deny("no-emergency-grant")
        return OK
    if not consent.covers(viewer.facility, today):
        return _deny("viewer-outside-consent")
    if viewer.facility not in patient.linked_facilities:
        return _deny("not-linked")
    return OK


def may_know(patient: PatientState, facility: str, now: dt.datetime) -> bool:
    """May a user of ``facility`` learn that this (known) patient exists at ``now``?

    Yes for a facility linked to the patient (it holds a local ID), one within the consent in force (it may
    view), or one holding a grant under that consent (break-glass). No otherwise, so an unrelated facility
    walking regional IDs gets the same answer as for an ID that does not exist.
    """
    if facility in patient.linked_facilities:
        return True
    consent = patient.consent
    if consent is None or not consent.active(now.date()):
        return False
    if consent.covers(facility, now.date()):
        return True
    return consent.form.emergency_allowed and any(g.opens(facility, consent, now) for g in patient.grants)
