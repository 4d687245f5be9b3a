"""A hypothesis state machine over consent administration, shared by the CI test and the benchmark.

Random sequences of register / 連携先追加 / 同意撤回 / back-dated forms / emergency grants, by random
facilities and viewer kinds, go to the hub's real FastAPI app (in-process, through Starlette's TestClient:
the routes, their authority checks, the consent store and the policy all run). The machine keeps its own
model of which papers must have been accepted — from who may administer (a linked facility, a permitted
kind) and the paper rules — and checks after every step that:

* **no unauthorised write succeeds**, and the hub accepts exactly the papers the model says it must;
* **nobody sees what a valid, current consent does not allow**: for every viewer, source, category and
  purpose, the hub's decision (:func:`simulator.hub.policy.may_view` on the state the hub holds) allows
  only when the model's current consent is active, covers the source, and either covers and is linked to
  the viewer (care) or holds a grant given under *that* form (emergency) — and equals the model's decision;
* **only facilities that may know a patient can look them up** (linked, in the consent, or a live grant).

The clock is fixed (every grant stays within its minutes), so a grant can only end by its form ending.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simulator.hub.accounts import Accounts, ScryptParams
from simulator.hub.api import create_app
from simulator.hub.audit import AuditLog
from simulator.hub.auditbatch import AuditBatcher
from simulator.hub.consents import ConsentStore
from simulator.hub.facilities import CONSENT_ADMIN_KINDS, Facilities
from simulator.hub.index import DomainDirectory, IndexDemographics, IndexName, PatientIndex
from simulator.hub.policy import EmergencyGrant, PatientState, Viewer, may_view
from simulator.hub.service import HubServices, Refused
from synthetic.clock import JST
from synthetic.consent import ConsentState
from synthetic.model import ConsentAddition, ConsentForm, ConsentWithdrawal

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=JST)
TODAY = NOW.date()
FACILITIES = {
    "FA": "hospital",
    "FB": "clinic",
    "FC": "clinic",
    "FP": "pharmacy",
    "FN": "hospital",
    "FK": "care",  # its nurses may take papers, a hospital's may not
}
DISCLOSING = ("FA", "FB")
KINDS = ("physician", "nurse", "clerk", "pharmacist", "care_worker")
CATEGORIES = ("patient_basics", "lab_results", "dispensing_results")
PATTERNS = ("all", "all_except", "allow_list", "per_facility")


def _world() -> dict[str, Any]:
    return {
        "facilities": [
            {
                "code": code,
                "name": code,
                "kind": kind,
                "network_role": "disclosing" if code in DISCLOSING else "viewing",
                "disclosure": list(CATEGORIES) if code in DISCLOSING else [],
                "assigning_authority": {"namespace": f"NS{code}", "oid": f"1.2.392.999.{n}"},
                "users": [
                    {"user_id": k, "password": f"pw-{code}-{k}", "staff_id": f"S{n}{i}", "viewer_kind": k}
                    for i, k in enumerate(KINDS)
                ],
            }
            for n, (code, kind) in enumerate(FACILITIES.items(), 1)
        ],
        "viewer_rules": {
            "facilities": {
                "hospital": "all",
                "clinic": "all",
                "dental": ["patient_basics"],
                "pharmacy": ["patient_basics", "dispensing_results"],
                "care": ["patient_basics"],
                "other": ["patient_basics"],
            },
            "users": {"clerk": ["patient_basics"]},
        },
    }


@dataclasses.dataclass
class Lab:
    """One in-process hub and a logged-in client per (facility, viewer kind), for every example."""

    hub: HubServices
    client: TestClient
    tokens: dict[tuple[str, str], str]
    patients: Iterator[int]
    documents: Iterator[int]
    steps: int = 0

    def headers(self, facility: str, kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(facility, kind)]}"}


LAB: Lab | None = None


@contextmanager
def lab() -> Iterator[Lab]:
    """Open the hub (stores in a temporary folder, cheap scrypt) and make it the machine's (``LAB``)."""
    global LAB
    world = _world()
    with ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="consent-fsm-")))
        directory = DomainDirectory.from_world(world)
        index = stack.enter_context(PatientIndex(data / "hub.sqlite", directory, clock=lambda: NOW))
        accounts = stack.enter_context(Accounts(data / "accounts.sqlite", params=ScryptParams(n=2, r=1, p=1)))
        consents = stack.enter_context(ConsentStore(data / "consents.sqlite"))
        audit_log = stack.enter_context(AuditLog(data / "audit.sqlite"))
        hub = HubServices(
            Facilities.from_world(world), index, accounts, consents, audit_log, AuditBatcher(audit_log), "op",
            lambda: NOW,
        )  # fmt: skip
        client = stack.enter_context(TestClient(create_app(hub)))
        tokens = {}
        for code in FACILITIES:
            for kind in KINDS:
                reply = client.post(
                    "/auth/login", json={"facility": code, "user_id": kind, "password": f"pw-{code}-{kind}"}
                )
                assert reply.status_code == 200, reply.text
                tokens[(code, kind)] = reply.json()["token"]
        LAB = Lab(hub, client, tokens, itertools.count(1), itertools.count(1))
        try:
            yield LAB
        finally:
            LAB = None


