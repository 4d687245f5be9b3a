"""The world as plain data: facilities, people, episodes, events and consents.

Everything here is immutable and carries only facts (no behaviour beyond small derived views), so the
writers, the hub, the gateways and the SimPy model can all read the same world without importing the
code that built it. Times are naive datetimes on the world's clock (JST); dates are ISO strings on disk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

FacilityKind = Literal["hospital", "clinic", "dental", "pharmacy", "care", "other"]

#: OID arc for patient-ID assigning authorities of Japanese medical facilities: the arc, then "1" and the
#: 10-digit facility code (JAHIS/HL7 Japan convention), e.g. 1.2.392.100495.20.3.51.11712345678.
PATIENT_ID_OID_ARC = "1.2.392.100495.20.3.51.1"

#: Item categories a disclosing facility may share (the seed network's 共有できる情報項目).
ITEM_CATEGORIES: tuple[str, ...] = (
    "patient_basics",
    "diagnoses",
    "referral_letters",
    "discharge_summaries",
    "progress_notes",
    "nursing_notes",
    "operation_notes",
    "other_documents",
    "prescription_orders",
    "injection_orders",
    "lab_orders",
    "radiology_orders",
    "endoscopy_orders",
    "lab_results",
    "physiology_results",
    "images",
    "dispensing_results",
    "other",
)


@dataclass(frozen=True, slots=True)
class PersonName:
    """Kanji, katakana and romaji of one person, from the same table rows (never drawn separately)."""

    family: str
    given: str
    family_kana: str
    given_kana: str
    family_romaji: str
    given_romaji: str
    #: The surname as the person writes it when it uses a kanji outside JIS X 0208 (髙橋); writers must
    #: normalise it (to ``family``) for ISO-2022-JP. Empty when the surname is plain JIS.
    family_variant: str = ""

    @property
    def kanji(self) -> str:
        return f"{self.family} {self.given}"

    @property
    def kana(self) -> str:
        return f"{self.family_kana} {self.given_kana}"


@dataclass(frozen=True, slots=True)
class Staff:
    staff_id: str
    role: Literal["doctor", "nurse", "pharmacist", "therapist", "care_worker", "clerk", "dentist"]
    name: PersonName
    department: str  # SS-MIX統一診療科コード ("" for staff without a clinical department)


@dataclass(frozen=True, slots=True)
class User:
    """A login of the hub (facility code + user ID + password), tied to one staff member."""

    user_id: str
    password: str
    staff_id: str
    viewer_kind: Literal["physician", "dentist", "nurse", "pharmacist", "care_worker", "clerk"]


@dataclass(frozen=True, slots=True)
class Facility:
    code: str  # 医療機関コード (10 digits) or 介護保険事業所番号 (10 digits)
    code_kind: Literal["medical", "care"]
    kind: FacilityKind
    role: str
    name: str
    kana: str
    municipality_code: str
    municipality: str
    medical_area: str
    postcode: str
    address: str
    phone: str
    beds: int
    disclosing: bool
    link_type: str
    oid: str
    namespace: str
    pid_format: str  # e.g. "digits10", "digits8", "alpha1digits7"
    departments: tuple[str, ...]
    staff: tuple[Staff, ...]
    users: tuple[User, ...]
    disclosure: tuple[str, ...]  # item categories shared (empty unless disclosing)
    gateway_secret: str  # credential the hub presents to this facility's gateway ("" unless disclosing)

    @property
    def role_label(self) -> str:
        return "disclosing" if self.disclosing else "viewing"

    def doctors(self, department: str | None = None) -> list[Staff]:
        return [
            s
            for s in self.staff
            if s.role in ("doctor", "dentist") and (department is None or s.department == department)
        ]


@dataclass(frozen=True, slots=True)
class Address:
    postcode: str
    municipality_code: str
    municipality: str
    town: str
    text: str  # full address as written: 石川県金沢市…1丁目2番3号


@dataclass(frozen=True, slots=True)
class Patient:
    index: int
    patient_id: str  # world-internal ID ("P" + 7 digits)
    regional_id: str  # the regional (network-wide) ID the hub issues for this person
    name: PersonName
    sex: Literal["M", "F"]
    birth_date: dt.date
    address: Address
    phone: str
    mobile: str
    death: dt.datetime | None
    sharing_target: bool


@dataclass(frozen=True, slots=True)
class LocalId:
    patient_index: int
    facility_code: str
    local_id: str
    first_visit: dt.date


@dataclass(frozen=True, slots=True)
class Episode:
    episode_id: str
    patient_index: int
    pathway: str
    state: str
    facility_code: str
    setting: Literal["inpatient", "outpatient", "home", "residential"]
    department: str
    doctor_id: str
    start: dt.datetime
    end: dt.datetime | None
    outcome: str


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened at a facility, with everything a message about it needs.

    ``kind`` says what happened (``admission``, ``lab_result``...); ``category`` is the disclosure item
    category; ``status`` is ``new``, ``revised`` (a later version of the same order) or ``cancelled``.
    ``detail`` is ``full`` at disclosing facilities and ``summary`` elsewhere: data never leaves a
    non-disclosing facility, so the world only records that the encounter happened there.
    """

    event_id: int
    patient_index: int
    episode_id: str
    facility_code: str
    time: dt.datetime
    kind: str
    category: str
    department: str
    doctor_id: str
    order_no: str
    status: Literal["new", "revised", "cancelled"]
    detail: Literal["full", "summary"]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsentForm:
    form_id: str
    patient_index: int
    pattern: Literal["all", "all_except", "allow_list", "per_facility"]
    signed_on: dt.date
    taken_at: str  # facility code
    facilities: tuple[str, ...]  # allow-list (allow_list, per_facility) or exclusions (all_except)
    emergency_allowed: bool


@dataclass(frozen=True, slots=True)
class ConsentAddition:
    """連携先追加の同意書: one more facility added to a consent."""

    form_id: str
    patient_index: int
    base_form_id: str
    facility_code: str
    signed_on: dt.date
    taken_at: str


@dataclass(frozen=True, slots=True)
class ConsentWithdrawal:
    """同意撤回届: the patient stops sharing from this date."""

    form_id: str
    patient_index: int
    base_form_id: str
    withdrawn_on: dt.date
    taken_at: str


@dataclass(slots=True)
class PatientRecord:
    """Everything the world holds about one patient (the unit built by one random stream)."""

    patient: Patient
    local_ids: list[LocalId]
    episodes: list[Episode]
    events: list[Event]
    consent: ConsentForm
    additions: list[ConsentAddition]
    withdrawal: ConsentWithdrawal | None
    pathway: str
