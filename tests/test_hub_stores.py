"""The hub's stores: a tamper-evident audit log, throttled logins, and consent state that may_view trusts."""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.hub.accounts import Accounts, Refusal, ScryptParams, Session
from simulator.hub.audit import AuditEntry, AuditLog, ChainProblem
from simulator.hub.consents import (
    AlreadyWithdrawnError,
    ConsentError,
    ConsentStore,
    EmergencyNotAllowedError,
    NoConsentError,
    NotPerFacilityError,
)
from simulator.hub.policy import AccessRules, PatientState, Viewer, may_view
from synthetic.model import ITEM_CATEGORIES, ConsentAddition, ConsentForm, ConsentWithdrawal
from synthetic.profile import load_profile

RULES = AccessRules.from_profile(load_profile("mini").viewer_rules)
T0 = dt.datetime(2026, 4, 1, 9, 0)
D0 = T0.date()
FAC = [f"1710{n:06d}" for n in range(6)]
PATIENT = "R000000001"
FAST = ScryptParams(n=2**4, r=1, p=1)


# ------------------------------------------------------------------------------------------------ audit


def _fill(log: AuditLog) -> None:
    log.append(time=T0, actor_facility=FAC[0], actor_user="u1", action="login", outcome="success")
    log.append(
        time=T0 + dt.timedelta(minutes=1),
        actor_facility=FAC[0],
        actor_user="u1",
        action="view",
        outcome="allowed",
        patient=PATIENT,
        target="timeline",
        reason="care",
        details={"categories": ["diagnoses"], "note": "外来"},
    )
    log.append(
        time=T0 + dt.timedelta(minutes=2),
        actor_facility=FAC[1],
        actor_user="u9",
        action="fetch",
        outcome="denied",
        patient=PATIENT,
        target=f"{FAC[2]}/lab_results",
        reason="care",
        details={"why": "viewer-outside-consent"},
    )
    log.append(
        time=T0 + dt.timedelta(minutes=3),
        actor_facility=FAC[1],
        actor_user="u9",
        action="view",
        outcome="allowed",
        patient="R000000002",
        reason="care",
    )
    log.append(
        time=T0 + dt.timedelta(minutes=4),
        actor_facility=FAC[3],
        actor_user="er1",
        action="emergency-view",
        outcome="allowed",
        patient=PATIENT,
        reason="意識障害で救急搬送",
    )


def test_audit_chain_verifies_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        _fill(log)
        first = log.records()[0]
        assert first.prev_hash == "0" * 64
        assert first.seq == 1
        assert log.verify() == []
        head = log.head()
    with AuditLog(path) as log:
        assert log.verify(head) == []
        rec = log.append(time=T0, actor_facility=FAC[0], actor_user="u1", action="logout", outcome="success")
        assert rec.seq == 6
        assert rec.prev_hash == head[1]
        assert log.verify() == []
        assert len(log.records(patient=PATIENT)) == 3
        assert [r.seq for r in log.records(since=T0 + dt.timedelta(minutes=3))] == [4, 5]


def test_audit_edit_delete_reorder_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        _fill(log)
        head = log.head()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE audit SET outcome='allowed' WHERE seq=3")
    raw.commit()
    with AuditLog(path) as log:
        assert log.verify() == [ChainProblem(3, "hash-mismatch")]
    raw.execute("DELETE FROM audit WHERE seq=2")
    raw.commit()
    with AuditLog(path) as log:
        problems = log.verify()
        assert ChainProblem(2, "missing") in problems
        assert ChainProblem(3, "broken-link") in problems
    raw.execute("DELETE FROM audit WHERE seq=5")
    raw.commit()
    with AuditLog(path) as log:
        assert ChainProblem(5, "truncated") in log.verify(head)
    raw.close()


def test_audit_reorder_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        _fill(log)
    raw = sqlite3.connect(path)
    # Swap the contents of rows 2 and 3 (keeping seq): both the links and the hashes break.
    raw.execute("UPDATE audit SET seq = -2 WHERE seq = 2")
    raw.execute("UPDATE audit SET seq = 2 WHERE seq = 3")
    raw.execute("UPDATE audit SET seq = 3 WHERE seq = -2")
    raw.commit()
    raw.close()
    with AuditLog(path) as log:
        seqs = {p.seq for p in log.verify()}
        assert {2, 3} <= seqs


