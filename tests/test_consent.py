"""Consent decisions as properties: nothing outside the consent, before signing or after withdrawal."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from synthetic.consent import ConsentState, is_sharing
from synthetic.model import ConsentAddition, ConsentForm, ConsentWithdrawal
from synthetic.stats import load_consents, sharing_patients

FACILITIES = [f"17101{n:05d}" for n in range(8)]
CATEGORIES = ["patient_basics", "diagnoses", "lab_results", "images"]
days = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 12, 31))


@st.composite
def consents(draw: st.DrawFn) -> ConsentState:
    pattern = draw(st.sampled_from(["all", "all_except", "allow_list", "per_facility"]))
    signed = draw(days)
    listed = tuple(sorted(draw(st.sets(st.sampled_from(FACILITIES), max_size=4))))
    form = ConsentForm("C1", 0, pattern, signed, FACILITIES[0], listed, draw(st.booleans()))
    additions: tuple[ConsentAddition, ...] = ()
    if pattern == "per_facility":
        added = draw(st.lists(st.tuples(st.sampled_from(FACILITIES), st.integers(0, 400)), max_size=3))
        additions = tuple(
            ConsentAddition(f"C1-A{n}", 0, "C1", code, signed + dt.timedelta(days=d), code)
            for n, (code, d) in enumerate(added)
        )
    withdrawal = None
    if draw(st.booleans()):
        withdrawal = ConsentWithdrawal(
            "C1-W", 0, "C1", signed + dt.timedelta(days=draw(st.integers(1, 500))), FACILITIES[1]
        )
    return ConsentState(form, additions, withdrawal)


@given(consents(), st.sampled_from(FACILITIES), days)
def test_nothing_is_covered_before_signing_or_after_withdrawal(
    consent: ConsentState, code: str, on: dt.date
) -> None:
    if on < consent.form.signed_on or (consent.withdrawal and on >= consent.withdrawal.withdrawn_on):
        assert not consent.covers(code, on)


@given(consents(), st.sampled_from(FACILITIES), days)
def test_scope_follows_the_pattern(consent: ConsentState, code: str, on: dt.date) -> None:
    covered = consent.covers(code, on)
    if not consent.active(on):
        assert not covered
        return
    pattern, listed = consent.form.pattern, consent.form.facilities
    if pattern == "all":
        assert covered
    elif pattern == "all_except":
        assert covered == (code not in listed)
    elif pattern == "allow_list":
        assert covered == (code in listed)
    else:
        added = any(a.facility_code == code and a.signed_on <= on for a in consent.additions)
        assert covered == (code in listed or added)


@given(
    consents(),
    st.sets(st.sampled_from(FACILITIES), min_size=1, max_size=5),
    st.dictionaries(
        st.sampled_from(FACILITIES), st.sets(st.sampled_from(CATEGORIES), min_size=1), max_size=4
    ),
    st.dictionaries(
        st.sampled_from(FACILITIES), st.lists(st.sampled_from(CATEGORIES), max_size=4), max_size=5
    ),
    days,
)
def test_sharing_needs_a_covered_source_and_a_covered_second_facility(
    consent: ConsentState,
    local: set[str],
    held: dict[str, set[str]],
    disclosure: dict[str, list[str]],
    on: dt.date,
) -> None:
    sharing = is_sharing(consent, local, held, disclosure, on)
    witnesses = [
        (source, viewer)
        for source, cats in held.items()
        if consent.covers(source, on) and cats & set(disclosure.get(source, []))
        for viewer in local
        if viewer != source and consent.covers(viewer, on)
    ]
    assert sharing == bool(witnesses)
    if sharing:
        assert consent.active(on)


def test_world_consent_invariants(db: sqlite3.Connection) -> None:
    forms = {r["form_id"]: r for r in db.execute("SELECT * FROM consent_forms")}
    assert len(forms) == db.execute("SELECT COUNT(*) FROM patients").fetchone()[0]
    for w in db.execute("SELECT * FROM consent_withdrawals"):
        assert w["withdrawn_on"] > forms[w["base_form_id"]]["signed_on"]
    for a in db.execute("SELECT * FROM consent_additions"):
        base = forms[a["base_form_id"]]
        assert base["pattern"] == "per_facility"
        assert a["signed_on"] >= base["signed_on"]
    patterns = {r[0] for r in db.execute("SELECT DISTINCT pattern FROM consent_forms")}
    assert patterns == {"all", "all_except", "allow_list", "per_facility"}
    taken = db.execute(
        "SELECT COUNT(*) FROM consent_forms f WHERE NOT EXISTS (SELECT 1 FROM local_ids l "
        "WHERE l.patient_index = f.patient_index AND l.facility_code = f.taken_at)"
    ).fetchone()[0]
    assert taken == 0, "a consent is taken at a facility the patient attends"


def test_sharing_equals_the_target_flag_exactly(mini_world: Path, db: sqlite3.Connection) -> None:
    computed = sharing_patients(mini_world)
    flagged = {r[0] for r in db.execute("SELECT patient_index FROM patients WHERE sharing_target = 1")}
    assert computed == flagged
    consents = load_consents(db)
    withdrawn = {i for i, c in consents.items() if c.withdrawal is not None}
    assert withdrawn
    assert not withdrawn & computed
