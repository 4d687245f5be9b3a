"""The workload model: file errors with file:line:key, SLO syntax, the diurnal curve and the power-law
facility weights as properties, and sessions / feeds that are deterministic and honour consent."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.workload import (
    Rates,
    WorkloadError,
    WorldPlan,
    default_workload,
    diurnal_factor,
    load_workload,
    parse_slo,
    peak_factor,
    step_multiplier,
)
from simulator.workload.model import ShapeSpec, Workload
from simulator.workload.plan import _hash


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- the file


def test_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema_version: 1\n"
        "session:\n"
        "  think_time_s: -1\n"
        "  categories: {progress_notes: 1, x_rays: 2}\n"
        "shape: {kind: sine}\n"
        "bogus: 1\n",
    )
    with pytest.raises(WorkloadError) as err:
        load_workload(path)
    text = str(err.value)
    assert f"{path}:3: session.think_time_s:" in text
    assert f"{path}:4: session.categories:" in text
    assert "x_rays" in text
    assert f"{path}:5: shape.kind:" in text
    assert f"{path}:6: bogus: unknown key" in text


def test_bad_slo_in_the_file_and_yaml_syntax(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r":2: slo\.0: .*unknown operation 'tmeline'"):
        load_workload(write(tmp_path, "schema_version: 1\nslo: ['tmeline.p95<800ms']\n"))
    with pytest.raises(WorkloadError, match=r":3: .*YAML syntax"):
        load_workload(write(tmp_path, "schema_version: 1\nslo: [\n"))
    with pytest.raises(WorkloadError, match="cannot read"):
        load_workload(tmp_path / "missing.yaml")


def test_a_valid_file_overrides_the_defaults(tmp_path: Path) -> None:
    w = load_workload(
        write(
            tmp_path, "schema_version: 1\nname: busy\nshape: {kind: step, step_s: 5}\nslo: ['fetch.p99<2s']\n"
        )
    )
    assert w.name == "busy"
    assert w.shape.kind == "step"
    assert w.shape.step_s == 5
    assert w.session == default_workload().session
    assert [str(s) for s in w.slos()] == ["fetch.p99<2000ms"]


@pytest.mark.parametrize(
    ("text", "op", "stat", "limit"),
    [
        ("timeline.p95<800ms", "timeline", "p95", 800.0),
        ("fetch.p99 < 2s", "fetch", "p99", 2000.0),
        ("pdq.max<150", "pdq", "max", 150.0),
        ("login.failures<1%", "login", "failures", 0.01),
    ],
)
def test_slo_syntax(text: str, op: str, stat: str, limit: float) -> None:
    slo = parse_slo(text)
    assert (slo.operation, slo.stat, slo.limit) == (op, stat, pytest.approx(limit))


@pytest.mark.parametrize(
    "bad", ["timeline.p95>800ms", "timeline.p90<800ms", "nope.p95<1ms", "pdq.failures<3ms"]
)
def test_bad_slos_are_refused(bad: str) -> None:
    with pytest.raises(WorkloadError):
        parse_slo(bad)


# ------------------------------------------------------------------------------------------- time


@settings(max_examples=40, deadline=None)
@given(share=st.floats(min_value=0.05, max_value=0.95))
def test_the_diurnal_curve_has_mean_one_and_the_stated_share_in_clinic_hours(share: float) -> None:
    hours = np.linspace(0, 24, 24 * 600, endpoint=False)
    values = np.array([diurnal_factor(h, share) for h in hours])
    assert values.mean() == pytest.approx(1.0, rel=1e-3)
    inside = values[(hours >= 9) & (hours < 18)].sum() / values.sum()
    assert inside == pytest.approx(share, abs=1e-3)
    assert values.max() == pytest.approx(peak_factor(share), rel=1e-6)
    assert max(diurnal_factor(13.5, share), diurnal_factor(3.0, share)) == pytest.approx(peak_factor(share))
    assert diurnal_factor(3.0, share) == diurnal_factor(21.0, share)  # flat outside clinic hours


def test_ishikawa_rates_are_the_mame_net_scaled_figures() -> None:
    rates = Rates(default_workload(), 52_640)
    assert rates.workload.views_per_day(52_640) == pytest.approx(1316, abs=1)  # world.md: ~1.3k/day
    assert rates.peak_per_s * 3600 == pytest.approx(1316 / 24 * peak_factor(), rel=1e-9)
    shaped = Rates(
        default_workload().model_copy(update={"shape": ShapeSpec(kind="peak", multiplier=100)}), 52_640
    )
    assert shaped.sessions_per_s(10) == pytest.approx(100 * rates.peak_per_s)


def test_step_and_diurnal_shapes() -> None:
    spec = ShapeSpec(kind="step", step_start=1, step_factor=2, step_s=10, step_max=8)
    assert [step_multiplier(spec, t) for t in (0, 9.9, 10, 25, 35, 40)] == [1, 1, 2, 4, 8, None]
    assert step_multiplier(spec, 1e9) is None  # a day-long run past the last step does not overflow
    day = default_workload().model_copy(update={"shape": ShapeSpec(kind="diurnal", day_s=240, multiplier=10)})
    rates = Rates(day, 1000, rate_override=1.0)
    noon = rates.multiplier_at(240 * 13.5 / 24)
    night = rates.multiplier_at(240 * 3 / 24)
    assert noon == pytest.approx(10)
    assert night is not None
    assert night < 10 * 0.3
    assert rates.max_sessions_per_s(600) == pytest.approx(10)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["peak", "diurnal", "step"]),
    share=st.floats(min_value=0.05, max_value=0.95),
    day_s=st.floats(min_value=1.0, max_value=86_400.0),
    at=st.floats(min_value=0.0, max_value=1e7),
    u=st.floats(min_value=0.0, max_value=1.0),
)
def test_the_shapes_piecewise_bound_is_above_it_until_its_end(
    kind: str, share: float, day_s: float, at: float, u: float
) -> None:
    """The model thins its arrivals from :meth:`Rates.bound`: on [at, end) the bound is at least the
    shape's multiplier, and end lies ahead (the thinning moves on)."""
    spec = ShapeSpec(kind=kind, day_s=day_s, multiplier=3.0, step_s=60.0, step_max=1e6)  # type: ignore[arg-type]
    rates = Rates(default_workload().model_copy(update={"weekday_hours_share": share, "shape": spec}), 1000)
    piece = rates.bound(at)
    if piece is None:  # only a step shape ends (here after 20 steps of a minute)
        assert (kind, rates.multiplier_at(at)) == ("step", None)
        return
    top, end = piece
    assert end > at
    inside = at + u * (min(end, at + 10 * day_s) - at)
    if inside < end:
        m = rates.multiplier_at(inside)
        assert m is not None
        assert m <= top * (1 + 1e-9)
    if kind != "diurnal":
        assert top == rates.multiplier_at(at)  # flat shapes: the bound is exact, nothing is rejected
    elif not 9 <= 24 * (at % day_s) / day_s < 18:
        assert top == pytest.approx(rates.multiplier_at(at))  # and so is the diurnal night


