"""The care engine: runs a pathway for one patient and records episodes, events and local IDs.

It walks the pathway's states from the variant's start, choosing a facility for each state (near the
patient's home, weighted by size), and emits the events each state defines: admissions and discharges,
outpatient visits, orders and their results, documents, diagnoses. Events at a non-disclosing facility are
kept as encounter summaries only (``detail="summary"``): that data never leaves the facility.

Everything draws from the patient's own stream, and times come from the world's clock, never the wall.
"""

from __future__ import annotations

from synthetic.care.directory import Directory
from synthetic.care.kinds import (
    DOCUMENT_CATEGORY,
    EVENTS_PER_PATIENT,
    KIND_CATEGORY,
    REVISABLE,
    SUMMARY_KINDS,
    CareConfig,
)
from synthetic.care.patient import PatientCare, build_local_ids

__all__ = [
    "DOCUMENT_CATEGORY",
    "EVENTS_PER_PATIENT",
    "KIND_CATEGORY",
    "REVISABLE",
    "SUMMARY_KINDS",
    "CareConfig",
    "Directory",
    "PatientCare",
    "build_local_ids",
]