def test_access_report(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.sqlite") as log:
        _fill(log)
        rows = log.access_report(PATIENT)
    assert [(r.facility, r.user, r.action, r.outcome) for r in rows] == [
        (FAC[0], "u1", "view", "allowed"),
        (FAC[1], "u9", "fetch", "denied"),
        (FAC[3], "er1", "emergency-view", "allowed"),
    ]
    assert rows[2].reason == "意識障害で救急搬送"
    assert rows[0].time == "2026-04-01T09:01:00"


def test_append_many_is_one_chained_transaction(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    with AuditLog(path) as log:
        log.append(time=T0, actor_facility=FAC[0], actor_user="u1", action="login", outcome="success")
        entries = [
            AuditEntry(T0 + dt.timedelta(seconds=n), FAC[1], f"u{n}", "query", "AA", patient=PATIENT)
            for n in range(3)
        ]
        records = log.append_many(entries)
        assert log.append_many([]) == []
        assert [(r.seq, r.actor_user) for r in records] == [(2, "u0"), (3, "u1"), (4, "u2")]
        assert records[0].prev_hash == log.records()[0].hash
        assert log.records()[1:] == records
        assert log.verify() == []
        # All or nothing: an entry that cannot be stored leaves no trace of its group, whether it fails
        # before the transaction (details not JSON) or inside it (a NULL where the schema forbids one).
        not_json = AuditEntry(T0, FAC[1], "u9", "query", "AA", details={"x": object()})
        with pytest.raises(TypeError):
            log.append_many([entries[0], not_json])
        null = AuditEntry(T0, FAC[1], "u9", "query", "AA", patient=None)  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):
            log.append_many([entries[0], null])
        assert log.head()[0] == 4
        assert log.append(time=T0, actor_facility=FAC[0], actor_user="u1", action="x", outcome="ok").seq == 5
        assert log.verify() == []
    # Records written by append_many verify like any others after reopening (the hash is the same).
    with AuditLog(path) as log:
        assert log.verify() == []


# ------------------------------------------------------------------------------------------------ logins

WORLD = {
    "facilities": [
        {
            "code": FAC[0],
            "users": [
                {
                    "user_id": "u0001",
                    "password": "S3cret-pass-xyz",
                    "staff_id": "s1",
                    "viewer_kind": "physician",
                },
                {"user_id": "u0002", "password": "An0ther-pass-qq", "staff_id": "s2", "viewer_kind": "clerk"},
            ],
        },
        {"code": FAC[1], "users": []},
    ]
}


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    acc = Accounts(tmp_path / "accounts.sqlite", params=FAST)
    assert acc.load_world(WORLD) == 2
    assert acc.load_world(WORLD) == 0  # idempotent
    return acc


def test_login_session_logout(accounts: Accounts) -> None:
    result = accounts.login(FAC[0], "u0001", "S3cret-pass-xyz", T0)
    assert isinstance(result, Session)
    assert (result.facility, result.user_id, result.viewer_kind, result.outcome) == (
        FAC[0],
        "u0001",
        "physician",
        "success",
    )
    assert result.expires == T0 + dt.timedelta(hours=8)
    assert accounts.session(result.token, T0 + dt.timedelta(hours=7)) is not None
    assert accounts.session(result.token, T0 + dt.timedelta(hours=8)) is None  # expired
    assert accounts.session("nonsense", T0) is None
    assert accounts.logout(result.token) is True
    assert accounts.session(result.token, T0) is None
    unknown = accounts.login(FAC[1], "u0001", "S3cret-pass-xyz", T0)
    assert isinstance(unknown, Refusal)
    assert unknown.reason == "unknown-user"


def test_failures_slow_down_then_lock_then_unlock(accounts: Accounts) -> None:
    now = T0
    waits = []
    for _ in range(4):
        r = accounts.login(FAC[0], "u0001", "wrong", now)
        assert isinstance(r, Refusal)
        assert r.reason == "bad-password"
        assert r.retry_after is not None
        waits.append(r.retry_after)
        early = accounts.login(FAC[0], "u0001", "S3cret-pass-xyz", now)
        assert isinstance(early, Refusal)
        assert early.reason == "retry-later"
        now += r.retry_after
    assert waits == sorted(waits)
    assert waits[0] < waits[-1]
    r = accounts.login(FAC[0], "u0001", "wrong", now)  # fifth failure
    assert isinstance(r, Refusal)
    assert r.reason == "locked"
    assert r.retry_after == dt.timedelta(minutes=15)
    later = now + dt.timedelta(minutes=14)
    right = accounts.login(FAC[0], "u0001", "S3cret-pass-xyz", later)
    assert isinstance(right, Refusal)
    assert right.reason == "locked"
    assert right.retry_after == dt.timedelta(minutes=1)
    # Other users are not affected.
    assert isinstance(accounts.login(FAC[0], "u0002", "An0ther-pass-qq", later), Session)
    ok = accounts.login(FAC[0], "u0001", "S3cret-pass-xyz", now + dt.timedelta(minutes=15))
    assert isinstance(ok, Session)
    # Success reset the count: one new failure gives the shortest wait again.
    again = accounts.login(FAC[0], "u0001", "wrong", now + dt.timedelta(minutes=16))
    assert isinstance(again, Refusal)
    assert again.retry_after == waits[0]


def test_clear_password_not_stored(tmp_path: Path, accounts: Accounts) -> None:
    session = accounts.login(FAC[0], "u0001", "S3cret-pass-xyz", T0)
    assert isinstance(session, Session)
    accounts.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("accounts.sqlite"))
    for secret in ("S3cret-pass-xyz", "An0ther-pass-qq", session.token):
        assert secret.encode() not in blob


