"""Suites re-runnable against one long-lived hub (issue 18): the reserved pool, the target's state file, the
refusals — first without a hub (many salts and subsets, hypothesis), then against one network started once
for the module and run again and again as a vendor would (``rhin run --target``).

The live runs take the scenarios that change world patients and the ones that read world patients as the
world has them (consent suite without the 61 s expiry, byte-identical, the stroke journey, the timeline's
latency), with salts that, under the old allocation (any patient for any scenario, salt-ordered), gave the
second and third runs read-only scenarios on patients the first had changed — the reproduction: it failed
then (CONSENT-world-form, JOURNEY-*, LAT-timeline-correct). The whole default run three times and more is
``benchmarks/bench_rerun.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from harness.cli import app
from harness.scenarios import Allocator, Bindings, LoadedScenario, WorldIndex, discover, parse_scenario
from harness.scenarios import runner as runner_module
from harness.scenarios.errors import ScenarioError, TargetError
from harness.scenarios.history import TargetHistory, default_state_file
from harness.scenarios.loader import select
from harness.scenarios.model import STATE_KINDS
from harness.scenarios.runner import DEFAULT_WORLD, RunOptions, execute, selected
from harness.scenarios.world import ReservedError, fresh_epoch
from harness.targets import Endpoints, ReferenceOptions, launch_reference
from simulator.pki import ClientTls

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "scenarios"
FOCUS = "(consent and not slow) or byte-identical or stroke-journey or lat-timeline"
CONSENT = "consent and not slow"
LAT = {"timeline_count": "5", "timeline_p50_ms": "5000", "timeline_p95_ms": "5000", "timeline_p99_ms": "5000"}


@pytest.fixture(scope="module")
def catalogue() -> list[LoadedScenario]:
    return discover(ROOT)


def _scenario(steps: str, patients: str = "    p: {}\n    q: {fresh: true}\n") -> object:
    text = f"""\
schema_version: 1
id: t
title: t
given:
  patients:
{patients}  facilities:
    A: {{disclosing: true}}
