"""The world on disk: ``world.json`` (the facility directory) and ``world.sqlite`` (people and their care).

Both formats are read by the hub, the gateways and people, and are documented in the README. Writing
streams patients straight into SQLite, so memory stays flat at any patient count. The SQLite file is
written in one transaction with journaling off and indexes created last; the same inputs give the same
bytes (the file has no timestamps).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from synthetic import tables
from synthetic.errors import WorldFormatError
from synthetic.facilities import build_facilities
from synthetic.geography import geography
from synthetic.model import PATIENT_ID_OID_ARC, Episode, Event, Facility, PatientRecord, PersonName
from synthetic.names import drawer
from synthetic.profile import Profile
from synthetic.ssmix2.writer import Options, StorageWriter, WriteStats
from synthetic.world import iter_patients

DEFAULT_STORAGE = Options()
FORMAT = "rhin-world"
FORMAT_VERSION = 1
WORLD_JSON = "world.json"
WORLD_DB = "world.sqlite"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE patients (
    patient_index INTEGER PRIMARY KEY, patient_id TEXT NOT NULL UNIQUE, regional_id TEXT NOT NULL UNIQUE,
    family_name TEXT NOT NULL, given_name TEXT NOT NULL, family_kana TEXT NOT NULL, given_kana TEXT NOT NULL,
    family_romaji TEXT NOT NULL, given_romaji TEXT NOT NULL, family_name_variant TEXT NOT NULL,
    sex TEXT NOT NULL, birth_date TEXT NOT NULL, death_time TEXT,
    postcode TEXT NOT NULL, municipality_code TEXT NOT NULL, address TEXT NOT NULL,
    phone TEXT NOT NULL, mobile TEXT NOT NULL, pathway TEXT NOT NULL, sharing_target INTEGER NOT NULL
);
CREATE TABLE local_ids (
    patient_index INTEGER NOT NULL, facility_code TEXT NOT NULL, local_id TEXT NOT NULL,
    first_visit TEXT NOT NULL, PRIMARY KEY (facility_code, local_id)
);
CREATE TABLE episodes (
    episode_id TEXT PRIMARY KEY, patient_index INTEGER NOT NULL, pathway TEXT NOT NULL, state TEXT NOT NULL,
    facility_code TEXT NOT NULL, setting TEXT NOT NULL, department TEXT NOT NULL, doctor_id TEXT NOT NULL,
    start_time TEXT NOT NULL, end_time TEXT, outcome TEXT NOT NULL
);
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY, patient_index INTEGER NOT NULL, episode_id TEXT NOT NULL,
    facility_code TEXT NOT NULL, time TEXT NOT NULL, kind TEXT NOT NULL, category TEXT NOT NULL,
    department TEXT NOT NULL, doctor_id TEXT NOT NULL, order_no TEXT, status TEXT NOT NULL,
    detail TEXT NOT NULL, payload TEXT
);
CREATE TABLE consent_forms (
    form_id TEXT PRIMARY KEY, patient_index INTEGER NOT NULL UNIQUE, pattern TEXT NOT NULL,
    signed_on TEXT NOT NULL, taken_at TEXT NOT NULL, emergency_allowed INTEGER NOT NULL
);
CREATE TABLE consent_facilities (
    form_id TEXT NOT NULL, facility_code TEXT NOT NULL, PRIMARY KEY (form_id, facility_code)
);
CREATE TABLE consent_additions (
    form_id TEXT PRIMARY KEY, patient_index INTEGER NOT NULL, base_form_id TEXT NOT NULL,
    facility_code TEXT NOT NULL, signed_on TEXT NOT NULL, taken_at TEXT NOT NULL
);
CREATE TABLE consent_withdrawals (
    form_id TEXT PRIMARY KEY, patient_index INTEGER NOT NULL UNIQUE, base_form_id TEXT NOT NULL,
    withdrawn_on TEXT NOT NULL, taken_at TEXT NOT NULL
);
"""
INDEXES = """
CREATE INDEX local_ids_patient ON local_ids (patient_index);
CREATE INDEX episodes_patient ON episodes (patient_index);
CREATE INDEX events_patient ON events (patient_index, time);
CREATE INDEX additions_patient ON consent_additions (patient_index);
"""


