"""The facts a CDA document is rendered from, and the code systems and OID arcs it cites."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

DocumentKind = Literal["discharge_summary", "referral_letter", "progress_note", "nursing_note"]

#: kind → (LOINC document type code, Japanese display name).
DOCUMENT_TYPES: dict[DocumentKind, tuple[str, str]] = {
    "discharge_summary": ("18842-5", "退院時サマリー"),
    "referral_letter": ("57133-1", "診療情報提供書"),
    "progress_note": ("11506-3", "経過記録"),
    "nursing_note": ("34746-8", "看護記録"),
}

LOINC = "2.16.840.1.113883.6.1"
ICD10 = "2.16.840.1.113883.6.3"
DEPARTMENT_CODES = "1.2.392.100495.20.2.51"
DOCTOR_ID_ARC = "1.2.392.100495.20.3.41.1"
PREFECTURE_OID = "1.2.392.100495.20.3.21"
POINT_TABLE_OID = "1.2.392.100495.20.3.22"
INSTITUTION_OID = "1.2.392.100495.20.3.23"


@dataclass(frozen=True, slots=True)
class CdaPerson:
    """A clinician (the author)."""

    staff_id: str
    family: str
    given: str
    family_kana: str
    given_kana: str
    department_code: str
    department_name: str


@dataclass(frozen=True, slots=True)
class Org:
    """A facility; ``code`` is the 10-digit 医療機関コード."""

    code: str
    name: str
    address: str
    postcode: str
    phone: str


@dataclass(frozen=True, slots=True)
class PatientInfo:
    local_id: str
    id_oid: str
    family: str
    given: str
    family_kana: str
    given_kana: str
    birth_date: dt.date
    sex: str
    postcode: str
    address: str
    phone: str


@dataclass(frozen=True, slots=True)
class Dx:
    name: str
    icd10: str
    onset: dt.date | None
    status: str  # "confirmed" | "suspected" | "resolved"


@dataclass(frozen=True, slots=True)
class Rx:
    name: str
    dose: float  # per administration (1回量)
    unit: str
    usage: str
    days: int


@dataclass(frozen=True, slots=True)
class Lab:
    name: str
    value: str
    unit: str
    flag: str  # N/H/L/A
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class Proc:
    name: str
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    kind: DocumentKind
    document_id: str
    time: dt.datetime
    patient: PatientInfo
    author: CdaPerson
    custodian: Org
    state_title: str
    day: int
    diagnoses: list[Dx]
    procedures: list[Proc] = field(default_factory=list)
    drugs: list[Rx] = field(default_factory=list)
    labs: list[Lab] = field(default_factory=list)
    admitted: dt.datetime | None = None
    discharged: dt.datetime | None = None
    plan_title: str = ""
    recipient: Org | None = None
    recipient_department: str = ""
