"""JAHIS HL7 v2.5 messages for SS-MIX2 standardized storage, one builder per data type.

Field positions follow the JAHIS/SS-MIX2 conventions in docs/ssmix2.md §3–§4 (the guideline's
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
- PPR-01: PRB-3 and ZPR-2 carry the MEDIS 病名管理番号 where verified
  (``synthetic/data/codes/diagnoses.csv``), else 20084317 未コード化傷病名 with the disease's own name
  as text (the NHO guideline encoding, see ``msg_adt.UNCODED_DISEASE``): ZPR-2 is required and is never
  empty, and no code is invented. ZPR-5 holds the verified 病名交換用コード. ZPR-2 and ZPR-5 are
  ``code^name^MDCDX2`` as in the guideline's PPR-01 sample. A suspected diagnosis gets ``の疑い`` in its
  PRB-3 text and ``疑い`` in ZPR-7 (no verified modifier code). PRB-10 carries the diagnosis timing
  ``O^外来時^JHSD0004`` only for outpatient diagnoses.
- TQ1-9 priority (HL7 table 0485, ``R^^HL70485`` as in the guideline's OMG-01 sample) in every OMG and OML-01
  file: routine, except imaging for a stroke admission within 24 h of admission, which is stat
  (``S^^HL70485``; ``segments.priority``). OMG-13 carries a TQ1 after its OBR (ORU^R01 allows it).
- Fields the usage table (``synthetic/data/ssmix2/usage.csv``) marks N are left empty: ORC-4 outside
  prescriptions and injections, ORC-13/21/22/23/29 in OMD, TQ1-6 in OMP-02, OBR-25 and OBX-8 in OML-11,
  PID-29/30 everywhere (ADT-52's PV1-36 = 20 says a patient died).
- Every message ends with a CR after its last segment (§3.1 recommendation); no 0x1C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthetic.model import Event
from synthetic.ssmix2.msg_adt import (
    UNCODED_DISEASE,
    adt_00,
    adt_01,
    adt_12,
    adt_21,
    adt_22,
    adt_31,
    adt_32,
    adt_41,
    adt_42,
    adt_51,
    adt_52,
    adt_61,
    ppr_01,
)
from synthetic.ssmix2.msg_drugs import OrderInfo, omd, omp_01, omp_02, omp_11, omp_12
from synthetic.ssmix2.msg_exams import (
    ECG_CODES,
    omg_01,
    omg_02,
    omg_03,
    omg_11,
    omg_12,
    omg_13,
    oml_01,
    oml_11,
)
from synthetic.ssmix2.segments import PROFILE_ID, Built, DiagnosisState, Encounter, MessageContext, Visit

__all__ = [
    "BUILDERS",
    "ECG_CODES",
    "ORDER_KINDS",
    "PROFILE_ID",
    "UNCODED_DISEASE",
    "Builder",
    "Built",
    "DiagnosisState",
    "Encounter",
    "MessageContext",
    "OrderInfo",
    "Visit",
]

Builder = Callable[[MessageContext, Event, Encounter, Any], Built]

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