def _generator() -> str:
    try:
        return f"rhin-testbed {version('rhin-testbed')}"
    except PackageNotFoundError:
        return "rhin-testbed (source tree)"


def facility_json(f: Facility) -> dict[str, Any]:
    departments = tables.departments()
    return {
        "code": f.code,
        "code_kind": f.code_kind,
        "kind": f.kind,
        "role": f.role,
        "name": f.name,
        "kana": f.kana,
        "municipality_code": f.municipality_code,
        "municipality": f.municipality,
        "medical_area": f.medical_area,
        "postcode": f.postcode,
        "address": f.address,
        "phone": f.phone,
        "beds": f.beds,
        "network_role": f.role_label,
        "link_type": f.link_type,
        "assigning_authority": {"oid": f.oid, "namespace": f.namespace, "pid_format": f.pid_format},
        "departments": [{"code": c, "name": departments[c]} for c in f.departments],
        "staff": [
            {"staff_id": s.staff_id, "role": s.role, "department": s.department, **_name_json(s.name)}
            for s in f.staff
        ],
        "users": [asdict(u) for u in f.users],
        "disclosure": list(f.disclosure),
        "gateway_secret": f.gateway_secret,
    }


def _name_json(n: PersonName) -> dict[str, str]:
    return {
        "family_name": n.family,
        "given_name": n.given,
        "family_kana": n.family_kana,
        "given_kana": n.given_kana,
        "family_romaji": n.family_romaji,
        "given_romaji": n.given_romaji,
    }


def world_json(profile: Profile, seed: int, facilities: list[Facility], patients: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": _generator(),
        "profile": profile.name,
        "profile_title": profile.title,
        "seed": seed,
        "prefecture_code": profile.prefecture_code,
        "reference_date": profile.reference_date.isoformat(),
        "history_days": profile.history_days,
        "registered_patients": patients,
        "patient_id_oid_arc": PATIENT_ID_OID_ARC,
        "links": {name: link.model_dump() for name, link in profile.links.items()},
        # Who may see what, by viewing facility kind and user kind: the hub's access rules (may_view).
        "viewer_rules": profile.viewer_rules.model_dump(),
        "facilities": [facility_json(f) for f in facilities],
    }


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def patient_rows_of(record: PatientRecord) -> dict[str, list[tuple[Any, ...]]]:
    """One patient's rows for every table of world.sqlite, in the tables' column order."""
    return {
        "patients": [_patient_row(record)],
        "local_ids": [
            (li.patient_index, li.facility_code, li.local_id, li.first_visit.isoformat())
            for li in record.local_ids
        ],
        "episodes": [_episode_row(e) for e in record.episodes],
        "events": [_event_row(e) for e in record.events],
        **_consent_rows(record),
    }


def _patient_row(record: PatientRecord) -> tuple[Any, ...]:
    p, n = record.patient, record.patient.name
    return (
        p.index,
        p.patient_id,
        p.regional_id,
        n.family,
        n.given,
        n.family_kana,
        n.given_kana,
        n.family_romaji,
        n.given_romaji,
        n.family_variant,
        p.sex,
        p.birth_date.isoformat(),
        _iso(p.death) if p.death else None,
        p.address.postcode,
        p.address.municipality_code,
        p.address.text,
        p.phone,
        p.mobile,
        record.pathway,
        int(p.sharing_target),
    )


def _episode_row(e: Episode) -> tuple[Any, ...]:
    return (
        e.episode_id,
        e.patient_index,
        e.pathway,
        e.state,
        e.facility_code,
        e.setting,
        e.department,
        e.doctor_id,
        _iso(e.start),
        _iso(e.end) if e.end else None,
        e.outcome,
    )


def _event_row(e: Event) -> tuple[Any, ...]:
    return (
        e.event_id,
        e.patient_index,
        e.episode_id,
        e.facility_code,
        _iso(e.time),
        e.kind,
        e.category,
        e.department,
        e.doctor_id,
        e.order_no or None,
        e.status,
        e.detail,
        json.dumps(e.payload, ensure_ascii=False, separators=(",", ":")) if e.payload else None,
    )


