"""What a study file is made of: the SOP classes, the implementation identity, the study spec, UIDs."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Final

SOP_CLASSES: Final[dict[str, str]] = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "US": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "RF": "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image Storage
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
    "ES": "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image Storage
}
MODALITIES: Final[tuple[str, ...]] = tuple(SOP_CLASSES)

# Two values: the first (empty = ISO-IR 6) keeps ASCII and the component delimiters in G0; a single
# 'ISO 2022 IR 87' value makes pydicom encode without the mandatory switches back to ASCII.
CHARSET: Final[list[str]] = ["", "ISO 2022 IR 87"]
UID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://rhin.invalid/dicom")
IMPLEMENTATION_UID: Final[str] = f"2.25.{uuid.uuid5(UID_NAMESPACE, 'implementation').int}"
IMPLEMENTATION_VERSION: Final[str] = "RHIN_0_1"
MANUFACTURER: Final[str] = "RHIN Synthetic"


@dataclass(frozen=True, slots=True)
class StudySpec:
    """One imaging study as the world knows it; everything a file needs and nothing random."""

    study_uid: str
    accession: str
    modality: str
    body_part: str
    description: str
    study_time: dt.datetime
    series: int
    images_per_series: int
    patient_id: str
    name_romaji: str
    name_kanji: str
    name_kana: str
    birth_date: dt.date
    sex: str
    institution: str
    referring_physician: str
    station: str = "RHIN01"


def instance_uid(study_uid: str, *part: object) -> str:
    """A stable ``2.25`` UID (≤ 44 chars) for a study's series/instance/frame of reference."""
    name = "/".join([study_uid, *map(str, part)])
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"