def test_a_step_shape_past_its_last_step_has_no_bound() -> None:
    spec = ShapeSpec(kind="step", step_start=1, step_factor=2, step_s=10, step_max=8)
    rates = Rates(default_workload().model_copy(update={"shape": spec}), 1000)
    assert rates.bound(35) == (8, 40)
    assert rates.bound(40) is None


# ------------------------------------------------------------------------------------------- the world


@pytest.fixture(scope="module")
def plan(mini_world: Path) -> WorldPlan:
    return WorldPlan(mini_world, default_workload(), 42)


def test_weights_follow_a_power_law_over_the_active_facilities(plan: WorldPlan) -> None:
    w = plan.weights
    assert sum(w.values()) == pytest.approx(1.0)
    active = sorted((v for v in w.values() if v > 0), reverse=True)
    assert len(active) >= 5
    slope = np.polyfit(np.log(np.arange(1, len(active) + 1)), np.log(active), 1)[0]
    assert slope == pytest.approx(-plan.workload.facilities.zipf_exponent, abs=1e-9)  # log-rank vs log-count
    for code, v in w.items():
        if not plan.care_patients[code]:
            assert v == 0, code  # a facility with no patient it may view opens no session
    kinds: dict[str, list[float]] = {}
    for code, f in plan.facilities.items():
        kinds.setdefault(f.kind, []).append(w[code])
    assert np.mean(kinds["clinic"]) > np.mean(kinds["hospital"])  # clinics view most


def test_about_half_of_hospitals_are_inactive() -> None:
    """The inactive-hospital draw is a hash of (seed, code): over many codes the share is the stated one."""
    codes = [f"17{i:08d}" for i in range(4000)]
    share = np.mean([(_hash(42, "inactive", c) % 10_000) < 5000 for c in codes])
    assert share == pytest.approx(0.5, abs=0.03)