steps:
{steps}"""
    return parse_scenario(text, "t.yaml").scenario


# ------------------------------------------------------------------------------------------- derived kinds


def test_changing_a_world_patient_is_derived_from_the_step_kinds() -> None:
    def changes(steps: str, patients: str = "    p: {}\n    q: {fresh: true}\n") -> bool:
        return bool(_scenario(steps, patients).changes_world)  # type: ignore[attr-defined]

    assert changes("  - consent_register: {by: A, patient: p, pattern: all}\n")
    assert not changes("  - consent_register: {by: A, patient: q, pattern: all}\n")
    assert not changes("  - timeline: {by: A, patient: p}\n  - link: {by: A, patient: q}\n")
    # a fresh patient's feed that carries a world patient's ID changes the world patient
    assert changes('  - feed: {from: A, patient: q, local_id: "${p.local_id@A}"}\n')
    assert changes('  - mllp_raw: {text: "MSH|^~\\\\&|${p.local_id@A}"}\n')
    assert not changes('  - mllp_raw: {text: "MSH|^~\\\\&|${q.local_id@A}"}\n')
    # a captured value might be a world patient's regional ID
    capture = '  - patient_get: {by: A, patient: q}\n    capture: {r: "json:regional_id"}\n'
    assert changes(capture + '  - link: {by: A, patient: q, regional_id: "${r}"}\n')
    assert not changes("  - emergency: {by: A, patient: q}\n", "    q: {fresh: true}\n")
    assert {"feed", "link", "unlink", "consent_register", "consent_withdraw", "emergency"} <= STATE_KINDS


def test_the_shipped_changing_scenarios_are_found(catalogue: list[LoadedScenario]) -> None:
    changing = {s.id for s in catalogue if s.scenario.changes_world}
    assert {"consent-withdrawal-before-timeline", "consent-patterns-world", "dist-gateway-down"} <= changing
    read_only = {
        "consent-world-allow-list-stroke",
        "dist-stroke-journey",
        "lat-timeline",
        "dist-byte-identical",
    }
    assert not changing & read_only
    for s in catalogue:  # every scenario with a state-changing step on a world patient counts
        world_vars = {v for v, p in s.scenario.given.patients.items() if not p.fresh}
        direct = any(
            st.kind in STATE_KINDS and getattr(st.action, "patient", None) in world_vars
            for st in s.scenario.steps
        )
        assert not direct or s.id in changing, s.id


# ------------------------------------------------------------------------------------------- many salts


def _world_patients(b: Bindings) -> set[int]:
    return {x.patient.index for x in b.patients.values() if not x.fresh}


@pytest.fixture(scope="module")
def default() -> list[object]:
    return [s.scenario for s in selected(RunOptions(scenarios_root=ROOT))]


@pytest.fixture(scope="module")
def reference_plan(
    world: WorldIndex, catalogue: list[LoadedScenario]
) -> tuple[frozenset[int], dict[str, set[int]]]:
    default = [s.scenario for s in selected(RunOptions(scenarios_root=ROOT))]
    allocator = Allocator(world, "")
    out = allocator.allocate_all(default, [s.scenario for s in catalogue])
    pins = {sid: _world_patients(b) for sid, b in out.items() if isinstance(b, Bindings)}
    return allocator.pool, pins


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    salt=st.text(max_size=12),
    chosen=st.sets(st.integers(min_value=0, max_value=200), max_size=30),
    changed=st.sets(st.integers(min_value=0, max_value=299), max_size=8),
)
def test_read_only_scenarios_never_get_a_reserved_or_changed_patient_whatever_the_salt(
    world: WorldIndex,
    catalogue: list[LoadedScenario],
    default: list[Any],
    reference_plan: tuple[frozenset[int], dict[str, set[int]]],
    salt: str,
    chosen: set[int],
    changed: set[int],
) -> None:
    pool, reference = reference_plan
    subset = [default[i % len(default)] for i in sorted(chosen)] or default  # empty: the whole default run
    subset = list({s.id: s for s in subset}.values())
    changed_now = {i % world.registered for i in changed}
    allocator = Allocator(world, salt, changed=changed_now)
    out = allocator.allocate_all(subset, [s.scenario for s in catalogue])
    assert allocator.pool == pool  # the pool depends on neither salt nor selection
    for sc in subset:
        found = out[sc.id]
        if not isinstance(found, Bindings):
            # only refusals caused by the changed patients are allowed, and they say so
            assert isinstance(found, ReservedError), f"{sc.id} with salt {salt!r}: {found}"
            assert changed_now
            continue
        mine = _world_patients(found)
        if sc.changes_world:
            kept = {b.patient.index for v, b in found.patients.items() if v not in sc.consumes_world}
            assert kept <= reference[sc.id]  # pinned: the same patients on every run
            for var in sc.consumes_world:  # unless an earlier run used the pin up (a withdrawal)
                index = found.patients[var].patient.index
                if index not in reference[sc.id]:
                    assert reference[sc.id] & changed_now, sc.id
                    assert index not in pool, sc.id
                    assert index not in changed_now, sc.id
                else:
                    assert index not in changed_now, sc.id
        else:
            assert not mine & pool, sc.id
            assert not mine & changed_now, sc.id
    used = [
        p
        for b in out.values()
        if isinstance(b, Bindings)
        for p in (x.patient.index for x in b.patients.values())
    ]
    assert len(used) == len(set(used))  # still disjoint within the run


def test_a_withdrawn_world_patient_is_used_once_per_long_lived_hub(
    world: WorldIndex,
    catalogue: list[LoadedScenario],
    default: list[Any],
    reference_plan: tuple[frozenset[int], dict[str, set[int]]],
) -> None:
    """A 同意撤回 on a world patient cannot be set up again that day (a later form must be dated after
    it): once a run used the pin, the next takes another patient no run changed, outside the pool."""
    pool, reference = reference_plan
    consuming = [s for s in default if s.consumes_world]
    assert {s.id for s in consuming} >= {
        "consent-withdrawal-before-timeline",
        "consent-withdrawal-between-timeline-and-fetch",
    }
    changed: set[int] = set()
    seen: dict[str, list[int]] = {s.id: [] for s in consuming}
    for run in range(4):
        allocator = Allocator(world, f"run-{run}", changed=changed)
        out = allocator.allocate_all(default, [s.scenario for s in catalogue])
        for sc in default:
            found = out[sc.id]
            assert isinstance(found, Bindings), f"run {run}: {sc.id}: {found}"
            if sc.changes_world:
                changed |= _world_patients(found)  # as the state file records them
        for sc in consuming:
            found = out[sc.id]
            assert isinstance(found, Bindings)
            (var,) = sc.consumes_world
            seen[sc.id].append(found.patients[var].patient.index)
    for sid, patients in seen.items():
        assert patients[0] in reference[sid]  # the first run on the hub takes the pin
        assert len(set(patients)) == len(patients), sid  # never the same withdrawn patient twice
        assert not set(patients[1:]) & pool, sid


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(salts=st.tuples(st.text("0123456789abcdef", min_size=8, max_size=8), st.text(min_size=1, max_size=8)))
@example(salts=("1f142077", "a3d87b1f"))  # took the stroke journey's last patient before consumption chose
@example(salts=("16300663", "1f02f03f"))  # by need (both found by simulating this test's sequence)
def test_withdrawals_leave_read_only_scenarios_their_scarce_patients_run_after_run(
    world: WorldIndex, catalogue: list[LoadedScenario], salts: tuple[str, str]
) -> None:
    """The long-lived-hub sequence of :func:`test_runs_again_and_again_on_one_long_lived_hub`, allocated
    only: three fixed salts, then two new ones. Each run's withdrawals take patients no run changed; they
    must not take the last one a read-only scenario can have while others are left."""
    every = [s.scenario for s in catalogue]

    def chosen(keyword: str) -> list[Any]:
        return [s.scenario for s in select(catalogue, keyword=keyword) if s.scenario.default]

    fixed = [("rerun-4", FOCUS), ("rerun-5", FOCUS), ("rerun-7", FOCUS)]
    runs = [*fixed, (salts[0], CONSENT), (salts[1], FOCUS)]
    changed: set[int] = set()
    for n, (salt, keyword) in enumerate(runs):
        selection = chosen(keyword)
        out = Allocator(world, salt, changed=changed).allocate_all(selection, every)
        errors = {sid: str(b) for sid, b in out.items() if not isinstance(b, Bindings)}
        assert not errors, f"run {n + 1} (salt {salt}): {errors}"
        for sc in selection:
            found = out[sc.id]
            if sc.changes_world and isinstance(found, Bindings):
                changed |= _world_patients(found)  # as the state file records them


def test_every_salt_allocates_the_whole_default_run(
    world: WorldIndex, catalogue: list[LoadedScenario], default: list[Any]
) -> None:
    for n in range(40):  # the old scarcity-by-predicate order starved the stroke journey for some salts
        out = Allocator(world, f"salt-{n}").allocate_all(default, [s.scenario for s in catalogue])
        errors = {sid: str(b) for sid, b in out.items() if not isinstance(b, Bindings)}
        assert not errors, f"salt-{n}: {errors}"


def test_a_new_suite_that_changes_world_patients_needs_nothing_but_its_files(
    world: WorldIndex, tmp_path: Path
) -> None:
    """A later suite (here a made-up ``security/`` one) whose scenario withdraws the consent of the very kind
    of patient a read-only consent scenario needs: it is found changing from its steps, pinned, and the
    read-only one never gets its patient, whatever the salt."""
    root = tmp_path / "scenarios"
    (root / "consent").mkdir(parents=True)
    (root / "security").mkdir()
    shipped = ROOT / "consent" / "world-allow-list-stroke.yaml"
    (root / "consent" / shipped.name).write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    (root / "security" / "later-withdraws.yaml").write_text(
        """\