# ------------------------------------------------------------------------------------------------ consent


def viewer(code: str) -> Viewer:
    return Viewer(code, "hospital")


def check(
    state: PatientState, code: str, now: dt.datetime, source: str = FAC[0], purpose: str = "care"
) -> str:
    return may_view(
        viewer=viewer(code),
        patient=state,
        source_facility=source,
        source_disclosure=ITEM_CATEGORIES,
        category="diagnoses",
        now=now,
        purpose="care" if purpose == "care" else "emergency",
        rules=RULES,
    ).reason


def form(pattern: str, facilities: tuple[str, ...], emergency: bool = False, fid: str = "C1") -> ConsentForm:
    return ConsentForm(fid, 0, pattern, D0, FAC[0], facilities, emergency)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> ConsentStore:
    s = ConsentStore(tmp_path / "consent.sqlite")
    for code in FAC:
        s.link(PATIENT, code)
    return s


def test_pattern_all(store: ConsentStore) -> None:
    store.register(PATIENT, form("all", ()))
    st_ = store.state(PATIENT)
    assert all(check(st_, c, T0) == "ok" for c in FAC)
    assert check(st_, FAC[1], T0 - dt.timedelta(days=1)) == "not-yet-signed"


def test_pattern_all_except(store: ConsentStore) -> None:
    store.register(PATIENT, form("all_except", (FAC[2],)))
    st_ = store.state(PATIENT)
    assert check(st_, FAC[1], T0) == "ok"
    assert check(st_, FAC[2], T0) == "viewer-outside-consent"
    assert check(st_, FAC[1], T0, source=FAC[2]) == "source-outside-consent"


def test_pattern_allow_list(store: ConsentStore) -> None:
    store.register(PATIENT, form("allow_list", (FAC[0], FAC[1])))
    st_ = store.state(PATIENT)
    assert check(st_, FAC[1], T0) == "ok"
    assert check(st_, FAC[3], T0) == "viewer-outside-consent"
    with pytest.raises(NotPerFacilityError):
        store.add_facility(PATIENT, ConsentAddition("C1-A1", 0, "C1", FAC[3], D0, FAC[3]))