@dataclasses.dataclass
class Model:
    """What the hub must hold for one patient, from the papers the model says it accepted."""

    rid: str
    linked: frozenset[str]
    forms: list[ConsentForm] = dataclasses.field(default_factory=list)
    additions: list[ConsentAddition] = dataclasses.field(default_factory=list)
    withdrawals: list[ConsentWithdrawal] = dataclasses.field(default_factory=list)
    grants: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (viewer facility, form ID)

    def current(self) -> ConsentState | None:
        if not self.forms:
            return None
        form = self.forms[-1]
        adds = tuple(a for a in self.additions if a.base_form_id == form.form_id)
        withdrawal = next((w for w in self.withdrawals if w.base_form_id == form.form_id), None)
        return ConsentState(form, adds, withdrawal)

    def may_know(self, facility: str) -> bool:
        consent = self.current()
        if facility in self.linked:
            return True
        if consent is None or not consent.active(TODAY):
            return False
        return consent.covers(facility, TODAY) or (
            consent.form.emergency_allowed and (facility, consent.form.form_id) in self.grants
        )

    def may_administer(self, facility: str, kind: str) -> bool:
        return facility in self.linked and kind in CONSENT_ADMIN_KINDS[FACILITIES[facility]]


dates = st.integers(-40, 0).map(lambda d: TODAY + dt.timedelta(days=d))
facility_codes = st.sampled_from(sorted(FACILITIES))
kinds = st.sampled_from(KINDS)


