"""File-name grammar (spec §1.4) and the folder layout derived from it (spec §1.1).

Each of the 7 name fields is checked on its own, so one bad field (say the flag) does not hide what the
other fields say; later checks use only the fields that passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from synthetic.validator.model import Finding
from synthetic.validator.rules import DATA_TYPES, NO_ORDER, finding

_PID = re.compile(r"[0-9A-Za-z]{1,15}")
_DATE = re.compile(r"[0-9]{8}")
_ORDER = re.compile(r"[0-9A-Za-z]{1,22}")
_DIGITS = re.compile(r"[0-9]+")
_DEPT = re.compile(r"[0-9A-Z]{2,3}|-")
_TYPES = frozenset(DATA_TYPES)


@dataclass(frozen=True, slots=True)
class NameParts:
    """The name's fields; a field that failed the grammar is ``None``."""

    pid: str | None
    date: str | None  # "YYYYMMDD" or "-"
    data_type: str | None
    order: str | None
    timestamp: str | None
    dept: str | None
    flag: str | None


def _is_date(text: str) -> bool:
    try:
        date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return True


def _is_time(hhmmss: str) -> bool:
    return int(hhmmss[0:2]) < 24 and int(hhmmss[2:4]) < 60 and int(hhmmss[4:6]) < 60


def split_name(name: str) -> list[str] | None:
    """The 7 ``_``-separated fields, or None when the count is wrong (the file is then not parsed)."""
    parts = name.split("_")
    return parts if len(parts) == 7 else None


def check_name(name: str, path: str) -> tuple[NameParts | None, list[Finding]]:
    """Grammar of ``<pid>_<date|->_<type>_<order>_<timestamp>_<dept|->_<flag>``.

    Tolerated deviations (warnings, spec §1.4): a 15-digit 発生日時 as in the NHO samples, and an
    オーダNo of 1–22 alphanumerics other than 15 (guideline sample ``2011122000300``; INDEXDB allows 22).
    Dates and times must also be real calendar values, because a vendor's off-by-one month is an error.
    """
    parts = split_name(name)
    if parts is None:
        return None, [
            finding(
                "SS2-NAME-GRAMMAR",
                path,
                f"file name {name!r} has {name.count('_') + 1} '_'-separated fields, expected 7 "
                "(pid_date_type_order_timestamp_dept_flag); content not checked",
            )
        ]
    pid, day, dtype, order, stamp, dept, flag = parts
    bad: list[str] = []
    out: list[Finding] = []
    pid_ok = bool(_PID.fullmatch(pid))
    day_ok = day == "-" or bool(_DATE.fullmatch(day) and _is_date(day))
    order_ok = bool(_ORDER.fullmatch(order))
    dept_ok = bool(_DEPT.fullmatch(dept))
    if not pid_ok:
        bad.append(f"patient ID {pid!r} is not 1-15 ASCII alphanumerics")
    elif len(pid) < 6:
        out.append(
            finding(
                "SS2-NAME-PID-SHORT",
                path,
                f"patient ID {pid!r} is shorter than 6 characters; spec §1.1 gives no layout rule, "
                "checked as pid[0:3]/pid[3:6] with Python slicing",
            )
        )
    if not day_ok:
        bad.append(f"care date {day!r} is neither a valid YYYYMMDD nor '-'")
    if dtype not in _TYPES:
        bad.append(f"data type {dtype!r} is not one of the {len(_TYPES)} standardized-storage types")
    if not order_ok:
        bad.append(f"order number {order!r} is not 1-22 ASCII alphanumerics (15 expected)")
    elif len(order) != 15:
        out.append(
            finding(
                "SS2-NAME-ORDER-LENGTH", path, f"order number {order!r} has {len(order)} characters, not 15"
            )
        )
    if dtype in _TYPES and (dtype.startswith("ADT-") or dtype == "PPR-01") and order != NO_ORDER:
        out.append(
            finding("SS2-NAME-ORDER-NONE", path, f"{dtype} has no order, expected {NO_ORDER}, got {order!r}")
        )
    stamp_ok = bool(_DIGITS.fullmatch(stamp)) and len(stamp) in (15, 17)
    if stamp_ok and not (_is_date(stamp[:8]) and _is_time(stamp[8:14])):
        stamp_ok = False
    if not stamp_ok:
        bad.append(f"timestamp {stamp!r} is not a valid 17-digit YYYYMMDDHHMMSSFFF")
    elif len(stamp) == 15:
        out.append(
            finding(
                "SS2-NAME-TIMESTAMP-15",
                path,
                f"timestamp {stamp!r} has 15 digits (NHO sample form), the guideline uses 17",
            )
        )
    if not dept_ok:
        bad.append(f"department {dept!r} is neither 2-3 of [0-9A-Z] nor '-'")
    if flag not in ("0", "1", "2"):
        bad.append(f"condition flag {flag!r} is not 0, 1 or 2")
    out.extend(finding("SS2-NAME-GRAMMAR", path, f"file name {name!r}: {b}") for b in bad)
    parsed = NameParts(
        pid=pid if pid_ok else None,
        date=day if day_ok else None,
        data_type=dtype if dtype in _TYPES else None,
        order=order if order_ok else None,
        timestamp=stamp if stamp_ok else None,
        dept=dept if dept_ok else None,
        flag=flag if flag in ("0", "1", "2") else None,
    )
    return parsed, out


def check_layout(folders: tuple[str, ...], fields: list[str], path: str) -> list[Finding]:
    """Folders ``pid[0:3]/pid[3:6]/pid/<date>/<type>`` as S2 checkFilePath builds them from the name.

    The comparison uses the name's raw fields, so it holds even when a field broke the grammar. For a
    patient ID of 1-3 characters ``pid[3:6]`` is empty and no folder can equal it; that level is then not
    compared (the ID already draws SS2-NAME-PID-SHORT).
    """
    pid, day, dtype = fields[0], fields[1], fields[2]
    expected = (pid[0:3], pid[3:6], pid, day)
    out: list[Finding] = []
    wrong = [
        f"level {i + 1} is {got!r}, expected {want!r}"
        for i, (got, want) in enumerate(zip(folders[:4], expected, strict=True))
        if got != want and not (i == 1 and want == "")
    ]
    if wrong:
        out.append(
            finding(
                "SS2-LAYOUT-PATH",
                path,
                f"folders {'/'.join(folders[:4])!r} do not match the name ({'; '.join(wrong)})",
            )
        )
    if folders[4] != dtype:
        out.append(
            finding("SS2-LAYOUT-TYPE-FOLDER", path, f"data-type folder {folders[4]!r}, file type {dtype!r}")
        )
    return out