def test_pattern_per_facility_with_addition(store: ConsentStore) -> None:
    store.register(PATIENT, form("per_facility", (FAC[0],)))
    assert check(store.state(PATIENT), FAC[3], T0) == "viewer-outside-consent"
    later = D0 + dt.timedelta(days=10)
    store.add_facility(PATIENT, ConsentAddition("C1-A1", 0, "C1", FAC[3], later, FAC[3]))
    st_ = store.state(PATIENT)
    assert check(st_, FAC[3], T0 + dt.timedelta(days=9)) == "viewer-outside-consent"
    assert check(st_, FAC[3], T0 + dt.timedelta(days=10)) == "ok"
    with pytest.raises(ConsentError):  # already covered
        store.add_facility(PATIENT, ConsentAddition("C1-A2", 0, "C1", FAC[3], later, FAC[3]))
    assert [d.kind for d in store.history(PATIENT)] == ["form", "addition"]


def test_withdrawal_denies(store: ConsentStore) -> None:
    with pytest.raises(NoConsentError):
        store.withdraw(PATIENT, ConsentWithdrawal("C1-W", 0, "C1", D0, FAC[0]))
    store.register(PATIENT, form("all", (), emergency=True))
    end = T0 + dt.timedelta(days=30)
    store.grant_emergency(PATIENT, FAC[5], "er1", "救急搬送", T0, end)
    withdrawn_on = D0 + dt.timedelta(days=5)
    store.withdraw(PATIENT, ConsentWithdrawal("C1-W", 0, "C1", withdrawn_on, FAC[1]))
    st_ = store.state(PATIENT)
    assert check(st_, FAC[1], T0 + dt.timedelta(days=4)) == "ok"
    assert check(st_, FAC[1], T0 + dt.timedelta(days=5)) == "withdrawn"
    assert check(st_, FAC[5], T0 + dt.timedelta(days=6), purpose="emergency") == "withdrawn"
    with pytest.raises(AlreadyWithdrawnError):
        store.withdraw(PATIENT, ConsentWithdrawal("C1-W2", 0, "C1", withdrawn_on, FAC[1]))
    # A new form (re-enrolment) supersedes from its date on.
    store.register(
        PATIENT,
        ConsentForm("C2", 0, "allow_list", D0 + dt.timedelta(days=20), FAC[0], (FAC[0], FAC[1]), False),
    )
    assert check(store.state(PATIENT), FAC[1], T0 + dt.timedelta(days=20)) == "ok"
    assert check(store.state(PATIENT, withdrawn_on), FAC[1], T0 + dt.timedelta(days=5)) == "withdrawn"
    assert [d.document.form_id for d in store.history(PATIENT)] == ["C1", "C1-W", "C2"]


def test_emergency_grants(store: ConsentStore) -> None:
    store.register(PATIENT, form("allow_list", (FAC[0],), emergency=False))
    with pytest.raises(EmergencyNotAllowedError):
        store.grant_emergency(PATIENT, FAC[5], "er1", "救急搬送", T0, T0 + dt.timedelta(hours=4))
    store.register(PATIENT, form("allow_list", (FAC[0],), emergency=True, fid="C2"))
    with pytest.raises(EmergencyNotAllowedError):
        store.grant_emergency(PATIENT, FAC[5], "er1", "   ", T0, T0 + dt.timedelta(hours=4))
    start = T0 + dt.timedelta(hours=1)
    store.grant_emergency(PATIENT, FAC[5], "er1", "意識障害で救急搬送", start, start + dt.timedelta(hours=4))
    st_ = store.state(PATIENT)
    assert check(st_, FAC[5], start, purpose="care") == "viewer-outside-consent"
    assert check(st_, FAC[5], start - dt.timedelta(minutes=1), purpose="emergency") == "no-emergency-grant"
    assert check(st_, FAC[5], start, purpose="emergency") == "ok"
    assert check(st_, FAC[5], start + dt.timedelta(hours=4), purpose="emergency") == "no-emergency-grant"
    assert check(st_, FAC[4], start, purpose="emergency") == "no-emergency-grant"


