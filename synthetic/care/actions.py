"""What each pathway action does, one function per verb, and the table that dispatches on the verb.

A state's action has exactly one verb (:attr:`synthetic.pathway.PathwayAction.verb`); :func:`act` checks the
action's probability and diagnosis condition, then calls the verb's function. Every random draw happens in
the same order as before the table existed, so a world stays byte-identical.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from synthetic.care.engine import CareBase, StateRun
from synthetic.care.kinds import WARDS
from synthetic.pathway import PathwayAction, Variant
from synthetic.rng import stable_int

#: An action's function: (the care, the state run, the action, when, the pathway variant).
ActionFn = Callable[[CareBase, StateRun, PathwayAction, dt.datetime, Variant], None]
HOUR = dt.timedelta(hours=1)


def _labs(care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant) -> None:
    assert action.labs is not None
    items = care.lab_items(run, action.labs, time)
    specimen = "blood" if any(not k.startswith("u_") for k, _, _ in items) else "urine"
    care.order(
        run,
        time,
        "lab_order",
        "lab_result",
        {"panels": action.labs, "specimen": specimen},
        {"items": items},
        dt.timedelta(minutes=care.rng.randint(50, 180)),
    )


def _procedure(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    """Radiology, endoscopy or physiology: the procedure table, not the verb, says which order it is."""
    key = action.radiology or action.endoscopy or action.physiology or ""
    if not key:
        return
    proc = care.procedure_table.get(key)
    if proc is None:
        raise KeyError(f"pathway procedure {key!r} is not in procedures.csv")
    kind = {"radiology": "radiology", "endoscopy": "endoscopy", "physiology": "physiology"}[proc.kind]
    done_kind = {
        "radiology": "radiology_done",
        "endoscopy": "endoscopy_done",
        "physiology": "physiology_result",
    }[kind]
    payload: dict[str, Any] = {"procedure": key, "modality": proc.modality}
    result = dict(payload)
    if kind != "physiology" or proc.modality != "ECG":
        uid = stable_int("study", run.facility.code, care.p.index, care.seq, bits=120)
        result["study_uid"] = f"2.25.{uid}"
        result["series"] = proc.series
        result["images"] = proc.images_per_series
    if proc.modality == "ECG":
        rng = care.rng
        result["measurements"] = {
            "hr": round(rng.gauss(72, 10)),
            "pq": round(rng.gauss(160, 18)),
            "qrs": round(rng.gauss(92, 10)),
            "qt": round(rng.gauss(390, 25)),
            "qtc": round(rng.gauss(420, 20)),
            "rhythm": "af" if "atrial_fibrillation" in care.diagnoses else "sinus",
        }
    run.procedures.append(key)
    care.order(
        run,
        time,
        f"{kind}_order",
        done_kind,
        payload,
        result,
        dt.timedelta(minutes=care.rng.randint(30, 240)),
    )


def _prescription(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    rx = action.prescription
    assert rx is not None
    keys = care.drugs_for(rx.drugs, rx.indications, rx.per_indication)
    if not keys:
        return
    inpatient = run.state.setting == "inpatient"
    lines = [care.rx_line(k, rx.days) for k in keys]
    setting = "inpatient" if inpatient else "outpatient"
    if run.state_name and time >= run.end - dt.timedelta(days=1):
        run.discharge_drugs = keys
    care.order(
        run,
        time,
        "prescription_order",
        "prescription_admin" if inpatient else None,
        {"rx": lines, "setting": setting},
        {"rx": lines, "administered": 1},
        18 * HOUR,
    )
    pharmacy = care.pharmacy_for() if variant.pharmacy and not inpatient else None
    if pharmacy is not None and care.rng.random() < run.state.pharmacy:
        care.emit(
            run,
            pharmacy,
            time + HOUR,
            "dispensing",
            {"rx": lines, "from": run.facility.code},
            department="",
            doctor="",
        )


def _injection(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    assert action.injection is not None
    if care.drug_table.get(action.injection) is None:
        raise KeyError(f"pathway drug {action.injection!r} is not in drugs.csv")
    line = care.rx_line(action.injection, action.injection_days)
    _, order_no = care.next_id()
    if care.emit(run, run.facility, time, "injection_order", {"rx": [line]}, order_no=order_no):
        for day in range(action.injection_days):
            at = time + dt.timedelta(days=day, minutes=care.rng.randint(20, 90))
            if at > run.end:
                break
            care.emit(
                run,
                run.facility,
                at,
                "injection_admin",
                {"rx": [line], "dose_no": day + 1},
                order_no=order_no,
            )


def _document(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    assert action.document is not None
    care.emit_document(run, action.document, time, None)


def _diet(care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant) -> None:
    _, order_no = care.next_id()
    care.emit(run, run.facility, time, "diet_order", {"diet": action.diet}, order_no=order_no)


def _allergy(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    if not action.allergy:
        return
    allergen = care.rng.choice(care.common.allergens)
    care.emit(
        run,
        run.facility,
        time,
        "allergy",
        {"name": allergen.name, "type": allergen.type, "severity": care.rng.choice(["MI", "MO", "SV"])},
    )


def _ward_transfer(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    if not action.ward_transfer or run.state.setting != "inpatient":
        return
    new_ward = care.rng.choice([w for w in WARDS if w != run.ward])
    planned_at = time - dt.timedelta(hours=care.rng.randint(3, 20))
    if planned_at > run.start:
        care.emit(run, run.facility, planned_at, "transfer_planned", {"to": new_ward, "at": time.isoformat()})
    care.emit(run, run.facility, time, "ward_transfer", {"from": run.ward, "to": new_ward})
    run.ward = new_ward


def _doctor_change(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    if not action.doctor_change:
        return
    doctors = [d.staff_id for d in run.facility.doctors(run.department) if d.staff_id != run.doctor]
    if doctors:
        new = care.rng.choice(doctors)
        care.emit(run, run.facility, time, "doctor_change", {"from": run.doctor, "to": new})
        run.doctor = new


def _outing(
    care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant
) -> None:
    if not action.outing or run.state.setting != "inpatient":
        return
    back = time + dt.timedelta(days=1, hours=care.rng.randint(-3, 3))
    if back < run.end:
        care.emit(run, run.facility, time, "outing", {"overnight": True})
        care.emit(run, run.facility, back, "outing_return", {})


#: Pathway action verb → what it does (like ``synthetic.ssmix2.messages.BUILDERS`` for event kinds).
ACTIONS: dict[str, ActionFn] = {
    "labs": _labs,
    "radiology": _procedure,
    "endoscopy": _procedure,
    "physiology": _procedure,
    "prescription": _prescription,
    "injection": _injection,
    "document": _document,
    "diet": _diet,
    "allergy": _allergy,
    "ward_transfer": _ward_transfer,
    "doctor_change": _doctor_change,
    "outing": _outing,
}


def act(care: CareBase, run: StateRun, action: PathwayAction, time: dt.datetime, variant: Variant) -> None:
    """Run one action, unless its probability or its diagnosis condition (``when``) rules it out."""
    if action.p < 1.0 and care.rng.random() >= action.p:
        return
    if action.when and not any(k in care.diagnoses for k in action.when):
        return
    ACTIONS[action.verb](care, run, action, time, variant)
