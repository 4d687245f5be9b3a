"""A hand-built facility, patient and one event per data type, for golden-file tests of the encoders.

Independent of world generation on purpose: the goldens check the message encoders, byte for byte, and
must not move when pathways or profiles change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from synthetic.model import Address, Event, Facility, Patient, PersonName, Staff
from synthetic.ssmix2 import messages as m

T0 = dt.datetime(2026, 3, 2, 9, 15, 0)

DOCTOR = Staff("D00001", "doctor", PersonName("医師", "一郎", "イシ", "イチロウ", "Ishi", "Ichiro"), "14")
NURSE = Staff("N00002", "nurse", PersonName("看護", "花子", "カンゴ", "ハナコ", "Kango", "Hanako"), "")
DOCTOR2 = Staff(
    "D00003", "doctor", PersonName("髙橋", "次郎", "タカハシ", "ジロウ", "Takahashi", "Jiro"), "14"
)

FACILITY = Facility(
    code="1710100016",
    code_kind="medical",
    kind="hospital",
    role="acute",
    name="県立犀川中央病院",
    kana="ケンリツサイガワチュウオウビョウイン",
    municipality_code="17201",
    municipality="金沢市",
    medical_area="石川中央",
    postcode="9200001",
    address="石川県金沢市千木町1丁目2番3号",
    phone="076-200-1234",
    beds=400,
    disclosing=True,
    link_type="IP-VPN",
    oid="1.2.392.100495.20.3.51.11710100016",
    namespace="JP1710100016",
    pid_format="digits10",
    departments=("01", "14"),
    staff=(DOCTOR, NURSE, DOCTOR2),
    users=(),
    disclosure=("patient_basics",),
    gateway_secret="0" * 32,
)

PATIENT = Patient(
    index=0,
    patient_id="P0000001",
    regional_id="R000000001",
    name=PersonName("山﨑", "太郎", "ヤマザキ", "タロウ", "Yamazaki", "Taro", family_variant="山﨑"),
    sex="M",
    birth_date=dt.date(1948, 4, 5),
    address=Address("9200001", "17201", "金沢市", "千木町", "石川県金沢市千木町2丁目5番6号"),
    phone="076-201-0001",
    mobile="090-1234-5678",
    death=None,
    sharing_target=True,
)

LOCAL_ID = "0000123456"


def context() -> m.MessageContext:
    return m.MessageContext(
        FACILITY,
        PATIENT,
        LOCAL_ID,
        {s.staff_id: s for s in FACILITY.staff},
        {"01": "内科", "14": "脳神経外科"},
    )


def event(kind: str, minutes: int, payload: dict[str, Any], *, order: str = "", status: str = "new") -> Event:
    category = "diagnoses" if kind == "diagnosis" else "patient_basics"
    return Event(
        event_id=1000 + minutes,
        patient_index=0,
        episode_id="S0000000001",
        facility_code=FACILITY.code,
        time=T0 + dt.timedelta(minutes=minutes),
        kind=kind,
        category=category,
        department="14",
        doctor_id="D00001",
        order_no=order,
        status=status,
        detail="full",
        payload=payload,
    )


INPATIENT = m.Encounter(
    setting="inpatient",
    admitted=T0,
    discharged=T0 + dt.timedelta(days=18),
    ward="4東",
    room="412",
    bed="2",
    prior_ward="SCU",
)
OUTPATIENT = m.Encounter(setting="outpatient")
STROKE_ADMISSION = m.Encounter(
    setting="inpatient", admitted=T0, ward="SCU", room="1", bed="1", pathway="stroke/full"
)

RX = [
    ["clopidogrel75", 1.0, "錠", 1, 14, "1日1回朝食後"],
    ["carbocisteine250", 2.0, "錠", 3, 7, "1日3回毎食後"],
]
INJ = [["edaravone30", 1.0, "袋", 2, 14, "点滴静注 1日2回"]]
LAB_ITEMS = [
    ["wbc", "9800", "H"],
    ["hb", "13.2", "N"],
    ["ast", "35", "H"],
    ["alt", "28", "N"],
    ["crp", "2.40", "H"],
    ["u_protein", "(−)", "N"],
]


def order(entered_minutes: int, payload: dict[str, Any], inpatient: bool = True) -> m.OrderInfo:
    return m.OrderInfo(T0 + dt.timedelta(minutes=entered_minutes), inpatient, payload)


def cases() -> dict[str, tuple[Event, m.Encounter, m.OrderInfo | None]]:
    """Golden name → (event, encounter, order)."""
    lab_order = {"panels": ["cbc", "basic_chem", "inflammation", "renal"], "specimen": "blood"}
    return {
        "ADT-00": (event("registration", 0, {}), OUTPATIENT, None),
        "ADT-01": (event("doctor_change", 10, {"from": "D00001", "to": "D00003"}), INPATIENT, None),
        "ADT-12": (event("outpatient_visit", 20, {"setting": "outpatient"}), OUTPATIENT, None),
        "ADT-21": (event("admission_planned", -4000, {"ward": "4東"}), INPATIENT, None),
        "ADT-22": (
            event("admission", 0, {"ward": "4東", "room": "412", "bed": "2", "type": "emergency"}),
            INPATIENT,
            None,
        ),
        "ADT-31": (event("outing", 3000, {"overnight": True}), INPATIENT, None),
        "ADT-32": (event("outing_return", 4440, {}), INPATIENT, None),
        "ADT-41": (
            event(
                "transfer_planned", 2000, {"to": "4東", "at": (T0 + dt.timedelta(minutes=2600)).isoformat()}
            ),
            INPATIENT,
            None,
        ),
        "ADT-42": (event("ward_transfer", 2600, {"from": "SCU", "to": "4東"}), INPATIENT, None),
        "ADT-51": (event("discharge_planned", 23000, {}), INPATIENT, None),
        "ADT-52": (event("discharge", 25920, {"disposition": "home", "to": "1710200015"}), INPATIENT, None),
        "ADT-61": (
            event("allergy", 30, {"name": "ペニシリン系抗菌薬", "type": "DA", "severity": "MO"}),
            INPATIENT,
            None,
        ),
        "OMD": (
            event("diet_order", 40, {"diet": "嚥下調整食"}, order="000000100040"),
            INPATIENT,
            order(40, {"diet": "嚥下調整食"}),
        ),
        "OMP-01": (
            event("prescription_order", 50, {"rx": RX, "setting": "outpatient"}, order="000000100050"),
            OUTPATIENT,
            order(50, {"rx": RX}, inpatient=False),
        ),
        "OMP-01-revised": (
            event(
                "prescription_order",
                80,
                {"rx": RX[:1], "setting": "outpatient", "revision": 1},
                order="000000100050",
                status="revised",
            ),
            OUTPATIENT,
            order(50, {"rx": RX}, False),
        ),
        "OMP-02": (
            event("injection_order", 60, {"rx": INJ}, order="000000100060"),
            INPATIENT,
            order(60, {"rx": INJ}),
        ),
        "OMP-11": (
            event("prescription_admin", 1200, {"rx": RX[:1], "administered": 1}, order="000000100070"),
            INPATIENT,
            order(70, {"rx": RX[:1]}),
        ),
        "OMP-12": (
            event("injection_admin", 90, {"rx": INJ, "dose_no": 1}, order="000000100060"),
            INPATIENT,
            order(60, {"rx": INJ}),
        ),
        "OML-01": (
            event("lab_order", 100, lab_order, order="000000100100"),
            INPATIENT,
            order(100, lab_order),
        ),
        "OML-01-cancelled": (
            event("lab_order", 130, lab_order, order="000000100100", status="cancelled"),
            INPATIENT,
            order(100, lab_order),
        ),
        "OML-11": (
            event("lab_result", 190, {"items": LAB_ITEMS}, order="000000100100"),
            INPATIENT,
            order(100, lab_order),
        ),
        "OMG-01": (
            event(
                "radiology_order", 110, {"procedure": "ct_head_plain", "modality": "CT"}, order="000000100110"
            ),
            INPATIENT,
            order(110, {}),
        ),
        # imaging at a stroke admission, within 24 h: TQ1-9 stat (S^^HL70485)
        "OMG-01-stroke-urgent": (
            event(
                "radiology_order", 20, {"procedure": "ct_head_plain", "modality": "CT"}, order="000000100020"
            ),
            STROKE_ADMISSION,
            order(20, {}),
        ),
        "OMG-02": (
            event("endoscopy_order", 120, {"procedure": "egd", "modality": "ES"}, order="000000100120"),
            INPATIENT,
            order(120, {}),
        ),
        "OMG-03": (
            event(
                "physiology_order", 125, {"procedure": "ecg_12lead", "modality": "ECG"}, order="000000100125"
            ),
            INPATIENT,
            order(125, {}),
        ),
        "OMG-11": (
            event(
                "radiology_done",
                170,
                {
                    "procedure": "ct_head_plain",
                    "modality": "CT",
                    "study_uid": "2.25.123456789012345678901234567890",
                    "series": 1,
                    "images": 24,
                },
                order="000000100110",
            ),
            INPATIENT,
            order(110, {}),
        ),
        "OMG-12": (
            event(
                "endoscopy_done",
                180,
                {
                    "procedure": "egd",
                    "modality": "ES",
                    "study_uid": "2.25.223456789012345678901234567890",
                    "series": 1,
                    "images": 12,
                },
                order="000000100120",
            ),
            INPATIENT,
            order(120, {}),
        ),
        "OMG-13": (
            event(
                "physiology_result",
                150,
                {
                    "procedure": "ecg_12lead",
                    "modality": "ECG",
                    "measurements": {"hr": 72, "pq": 160, "qrs": 90, "qt": 390, "qtc": 415, "rhythm": "af"},
                },
                order="000000100125",
            ),
            INPATIENT,
            order(125, {}),
        ),
        "PPR-01": (
            event(
                "diagnosis",
                20,
                {"key": "cerebral_infarction", "status": "confirmed", "onset": "2026-03-02", "main": True},
            ),
            INPATIENT,
            None,
        ),
    }


def build(name: str) -> m.Built:
    ev, enc, info = cases()[name]
    ctx = context()
    if ev.kind == "diagnosis":
        ctx.diagnoses["cerebral_infarction"] = m.DiagnosisState(
            "cerebral_infarction", 1, "confirmed", "2026-03-02", True, ev.time, ev.time, outpatient=False
        )
        ctx.diagnoses["hypertension"] = m.DiagnosisState(
            "hypertension", 2, "confirmed", "2015-06-01", False, ev.time, ev.time, outpatient=True
        )
        ctx.diagnoses["gastritis"] = m.DiagnosisState(
            "gastritis", 3, "suspected", "2026-02-01", False, ev.time, ev.time, resolved="2026-03-01"
        )
    return m.BUILDERS[ev.kind](ctx, ev, enc, info)