# ------------------------------------------------------------------------------------------------ property


@dataclass
class ModelForm:
    form_id: str
    pattern: str
    facilities: frozenset[str]
    signed: dt.date
    emergency: bool
    additions: dict[str, dt.date] = field(default_factory=dict)
    withdrawn: dt.date | None = None


def model_covers(forms: list[ModelForm], code: str, on: dt.date) -> bool:
    """The consent stated independently: the last form signed by ``on``, its pattern, list and additions."""
    current = [f for f in forms if f.signed <= on]
    if not current:
        return False
    f = current[-1]
    if f.withdrawn is not None and on >= f.withdrawn:
        return False
    if f.pattern == "all":
        return True
    if f.pattern == "all_except":
        return code not in f.facilities
    return code in f.facilities or (code in f.additions and f.additions[code] <= on)


codes = st.sampled_from(FAC)
day = st.integers(0, 40)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("form"),
            st.sampled_from(["all", "all_except", "allow_list", "per_facility"]),
            st.frozensets(codes, min_size=1, max_size=3),
            day,
            st.booleans(),
        ),
        st.tuples(st.just("add"), codes, day),
        st.tuples(st.just("withdraw"), day),
        st.tuples(st.just("grant"), codes, day, st.integers(1, 72)),
        st.tuples(st.just("link"), codes),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_random_histories_never_allow_outside_consent(ops: list[tuple[object, ...]]) -> None:
    forms: list[ModelForm] = []
    linked: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp, ConsentStore(Path(tmp) / "c.sqlite") as store:
        for n, op in enumerate(ops):
            kind = op[0]
            base = forms[-1].form_id if forms else "none"
            try:
                if kind == "form":
                    _, pattern, facs, d, emergency = op
                    assert isinstance(facs, frozenset)
                    assert isinstance(d, int)
                    listed = () if pattern == "all" else tuple(sorted(facs))
                    signed = D0 + dt.timedelta(days=d)
                    store.register(
                        PATIENT,
                        ConsentForm(f"F{n}", 0, pattern, signed, FAC[0], listed, bool(emergency)),  # type: ignore[arg-type]
                    )
                    forms.append(ModelForm(f"F{n}", str(pattern), frozenset(listed), signed, bool(emergency)))
                elif kind == "add":
                    _, code, d = op
                    assert isinstance(code, str)
                    assert isinstance(d, int)
                    on = D0 + dt.timedelta(days=d)
                    store.add_facility(PATIENT, ConsentAddition(f"A{n}", 0, base, code, on, code))
                    forms[-1].additions[code] = on
                elif kind == "withdraw":
                    assert isinstance(op[1], int)
                    on = D0 + dt.timedelta(days=op[1])
                    store.withdraw(PATIENT, ConsentWithdrawal(f"W{n}", 0, base, on, FAC[0]))
                    forms[-1].withdrawn = on
                elif kind == "grant":
                    _, code, d, hours = op
                    assert isinstance(code, str)
                    assert isinstance(d, int)
                    assert isinstance(hours, int)
                    start = T0 + dt.timedelta(days=d)
                    store.grant_emergency(
                        PATIENT, code, "er1", "救急", start, start + dt.timedelta(hours=hours)
                    )
                else:
                    assert isinstance(op[1], str)
                    store.link(PATIENT, op[1])
                    linked.add(op[1])
            except ConsentError:
                pass
        assert len(store.history(PATIENT)) == len(forms) + sum(
            len(f.additions) + (f.withdrawn is not None) for f in forms
        )
        for d in range(-1, 45, 3):
            now = T0 + dt.timedelta(days=d, hours=3)
            for state in (store.state(PATIENT), store.state(PATIENT, now.date())):
                for source in FAC:
                    for code in FAC:
                        care = check(state, code, now, source=source)
                        if care == "ok":
                            assert model_covers(forms, code, now.date()), (code, now, care)
                            assert model_covers(forms, source, now.date())
                            assert code in linked
                        emergency = check(state, code, now, source=source, purpose="emergency")
                        if emergency == "ok":
                            assert model_covers(forms, source, now.date())
