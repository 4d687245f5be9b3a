"""Same profile + seed → byte-identical world; more patients never change the first ones."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tests.conftest import MINI_SEED, generate


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_whatever_the_job_count(mini_world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, "--profile", "mini", "--seed", str(MINI_SEED), "--jobs", "2")
    assert digest(again) == digest(mini_world)
    assert set(digest(again)) == {"world.json", "world.sqlite"}


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
