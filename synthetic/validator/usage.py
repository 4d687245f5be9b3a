"""Field usage per data type (R / RE / C / O / N), data type and length: the table and its checks.

The table is data, ``synthetic/data/ssmix2/usage.csv``, one row per segment field (or per run of
consecutive fields sharing one usage), each citing its source; it is loaded once per process.

Choices where the table's source leaves room, made here and tested:

- A row whose usage names data types applies only to them: for any other data type the segment is not
  described (S2 marks it ``"*": "N"`` only to say "not part of those messages"), so a guideline ADT-00
  with height/weight OBX segments is not flagged. A row with ``*`` applies to every data type.
- R (SS2-FIELD-REQUIRED, error): the field must hold a value; ``""`` (HL7's explicit null) is not one.
- N (SS2-FIELD-NOT-USED, warning): the field should be empty. A receiver ignores it, so it is no
  integrity failure; ``--strict`` makes it an error.
- RE, C and O are not checked: whether the data was known, or the condition held, cannot be decided
  from one file.
- Data type (SS2-FIELD-TYPE, error) for the primitive types whose form is fixed: SI, NM, DT, TM and TS
  (the first component, as TS.2 is the degree of precision), on every repetition. NM fields that
  SS2-NM-VALUE already covers (OBX-5, RXE-3/4/10, RXA-6) are left to it, so one fault gives one finding.
- Length (SS2-FIELD-LENGTH, warning): each repetition's decoded characters against the table's maximum
  (HL7 v2.5 lengths are per occurrence), for primitive types only (ST, TX, ID, IS, SI, NM, DT, TM, TS):
  composite lengths are not reliable — the guideline's own OMP-01 sample has RXE-19 ``3^TAB&錠&MR9P``,
  13 characters against the table's 10. MSH-1 and MSH-2 are checked by SS2-MSH-ENCODING instead.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from synthetic.validator.model import Finding
from synthetic.validator.rules import DATA_TYPES, finding

USAGES = ("R", "RE", "C", "O", "N")
_EXAMPLES = 5
_TS = re.compile(r"[0-9]{4}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,4})?)?)?)?)?)?"
                 r"(?:[+-][0-9]{4})?")  # fmt: skip
_DT = re.compile(r"[0-9]{4}(?:[0-9]{2}(?:[0-9]{2})?)?")
_TM = re.compile(r"[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,4})?)?)?(?:[+-][0-9]{4})?")
_SI = re.compile(r"[0-9]{1,4}")
_NM = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_FORMS: dict[str, tuple[Callable[[str], object], str]] = {
    "TS": (_TS.fullmatch, "YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]"),
    "DT": (_DT.fullmatch, "YYYY[MM[DD]]"),
    "TM": (_TM.fullmatch, "HH[MM[SS[.S]]]"),
    "SI": (_SI.fullmatch, "a non-negative integer of at most 4 digits"),
    "NM": (_NM.fullmatch, "a decimal number"),
}
_PRIMITIVE = frozenset({"ST", "TX", "ID", "IS", "SI", "NM", "DT", "TM", "TS"})
_NM_ELSEWHERE = frozenset({("OBX", 5), ("RXE", 3), ("RXE", 4), ("RXE", 10), ("RXA", 6)})


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One row of the table: a field (``first == last``) or a run of fields sharing one usage."""

    segment: str
    first: int
    last: int
    name: str
    dtype: str
    length: int | None
    usage: Mapping[str, str]  # data type or "*" -> usage
    source: str

    def usage_for(self, data_type: str) -> str | None:
        return self.usage.get(data_type, self.usage.get("*"))


@dataclass(frozen=True, slots=True)
class SegmentChecks:
    """What one segment of one data type must satisfy, precomputed for speed."""

    required: tuple[tuple[int, str], ...]  # (field, name), all three sorted by field number
    not_used: tuple[tuple[int, str], ...]
    typed: tuple[tuple[int, str, int | None], ...]  # (field, HL7 type or "", max length or None)


