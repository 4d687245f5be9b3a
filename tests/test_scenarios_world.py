"""``given`` against the mini world: predicates hold, allocation is deterministic and disjoint; fresh IDs.

Every expectation is checked against the world's own tables (world.sqlite read directly), not against the
allocator's view of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.scenarios import Allocator, SelectionError, WorldIndex, parse_scenario
from synthetic import sharing_patients


@pytest.fixture
def sql(mini_world: Path) -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(f"file:{mini_world / 'world.sqlite'}?mode=ro", uri=True)
    yield con
    con.close()


def scenario(given: str, sid: str = "sel") -> object:
    text = f"""\
schema_version: 1
id: {sid}
title: selection
given:
{given}
steps:
  - wait: {{ms: 0}}
"""
    return parse_scenario(text, f"{sid}.yaml").scenario


def test_the_issue_example_a_sharing_stroke_patient_and_a_clinic_outside_the_consent(
    world: WorldIndex, sql: sqlite3.Connection, mini_world: Path
) -> None:
    sc = scenario(
        """\
  patients:
    p: {pathway: stroke, sharing: true, consent: allow_list, consent_facilities: {min: 2}}
  facilities:
    D: {disclosing: true, local_id_of: p, in_consent_of: p}
    V: {kind: clinic, outside_consent_of: p}
"""
    )
    b = Allocator(world).allocate(sc)  # type: ignore[arg-type]
    p = b.patients["p"].patient
    index = p.index
    assert p.pathway.startswith("stroke/")
    assert index in sharing_patients(mini_world)
    form_id, pattern = sql.execute(
        "SELECT form_id, pattern FROM consent_forms WHERE patient_index = ?", (index,)
    ).fetchone()
    assert pattern == "allow_list"
    allowed = {
        r[0]
        for r in sql.execute("SELECT facility_code FROM consent_facilities WHERE form_id = ?", (form_id,))
    }
    assert len(allowed) >= 2
    d, v = b.facilities["D"], b.facilities["V"]
    assert d.disclosing
    assert d.code in allowed
    assert sql.execute(
        "SELECT 1 FROM local_ids WHERE patient_index = ? AND facility_code = ?", (index, d.code)
    ).fetchone()
    assert v.kind == "clinic"
    assert v.code not in allowed  # an allow-list: outside means not ticked (no additions for this pattern)


def test_allocation_is_deterministic_and_never_shares_a_patient(world: WorldIndex) -> None:
    given = "  patients:\n    p: {pathway: chronic}\n    q: {pathway: chronic}\n"
    scenarios = [scenario(given, f"s{n}") for n in range(12)]
    first = Allocator(world)
    picks = [first.allocate(s) for s in scenarios]  # type: ignore[arg-type]
    indexes = [b.patients[v].patient.index for b in picks for v in ("p", "q")]
    assert len(indexes) == len(set(indexes)) == 24
    again = Allocator(world)
    assert [again.allocate(s).patients["p"].patient.index for s in scenarios] == indexes[::2]  # type: ignore[arg-type]
    # Alone, a scenario gets what it gets in the full run unless someone before it took that patient.
    alone = Allocator(world).allocate(scenarios[0])  # type: ignore[arg-type]
    assert alone.patients["p"].patient.index == indexes[0]


def test_patient_and_facility_predicates(world: WorldIndex, sql: sqlite3.Connection) -> None:
    sc = scenario(
        """\
  patients:
    p: {sex: F, alive: true, facilities: {min: 2}, disclosing_facilities: 1, consent: [all, all_except]}
  facilities:
    H: {kind: hospital, disclosing: false}
    X: {local_id_of: p, disclosing: true}
    N: {no_local_id_of: p, kind: pharmacy}
"""
    )
    b = Allocator(world).allocate(sc)  # type: ignore[arg-type]
    p = b.patients["p"].patient
    row = sql.execute("SELECT sex, death_time FROM patients WHERE patient_index = ?", (p.index,)).fetchone()
    assert row == ("F", None)
    codes = {
        r[0] for r in sql.execute("SELECT facility_code FROM local_ids WHERE patient_index = ?", (p.index,))
    }
    assert len(codes) >= 2
    assert sum(1 for c in codes if world.by_code[c].disclosing) == 1
    assert b.facilities["H"].kind == "hospital"
    assert not b.facilities["H"].disclosing
    assert b.facilities["X"].code in codes
    assert b.facilities["N"].code not in codes
    assert len({f.code for f in b.facilities.values()}) == 3  # distinct within a scenario


def test_impossible_selections_say_which_variable(world: WorldIndex) -> None:
    with pytest.raises(SelectionError, match=r"given\.patients\.p"):
        Allocator(world).allocate(scenario("  patients:\n    p: {pathway: no-such-pathway}\n"))  # type: ignore[arg-type]
    with pytest.raises(SelectionError, match="facilities"):
        Allocator(world).allocate(  # type: ignore[arg-type]
            scenario(
                "  facilities:\n    A: {kind: hospital, role: university}\n"
                "    B: {kind: hospital, role: university}\n"
            )
        )


def test_fresh_identities_are_unknown_and_unique(world: WorldIndex) -> None:
    given = "  patients:\n    p: {fresh: true}\n  facilities:\n    A: {disclosing: true}\n"
    alloc = Allocator(world, salt="s1")
    one, two = alloc.allocate(scenario(given, "f1")), alloc.allocate(scenario(given, "f2"))  # type: ignore[arg-type]
    a = one.facilities["A"].code
    p, q = one.patients["p"], two.patients["p"]
    world_ids = {lid for wp in world.patients for lid in wp.local_ids.values()}
    world_births = {wp.birth_date for wp in world.patients}
    for b in (p, q):
        assert b.local_id(a).startswith("ZZ")
        assert len(b.local_id(a)) == 10
        assert b.local_id(a) not in world_ids
        assert b.birth_date_iso not in world_births
        assert b.birth_date_iso < "1500"
    assert p.local_id(a) != q.local_id(a)
    assert p.birth_date != q.birth_date
    other_salt = Allocator(world, salt="s2").allocate(scenario(given, "f1"))  # type: ignore[arg-type]
    assert other_salt.patients["p"].local_id(a) != p.local_id(
        a
    )  # runs against a persistent hub never collide
    worldly = Allocator(world).allocate(scenario("  patients:\n    p: {facilities: {min: 1}}\n"))  # type: ignore[arg-type]
    wp = worldly.patients["p"]
    code, local = next(iter(wp.patient.local_ids.items()))
    assert wp.local_id(code) == local
    assert wp.birth_date == wp.patient.birth_date.replace("-", "")