schema_version: 1
id: later-withdraws
title: a later suite's scenario that withdraws a world patient's consent
world: {bootstrapped: true}
given:
  patients:
    p: {pathway: stroke, sharing: true, consent: allow_list, consent_facilities: {min: 3}, withdrawn: false}
  facilities:
    H: {disclosing: true, local_id_of: p, in_consent_of: p}
steps:
  - consent_withdraw: {by: H, patient: p, base_form_id: "${p.consent_form}"}
""",
        encoding="utf-8",
    )
    found = {s.id: s.scenario for s in discover(root)}
    assert found["later-withdraws"].changes_world
    assert not found["consent-world-allow-list-stroke"].changes_world
    pinned = None
    for n in range(25):
        out = Allocator(world, f"later-{n}").allocate_all(list(found.values()), list(found.values()))
        later, reader = out["later-withdraws"], out["consent-world-allow-list-stroke"]
        assert isinstance(later, Bindings)
        assert isinstance(reader, Bindings)
        assert pinned in (None, later.patients["p"].patient.index)
        pinned = later.patients["p"].patient.index
        assert reader.patients["p"].patient.index != pinned
        alone = Allocator(world, f"later-{n}").allocate_all(
            [found["consent-world-allow-list-stroke"]], list(found.values())
        )
        assert isinstance(alone["consent-world-allow-list-stroke"], Bindings)
        assert (
            alone["consent-world-allow-list-stroke"].patients["p"].patient.index != pinned
        )  # selection alone


# ------------------------------------------------------------------------------------------- state file


def test_the_state_file_records_runs_before_they_start(world: WorldIndex, tmp_path: Path) -> None:
    path = default_state_file(tmp_path / "vendor.yaml")
    assert path == tmp_path / "vendor.rhin-state.json"
    ids = {p.patient_id: f"R{p.index}" for p in world.patients}
    history = TargetHistory(path, "vendor", world, ids)
    assert "no earlier run" in history.describe()
    history.begin("s1", {"consent-viewer-kinds": ["P0000042"], "quiet": []})
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["runs"][0]["finished"] is None  # recorded before anything ran
    assert on_disk["runs"][0]["changed"] == {"consent-viewer-kinds": ["P0000042"]}
    # while that run's process lives, another run refuses
    with pytest.raises(TargetError, match="another run on this target is in progress"):
        TargetHistory(path, "vendor", world, ids)
    on_disk["runs"][0]["pid"] = 2**22 + 12345  # beyond pid_max: a run that died
    path.write_text(json.dumps(on_disk), encoding="utf-8")
    again = TargetHistory(path, "vendor", world, ids)
    assert again.changed == {"P0000042": ["consent-viewer-kinds"]}  # a dead run's patients still count
    text = again.describe()
    assert "1 earlier run" in text
    assert "1 did not finish" in text
    assert "P0000042" in text
    # other regional IDs: another hub, or bootstrapped again — the record is set aside
    other = TargetHistory(path, "vendor", world, {**ids, "P0000001": "R-other"})
    assert other.changed == {}
    assert "set aside" in other.notes[0]
    assert path.with_name("vendor.rhin-state.previous.json").is_file()
    # a new run's salt: never an earlier run's, nor one giving an earlier run's fresh birth dates
    assert again.salt("s1", fixed=False) != "s1"
    for n in range(200):
        drawn = again.salt(f"random-{n}", fixed=False)
        assert drawn != "s1"
        assert fresh_epoch(drawn) != fresh_epoch("s1")
    assert again.salt("s2", fixed=True) == "s2" or fresh_epoch("s2") == fresh_epoch("s1")
    with pytest.raises(TargetError, match="'s1' was the salt of an earlier run"):
        again.salt("s1", fixed=True)
    clash = next(f"c{n}" for n in range(100_000) if fresh_epoch(f"c{n}") == fresh_epoch("s1"))
    with pytest.raises(TargetError, match="gives the fresh birth dates of an earlier run"):
        again.salt(clash, fixed=True)
    path.write_text(json.dumps({**on_disk, "world": {"profile": "ishikawa", "seed": 42}}), encoding="utf-8")
    with pytest.raises(TargetError, match="records runs with the world"):
        TargetHistory(path, "vendor", world, ids)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(TargetError, match="cannot read the target's state file"):
        TargetHistory(path, "vendor", world, ids)


def _target_file(
    folder: Path,
    mllp: tuple[str, int],
    http: str,
    token: Path,
    ids: Path,
    salt: str | None,
    tls: ClientTls | None = None,
) -> Path:
    """A vendor's target file; ``tls`` None: the hub speaks plain MLLP (``plain_mllp: true``)."""
    path = folder / "vendor.yaml"
    transport = f', tls: {{ca: "{tls.ca_file}", certs: "{tls.certs}"}}' if tls else ""
    path.write_text(
        f"""\
schema_version: 1
name: vendor-hub
mllp: {{host: {mllp[0]}, port: {mllp[1]}{transport}}}
http: {{base_url: "{http}"}}
admin_token_file: {token}
regional_ids: {ids}
local_files: true
"""
        + ("" if tls else "plain_mllp: true\n")
        + (f"salt: {salt}\n" if salt is not None else ""),
        encoding="utf-8",
    )
    return path


