"""The built world's invariants, checked from its files: names, addresses, codes, care, IDs."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from synthetic import tables
from synthetic.codes import is_valid_care_code, is_valid_medical_code
from synthetic.names import kana_to_romaji
from synthetic.profile import load_profile
from synthetic.store import WORLD_JSON


def test_names_are_table_rows_not_independent_draws(db: sqlite3.Connection) -> None:
    surnames = {(s.kanji, s.kana) for s in tables.surnames()}
    variants = {(s.normalized, s.kana, s.kanji) for s in tables.surname_variants()}
    given = {(g.kanji, g.kana, g.sex) for g in tables.given_names()}
    for p in db.execute("SELECT * FROM patients"):
        if p["family_name_variant"]:
            assert (p["family_name"], p["family_kana"], p["family_name_variant"]) in variants
        else:
            assert (p["family_name"], p["family_kana"]) in surnames
        assert (p["given_name"], p["given_kana"], p["sex"]) in given
        assert p["family_romaji"] == kana_to_romaji(p["family_kana"])
        assert p["given_romaji"] == kana_to_romaji(p["given_kana"])
        (p["family_name"] + p["given_name"] + p["family_kana"] + p["given_kana"]).encode("iso2022_jp")


def test_staff_names_are_consistent_too(world_json: dict[str, Any]) -> None:
    surnames = {(s.kanji, s.kana) for s in tables.surnames()}
    for facility in world_json["facilities"]:
        for s in facility["staff"]:
            assert (s["family_name"], s["family_kana"]) in surnames
            assert s["given_romaji"] == kana_to_romaji(s["given_kana"])


def test_addresses_are_real_postcodes_of_their_municipality(
    db: sqlite3.Connection, world_json: dict[str, Any]
) -> None:
    towns: dict[tuple[str, str], set[str]] = {}
    for row in tables.postcodes():
        towns.setdefault((row.postcode, row.jis_code), set()).add(row.town)
    munis = {m.jis_code: m for m in tables.municipalities()}
    places = [
        (p["postcode"], p["municipality_code"], p["address"], p["phone"])
        for p in db.execute("SELECT * FROM patients")
    ]
    places += [
        (f["postcode"], f["municipality_code"], f["address"], f["phone"]) for f in world_json["facilities"]
    ]
    for postcode, jis, address, phone in places:
        candidates = towns.get((postcode, jis))
        assert candidates, f"{postcode} is not a postcode of {jis}"
        assert any(address.startswith(f"石川県{munis[jis].name}{town}") for town in candidates), address
        area = phone.split("-")[0]
        assert area in munis[jis].phone_area_codes
        assert len(phone.replace("-", "")) == 10


def test_every_hospital_and_clinic_has_one_clerk_who_can_log_in(world_json: dict[str, Any]) -> None:
    """The clerk viewer rule (patient basics only) needs clerks to exist; nowhere else are there any."""
    for facility in world_json["facilities"]:
        clerks = [u for u in facility["users"] if u["viewer_kind"] == "clerk"]
        staff = {s["staff_id"]: s for s in facility["staff"]}
        if facility["kind"] in ("hospital", "clinic"):
            assert len(clerks) == 1, facility["code"]
            assert staff[clerks[0]["staff_id"]]["role"] == "clerk"
            assert clerks[0]["password"]
        else:
            assert clerks == [], facility["code"]
    user_ids = [u["user_id"] for f in world_json["facilities"] for u in f["users"]]
    assert len(user_ids) == sum(len({u["user_id"] for u in f["users"]}) for f in world_json["facilities"])


def test_facility_codes_are_valid_and_unique(world_json: dict[str, Any]) -> None:
    facilities = world_json["facilities"]
    codes = [f["code"] for f in facilities]
    assert len(set(codes)) == len(codes)
    assert len({f["name"] for f in facilities}) == len(facilities)
    assert len({f["assigning_authority"]["oid"] for f in facilities}) == len(facilities)
    for f in facilities:
        assert f["code"].startswith("17")
        if f["code_kind"] == "medical":
            assert is_valid_medical_code(f["code"]), f["code"]
            expected = {"dental": "3", "pharmacy": "4"}.get(f["kind"], "1")
            assert f["code"][2] == expected
        else:
            assert f["kind"] in ("care", "other")
            assert is_valid_care_code(f["code"]), f["code"]
        assert f["assigning_authority"]["oid"] == "1.2.392.100495.20.3.51.1" + f["code"]
        assert re.fullmatch(r"[\u30a0-\u30ff]+", f["kana"]), f["kana"]
        assert f["users"], f["name"]
        user_ids = [u["user_id"] for u in f["users"]]
        assert len(set(user_ids)) == len(user_ids)
        assert all(len(u["password"]) >= 12 for u in f["users"])
        if f["network_role"] == "disclosing":
            assert {"patient_basics", "diagnoses"} <= set(f["disclosure"])
            assert len(f["gateway_secret"]) == 32
        else:
            assert f["disclosure"] == []
            assert f["gateway_secret"] == ""
        if f["kind"] in ("hospital", "clinic"):
            assert f["link_type"] in ("IP-VPN", "Internet VPN")
        if f["kind"] == "care":
            assert f["link_type"] in ("Internet VPN", "Internet")


def test_full_profile_facility_counts_are_exact() -> None:
    from synthetic.facilities import build_facilities
    from synthetic.geography import geography
    from synthetic.names import drawer

    profile = load_profile("ishikawa")
    facilities = build_facilities(profile, 42, geography(profile.prefecture), drawer())
    counts = Counter(f.kind for f in facilities)
    assert counts == {"hospital": 80, "clinic": 339, "dental": 8, "pharmacy": 29, "care": 66, "other": 10}
    assert sum(f.disclosing for f in facilities) == 32
    assert len({f.code for f in facilities}) == 532
    assert len({f.name for f in facilities}) == 532
    areas = Counter(
        f.medical_area for f in facilities if f.kind == "hospital" and f.role in ("university", "acute")
    )
    assert areas["石川中央"] > areas["能登北部"] * 3  # acute care concentrates in the central area
    assert all(f.medical_area == "石川中央" for f in facilities if f.role == "university")


def test_local_ids_follow_each_facility_format(db: sqlite3.Connection, world_json: dict[str, Any]) -> None:
    formats = {f["code"]: f["assigning_authority"]["pid_format"] for f in world_json["facilities"]}
    assert len(set(formats.values())) >= 3
    patterns = {
        "digits6": r"\d{6}",
        "digits7": r"\d{7}",
        "digits8": r"\d{8}",
        "digits9": r"\d{9}",
        "digits10": r"\d{10}",
        "alpha1digits7": r"[A-Z]\d{7}",
    }
    seen: set[tuple[str, str]] = set()
    for r in db.execute("SELECT * FROM local_ids"):
        assert re.fullmatch(patterns[formats[r["facility_code"]]], r["local_id"])
        key = (r["facility_code"], r["local_id"])
        assert key not in seen
        seen.add(key)
    missing = db.execute(
        "SELECT COUNT(*) FROM patients p WHERE NOT EXISTS "
        "(SELECT 1 FROM local_ids l WHERE l.patient_index = p.patient_index)"
    ).fetchone()[0]
    assert missing == 0
    regional = [r[0] for r in db.execute("SELECT regional_id FROM patients")]
    assert len(set(regional)) == len(regional)


def test_every_event_is_inside_the_window_and_the_life(
    db: sqlite3.Connection, world_json: dict[str, Any]
) -> None:
    ref = dt.date.fromisoformat(world_json["reference_date"])
    start = ref - dt.timedelta(days=world_json["history_days"])
    disclosing = {f["code"] for f in world_json["facilities"] if f["network_role"] == "disclosing"}
    deaths = {
        r[0]: r[1]
        for r in db.execute("SELECT patient_index, death_time FROM patients WHERE death_time IS NOT NULL")
    }
    for e in db.execute("SELECT patient_index, time, facility_code, detail, payload FROM events"):
        day = dt.date.fromisoformat(e["time"][:10])
        assert start <= day <= ref
        if e["patient_index"] in deaths:
            assert e["time"] <= deaths[e["patient_index"]]
        assert (e["detail"] == "full") == (e["facility_code"] in disclosing)
        if e["detail"] == "summary":
            assert e["payload"] is None


def test_pathway_order(db: sqlite3.Connection) -> None:
    """Rehabilitation never precedes the acute stay; follow-up comes after; states do not overlap."""
    by_patient: dict[int, list[sqlite3.Row]] = {}
    for ep in db.execute("SELECT * FROM episodes ORDER BY patient_index, episode_id"):
        by_patient.setdefault(ep["patient_index"], []).append(ep)
    stroke = 0
    for episodes in by_patient.values():
        states = [e["state"] for e in episodes]
        if "rehab" in states:
            assert "acute" in states
            assert states.index("acute") < states.index("rehab")
            stroke += 1
        if "shared_followup" in states:
            assert states.index("hepatology") < states.index("shared_followup")
        for before, after in itertools.pairwise(episodes):
            assert before["end_time"] is not None
            assert before["end_time"] <= after["start_time"]
    assert stroke > 0, "the mini world has stroke patients who went to rehabilitation"


def test_admissions_precede_discharges_and_results_follow_orders(db: sqlite3.Connection) -> None:
    first: dict[tuple[str, str], str] = {}
    for e in db.execute("SELECT * FROM events WHERE order_no IS NOT NULL ORDER BY time, event_id"):
        key = (e["facility_code"], e["order_no"])
        if e["kind"].endswith("_order"):
            first.setdefault(key, e["time"])
        else:
            assert key in first, dict(e)
            assert first[key] <= e["time"], dict(e)
    for ep in db.execute("SELECT * FROM episodes WHERE setting = 'inpatient' AND end_time IS NOT NULL"):
        kinds = [
            r["kind"]
            for r in db.execute(
                "SELECT kind FROM events WHERE episode_id = ? AND kind IN ('admission', 'discharge') "
                "ORDER BY time",
                (ep["episode_id"],),
            )
        ]
        if kinds:
            assert kinds[0] == "admission"
            assert kinds[-1] == "discharge"


def test_orders_have_revisions_and_cancellations(db: sqlite3.Connection) -> None:
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM events GROUP BY status").fetchall())
    assert statuses.get("revised", 0) > 0
    assert statuses.get("cancelled", 0) > 0
    for e in db.execute("SELECT * FROM events WHERE status = 'cancelled'"):
        later = db.execute(
            "SELECT COUNT(*) FROM events "
            "WHERE facility_code = ? AND order_no = ? AND kind NOT LIKE '%_order'",
            (e["facility_code"], e["order_no"]),
        ).fetchone()[0]
        assert later == 0, "a cancelled order has no result"
    assert db.execute("SELECT COUNT(*) FROM events WHERE kind = 'demographics_update'").fetchone()[0] > 0


def test_codes_in_events_exist_in_the_tables(db: sqlite3.Connection) -> None:
    drugs, labs, dx, procs = tables.drugs(), tables.labs(), tables.diagnoses(), tables.procedures()
    for e in db.execute("SELECT kind, payload FROM events WHERE payload IS NOT NULL"):
        payload = json.loads(e["payload"])
        for line in payload.get("rx", []):
            assert line[0] in drugs
        for item in payload.get("items", []):
            assert item[0] in labs
        if e["kind"] == "diagnosis":
            assert payload["key"] in dx
        if "procedure" in payload:
            assert payload["procedure"] in procs
        if "study_uid" in payload:
            assert re.fullmatch(r"2\.25\.\d{1,39}", payload["study_uid"])


def test_lab_values_follow_the_disease(db: sqlite3.Connection) -> None:
    """ALT at hepatitis work-up is raised; in chronic care it is mostly normal."""

    def alt_values(pathway: str) -> list[float]:
        values = []
        for r in db.execute(
            "SELECT e.payload FROM events e JOIN patients p USING (patient_index) "
            "WHERE e.kind = 'lab_result' AND p.pathway LIKE ?",
            (pathway,),
        ):
            values += [float(v) for k, v, _ in json.loads(r[0])["items"] if k == "alt"]
        return values

    hepatitis, chronic = alt_values("hepatitis/%"), alt_values("chronic/%")
    assert hepatitis
    assert chronic
    assert sum(hepatitis) / len(hepatitis) > 1.5 * sum(chronic) / len(chronic)


def test_world_json_documents_the_facility_directory(mini_world: Path) -> None:
    data = json.loads((mini_world / WORLD_JSON).read_text(encoding="utf-8"))
    assert data["format"] == "rhin-world"
    assert data["format_version"] == 1
    assert data["profile"] == "mini"
    assert data["reference_date"] == "2026-10-31"
    assert set(data["links"]) == {"IP-VPN", "Internet VPN", "Internet"}
    facility = data["facilities"][0]
    for key in (
        "code",
        "kind",
        "name",
        "kana",
        "municipality",
        "medical_area",
        "network_role",
        "link_type",
        "assigning_authority",
        "users",
        "disclosure",
        "departments",
        "staff",
    ):
        assert key in facility


def test_hand_overs_name_the_facility_the_patient_goes_to(db: sqlite3.Connection) -> None:
    """A discharge's and a referral letter's receiving facility is where the next episode happens."""
    episodes: dict[str, sqlite3.Row] = {r["episode_id"]: r for r in db.execute("SELECT * FROM episodes")}
    by_patient: dict[int, list[sqlite3.Row]] = {}
    for ep in sorted(episodes.values(), key=lambda r: r["episode_id"]):
        by_patient.setdefault(ep["patient_index"], []).append(ep)
    checked = 0
    for e in db.execute(
        "SELECT * FROM events WHERE detail = 'full' AND kind IN ('discharge', 'document') "
        'AND payload LIKE \'%"to":"1%\''
    ):
        target = json.loads(e["payload"])["to"]
        chain = by_patient[e["patient_index"]]
        position = next(i for i, ep in enumerate(chain) if ep["episode_id"] == e["episode_id"])
        assert position + 1 < len(chain), "a hand-over names a facility but no episode follows"
        assert chain[position + 1]["facility_code"] == target, (dict(e), dict(chain[position + 1]))
        checked += 1
    assert checked > 10


def test_a_death_in_hospital_is_a_death_discharge() -> None:
    """A state whose transition is death ends in a discharge with disposition death at the time of death."""
    import random

    from synthetic import pathway as pathways
    from synthetic.care import CareConfig, Directory, PatientCare
    from synthetic.facilities import build_facilities
    from synthetic.geography import geography
    from synthetic.model import Patient
    from synthetic.names import drawer
    from synthetic.people import PeopleFactory
    from synthetic.yamlio import load_yaml, validate

    text = """
