"""Counts of a written world, read back from its files (what `rhin world stats` prints).

Sharing is recomputed from the stored consents, local IDs and events with :func:`synthetic.consent.is_sharing`
— the same definition the builder aimed at — so the figure checks the files, not the builder's intent.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from synthetic.consent import ConsentState, is_sharing
from synthetic.model import ConsentAddition, ConsentForm, ConsentWithdrawal
from synthetic.profile import FACILITY_KINDS
from synthetic.store import open_db, read_world_json

D = dt.date.fromisoformat


def load_consents(db: Any) -> dict[int, ConsentState]:
    scope: dict[str, list[str]] = defaultdict(list)
    for r in db.execute(
        "SELECT form_id, facility_code FROM consent_facilities ORDER BY form_id, facility_code"
    ):
        scope[r[0]].append(r[1])
    additions: dict[int, list[ConsentAddition]] = defaultdict(list)
    for r in db.execute("SELECT * FROM consent_additions ORDER BY form_id"):
        additions[r["patient_index"]].append(
            ConsentAddition(
                r["form_id"],
                r["patient_index"],
                r["base_form_id"],
                r["facility_code"],
                D(r["signed_on"]),
                r["taken_at"],
            )
        )
    withdrawals = {
        r["patient_index"]: ConsentWithdrawal(
            r["form_id"], r["patient_index"], r["base_form_id"], D(r["withdrawn_on"]), r["taken_at"]
        )
        for r in db.execute("SELECT * FROM consent_withdrawals")
    }
    out = {}
    for r in db.execute("SELECT * FROM consent_forms"):
        form = ConsentForm(
            r["form_id"],
            r["patient_index"],
            r["pattern"],
            D(r["signed_on"]),
            r["taken_at"],
            tuple(scope.get(r["form_id"], ())),
            bool(r["emergency_allowed"]),
        )
        out[form.patient_index] = ConsentState(
            form, tuple(additions.get(form.patient_index, ())), withdrawals.get(form.patient_index)
        )
    return out


def sharing_patients(world_dir: Path, on: dt.date | None = None) -> set[int]:
    """Indices of the patients who are sharing on ``on`` (default: the world's reference date)."""
    meta = read_world_json(world_dir)
    day = on or D(meta["reference_date"])
    disclosure = {f["code"]: f["disclosure"] for f in meta["facilities"] if f["network_role"] == "disclosing"}
    with open_db(world_dir) as db:
        consents = load_consents(db)
        local: dict[int, list[str]] = defaultdict(list)
        for r in db.execute(
            "SELECT patient_index, facility_code FROM local_ids WHERE first_visit <= ?", (day.isoformat(),)
        ):
            local[r[0]].append(r[1])
        held: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        limit = (day + dt.timedelta(days=1)).isoformat()
        for r in db.execute(
            "SELECT DISTINCT patient_index, facility_code, category FROM events "
            "WHERE detail = 'full' AND status != 'cancelled' AND time < ?",
            (limit,),
        ):
            held[r[0]][r[1]].add(r[2])
    return {
        index
        for index, consent in consents.items()
        if is_sharing(consent, local.get(index, ()), held.get(index, {}), disclosure, day)
    }


def world_stats(world_dir: Path) -> dict[str, Any]:
    meta = read_world_json(world_dir)
    facilities = meta["facilities"]
    by_kind = Counter(f["kind"] for f in facilities)
    stats: dict[str, Any] = {
        "profile": meta["profile"],
        "seed": meta["seed"],
        "reference_date": meta["reference_date"],
        "facilities_by_kind": {k: by_kind.get(k, 0) for k in FACILITY_KINDS},
        "facilities_total": len(facilities),
        "disclosing_facilities": sum(1 for f in facilities if f["network_role"] == "disclosing"),
        "facilities_by_medical_area": dict(sorted(Counter(f["medical_area"] for f in facilities).items())),
        "link_types": dict(sorted(Counter(f["link_type"] for f in facilities).items())),
    }
    with open_db(world_dir) as db:

        def one(sql: str) -> int:
            return int(db.execute(sql).fetchone()[0])

        stats["registered_patients"] = one("SELECT COUNT(*) FROM patients")
        stats["sharing_patients"] = len(sharing_patients(world_dir))
        stats["patients_by_pathway"] = dict(
            db.execute("SELECT pathway, COUNT(*) FROM patients GROUP BY pathway ORDER BY pathway").fetchall()
        )
        stats["episodes_by_pathway"] = dict(
            db.execute(
                "SELECT substr(pathway, 1, instr(pathway, '/') - 1) AS p, COUNT(*) FROM episodes GROUP BY p "
                "ORDER BY p"
            ).fetchall()
        )
        stats["consents_by_pattern"] = dict(
            db.execute(
                "SELECT pattern, COUNT(*) FROM consent_forms GROUP BY pattern ORDER BY pattern"
            ).fetchall()
        )
        stats["consent_additions"] = one("SELECT COUNT(*) FROM consent_additions")
        stats["consent_withdrawals"] = one("SELECT COUNT(*) FROM consent_withdrawals")
        stats["emergency_allowed"] = one("SELECT COUNT(*) FROM consent_forms WHERE emergency_allowed = 1")
        stats["local_ids"] = one("SELECT COUNT(*) FROM local_ids")
        stats["episodes"] = one("SELECT COUNT(*) FROM episodes")
        stats["events"] = one("SELECT COUNT(*) FROM events")
        stats["events_by_kind"] = dict(
            db.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind").fetchall()
        )
        stats["events_by_status"] = dict(
            db.execute("SELECT status, COUNT(*) FROM events GROUP BY status ORDER BY status").fetchall()
        )
        stats["deaths"] = one("SELECT COUNT(*) FROM patients WHERE death_time IS NOT NULL")
        stats["patients_sharing_full_name"] = one(
            "SELECT COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM patients "
            "GROUP BY family_name, given_name HAVING n > 1)"
        )
        stats["same_name_and_birth_date_groups"] = one(
            "SELECT COUNT(*) FROM (SELECT 1 FROM patients GROUP BY family_name, given_name, birth_date "
            "HAVING COUNT(*) > 1)"
        )
        stats["variant_kanji_surnames"] = one("SELECT COUNT(*) FROM patients WHERE family_name_variant != ''")
    return stats