def test_rhin_run_refuses_a_selection_earlier_runs_made_impossible(
    world: WorldIndex, mini_world: Path, tmp_path: Path
) -> None:
    """Every patient the world-withdrawn scenario could take recorded as changed: refused before any
    connection (the addresses lead nowhere), with the reason; the start says what is known."""
    (tmp_path / "ids.json").write_text(json.dumps({p.patient_id: f"R{p.index}" for p in world.patients}))
    (tmp_path / "token").write_text("x")
    target = _target_file(
        tmp_path, ("127.0.0.1", 9), "http://127.0.0.1:9", tmp_path / "token", tmp_path / "ids.json", None
    )
    sc = next(s.scenario for s in discover(ROOT) if s.id == "consent-world-withdrawn")
    every = [p.patient_id for p in Allocator(world).feasible(sc, "p")]  # type: ignore[arg-type]
    history = TargetHistory(
        default_state_file(target), "vendor-hub", world, json.loads((tmp_path / "ids.json").read_text())
    )
    history.begin("old", {"someone-elses": every})
    data = json.loads(default_state_file(target).read_text())
    data["runs"][0]["pid"] = 2**22 + 12345
    default_state_file(target).write_text(json.dumps(data))
    args = ["run", "--target", str(target), "--world", str(mini_world), "--scenarios", str(ROOT)]
    result = CliRunner().invoke(app, [*args, str(ROOT / "consent" / "world-withdrawn.yaml")])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "1 earlier run on this target" in out
    assert f"{len(every)} world patients are no longer as the world has them" in out
    assert "the selection cannot be met on target vendor-hub" in out
    assert "consent-world-withdrawn: given.patients.p needs a world patient as the world has it" in out
    assert f"of the {len(every)} that match, 0 are reserved" in out
    assert f"{len(every)} were changed by earlier runs" in out