id: t
title: t
remarks: [test]
variants: {v: {start: acute}}
states:
  acute: {title: 急性期, facility: {kind: hospital, roles: [university]}, setting: inpatient,
          admission: emergency, duration_days: [5, 6, 7], transitions: {death: 1.0}}
  death: {title: 死亡, terminal: true}
"""
    data, lines = load_yaml(text, "t.yaml")
    pw = validate(pathways.Pathway, data, lines, "t.yaml")
    profile = load_profile("mini")
    geo = geography(profile.prefecture)
    facilities = build_facilities(profile, 7, geo, drawer())
    demo = PeopleFactory(profile, 7, geo, drawer()).demographics(0)
    patient = Patient(0, "P0000001", "R000000001", demo.name, "M", demo.birth_date, demo.address, demo.phone,
                      demo.mobile, None, True)  # fmt: skip
    start = dt.datetime(2026, 1, 1)
    config = CareConfig(start, dt.datetime(2026, 10, 31, 23, 59), 0.0, 0.0, 0.0)
    directory = Directory(facilities, {c: m.medical_area for c, m in geo.municipalities.items()})
    care = PatientCare(patient, random.Random(1), directory, pathways.common(), config)
    care.run(pw, "v", start + dt.timedelta(days=10))
    discharges = [e for e in care.events if e.kind == "discharge"]
    assert len(discharges) == 1
    assert discharges[0].payload["disposition"] == "death"
    assert care.death == discharges[0].time
    assert all(e.time <= care.death for e in care.events)
