"""Same profile + seed → byte-identical world; more patients never change the first ones."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from tests.conftest import MINI_SEED, generate


def digest(folder: Path) -> dict[str, str]:
    """Every file of a world directory (world files, storage, documents, images) by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_whatever_the_job_count(mini_world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, "--profile", "mini", "--seed", str(MINI_SEED), "--jobs", "2")
    expected = digest(mini_world)
    assert digest(again) == expected
    assert {"world.json", "world.sqlite"} <= set(expected)
    for part in ("storage/", "extended/", "images/"):
        assert any(name.startswith(part) for name in expected), part


def test_another_seed_gives_another_world(mini_world: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(other, "--profile", "mini", "--seed", str(MINI_SEED + 1), "--jobs", "1", "--patients", "30")
    assert digest(other)["world.json"] != digest(mini_world)["world.json"]


TABLES = {
    "patients": "patient_index",
    "local_ids": "patient_index, facility_code",
    "episodes": "episode_id",
    "events": "event_id",
    "consent_forms": "patient_index",
    "consent_additions": "form_id",
    "consent_withdrawals": "patient_index",
}


def rows_below(world: Path, table: str, order: str, limit: int) -> list[tuple[object, ...]]:
    con = sqlite3.connect(world / "world.sqlite")
    try:
        return list(con.execute(f"SELECT * FROM {table} WHERE patient_index < ? ORDER BY {order}", (limit,)))
    finally:
        con.close()


def test_more_patients_keep_facilities_and_the_first_patients(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    generate(small, "--profile", "mini", "--seed", "3", "--patients", "60", "--jobs", "1")
    generate(large, "--profile", "mini", "--seed", "3", "--patients", "140", "--jobs", "1")
    small_json = (small / "world.json").read_text(encoding="utf-8")
    large_json = (large / "world.json").read_text(encoding="utf-8")
    assert small_json.replace('"registered_patients": 60', "") == large_json.replace(
        '"registered_patients": 140', ""
    )
    for table, order in TABLES.items():
        assert rows_below(small, table, order, 60) == rows_below(large, table, order, 60), table
    assert rows_below(large, "patients", "patient_index", 140)[60:], "the larger world has more patients"


def test_in_memory_build_equals_the_written_world(mini_world: Path) -> None:
    """`synthetic.build(profile, seed)` (the DESIGN contract) yields what `rhin generate` wrote."""
    from synthetic import build, load_profile
    from synthetic.store import facility_json, patient_rows_of

    world = build(load_profile("mini").with_patients(25), MINI_SEED)
    written = json.loads((mini_world / "world.json").read_text(encoding="utf-8"))
    assert [facility_json(f) for f in world.facilities] == written["facilities"]
    assert len(world.patients) == 25
    for table, order in TABLES.items():
        expected = rows_below(mini_world, table, order, 25)
        got = sorted(
            (row for record in world.patients for row in patient_rows_of(record)[table]),
            key=lambda row: tuple(row[i] for i in _order_columns(table)),
        )
        assert [tuple(r) for r in got] == expected, table


def _order_columns(table: str) -> tuple[int, ...]:
    """Column positions of TABLES[table] in the insert tuples (same order as the CREATE TABLE)."""
    return {
        "patients": (0,),
        "local_ids": (0, 1),
        "episodes": (0,),
        "events": (0,),
        "consent_forms": (1,),
        "consent_additions": (0,),
        "consent_withdrawals": (1,),
    }[table]


def test_sharing_flags_do_not_depend_on_the_patient_count() -> None:
    """The quota's share must not follow the rounded count: flags of the first patients never move."""
    from synthetic import load_profile
    from synthetic.world import SharingQuota

    base = load_profile("mini")
    reference = SharingQuota(MINI_SEED, base.sharing_ratio())
    expected = [reference(i) for i in range(200)]
    for n in range(5, 400):
        profile = base.with_patients(n)
        quota = SharingQuota(MINI_SEED, profile.sharing_ratio())
        assert [quota(i) for i in range(200)] == expected, n
