"""The world as scenarios see it: world.json and world.sqlite read once per run into facilities (with their
hub users), patients (with their local IDs) and consents; the events only on demand (:meth:`WorldIndex.held`).
What ``given`` is resolved against (:mod:`.world`) and what a step's ``${p.…}`` variables read."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthetic.consent import ConsentState
from synthetic.errors import SyntheticError
from synthetic.stats import load_consents, sharing_patients
from synthetic.store import open_db, read_world_json

from .errors import SelectionError

__all__ = ["WorldFacility", "WorldIndex", "WorldPatient", "WorldUser"]


@dataclass(frozen=True)
class WorldUser:
    facility: str
    user_id: str
    password: str
    viewer_kind: str


@dataclass(frozen=True)
class WorldFacility:
    code: str
    kind: str
    role: str
    network_role: str
    name: str
    link_type: str
    namespace: str
    oid: str
    disclosure: frozenset[str]
    users: tuple[WorldUser, ...]

    @property
    def disclosing(self) -> bool:
        return self.network_role == "disclosing"

    @property
    def hd(self) -> str:
        return f"{self.namespace}&{self.oid}&ISO"


@dataclass(frozen=True)
class WorldPatient:
    index: int
    patient_id: str
    regional_id: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    family_romaji: str
    given_romaji: str
    family_name_variant: str
    sex: str
    birth_date: str  # ISO YYYY-MM-DD
    death_time: str | None
    postcode: str
    address: str
    phone: str
    pathway: str
    sharing_target: bool
    local_ids: Mapping[str, str]  # facility code → local ID


class WorldIndex:
    """world.json + world.sqlite, read once per run (patients, local IDs, consents; not the events)."""

    def __init__(self, world_dir: Path) -> None:
        try:
            meta = read_world_json(world_dir)
            db = open_db(world_dir)
        except SyntheticError as exc:
            raise SelectionError(str(exc)) from exc
        self.dir = world_dir
        self.profile: str = meta["profile"]
        self.seed: int = int(meta["seed"])
        self.reference_date = dt.date.fromisoformat(meta["reference_date"])
        self.facilities = tuple(_facility(f) for f in meta["facilities"])
        self.by_code = {f.code: f for f in self.facilities}
        try:
            self.patients = tuple(_patients(db))
            self.consents: dict[int, ConsentState] = load_consents(db)
        finally:
            db.close()
        self._sharing: set[int] | None = None
        self._held: dict[int, dict[str, frozenset[str]]] | None = None
        self.feasible: dict[tuple[str, str], list[WorldPatient]] = {}  # Allocator.feasible's, by (given, var)

    @property
    def registered(self) -> int:
        return len(self.patients)

    def held(self, patient_index: int) -> Mapping[str, frozenset[str]]:
        """Facility → item categories it holds data of the patient in (world events with full detail that
        were not cancelled; ``images`` where an imaging study was performed). Read on first use."""
        if self._held is None:
            found: dict[int, dict[str, set[str]]] = {}
            db = open_db(self.dir)
            try:
                rows = db.execute(
                    "SELECT patient_index, facility_code, category, max(instr(payload, '\"study_uid\"') > 0)"
                    " FROM events WHERE detail = 'full' AND status != 'cancelled'"
                    " GROUP BY patient_index, facility_code, category"
                )
                for index, code, category, imaging in rows:
                    held = found.setdefault(index, {}).setdefault(code, set())
                    held.add(category)
                    if imaging:
                        held.add("images")
            finally:
                db.close()
            self._held = {i: {code: frozenset(c) for code, c in by.items()} for i, by in found.items()}
        return self._held.get(patient_index, {})

    def sharing(self) -> set[int]:
        """Patients sharing on the reference date (synthetic's own definition, computed on first use)."""
        if self._sharing is None:
            self._sharing = sharing_patients(self.dir, self.reference_date)
        return self._sharing

    def users(self) -> dict[str, tuple[WorldUser, ...]]:
        return {f.code: f.users for f in self.facilities}


def _facility(f: Mapping[str, Any]) -> WorldFacility:
    code = str(f["code"])
    authority = f["assigning_authority"]
    users = tuple(
        WorldUser(code, str(u["user_id"]), str(u["password"]), str(u.get("viewer_kind", "")))
        for u in f.get("users", ())
    )
    return WorldFacility(
        code=code,
        kind=str(f.get("kind", "")),
        role=str(f.get("role", "")),
        network_role=str(f.get("network_role", "viewing")),
        name=str(f.get("name", "")),
        link_type=str(f.get("link_type", "")),
        namespace=str(authority["namespace"]),
        oid=str(authority["oid"]),
        disclosure=frozenset(f.get("disclosure") or ()),
        users=users,
    )


def _patients(db: sqlite3.Connection) -> Iterator[WorldPatient]:
    local: dict[int, dict[str, str]] = {}
    for r in db.execute("SELECT patient_index, facility_code, local_id FROM local_ids ORDER BY 1, 2"):
        local.setdefault(r[0], {})[r[1]] = r[2]
    for r in db.execute("SELECT * FROM patients ORDER BY patient_index"):
        yield WorldPatient(
            index=r["patient_index"],
            patient_id=r["patient_id"],
            regional_id=r["regional_id"],
            family_name=r["family_name"],
            given_name=r["given_name"],
            family_kana=r["family_kana"],
            given_kana=r["given_kana"],
            family_romaji=r["family_romaji"],
            given_romaji=r["given_romaji"],
            family_name_variant=r["family_name_variant"],
            sex=r["sex"],
            birth_date=r["birth_date"],
            death_time=r["death_time"],
            postcode=r["postcode"],
            address=r["address"],
            phone=r["phone"],
            pathway=r["pathway"],
            sharing_target=bool(r["sharing_target"]),
            local_ids=local.get(r["patient_index"], {}),
        )
