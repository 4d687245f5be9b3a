"""JAHIS HL7 v2.5 messages for SS-MIX2 standardized storage, one builder per data type.

Field positions follow the JAHIS/SS-MIX2 conventions in shared/spec/ssmix2.md §3–§4 (the guideline's
sample messages) and the segment order of each message structure (§2). Choices where the spec leaves
room, stated once here:

- MSH-3/4/5/6 = ``RHIN-EHR`` / facility code / ``GW`` / ``RCV``; MSH-10 = the world's event ID.
- Orders: ORC-1 ``NW`` new, ``XO`` revised, ``CA`` cancelled (the cancel message is the flag-0 file);
  results and performed notices ``SC``. ORC-9 is the time the order was first entered, also on revisions,
  so every version of an order lives in the same care-date folder (§1.3: 診療日 = order entry day).
- Drug codes carry their table's system: ``HOT9`` only for verified codes, ``99RHN`` otherwise. Usage
  (用法) has no verified JAMI code, so TQ1-3 carries a local code ``99RHU`` derived from the text.
- Lab order sets use local codes (``99RHP``) in OBR-4; test items JLAC10 (``JC10``) or ``99RHL``.
  Procedures use JJ1017 where verified, else the local ``99RHR``. Endoscopy and rhythm have local codes.
- PPR-01: PRB-3 carries the MEDIS 病名管理番号 where verified, else the 病名交換用コード (both ``MDCDX2``);
  ZPR-2 holds the 管理番号 only where verified (left empty otherwise), ZPR-5 the 交換用コード. A suspected
  diagnosis gets ``の疑い`` in its text and ``疑い`` in ZPR-7 (no verified modifier code). PRB-10 carries the
  diagnosis timing ``O^外来時^JHSD0004`` only for outpatient diagnoses (the only JHSD0004 value verified).
- Every message ends with a CR after its last segment (§3.1 recommendation); no 0x1C.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from hl7wire import components, segment
from synthetic import tables
from synthetic.model import Event, Facility, Patient, Staff
from synthetic.ssmix2.layout import NO_DATE, NO_DEPARTMENT, NO_ORDER, order_number
from synthetic.ssmix2.text import esc

PROFILE_ID = "SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO"
ECG_CODES = {
    "hr": ("32769", "心拍数", "/min"),
    "pq": ("32770", "PQ時間", "ms"),
    "qrs": ("58240", "QRS幅", "ms"),
    "qt": ("56008", "QT時間", "ms"),
    "qtc": ("59136", "QTc", "ms"),
}


@lru_cache(maxsize=8192)
def ts(t: dt.datetime) -> str:
    return f"{t:%Y%m%d%H%M%S}"


def day(t: dt.datetime) -> str:
    return f"{t:%Y%m%d}"


@dataclass(slots=True)
class Encounter:
    """What the writer knows of the episode an event belongs to (PV1 needs it)."""

    setting: str = "outpatient"
    admitted: dt.datetime | None = None
    discharged: dt.datetime | None = None
    ward: str = ""
    room: str = ""
    bed: str = ""
    prior_ward: str = ""
    pathway: str = ""  # "stroke/full": documents look up state titles through it
    procedures: list[tuple[str, dt.datetime]] = field(default_factory=list)  # performed in this episode
    labs: list[tuple[str, str, str, dt.datetime]] = field(
        default_factory=list
    )  # (test key, value, flag, time)


@dataclass(slots=True)
class DiagnosisState:
    key: str
    instance: int
    status: str
    onset: str
    main: bool
    recorded: dt.datetime
    updated: dt.datetime
    resolved: str = ""
    outpatient: bool = True


@dataclass(slots=True)
class Context:
    """One patient at one facility, as the messages present them."""

    facility: Facility
    patient: Patient
    local_id: str
    staff: dict[str, Staff]
    departments: dict[str, str]
    diagnoses: dict[str, DiagnosisState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Built:
    data_type: str
    care_date: str
    order_no: str
    department: str
    text: str


# -- common segments ----------------------------------------------------------------------------------
def xcn(ctx: Context, staff_id: str) -> str:
    s = ctx.staff.get(staff_id)
    if s is None:
        return ""
    return components(
        esc(s.staff_id),
        esc(s.name.family),
        esc(s.name.given),
        "",
        "",
        "",
        "",
        "",
        "",
        "L",
        "",
        "",
        "",
        "",
        "I",
    )


def msh(ctx: Context, event: Event, message_type: str) -> str:
    return segment(
        "MSH",
        "^~\\&",
        "RHIN-EHR",
        ctx.facility.code,
        "GW",
        "RCV",
        ts(event.time),
        "",
        message_type,
        str(event.event_id),
        "P",
        "2.5",
        "",
        "",
        "",
        "",
        "",
        "~ISO IR87",
        "",
        "ISO 2022-1994",
        PROFILE_ID,
    )


def evn(event: Event, occurred: bool = False) -> str:
    """EVN-2 recorded time; EVN-6 occurred time (the care-date field of A02/A21/A22); EVN-7 facility."""
    return segment(
        "EVN", "", ts(event.time), "", "", "", ts(event.time) if occurred else "", event.facility_code
    )


def pid(ctx: Context, event: Event) -> str:
    p = ctx.patient
    n = p.name
    name = (
        f"{components(esc(n.family), esc(n.given), '', '', '', '', 'L', 'I')}~"
        f"{components(esc(n.family_kana), esc(n.given_kana), '', '', '', '', 'L', 'P')}"
    )
    postcode = f"{p.address.postcode[:3]}-{p.address.postcode[3:]}"
    address = components("", "", "", "", postcode, "JPN", "H", esc(p.address.text))
    phones = f"^PRN^PH^^^^^^^^^{esc(p.phone)}~^ORN^CP^^^^^^^^^{esc(p.mobile)}"
    fields = [""] * 33
    fields[0] = "0001"
    fields[2] = f"{esc(ctx.local_id)}^^^^PI"
    fields[4] = name
    fields[6] = f"{p.birth_date:%Y%m%d}"
    fields[7] = p.sex
    fields[10] = address
    fields[12] = phones
    if p.death is not None and event.time >= p.death:
        fields[28] = ts(p.death)
        fields[29] = "Y"
    fields[32] = ts(event.time)
    return segment("PID", *fields)


@dataclass(frozen=True, slots=True)
class Visit:
    """PV1 fields some events set: admit (PV1-44), discharge (PV1-45), disposition (PV1-36), prior ward."""

    attending: str | None = None
    admit: dt.datetime | None = None
    discharge: dt.datetime | None = None
    disposition: str = ""
    prior_location: str = ""


def pv1(ctx: Context, event: Event, enc: Encounter, visit: Visit = Visit()) -> str:
    dept = event.department
    inpatient = enc.setting == "inpatient"
    if inpatient:
        location = components(esc(enc.ward), esc(enc.room), esc(enc.bed), "", "", "N")
    else:
        location = components(dept, "", "", "", "", "C") if dept else ""
    admit = visit.admit or (enc.admitted if inpatient else None)
    fields = [""] * 45
    fields[0] = "0001"
    fields[1] = "I" if inpatient else "O"
    fields[2] = location
    fields[5] = visit.prior_location
    fields[6] = xcn(ctx, visit.attending if visit.attending is not None else event.doctor_id)
    fields[9] = dept
    fields[35] = visit.disposition
    fields[43] = ts(admit) if admit else ""
    fields[44] = ts(visit.discharge) if visit.discharge else ""
    return segment("PV1", *fields)


def orc(
    ctx: Context,
    event: Event,
    control: str,
    order_no: str,
    entered: dt.datetime,
    inpatient: bool,
    group: int = 1,
) -> str:
    """ORC; ORC-4 is the group (Rp) number within the order, as in the guideline's OMP-01 sample."""
    f = ctx.facility
    dept = event.department
    dept_name = ctx.departments.get(dept, "")
    doctor = xcn(ctx, event.doctor_id)
    fields = [""] * 29
    fields[0] = control
    fields[1] = esc(order_no)
    fields[3] = str(group)
    fields[8] = ts(entered)
    fields[9] = doctor
    fields[11] = doctor
    fields[12] = components(dept, "", "", "", "", "C") if dept else ""
    fields[16] = components(dept, esc(dept_name), "HL70069") if dept else ""
    fields[20] = esc(f.name)
    fields[21] = components("", "", "", "", f"{f.postcode[:3]}-{f.postcode[3:]}", "JPN", "", esc(f.address))
    fields[22] = f"^^^^^^^^^^^{esc(f.phone)}"
    fields[28] = "I^入院患者オーダ^HL70482" if inpatient else "O^外来患者オーダ^HL70482"
    return segment("ORC", *fields)


