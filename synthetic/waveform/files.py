"""The MFER file of one ECG result: the world's event and patient in, deterministic bytes out."""

from __future__ import annotations

from synthetic.model import Event, Patient
from synthetic.rng import stable_int
from synthetic.waveform.ecg import intervals_of, synthesize
from synthetic.waveform.mfer import encode


def ecg_file(facility_code: str, local_id: str, patient: Patient, event: Event) -> bytes:
    """MFER bytes of the event's resting 12-lead ECG, seeded by facility, patient and event only."""
    seed = stable_int("ecg", facility_code, local_id, event.event_id)
    rec = synthesize(intervals_of(event.payload["measurements"]), seed)
    n = patient.name
    rec.patient_id = local_id
    rec.patient_name = f"{n.family}^{n.family_kana}^{n.given}^{n.given_kana}"
    rec.birth_date = patient.birth_date
    rec.sex = patient.sex
    rec.time = event.time
    return encode(rec)