def _consent_rows(record: PatientRecord) -> dict[str, list[tuple[Any, ...]]]:
    form, withdrawal, index = record.consent, record.withdrawal, record.patient.index
    return {
        "consent_forms": [
            (
                form.form_id,
                index,
                form.pattern,
                form.signed_on.isoformat(),
                form.taken_at,
                int(form.emergency_allowed),
            )
        ],
        "consent_facilities": [(form.form_id, code) for code in form.facilities],
        "consent_additions": [
            (a.form_id, a.patient_index, a.base_form_id, a.facility_code, a.signed_on.isoformat(), a.taken_at)
            for a in record.additions
        ],
        "consent_withdrawals": []
        if withdrawal is None
        else [
            (
                withdrawal.form_id,
                index,
                withdrawal.base_form_id,
                withdrawal.withdrawn_on.isoformat(),
                withdrawal.taken_at,
            )
        ],
    }


class PatientOutput:
    """Runs in the worker for each patient: database rows, and (optionally) the facilities' files.

    Picklable (module-level class with plain state); the storage writer is built on first use in the
    worker so it is never pickled.
    """

    def __init__(self, out: Path, facilities: list[Facility], storage: Options | None) -> None:
        self.out = out
        self.facilities = facilities
        self.storage = storage
        self._writer: StorageWriter | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"out": self.out, "facilities": self.facilities, "storage": self.storage, "_writer": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __call__(self, record: PatientRecord) -> tuple[dict[str, list[tuple[Any, ...]]], WriteStats]:
        stats = WriteStats()
        if self.storage is not None:
            if self._writer is None:
                self._writer = StorageWriter(self.out, self.facilities, self.storage)
            stats = self._writer.write_patient(record)
        return patient_rows_of(record), stats


def _insert(db: sqlite3.Connection, batch: dict[str, list[tuple[Any, ...]]]) -> None:
    for table, rows in batch.items():
        if rows:
            marks = ",".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        rows.clear()


def write_world(
    profile: Profile,
    seed: int,
    out: Path,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
    storage: Options | None = DEFAULT_STORAGE,
) -> WriteStats:
    """Build the world and write it to ``out`` (which must exist and be empty).

    With ``storage`` (the default) every disclosing facility's SS-MIX2 storage, documents and images
    are written too (see :mod:`synthetic.ssmix2.layout`); ``None`` writes the world files only.
    """
    facilities = build_facilities(profile, seed, geography(profile.prefecture), drawer())
    document = world_json(profile, seed, facilities, profile.registered_patients)
    document["storage"] = storage is not None
    (out / WORLD_JSON).write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    db_path = out / WORLD_DB
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        meta = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "profile": profile.name,
            "seed": str(seed),
            "reference_date": profile.reference_date.isoformat(),
        }
        db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        batch: dict[str, list[tuple[Any, ...]]] = {}
        pending = 0
        totals = WriteStats()
        output = PatientOutput(out, facilities, storage)
        for patient_rows, stats in iter_patients(profile, seed, facilities, jobs, transform=output):
            totals.add(stats)
            for table, rows in patient_rows.items():
                batch.setdefault(table, []).extend(rows)
            pending += 1
            if pending >= 500:
                _insert(db, batch)
                if progress:
                    progress(pending)
                pending = 0
        _insert(db, batch)
        if progress and pending:
            progress(pending)
        for statement in INDEXES.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("COMMIT")
    finally:
        db.close()
    return totals


def read_world_json(world_dir: Path) -> dict[str, Any]:
    path = world_dir / WORLD_JSON
    if not path.is_file():
        raise WorldFormatError(
            f"{world_dir}: no {WORLD_JSON} (is this a world directory made by `rhin generate`?)"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise WorldFormatError(
            f"{path}: format {data.get('format')} v{data.get('format_version')} is not "
            f"{FORMAT} v{FORMAT_VERSION}"
        )
    return data


def open_db(world_dir: Path) -> sqlite3.Connection:
    path = world_dir / WORLD_DB
    if not path.is_file():
        raise WorldFormatError(f"{world_dir}: no {WORLD_DB}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def rows(db: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
    return list(db.execute(sql, tuple(params)))