def _order_file(data_type: str, care: dt.datetime, event: Event, segs: list[str]) -> Built:
    """An order or result file: care date from the given field, the order's number, its department."""
    return Built(
        data_type, day(care), order_number(event.order_no), event.department or NO_DEPARTMENT, join(segs)
    )


def control_of(event: Event) -> str:
    return {"new": "NW", "revised": "XO", "cancelled": "CA"}[event.status]


def _num(value: float) -> str:
    return f"{value:g}"


def join(segments: list[str]) -> str:
    return "\r".join(segments) + "\r"


# -- ADT ----------------------------------------------------------------------------------------------
def _adt(
    ctx: Context,
    event: Event,
    enc: Encounter,
    data_type: str,
    message_type: str,
    care: str,
    *,
    occurred: bool = False,
    pv2: str | None = None,
    visit: Visit = Visit(),
) -> Built:
    segs = [msh(ctx, event, message_type), evn(event, occurred), pid(ctx, event), pv1(ctx, event, enc, visit)]
    if pv2 is not None:
        segs.append(pv2)
    dept = NO_DEPARTMENT if data_type == "ADT-00" else (event.department or NO_DEPARTMENT)
    return Built(data_type, care, NO_ORDER, dept, join(segs))


def pv2(*, expected_admit: dt.datetime | None = None, expected_discharge: dt.datetime | None = None) -> str:
    fields = [""] * 9
    if expected_admit is not None:
        fields[7] = ts(expected_admit)
    if expected_discharge is not None:
        fields[8] = ts(expected_discharge)
    return segment("PV2", *fields)


