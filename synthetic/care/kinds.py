"""Event kinds and their disclosure categories, identifiers, and the engine's configuration."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: The disclosure item category of each event kind (order results share their order's category).
KIND_CATEGORY: dict[str, str] = {
    "registration": "patient_basics",
    "demographics_update": "patient_basics",
    "outpatient_visit": "patient_basics",
    "admission_planned": "patient_basics",
    "admission": "patient_basics",
    "transfer_planned": "patient_basics",
    "ward_transfer": "patient_basics",
    "doctor_change": "patient_basics",
    "outing": "patient_basics",
    "outing_return": "patient_basics",
    "discharge_planned": "patient_basics",
    "discharge": "patient_basics",
    "allergy": "patient_basics",
    "care_visit": "patient_basics",
    "diagnosis": "diagnoses",
    "diet_order": "other",
    "prescription_order": "prescription_orders",
    "prescription_admin": "prescription_orders",
    "injection_order": "injection_orders",
    "injection_admin": "injection_orders",
    "lab_order": "lab_orders",
    "lab_result": "lab_results",
    "radiology_order": "radiology_orders",
    "radiology_done": "radiology_orders",
    "endoscopy_order": "endoscopy_orders",
    "endoscopy_done": "endoscopy_orders",
    "physiology_order": "physiology_results",
    "physiology_result": "physiology_results",
    "dispensing": "dispensing_results",
}
DOCUMENT_CATEGORY = {
    "discharge_summary": "discharge_summaries",
    "referral_letter": "referral_letters",
    "progress_note": "progress_notes",
    "nursing_note": "nursing_notes",
}
#: Kinds recorded at a non-disclosing facility (the encounter only).
SUMMARY_KINDS = frozenset({"outpatient_visit", "admission", "discharge", "care_visit", "dispensing"})
#: Order kinds that may be revised (condition flag 1→2) or cancelled (flag 0) after they are placed.
REVISABLE = frozenset({"prescription_order", "injection_order", "lab_order", "radiology_order"})
#: Event IDs are ``patient_index * EVENTS_PER_PATIENT + sequence``: unique, and an integer SQLite key.
EVENTS_PER_PATIENT = 100_000
WARDS = ("3東", "3西", "4東", "4西", "5東", "5西", "6東", "6西")


@dataclass(frozen=True, slots=True)
class CareConfig:
    window_start: dt.datetime
    window_end: dt.datetime  # the reference date, end of day: nothing happens after it
    revise_share: float
    cancel_share: float
    address_change_share: float
