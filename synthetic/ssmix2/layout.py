"""Where SS-MIX2 files live and what they are called (shared by the writer, the reader and the gateways).

Standardized storage: ``<root>/<pid[0:3]>/<pid[3:6]>/<pid>/<care date|->/<data type>/<file>`` with the
seven-field name ``<pid>_<care date|->_<data type>_<order no>_<timestamp>_<department|->_<flag>``
(docs/ssmix2.md §1.1, §1.4). Order numbers are 15 characters, zero-padded, ``999999999999999``
where there is no order; the timestamp is 17 digits ``YYYYMMDDHHMMSSFFF``; the flag is 1 (current),
2 (superseded) or 0 (deleted).

A world directory holds one root per disclosing facility, named after its facility code:
``DIR/storage/<code>`` (standardized), ``DIR/extended/<code>`` (documents) and ``DIR/images/<code>``
(DICOM studies, ``<StudyInstanceUID>/<series>-<instance>.dcm``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

NO_ORDER = "999999999999999"
NO_DATE = "-"
NO_DEPARTMENT = "-"
STORAGE, EXTENDED, IMAGES = "storage", "extended", "images"

DATA_TYPES: tuple[str, ...] = (
    "ADT-00",
    "ADT-01",
    "ADT-12",
    "ADT-21",
    "ADT-22",
    "ADT-31",
    "ADT-32",
    "ADT-41",
    "ADT-42",
    "ADT-51",
    "ADT-52",
    "ADT-61",
    "PPR-01",
    "OMD",
    "OMP-01",
    "OMP-02",
    "OMP-11",
    "OMP-12",
    "OML-01",
    "OML-11",
    "OMG-01",
    "OMG-02",
    "OMG-03",
    "OMG-11",
    "OMG-12",
    "OMG-13",
)

FILE_NAME = re.compile(
    r"^(?P<pid>[0-9A-Za-z]{1,15})_(?P<date>[0-9]{8}|-)_(?P<type>ADT-(?:00|01|12|21|22|31|32|41|42|51|52|61)"
    r"|PPR-01|OMD|OMP-(?:01|02|11|12)|OML-(?:01|11)|OMG-(?:01|02|03|11|12|13))_(?P<order>[0-9A-Za-z]{1,22})"
    r"_(?P<ts>[0-9]{15}|[0-9]{17})_(?P<dept>[0-9A-Z]{2,3}|-)_(?P<flag>[012])\Z"
)


@dataclass(frozen=True, slots=True)
class FileName:
    patient_id: str
    care_date: str  # YYYYMMDD or "-"
    data_type: str
    order_no: str
    timestamp: str  # 17 digits
    department: str  # SS-MIX統一診療科コード or "-"
    flag: str  # "1" current, "2" superseded, "0" deleted

    def __str__(self) -> str:
        return "_".join(
            (
                self.patient_id,
                self.care_date,
                self.data_type,
                self.order_no,
                self.timestamp,
                self.department,
                self.flag,
            )
        )

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Files with the same key are versions of one record (at most one has flag 1)."""
        return (self.patient_id, self.care_date, self.data_type, self.order_no)

    def relative_dir(self) -> Path:
        pid = self.patient_id
        return Path(pid[0:3], pid[3:6], pid, self.care_date, self.data_type)

    def with_flag(self, flag: str) -> FileName:
        return FileName(
            self.patient_id,
            self.care_date,
            self.data_type,
            self.order_no,
            self.timestamp,
            self.department,
            flag,
        )

    @classmethod
    def parse(cls, name: str) -> FileName | None:
        m = FILE_NAME.match(name)
        if m is None:
            return None
        return cls(m["pid"], m["date"], m["type"], m["order"], m["ts"], m["dept"], m["flag"])


def order_number(raw: str) -> str:
    """The 15-character order number of the file name (``999999999999999`` when there is none)."""
    if not raw:
        return NO_ORDER
    if len(raw) > 15:
        raise ValueError(f"order number {raw!r} is longer than 15 characters")
    return raw.rjust(15, "0")


def timestamp17(t: dt.datetime, millis: int = 0) -> str:
    return f"{t:%Y%m%d%H%M%S}{millis % 1000:03d}"


def patient_dir(root: Path, patient_id: str) -> Path:
    if len(patient_id) < 6:
        raise ValueError(f"patient ID {patient_id!r} is shorter than 6 characters: no storage path for it")
    return root / patient_id[0:3] / patient_id[3:6] / patient_id