# ------------------------------------------------------------------------------------------- --world


def test_only_the_default_world_is_made_on_demand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mini_world: Path
) -> None:
    made: list[Path] = []
    monkeypatch.setattr(runner_module, "ensure_world", made.append)
    monkeypatch.chdir(tmp_path)
    runner_module._need_world(RunOptions(world_dir=DEFAULT_WORLD))
    assert made == [DEFAULT_WORLD]
    with pytest.raises(ScenarioError, match="only the default worlds/mini is made on demand"):
        runner_module._need_world(RunOptions(world_dir=Path("worlds/ishikwa")))
    with pytest.raises(ScenarioError, match="never for an external target"):
        runner_module._need_world(RunOptions(world_dir=DEFAULT_WORLD, target_file=tmp_path / "t.yaml"))
    runner_module._need_world(RunOptions(world_dir=mini_world))  # an existing world: nothing to make
    assert made == [DEFAULT_WORLD]
    result = CliRunner().invoke(app, ["run", "--world", "worlds/ishikwa", "--scenarios", str(ROOT)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "no world at worlds/ishikwa" in out
    assert "rhin generate --profile mini --seed 42 --out worlds/ishikwa" in out
    assert not (tmp_path / "worlds").exists()


# ------------------------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def network(mini_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Endpoints, Path]]:
    """One network started once (as `rhin up` would): every run of the module goes to it."""
    data = tmp_path_factory.mktemp("long-lived")
    with launch_reference(mini_world, data, ReferenceOptions(scrypt_cost=4)) as endpoints:
        yield endpoints, data


def test_runs_again_and_again_on_one_long_lived_hub(
    network: tuple[Endpoints, Path],
    mini_world: Path,
    world: WorldIndex,
    catalogue: list[LoadedScenario],
    tmp_path: Path,
) -> None:
    endpoints, data = network
    changing = {s.id for s in catalogue if s.scenario.changes_world}
    assert endpoints.mllp is not None
    assert endpoints.http is not None
    assert endpoints.network is not None
    token = Path(str(endpoints.network.hub["admin_token_file"]))
    summaries, changed_before, notes_seen = [], set(), []
    # None: a new salt, as by default; the fourth run is a subset (the consent suite alone), then the focus
    runs = [
        ("rerun-4", 4, FOCUS),
        ("rerun-5", 4, FOCUS),
        ("rerun-7", 8, FOCUS),
        (None, 4, CONSENT),
        (None, 8, FOCUS),
    ]
    for n, (salt, jobs, keyword) in enumerate(runs):
        target = _target_file(
            tmp_path,
            endpoints.mllp,
            endpoints.http,
            token,
            data / "hub" / "bootstrap.json",
            salt,
            endpoints.mllp_tls,
        )
        notes: list[str] = []
        options = RunOptions(
            scenarios_root=ROOT,
            keyword=keyword,
            target_file=target,
            world_dir=mini_world,
            jobs=jobs,
            report_dir=tmp_path / f"report-{n}",
            params=LAT if keyword == FOCUS else {},
        )
        result, _ = execute(options, on_note=notes.append)
        notes_seen.append(notes)
        bad = [
            f"{a.status} {a.scenario} {a.assertion_id}: {a.message}"
            for a in result.assertions()
            if a.status != "passed"
        ]
        assert not bad, f"run {n + 1} (salt {salt}, jobs {jobs}):\n" + "\n".join(bad)
        if keyword == FOCUS:
            summaries.append(result.summary())
        for sc in result.scenarios:  # a read-only scenario never meets a patient an earlier run changed
            mine = {p["patient_id"] for p in sc.given.get("patients", {}).values() if not p["fresh"]}
            assert not mine & changed_before or sc.id in changing
        state = json.loads(default_state_file(target).read_text(encoding="utf-8"))
        changed_before = {pid for r in state["runs"] for pids in r["changed"].values() for pid in pids}
    assert all(s == summaries[0] for s in summaries), summaries
    assert summaries[0]["failed"] == summaries[0]["error"] == summaries[0]["skipped"] == 0
    assert summaries[0]["passed"] >= 150
    assert "no earlier run recorded" in notes_seen[0][0]
    assert "4 earlier runs on this target" in notes_seen[4][-1]
    assert "world patients are no longer as the world has them" in notes_seen[4][-1]
    state = json.loads(default_state_file(tmp_path / "vendor.yaml").read_text(encoding="utf-8"))
    assert len(state["runs"]) == 5
    assert all(r["finished"] for r in state["runs"])
    assert [r["salt"] for r in state["runs"]][:3] == ["rerun-4", "rerun-5", "rerun-7"]
    assert os.getpid() == state["runs"][0]["pid"]