def _parse_usage(text: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        types, _, usage = part.partition("=")
        if usage not in USAGES:
            raise ValueError(f"{where}: usage {usage!r} is not one of {', '.join(USAGES)}")
        for t in types.split(","):
            if t != "*" and t not in DATA_TYPES:
                raise ValueError(f"{where}: unknown data type {t!r}")
            if t in out:
                raise ValueError(f"{where}: data type {t} given twice")
            out[t] = usage
    return out


def parse_table(text: str) -> tuple[FieldRow, ...]:
    """Rows of the CSV text (``#`` lines are comments); a malformed row is a ValueError naming it."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    rows = []
    for n, rec in enumerate(csv.DictReader(io.StringIO("\n".join(lines))), start=2):
        where = f"usage.csv row {n} ({rec.get('segment')}-{rec.get('seq')})"
        first, _, last = rec["seq"].partition("-")
        rows.append(
            FieldRow(
                rec["segment"],
                int(first),
                int(last or first),
                rec["name"],
                rec["type"],
                int(rec["length"]) if rec["length"] else None,
                MappingProxyType(_parse_usage(rec["usage"], where)),
                rec["source"],
            )
        )
    return tuple(rows)


@cache
def load_table() -> tuple[FieldRow, ...]:
    """The bundled table, read once per process."""
    text = (resources.files("synthetic") / "data" / "ssmix2" / "usage.csv").read_text("utf-8")
    return parse_table(text)


@cache
def checks_for(data_type: str) -> Mapping[str, SegmentChecks]:
    """Segment ID -> its checks in ``data_type``; segments the table does not describe are absent."""
    required: dict[str, list[tuple[int, str]]] = {}
    not_used: dict[str, list[tuple[int, str]]] = {}
    typed: dict[str, list[tuple[int, str, int | None]]] = {}
    for row in load_table():
        usage = row.usage_for(data_type)
        if usage is None:
            continue
        for seq in range(row.first, row.last + 1):
            if row.segment == "MSH" and seq <= 2:
                continue
            label = (
                row.name if row.first == row.last else f"{row.name} ({row.segment}-{row.first}..{row.last})"
            )
            if usage == "R":
                required.setdefault(row.segment, []).append((seq, label))
            elif usage == "N":
                not_used.setdefault(row.segment, []).append((seq, label))
            typed.setdefault(row.segment, [])
            if row.first == row.last and usage != "N":
                dtype = row.dtype if row.dtype in _FORMS else ""
                if dtype == "NM" and (row.segment, seq) in _NM_ELSEWHERE:
                    dtype = ""
                length = row.length if row.dtype in _PRIMITIVE else None
                if dtype or length:
                    typed[row.segment].append((seq, dtype, length))
    return MappingProxyType(
        {
            seg: SegmentChecks(
                tuple(sorted(required.get(seg, ()))),
                tuple(sorted(not_used.get(seg, ()))),
                tuple(sorted(typed[seg])),
            )
            for seg in typed
        }
    )


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - _EXAMPLES} more)" if len(items) > _EXAMPLES else ""
    return "; ".join(items[:_EXAMPLES]) + more


def check_fields(seg_fields: list[list[str]], data_type: str, path: str) -> list[Finding]:
    """R valued, N empty, primitive types and lengths of every described segment of one message."""
    table = checks_for(data_type)
    missing: list[str] = []
    present: list[str] = []
    bad_type: list[str] = []
    too_long: list[str] = []
    for fields in seg_fields:
        seg = fields[0]
        checks = table.get(seg)
        if checks is None:
            continue
        shift = 1 if seg == "MSH" else 0  # MSH-n is split("|")[n - 1]
        n_fields = len(fields)
        for seq, name in checks.required:
            i = seq - shift
            value = fields[i] if i < n_fields else ""
            if value in ("", '""'):
                missing.append(f"{seg}-{seq} {name}")
        for seq, name in checks.not_used:  # ascending: stop at the segment's last field
            i = seq - shift
            if i >= n_fields:
                break
            if fields[i] not in ("", '""'):
                present.append(f"{seg}-{seq} {name} = {fields[i][:40]!r}")
        for seq, dtype, length in checks.typed:
            i = seq - shift
            if i >= n_fields:
                break
            if not fields[i] or fields[i] == '""':
                continue
            for rep in fields[i].split("~"):
                if length is not None and len(rep) > length:
                    too_long.append(f"{seg}-{seq}: {len(rep)} characters, at most {length}")
                if dtype and rep:
                    value = rep.split("^", 1)[0] if dtype == "TS" else rep
                    ok, form = _FORMS[dtype]
                    if not ok(value):
                        bad_type.append(f"{seg}-{seq} {value[:40]!r} is not {dtype} ({form})")
    out = []
    if missing:
        out.append(
            finding(
                "SS2-FIELD-REQUIRED",
                path,
                f"{data_type}: {len(missing)} required field(s) empty: {_listed(missing)}",
            )
        )
    if present:
        out.append(
            finding(
                "SS2-FIELD-NOT-USED",
                path,
                f"{data_type}: {len(present)} not-used field(s) valued: {_listed(present)}",
            )
        )
    if bad_type:
        out.append(
            finding("SS2-FIELD-TYPE", path, f"{len(bad_type)} malformed value(s): {_listed(bad_type)}")
        )
    if too_long:
        out.append(
            finding("SS2-FIELD-LENGTH", path, f"{len(too_long)} over-long value(s): {_listed(too_long)}")
        )
    return out