def adt_00(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, Encounter(), "ADT-00", "ADT^A08^ADT_A01", NO_DATE)


def adt_01(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(
        ctx, event, enc, "ADT-01", "ADT^A54^ADT_A54", NO_DATE, visit=Visit(attending=event.payload.get("to"))
    )


def adt_12(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(
        ctx, event, Encounter(), "ADT-12", "ADT^A04^ADT_A01", day(event.time), visit=Visit(admit=event.time)
    )


def adt_21(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    expected = enc.admitted or event.time
    return _adt(
        ctx, event, Encounter(), "ADT-21", "ADT^A14^ADT_A05", day(expected), pv2=pv2(expected_admit=expected)
    )


def adt_22(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, enc, "ADT-22", "ADT^A01^ADT_A01", day(enc.admitted or event.time))


def adt_31(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, enc, "ADT-31", "ADT^A21^ADT_A21", day(event.time), occurred=True)


def adt_32(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, enc, "ADT-32", "ADT^A22^ADT_A21", day(event.time), occurred=True)


def adt_41(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    planned = dt.datetime.fromisoformat(event.payload["at"]) if "at" in event.payload else event.time
    return _adt(ctx, event, enc, "ADT-41", "ADT^A15^ADT_A15", day(planned), pv2=pv2(expected_admit=planned))


def adt_42(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    prior = components(esc(enc.prior_ward), "", "", "", "", "N") if enc.prior_ward else ""
    return _adt(
        ctx,
        event,
        enc,
        "ADT-42",
        "ADT^A02^ADT_A02",
        day(event.time),
        occurred=True,
        visit=Visit(prior_location=prior),
    )


def adt_51(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    expected = enc.discharged or event.time
    return _adt(
        ctx, event, enc, "ADT-51", "ADT^A16^ADT_A16", day(expected), pv2=pv2(expected_discharge=expected)
    )


def adt_52(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    # PV1-36 is an IS field (HL7 table 0112): 01 home, 02 transferred to another hospital, 20 expired
    if event.payload.get("disposition") == "death":
        disposition = "20"
    elif event.payload.get("to"):
        disposition = "02"
    else:
        disposition = "01"
    return _adt(
        ctx,
        event,
        enc,
        "ADT-52",
        "ADT^A03^ADT_A03",
        day(event.time),
        visit=Visit(discharge=event.time, disposition=disposition),
    )


def adt_61(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    p = event.payload
    kinds = {"DA": "薬剤アレルギー", "FA": "食物アレルギー", "EA": "環境アレルギー", "MA": "その他アレルギー"}
    severities = {"SV": "重度", "MO": "中等度", "MI": "軽度"}
    allergen_code = "RHA" + hashlib.sha1(p["name"].encode()).hexdigest()[:6].upper()
    iam = segment(
        "IAM",
        "1",
        components(p["type"], kinds[p["type"]], "HL70127"),
        components(allergen_code, esc(p["name"]), "99RHA"),
        components(p["severity"], severities[p["severity"]], "HL70128"),
        "",
        "A^追加^HL70323",
        "",
        "",
        "",
        "",
        f"{event.time:%Y%m}",
    )
    segs = [msh(ctx, event, "ADT^A60^ADT_A60"), evn(event), pid(ctx, event), pv1(ctx, event, enc), iam]
    return Built("ADT-61", NO_DATE, NO_ORDER, event.department or NO_DEPARTMENT, join(segs))


# -- diagnoses ----------------------------------------------------------------------------------------
def ppr_01(ctx: Context, event: Event, enc: Encounter, _: Any) -> Built:
    dx_table = tables.diagnoses()
    segs = [msh(ctx, event, "PPR^ZD1^PPR_ZD1"), pid(ctx, event), pv1(ctx, event, enc)]
    for state in sorted(ctx.diagnoses.values(), key=lambda s: s.instance):
        dx = dx_table[state.key]
        suspected = state.status == "suspected"
        name = dx.name + ("の疑い" if suspected else "")
        problem = dx.medis_code or dx.medis_exchange
        timing = ["O", "外来時", "JHSD0004"] if state.outpatient else []
        prb = [""] * 18
        prb[0] = "UP" if state.resolved else "AD"
        prb[1] = ts(state.updated)
        prb[2] = components(problem, esc(name), "MDCDX2")
        prb[3] = f"{state.instance:04d}"
        prb[6] = ts(state.recorded)
        prb[8] = state.resolved.replace("-", "")
        prb[9] = components(dx.icd10, "", "I10", *timing)
        prb[15] = state.onset.replace("-", "")
        if state.main:
            prb[17] = "1^主診断^JHSD0007"
        segs.append(segment("PRB", *prb))
        segs.append(
            segment("ZPR", "", dx.medis_code, "", "", dx.medis_exchange, "", "疑い" if suspected else "")
        )
    return Built("PPR-01", NO_DATE, NO_ORDER, event.department or NO_DEPARTMENT, join(segs))


# -- orders -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OrderInfo:
    """What the writer remembers of an order: when it was entered (ORC-9) and the order's own event."""

    entered: dt.datetime
    inpatient: bool
    payload: dict[str, Any]


def _drug_lines(event: Event) -> list[list[Any]]:
    lines: list[list[Any]] = event.payload.get("rx", [])
    return lines


def _route(drug: tables.Drug) -> str:
    if drug.kind == "oral":
        return "PO^口^HL70162"
    if "皮下" in drug.usage_text:
        return "SC^皮下^HL70162"
    if drug.kind == "external":
        return "TP^局所^HL70162"
    return "IV^静脈内^HL70162"


def _usage_code(text: str) -> str:
    return "U" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:7].upper()


def _drug_code(drug: tables.Drug) -> str:
    return components(drug.code, esc(drug.name), drug.system)


def _rde(ctx: Context, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    drugs = tables.drugs()
    segs = [msh(ctx, event, "RDE^O11^RDE_O11"), pid(ctx, event), pv1(ctx, event, enc)]
    for rp, (key, dose, unit, times, days, usage) in enumerate(_drug_lines(event), start=1):
        drug = drugs[key]
        units = components(drug.unit_code, esc(unit), "MR9P")
        segs.append(orc(ctx, event, control_of(event), event.order_no, order.entered, order.inpatient, rp))
        rxe = [""] * 21
        rxe[1] = _drug_code(drug)
        rxe[2] = _num(dose)
        rxe[4] = units
        if drug.kind == "oral":
            rxe[9] = _num(dose * times * days)
            rxe[10] = units
            rxe[18] = f"{_num(dose * times)}^{drug.unit_code}&{esc(unit)}&MR9P"
            rxe[20] = "IHP^入院処方^MR9P" if order.inpatient else "OHP^外来処方^MR9P~OHI^院内処方^MR9P"
        rxe[14] = esc(event.order_no)
        segs.append(segment("RXE", *rxe))
        tq1 = [""] * 7
        tq1[0] = "1"
        tq1[2] = f"{_usage_code(usage)}&{esc(usage)}&99RHU"
        tq1[5] = f"{days}^d"
        tq1[6] = ts(order.entered)
        segs.append(segment("TQ1", *tq1))
        segs.append(segment("RXR", _route(drug)))
    return _order_file(data_type, order.entered, event, segs)


def omp_01(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _rde(ctx, event, enc, order, "OMP-01")


def omp_02(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _rde(ctx, event, enc, order, "OMP-02")


def _ras(ctx: Context, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    drugs = tables.drugs()
    segs = [msh(ctx, event, "RAS^O17^RAS_O17"), pid(ctx, event), pv1(ctx, event, enc)]
    for rp, (key, dose, unit, _times, _days, _usage) in enumerate(_drug_lines(event), start=1):
        drug = drugs[key]
        segs.append(orc(ctx, event, "SC", event.order_no, order.entered, order.inpatient, rp))
        segs.append(
            segment(
                "RXA",
                "0",
                str(event.payload.get("dose_no", 1)),
                ts(event.time),
                ts(event.time),
                _drug_code(drug),
                _num(dose),
                components(drug.unit_code, esc(unit), "MR9P"),
            )
        )
        segs.append(segment("RXR", _route(drug)))
    return _order_file(data_type, event.time, event, segs)


def omp_11(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _ras(ctx, event, enc, order, "OMP-11")


def omp_12(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _ras(ctx, event, enc, order, "OMP-12")


def omd(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    diet = event.payload["diet"]
    code = "RHD" + hashlib.sha1(diet.encode()).hexdigest()[:5].upper()
    segs = [
        msh(ctx, event, "OMD^O03^OMD_O03"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(ctx, event, control_of(event), event.order_no, order.entered, order.inpatient),
        segment("TQ1", "1", "", "", "", "", "", ts(order.entered)),
        segment("ODS", "D", "", components(code, esc(diet), "99RHD")),
    ]
    return _order_file("OMD", order.entered, event, segs)


def _specimen_groups(panels: list[str]) -> list[tuple[str, list[str]]]:
    """(specimen code, panels with tests on that specimen), in first-seen order."""
    labs = tables.labs()
    groups: dict[str, list[str]] = {}
    for panel in panels:
        for test in labs.values():
            if panel in test.panels and test.specimen_code:
                members = groups.setdefault(test.specimen_code, [])
                if panel not in members:
                    members.append(panel)
    return list(groups.items())


def _specimen_name(code: str) -> str:
    return next(t.specimen_name for t in tables.labs().values() if t.specimen_code == code)


def _panel(panel: str) -> str:
    code, name = tables.lab_panels()[panel]
    return components(code, esc(name), "99RHP")


def oml_01(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    segs = [msh(ctx, event, "OML^O33^OML_O33"), pid(ctx, event), pv1(ctx, event, enc)]
    for n, (specimen, panels) in enumerate(_specimen_groups(event.payload["panels"]), start=1):
        segs.append(
            segment("SPM", str(n), "", "", components(specimen, esc(_specimen_name(specimen)), "JC10"))
        )
        for panel in panels:
            segs.append(orc(ctx, event, control_of(event), event.order_no, order.entered, order.inpatient))
            segs.append(segment("OBR", "1", esc(event.order_no), "", _panel(panel)))
    return _order_file("OML-01", order.entered, event, segs)


def oml_11(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    labs = tables.labs()
    collected = order.entered
    panels: list[str] = order.payload.get("panels", [])
    values = {key: (value, flag) for key, value, flag in event.payload["items"]}
    segs = [msh(ctx, event, "OUL^R22^OUL_R22"), pid(ctx, event), pv1(ctx, event, enc)]
    reported: set[str] = set()
    for n, (specimen, specimen_panels) in enumerate(_specimen_groups(panels), start=1):
        spm = [""] * 17
        spm[0] = str(n)
        spm[3] = components(specimen, esc(_specimen_name(specimen)), "JC10")
        spm[16] = ts(collected)
        segs.append(segment("SPM", *spm))
        for panel in specimen_panels:
            items = [
                t
                for t in labs.values()
                if panel in t.panels
                and t.specimen_code == specimen
                and t.key in values
                and t.key not in reported
            ]
            if not items:
                continue
            obr = [""] * 25
            obr[0] = "1"
            obr[1] = esc(event.order_no)
            obr[3] = _panel(panel)
            obr[6] = ts(collected)
            obr[21] = ts(event.time)
            obr[24] = "F"
            segs.append(segment("OBR", *obr))
            segs.append(orc(ctx, event, "SC", event.order_no, event.time, order.inpatient))
            for k, test in enumerate(items, start=1):
                reported.add(test.key)
                value, flag = values[test.key]
                numeric = test.value_type == "NM" and _is_decimal(value)
                obx = [""] * 14
                obx[0] = str(k)
                obx[1] = "NM" if numeric else "ST"
                obx[2] = components(test.code, esc(test.name), test.system)
                obx[4] = esc(value)
                if test.unit:
                    obx[5] = components(esc(test.unit_ascii), esc(test.unit), "ISO+")
                if test.low is not None and test.high is not None:
                    obx[6] = f"{_num(test.low)}-{_num(test.high)}"
                obx[7] = flag
                obx[10] = "F"
                obx[13] = ts(event.time)
                segs.append(segment("OBX", *obx))
    return _order_file("OML-11", collected, event, segs)


def _is_decimal(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _procedure(key: str) -> str:
    proc = tables.procedures()[key]
    if proc.jj1017:
        return components(proc.jj1017, esc(proc.name), "JJ1017")
    return components(proc.local_code, esc(proc.name), "99RHR")


def _omg(ctx: Context, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    obr = [""] * 16
    obr[0] = "1"
    obr[1] = esc(event.order_no)
    obr[3] = _procedure(event.payload["procedure"])
    obr[15] = xcn(ctx, event.doctor_id)
    segs = [
        msh(ctx, event, "OMG^O19^OMG_O19"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(ctx, event, control_of(event), event.order_no, order.entered, order.inpatient),
        segment("TQ1", "1", "", "", "", "", "", ts(order.entered)),
        segment("OBR", *obr),
    ]
    return _order_file(data_type, order.entered, event, segs)


def omg_01(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omg(ctx, event, enc, order, "OMG-01")


def omg_02(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omg(ctx, event, enc, order, "OMG-02")


def omg_03(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omg(ctx, event, enc, order, "OMG-03")


def _performed_obr(ctx: Context, event: Event) -> str:
    obr = [""] * 25
    obr[0] = "1"
    obr[1] = esc(event.order_no)
    obr[3] = _procedure(event.payload["procedure"])
    obr[6] = ts(event.time)
    obr[15] = xcn(ctx, event.doctor_id)
    obr[24] = "F"
    return segment("OBR", *obr)


def _omi(ctx: Context, event: Event, enc: Encounter, order: OrderInfo, data_type: str) -> Built:
    p = event.payload
    segs = [
        msh(ctx, event, "OMI^Z23^OMI_Z23"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(ctx, event, "SC", event.order_no, order.entered, order.inpatient),
        segment("TQ1", "1", "", "", "", "", "", ts(event.time)),
        _performed_obr(ctx, event),
        segment("ZE1", "1", "RS", _procedure(p["procedure"]), "1"),
        segment(
            "IPC",
            esc(event.order_no),
            esc(event.order_no),
            p["study_uid"],
            esc(event.order_no),
            components(p["modality"], "", "DCM"),
        ),
    ]
    return _order_file(data_type, event.time, event, segs)


def omg_11(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omi(ctx, event, enc, order, "OMG-11")


def omg_12(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    return _omi(ctx, event, enc, order, "OMG-12")


def omg_13(ctx: Context, event: Event, enc: Encounter, order: OrderInfo) -> Built:
    segs = [
        msh(ctx, event, "ORU^R01^ORU_R01"),
        pid(ctx, event),
        pv1(ctx, event, enc),
        orc(ctx, event, "SC", event.order_no, order.entered, order.inpatient),
        _performed_obr(ctx, event),
    ]
    measurements = event.payload.get("measurements", {})
    n = 0
    for key, (code, name, unit) in ECG_CODES.items():
        if key in measurements:
            n += 1
            obx = [""] * 14
            obx[0], obx[1], obx[2] = str(n), "NM", components(code, esc(name), "99MFR")
            obx[4], obx[5], obx[10], obx[13] = (
                str(measurements[key]),
                components(unit, unit, "ISO+"),
                "F",
                ts(event.time),
            )
            segs.append(segment("OBX", *obx))
    if "rhythm" in measurements:
        n += 1
        rhythm = "心房細動" if measurements["rhythm"] == "af" else "洞調律"
        segs.append(
            segment(
                "OBX",
                str(n),
                "ST",
                "RHM001^調律^99RHM",
                "",
                rhythm,
                "",
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                ts(event.time),
            )
        )
    if "study_uid" in event.payload and n == 0:
        segs.append(
            segment(
                "OBX",
                "1",
                "ST",
                "RHM002^検査実施^99RHM",
                "",
                "実施済",
                "",
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                ts(event.time),
            )
        )
    return _order_file("OMG-13", event.time, event, segs)


Builder = Callable[[Context, Event, Encounter, Any], Built]

#: World event kind → builder. Kinds absent here (documents, dispensing, care visits) have no
#: standardized-storage file: documents go to extended storage.
BUILDERS: dict[str, Builder] = {
    "registration": adt_00,
    "demographics_update": adt_00,
    "doctor_change": adt_01,
    "outpatient_visit": adt_12,
    "admission_planned": adt_21,
    "admission": adt_22,
    "outing": adt_31,
    "outing_return": adt_32,
    "transfer_planned": adt_41,
    "ward_transfer": adt_42,
    "discharge_planned": adt_51,
    "discharge": adt_52,
    "allergy": adt_61,
    "diagnosis": ppr_01,
    "diet_order": omd,
    "prescription_order": omp_01,
    "prescription_admin": omp_11,
    "injection_order": omp_02,
    "injection_admin": omp_12,
    "lab_order": oml_01,
    "lab_result": oml_11,
    "radiology_order": omg_01,
    "endoscopy_order": omg_02,
    "physiology_order": omg_03,
    "radiology_done": omg_11,
    "endoscopy_done": omg_12,
    "physiology_result": omg_13,
}
ORDER_KINDS = frozenset(
    {
        "diet_order",
        "prescription_order",
        "injection_order",
        "lab_order",
        "radiology_order",
        "endoscopy_order",
        "physiology_order",
    }
)
