"""The access decision over random histories: nothing outside the rules is allowed, everything inside is."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.hub.policy import AccessRules, EmergencyGrant, PatientState, Viewer, may_view, may_view_each
from synthetic.consent import ConsentState
from synthetic.model import ITEM_CATEGORIES, ConsentAddition, ConsentForm, ConsentWithdrawal
from synthetic.profile import load_profile

FACILITIES = [f"1710{n:06d}" for n in range(6)]
KINDS = ["hospital", "clinic", "dental", "pharmacy", "care", "other"]
USER_KINDS = ["physician", "nurse", "pharmacist", "care_worker", "clerk", "dentist"]
RULES = AccessRules.from_profile(load_profile("mini").viewer_rules)
BASE = dt.datetime(2026, 1, 1)
days = st.integers(0, 400)


def at(day: int, hour: int = 12) -> dt.datetime:
    return BASE + dt.timedelta(days=day, hours=hour)


@st.composite
def histories(draw: st.DrawFn) -> PatientState:
    if draw(st.integers(0, 9)) == 0:
        return PatientState(None, frozenset(draw(st.sets(st.sampled_from(FACILITIES)))))
    pattern = draw(st.sampled_from(["all", "all_except", "allow_list", "per_facility"]))
    signed = draw(days)
    listed = tuple(sorted(draw(st.sets(st.sampled_from(FACILITIES), max_size=4))))
    form = ConsentForm("C1", 0, pattern, at(signed).date(), FACILITIES[0], listed, draw(st.booleans()))
    added = draw(st.lists(st.tuples(st.sampled_from(FACILITIES), days), max_size=3))
    additions = tuple(
        ConsentAddition(f"C1-A{i}", 0, "C1", code, at(signed + d).date(), code)
        for i, (code, d) in enumerate(added)
    )
    if pattern != "per_facility":
        additions = ()
    withdrawal = None
    if draw(st.booleans()):
        withdrawal = ConsentWithdrawal(
            "C1-W", 0, "C1", at(signed + draw(st.integers(1, 300))).date(), FACILITIES[1]
        )
    windows = draw(
        st.lists(
            st.tuples(st.sampled_from(FACILITIES), days, st.integers(0, 23), st.integers(1, 24)), max_size=3
        )
    )
    grants = tuple(
        EmergencyGrant(
            code, "u0001", "意識障害で救急搬送", at(d, h), at(d, h) + dt.timedelta(hours=length), "C1"
        )
        for code, d, h, length in windows
    )
    linked = frozenset(draw(st.sets(st.sampled_from(FACILITIES))))
    return PatientState(ConsentState(form, additions, withdrawal), linked, grants)


queries = st.fixed_dictionaries(
    {
        "viewer": st.builds(
            Viewer, st.sampled_from(FACILITIES), st.sampled_from(KINDS), st.sampled_from(USER_KINDS)
        ),
        "source": st.sampled_from(FACILITIES),
        "disclosure": st.frozensets(st.sampled_from(ITEM_CATEGORIES)),
        "category": st.sampled_from([*ITEM_CATEGORIES, "gossip"]),
        "day": days,
        "hour": st.integers(0, 23),
        "purpose": st.sampled_from(["care", "emergency"]),
    }
)


def in_force(state: PatientState, on: dt.date) -> set[str] | None:
    """Independent oracle: the facilities named by the consent documents in force on ``on`` (None: none)."""
    c = state.consent
    if c is None or on < c.form.signed_on or (c.withdrawal and on >= c.withdrawal.withdrawn_on):
        return None
    everyone = set(FACILITIES)
    named = set(c.form.facilities)
    if c.form.pattern == "all":
        return everyone
    if c.form.pattern == "all_except":
        return everyone - named
    if c.form.pattern == "per_facility":
        named |= {a.facility_code for a in c.additions if a.signed_on <= on}
    return named


def expected(state: PatientState, q: dict) -> bool:  # type: ignore[type-arg]
    viewer: Viewer = q["viewer"]
    now = at(q["day"], q["hour"])
    category = q["category"]
    kind_ok = category in RULES.facility_kinds[viewer.facility_kind] and (
        viewer.user_kind not in RULES.user_kinds or category in RULES.user_kinds[viewer.user_kind]
    )
    covered = in_force(state, now.date())
    if category not in ITEM_CATEGORIES or category not in q["disclosure"] or not kind_ok or covered is None:
        return False
    if q["source"] not in covered:
        return False
    if q["purpose"] == "emergency":
        assert state.consent is not None
        return state.consent.form.emergency_allowed and any(
            g.viewer_facility == viewer.facility and g.start <= now < g.end for g in state.grants
        )
    return viewer.facility in covered and viewer.facility in state.linked_facilities


def decide(state: PatientState, q: dict) -> bool:  # type: ignore[type-arg]
    return may_view(
        viewer=q["viewer"],
        patient=state,
        source_facility=q["source"],
        source_disclosure=q["disclosure"],
        category=q["category"],
        now=at(q["day"], q["hour"]),
        purpose=q["purpose"],
        rules=RULES,
    ).allowed


@settings(max_examples=600)
@given(histories(), queries)
def test_decision_matches_the_rules_exactly(state: PatientState, q: dict) -> None:  # type: ignore[type-arg]
    assert decide(state, q) == expected(state, q)


@settings(max_examples=400)
@given(histories(), queries, st.lists(st.sampled_from([*ITEM_CATEGORIES, "gossip"]), max_size=20))
def test_each_category_at_once_is_may_view_per_category(
    state: PatientState,
    q: dict,  # type: ignore[type-arg]
    categories: list[str],
) -> None:
    """A timeline's decision for every category of a source (the consent rules asked once) is ``may_view``'s
    for each category, reason included; with a list as the disclosure too (not only a set)."""
    for disclosure in (q["disclosure"], sorted(q["disclosure"])):
        args = {
            "viewer": q["viewer"], "patient": state, "source_facility": q["source"],
            "source_disclosure": disclosure, "now": at(q["day"], q["hour"]), "purpose": q["purpose"],
            "rules": RULES,
        }  # fmt: skip
        each = may_view_each(categories=categories, **args)
        assert list(each) == list(dict.fromkeys(categories))
        for category in categories:
            assert each[category] == may_view(category=category, **args)


@settings(max_examples=300)
@given(histories(), queries)
def test_withdrawal_ends_everything(state: PatientState, q: dict) -> None:  # type: ignore[type-arg]
    c = state.consent
    if (
        c is not None
        and c.withdrawal is not None
        and at(q["day"], q["hour"]).date() >= c.withdrawal.withdrawn_on
    ):
        assert not decide(state, q)


@settings(max_examples=300)
@given(histories(), queries)
def test_an_undisclosed_category_is_never_shown(state: PatientState, q: dict) -> None:  # type: ignore[type-arg]
    if q["category"] not in q["disclosure"]:
        assert not decide(state, q)


@settings(max_examples=300)
@given(histories(), queries, st.sampled_from(FACILITIES), days)
def test_more_documents_never_take_access_away(state: PatientState, q: dict, code: str, day: int) -> None:  # type: ignore[type-arg]
    """Links, grants and 連携先追加 forms only ever add access."""
    before = decide(state, q)
    grant = EmergencyGrant(code, "u0002", "救急", at(day), at(day) + dt.timedelta(hours=6), "C1")
    more = dataclasses.replace(
        state, linked_facilities=state.linked_facilities | {code}, grants=(*state.grants, grant)
    )
    if state.consent is not None and state.consent.form.pattern == "per_facility":
        addition = ConsentAddition("C1-AX", 0, "C1", code, at(day).date(), code)
        consent = dataclasses.replace(state.consent, additions=(*state.consent.additions, addition))
        more = dataclasses.replace(more, consent=consent)
    if before:
        assert decide(more, q)


def test_reasons_name_the_failing_rule() -> None:
    form = ConsentForm("C9", 0, "allow_list", dt.date(2026, 1, 10), "A", ("A", "B"), False)
    state = PatientState(ConsentState(form), frozenset({"B"}))
    viewer = Viewer("B", "clinic", "physician")

    def reason(**kw: object) -> str:
        args = {
            "viewer": viewer,
            "patient": state,
            "source_facility": "A",
            "source_disclosure": ["lab_results"],
            "category": "lab_results",
            "now": dt.datetime(2026, 2, 1, 9),
            "purpose": "care",
            "rules": RULES,
        }
        args.update(kw)
        return may_view(**args).reason  # type: ignore[arg-type]

    assert reason() == "ok"
    assert reason(category="images") == "not-disclosed"
    assert reason(viewer=Viewer("B", "care", "care_worker"), category="lab_results") == "viewer-kind"
    assert reason(viewer=Viewer("B", "clinic", "clerk")) == "viewer-kind"
    assert reason(now=dt.datetime(2026, 1, 9, 23)) == "not-yet-signed"
    assert reason(source_facility="C") == "source-outside-consent"
    assert reason(viewer=Viewer("C", "clinic")) == "viewer-outside-consent"
    assert reason(patient=PatientState(ConsentState(form), frozenset())) == "not-linked"
    assert reason(purpose="emergency") == "emergency-not-consented"
    assert reason(patient=PatientState(None)) == "no-consent"
    assert reason(category="gossip") == "unknown-category"
