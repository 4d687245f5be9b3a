"""Segments every SS-MIX2 message shares (MSH, EVN, PID, PV1, ORC, TQ1) and the writer's context types.

The choices these encoders make are listed once, in :mod:`synthetic.ssmix2.messages`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

from hl7wire import components, segment
from synthetic.model import Event, Facility, Patient, Staff
from synthetic.ssmix2.layout import NO_DEPARTMENT, order_number
from synthetic.ssmix2.text import esc

PROFILE_ID = "SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO"


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
class MessageContext:
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
def xcn(ctx: MessageContext, staff_id: str) -> str:
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


def msh(ctx: MessageContext, event: Event, message_type: str) -> str:
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


def pid(ctx: MessageContext, event: Event) -> str:
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
    # PID-29/30 (death) are N in every SS-MIX2 data type (usage.csv); ADT-52 says "expired" in PV1-36.
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


NO_VISIT = Visit()


def pv1(ctx: MessageContext, event: Event, enc: Encounter, visit: Visit = NO_VISIT) -> str:
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
    ctx: MessageContext,
    event: Event,
    control: str,
    order_no: str,
    entered: dt.datetime,
    inpatient: bool,
    group: int | None = None,
    *,
    facility_fields: bool = True,
) -> str:
    """ORC; ORC-4 is the group (Rp) number within the order, as in the guideline's OMP-01 sample.

    ``group`` is given only where ORC-4 is used (prescriptions and injections; it is N for OMD and the
    radiology/endoscopy messages). ``facility_fields=False`` leaves out what OMD does not use (N):
    ORC-13 entering location, ORC-21/22/23 ordering facility and ORC-29 order type.
    """
    f = ctx.facility
    dept = event.department
    dept_name = ctx.departments.get(dept, "")
    doctor = xcn(ctx, event.doctor_id)
    fields = [""] * 29
    fields[0] = control
    fields[1] = esc(order_no)
    fields[3] = str(group) if group is not None else ""
    fields[8] = ts(entered)
    fields[9] = doctor
    fields[11] = doctor
    fields[16] = components(dept, esc(dept_name), "HL70069") if dept else ""
    if facility_fields:
        fields[12] = components(dept, "", "", "", "", "C") if dept else ""
        fields[20] = esc(f.name)
        postcode = f"{f.postcode[:3]}-{f.postcode[3:]}"
        fields[21] = components("", "", "", "", postcode, "JPN", "", esc(f.address))
        fields[22] = f"^^^^^^^^^^^{esc(f.phone)}"
        fields[28] = "I^入院患者オーダ^HL70482" if inpatient else "O^外来患者オーダ^HL70482"
    return segment("ORC", *fields)


#: TQ1-9 priority (HL7 table 0485), coded as the guideline's OMG-01 sample does (``R^^HL70485``).
ROUTINE = "R^^HL70485"
URGENT = "S^^HL70485"
URGENT_WINDOW = dt.timedelta(hours=24)


def priority(enc: Encounter, entered: dt.datetime, imaging: bool) -> str:
    """Routine, except imaging for a stroke admission within a day of admission: stat (S).

    The choice of "S" (stat) over "A" (ASAP) and the 24-hour window are ours: emergency CT/MR at a
    stroke admission is done at once; later follow-up imaging in the same stay is routine.
    """
    if (
        imaging
        and enc.pathway.startswith("stroke")
        and enc.setting == "inpatient"
        and enc.admitted is not None
        and dt.timedelta(0) <= entered - enc.admitted <= URGENT_WINDOW
    ):
        return URGENT
    return ROUTINE


def tq1(start: dt.datetime, prio: str = "", *, duration_days: int | None = None, usage: str = "") -> str:
    """TQ1: set ID 1, TQ1-3 repeat pattern (usage), TQ1-6 service duration, TQ1-7 start, TQ1-9 priority."""
    fields = [""] * 9
    fields[0] = "1"
    fields[2] = usage
    fields[5] = f"{duration_days}^d" if duration_days is not None else ""
    fields[6] = ts(start)
    fields[8] = prio
    return segment("TQ1", *fields)


def order_file(data_type: str, care: dt.datetime, event: Event, segs: list[str]) -> Built:
    """An order or result file: care date from the given field, the order's number, its department."""
    return Built(
        data_type, day(care), order_number(event.order_no), event.department or NO_DEPARTMENT, join(segs)
    )


def control_of(event: Event) -> str:
    return {"new": "NW", "revised": "XO", "cancelled": "CA"}[event.status]


def num(value: float) -> str:
    return f"{value:g}"


def join(segments: list[str]) -> str:
    return "\r".join(segments) + "\r"