def test_sessions_are_deterministic_and_honour_consent(plan: WorldPlan, mini_world: Path) -> None:
    again = WorldPlan(mini_world, default_workload(), 42)
    other = WorldPlan(mini_world, default_workload(), 43)
    first = [plan.session(i) for i in range(300)]
    assert first == [again.session(i) for i in range(300)]
    assert first != [other.session(i) for i in range(300)]
    day = plan.reference_date
    for s in first:
        consent = plan.consents[s.patient.index]
        if s.intent == "care":
            assert s.local_id == s.patient.local_ids[s.facility]
            assert consent.covers(s.facility, day)
            assert s.patient.index in plan.sharing
        elif s.intent == "outside":
            assert s.facility in s.patient.local_ids  # linked, so the hub knows the viewer…
            assert not consent.covers(s.facility, day)  # …but the consent does not cover it
        else:
            assert consent.form.emergency_allowed
            assert plan.facilities[s.facility].kind == "hospital"
        assert all(u.viewer_kind != "clerk" for u in plan.facilities[s.facility].users)
        assert len(s.think_s) == len(s.categories) + 2
    counts = {k: sum(1 for s in first if s.intent == k) for k in ("care", "outside", "emergency")}
    assert counts["care"] > 250


def test_a_session_is_the_same_whatever_was_asked_before(plan: WorldPlan, mini_world: Path) -> None:
    """Sessions are drawn a block at a time, each from its own row of a counter-based generator: a fresh
    plan asked in another order (strided as a Locust worker asks, backwards, across a block's edge) gives
    the same sessions, and the mix's shares hold over the rows."""
    from simulator.workload.plan import SESSION_BLOCK

    wanted = [*range(SESSION_BLOCK - 5, SESSION_BLOCK + 5), 7, 3 * SESSION_BLOCK + 1, 0]
    expected = [plan.session(i) for i in wanted]
    fresh = WorldPlan(mini_world, default_workload(), 42)
    assert [fresh.session(i) for i in reversed(wanted)] == expected[::-1]
    assert [s.index for s in expected] == wanted
    strided = WorldPlan(mini_world, default_workload(), 42)
    assert [strided.session(i) for i in range(1, 3000, 2)] == [plan.session(i) for i in range(1, 3000, 2)]
    ks = [len(plan.session(i).categories) for i in range(4000)]
    mix = default_workload().session.fetch_k
    mean_k = sum(k * w for k, w in mix.items()) / sum(mix.values())
    assert np.mean(ks) == pytest.approx(mean_k, rel=0.05)


def test_shares_of_outside_and_emergency_sessions(mini_world: Path) -> None:
    w = default_workload()
    mix = w.session.model_copy(update={"outside_consent_share": 0.5, "emergency_share": 0.3})
    plan = WorldPlan(mini_world, w.model_copy(update={"session": mix}), 1)
    n = 2000
    intents = [plan.session(i).intent for i in range(n)]
    assert plan.outside_pairs
    assert intents.count("outside") / n == pytest.approx(0.5, abs=0.05)
    assert intents.count("emergency") / n == pytest.approx(0.3, abs=0.05)


def test_feeds(plan: WorldPlan) -> None:
    regs = [plan.feed(i, "register") for i in range(200)]
    assert len({m.local_id for m in regs}) == 200
    assert all(m.local_id.startswith("RG") and len(m.local_id) == 10 for m in regs)
    upd = plan.feed(3, "update")
    assert upd.local_id == upd.patient.local_ids[upd.facility]
    burst = plan.join_burst()
    code = plan.join_facility
    assert code is not None
    assert {m.local_id for m in burst} == {p.local_ids[code] for p in plan.patients if code in p.local_ids}
    reg, updates = plan.feed_rate_per_s()
    assert reg == pytest.approx(len(plan.patients) * 0.05 / 365 / 86_400)
    assert math.isfinite(updates)


def test_a_world_where_nobody_may_view_is_refused(mini_world: Path) -> None:
    w = default_workload()
    nobody = w.model_copy(
        update={"facilities": w.facilities.model_copy(update={"kind_factors": {"clinic": 0.0}})}
    )
    with pytest.raises(WorkloadError, match="nothing to load"):
        _ = WorldPlan(mini_world, nobody, 1).weights


def test_the_default_workload_round_trips_through_yaml(tmp_path: Path) -> None:
    import yaml

    data = default_workload().model_dump(mode="json")
    path = write(tmp_path, yaml.safe_dump(data, allow_unicode=True))
    assert load_workload(path) == Workload.model_validate(data)