class ConsentAdministration(RuleBasedStateMachine):
    """See the module docstring. Two fresh patients per example, linked at random facilities."""

    def __init__(self) -> None:
        super().__init__()
        assert LAB is not None, "open tests.consent_fsm.lab() first"
        self.lab = LAB
        self.models: list[Model] = []
        self.ids = self.lab.documents  # document IDs are unique in the hub, across examples

    @initialize(linked=st.lists(st.sets(facility_codes, min_size=1, max_size=4), min_size=2, max_size=2))
    def patients(self, linked: list[set[str]]) -> None:
        index = self.lab.hub.index
        for codes in linked:
            n = next(self.lab.patients)
            pairs = []
            for code in sorted(codes):
                local = f"L{n:06d}{code}"
                index.register(f"NS{code}", local, IndexDemographics(names=(IndexName("北陸", "花子"),)))
                pairs.append((f"NS{code}", local))
            rid = index.link_many(pairs)
            self.models.append(Model(rid, frozenset(codes)))

    # ------------------------------------------------------------------------------------------- writes

    def _post(self, m: Model, path: str, body: dict[str, Any], actor: tuple[str, str]) -> int:
        self.lab.steps += 1
        reply = self.lab.client.post(f"/patients/{m.rid}{path}", json=body, headers=self.lab.headers(*actor))
        assert reply.status_code < 500, reply.text
        if not m.may_administer(*actor):
            assert reply.status_code in (403, 404), f"unauthorised {actor} wrote {path}: {reply.text}"
            assert (reply.status_code == 404) == (not m.may_know(actor[0])), reply.text
        return reply.status_code

    @rule(
        which=st.integers(0, 1),
        facility=facility_codes,
        kind=kinds,
        pattern=st.sampled_from(PATTERNS),
        listed=st.sets(facility_codes, max_size=3),
        signed=dates,
        emergency=st.booleans(),
    )
    def register(
        self,
        which: int,
        facility: str,
        kind: str,
        pattern: str,
        listed: set[str],
        signed: dt.date,
        emergency: bool,
    ) -> None:
        m = self.models[which]
        scope = tuple(sorted(listed)) if pattern != "all" else ()
        form = ConsentForm(f"F{next(self.ids)}", 0, pattern, signed, facility, scope, emergency)  # type: ignore[arg-type]
        body = {
            "form_id": form.form_id,
            "pattern": pattern,
            "facilities": list(scope),
            "signed_on": signed.isoformat(),
            "emergency_allowed": emergency,
        }
        status = self._post(m, "/consents", body, (facility, kind))
        current = m.current()
        latest_withdrawal = max((w.withdrawn_on for w in m.withdrawals), default=None)
        expected = (
            m.may_administer(facility, kind)
            and not (pattern in ("allow_list", "per_facility") and not scope)
            and (current is None or signed >= current.form.signed_on)
            and (latest_withdrawal is None or signed > latest_withdrawal)
        )
        assert (status == 201) == expected, (status, form, current, latest_withdrawal)
        if status == 201:
            m.forms.append(form)

    @rule(which=st.integers(0, 1), data=st.data(), pattern=st.sampled_from(PATTERNS), emergency=st.booleans())
    def renew(self, which: int, data: st.DataObject, pattern: str, emergency: bool) -> None:
        """A paper the hub must take (by a linked facility's first permitted kind, dated today), so that
        sequences reach forms replacing forms that grants were given under."""
        m = self.models[which]
        facility = data.draw(st.sampled_from(sorted(m.linked)))
        admin = next(k for k in KINDS if k in CONSENT_ADMIN_KINDS[FACILITIES[facility]])
        self.register(which, facility, admin, pattern, {"FA", "FB"}, TODAY, emergency)
        assert m.forms
        assert m.forms[-1].signed_on == TODAY or any(w.withdrawn_on >= TODAY for w in m.withdrawals)

    @rule(which=st.integers(0, 1), data=st.data(), viewer=facility_codes, pattern=st.sampled_from(PATTERNS))
    def grant_then_replace(self, which: int, data: st.DataObject, viewer: str, pattern: str) -> None:
        """Break-glass under an emergency-allowing form, then a replacing form that allows emergencies too:
        the transition where a grant not bound to its form would live on."""
        self.renew(which, data, "all", True)
        self.emergency(which, viewer)
        self.renew(which, data, pattern, True)

    @precondition(lambda self: any(m.withdrawals for m in self.models))
    @rule(which=st.integers(0, 1), facility=facility_codes, kind=kinds, back=st.integers(0, 20))
    def backdated(self, which: int, facility: str, kind: str, back: int) -> None:
        """A form dated on or before the latest withdrawal: never accepted, by anyone."""
        m = self.models[which]
        if not m.withdrawals:
            return
        signed = max(w.withdrawn_on for w in m.withdrawals) - dt.timedelta(days=back)
        body = {"form_id": f"F{next(self.ids)}", "pattern": "all", "signed_on": signed.isoformat(),
                "emergency_allowed": True}  # fmt: skip
        assert self._post(m, "/consents", body, (facility, kind)) != 201

    @rule(which=st.integers(0, 1), facility=facility_codes, kind=kinds, added=facility_codes, signed=dates)
    def add(self, which: int, facility: str, kind: str, added: str, signed: dt.date) -> None:
        m = self.models[which]
        current = m.current()
        base = current.form.form_id if current else "NONE"
        addition = ConsentAddition(f"F{next(self.ids)}", 0, base, added, signed, facility)
        body = {
            "form_id": addition.form_id,
            "base_form_id": base,
            "facility": added,
            "signed_on": signed.isoformat(),
        }
        status = self._post(m, "/consents/additions", body, (facility, kind))
        expected = (
            m.may_administer(facility, kind)
            and current is not None
            and current.form.pattern == "per_facility"
            and current.withdrawal is None
            and signed >= current.form.signed_on
            and added not in current.form.facilities
            and all(a.facility_code != added for a in current.additions)
        )
        assert (status == 201) == expected, (status, addition, current)
        if status == 201:
            m.additions.append(addition)

    @rule(which=st.integers(0, 1), facility=facility_codes, kind=kinds, dated=dates)
    def withdraw(self, which: int, facility: str, kind: str, dated: dt.date) -> None:
        m = self.models[which]
        current = m.current()
        base = current.form.form_id if current else "NONE"
        withdrawal = ConsentWithdrawal(f"F{next(self.ids)}", 0, base, dated, facility)
        body = {"form_id": withdrawal.form_id, "base_form_id": base, "withdrawn_on": dated.isoformat()}
        status = self._post(m, "/consents/withdrawals", body, (facility, kind))
        expected = (
            m.may_administer(facility, kind)
            and current is not None
            and current.withdrawal is None
            and dated >= current.form.signed_on
        )
        assert (status == 201) == expected, (status, withdrawal, current)
        if status == 201:
            m.withdrawals.append(withdrawal)

    @rule(which=st.integers(0, 1), viewer=facility_codes)
    def emergency(self, which: int, viewer: str) -> None:
        m = self.models[which]
        self.lab.steps += 1
        reply = self.lab.client.post(
            f"/patients/{m.rid}/emergency",
            json={"reason": "救急", "minutes": 60},
            headers=self.lab.headers(viewer, "physician"),
        )
        current = m.current()
        expected = current is not None and current.form.emergency_allowed and current.active(TODAY)
        assert (reply.status_code == 201) == expected, (reply.text, current)
        if reply.status_code == 201:
            assert current is not None
            m.grants.append((viewer, current.form.form_id))
        else:
            assert reply.status_code == (403 if m.may_know(viewer) else 404), reply.text

    # ------------------------------------------------------------------------------------------- invariants

    @invariant()
    def nobody_sees_outside_a_valid_current_consent(self) -> None:
        hub = self.lab.hub
        local_now = NOW.replace(tzinfo=None)
        for m in getattr(self, "models", []):
            held = hub.patient_state(m.rid, TODAY)
            consent = m.current()
            grants = tuple(
                EmergencyGrant(f, "u", "r", local_now, local_now + dt.timedelta(hours=1), form_id)
                for f, form_id in m.grants
            )
            expected_state = PatientState(consent, m.linked, grants)
            for viewer, vkind in FACILITIES.items():
                for user_kind in ("physician", "clerk"):
                    who = Viewer(viewer, vkind, user_kind)
                    for source in DISCLOSING:
                        for category in CATEGORIES:
                            for purpose in ("care", "emergency"):
                                args = {
                                    "viewer": who,
                                    "source_facility": source,
                                    "source_disclosure": CATEGORIES,
                                    "category": category,
                                    "now": local_now,
                                    "purpose": purpose,
                                    "rules": hub.facilities.rules,
                                }
                                got = may_view(patient=held, **args)
                                want = may_view(patient=expected_state, **args)
                                assert got.allowed == want.allowed, (
                                    m,
                                    who,
                                    source,
                                    category,
                                    purpose,
                                    got,
                                    want,
                                )
                                if got.allowed:  # the property itself, stated without may_view
                                    assert consent is not None
                                    assert consent.active(TODAY)
                                    assert consent.covers(source, TODAY)
                                    if purpose == "care":
                                        assert consent.covers(viewer, TODAY)
                                        assert viewer in m.linked
                                    else:
                                        assert (viewer, consent.form.form_id) in m.grants
            for facility in FACILITIES:
                status = 200
                try:
                    hub.require_known_to(facility, m.rid)
                except Refused as exc:
                    status = exc.status
                assert status == (200 if m.may_know(facility) else 404), (m, facility)
