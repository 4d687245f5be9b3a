"""HL7 v2.5 message checks: segment IDs, MSH, PID, care date, segment grammar, code formats, NM values.

Field numbering (HL7): MSH-1 is the field separator itself, so MSH-n is ``split("|")[n - 1]``; for any
other segment SEG-n is ``split("|")[n]``. Findings of one rule are aggregated per file (count plus the
first few offending values) so a bad export does not bury the report under identical lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from synthetic.validator.grammar import SegmentMatcher, load_grammars
from synthetic.validator.model import Finding
from synthetic.validator.names import NameParts
from synthetic.validator.rules import CARE_DATE, EVENTS, STRUCTURES, finding
from synthetic.validator.usage import check_fields

_SEG_ID = re.compile(r"[A-Z0-9]{3}")
_NM = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SYSTEMS = re.compile(r"[\^&](?:JC10|HOT(?:7|9|11|13)?|MDCDX2|I10)(?=[\^&|~]|$)")
_EXAMPLES = 5

# coding system -> (rule, format check, description); spec §5 and §6.10.
_JC10 = re.compile(r"[0-9][A-Z][0-9]{15}")
_JC10_SPECIMEN = re.compile(r"[0-9]{3}")
_MDCDX2 = re.compile(r"[0-9]{8}|[0-9A-Z]{4}")
_I10 = re.compile(r"[A-Z][0-9]{2}[0-9A-Z$]?")
_HOT = {f"HOT{n}": (re.compile(f"[0-9]{{{n}}}"), f"{n} digits") for n in (7, 9, 11, 13)}
_HOT["HOT"] = (re.compile(r"[0-9]{7,13}"), "7-13 digits")
_CODE_RULES: dict[str, tuple[str, Callable[[str], object], str]] = {
    "JC10": ("SS2-CODE-JC10", _JC10.fullmatch, "17 characters \\d[A-Z]\\d{15}"),
    "MDCDX2": ("SS2-CODE-MDCDX2", _MDCDX2.fullmatch, "8 digits (管理番号) or 4 of [0-9A-Z] (交換用コード)"),
    "I10": ("SS2-CODE-I10", _I10.fullmatch, "ICD-10 without the dot, [A-Z]\\d{2}[0-9A-Z$]?"),
    **{name: ("SS2-CODE-HOT", rx.fullmatch, form) for name, (rx, form) in _HOT.items()},
}
# NM-typed fields checked besides OBX-5 (HL7 v2.5 data types).
_NM_FIELDS = {"RXE": (3, 4, 10), "RXA": (6,)}
_OML11_OBX_TYPES = ("NM", "ST", "CWE")


@dataclass
class Matchers:
    """Segment-grammar matchers by event, created on first use; one instance per worker task."""

    _by_event: dict[str, SegmentMatcher | None] = field(default_factory=dict)

    def get(self, event: str) -> SegmentMatcher | None:
        if event not in self._by_event:
            grammar = load_grammars().get(event)
            self._by_event[event] = SegmentMatcher(grammar) if grammar else None
        return self._by_event[event]


def _get(fields: list[str], n: int) -> str:
    return fields[n] if n < len(fields) else ""


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - _EXAMPLES} more)" if len(items) > _EXAMPLES else ""
    return "; ".join(items[:_EXAMPLES]) + more


def check_message(segments: list[str], name: NameParts, path: str, matchers: Matchers) -> list[Finding]:
    """All content checks of one decoded message; ``name`` supplies the patient, date and data type."""
    out: list[Finding] = []
    seg_fields = [s.split("|") for s in segments]
    ids = [f[0] for f in seg_fields]
    bad_ids = [f"segment {n} {i!r}" if i else f"segment {n} is empty" for n, i in enumerate(ids, 1)
               if not _SEG_ID.fullmatch(i)]  # fmt: skip
    if bad_ids:
        out.append(
            finding(
                "SS2-SEG-ID",
                path,
                f"{len(bad_ids)} bad segment ID(s): {_listed(bad_ids)}; segment order not checked",
            )
        )
    if not ids or ids[0] != "MSH":
        first = f"the first segment is {ids[0]!r}" if ids else "the file is empty"
        where = f"MSH is segment {ids.index('MSH') + 1}" if "MSH" in ids else "no MSH, content not checked"
        out.append(finding("SS2-MSH-FIRST", path, f"{first}; {where}"))
    if "MSH" not in ids:
        return out
    n_msh = ids.index("MSH")
    event = _check_msh(segments[n_msh], seg_fields[n_msh], name, path, out)
    if event and not bad_ids:
        matcher = matchers.get(event)
        if matcher is None:
            out.append(
                finding(
                    "SS2-SEG-NO-GRAMMAR", path, f"no segment grammar for event {event}; order not checked"
                )
            )
        elif problem := matcher.match(ids):
            out.append(finding("SS2-SEG-ORDER", path, f"{event} ({'-'.join(ids)}): {problem}"))
    if "PID" in ids:
        _check_pid(seg_fields[ids.index("PID")], name, path, out)
    if event in CARE_DATE and name.date is not None:
        _check_care_date(event, seg_fields, ids, name.date, path, out)
    _check_codes(segments, seg_fields, path, out)
    _check_obx(seg_fields, ids, name, path, out)
    if name.data_type is not None and not bad_ids:
        out += check_fields(seg_fields, name.data_type, path)
    return out


def _check_msh(raw: str, msh: list[str], name: NameParts, path: str, out: list[Finding]) -> str:
    """MSH-1/2, 9, 12, 18, 20, 21; returns the ``type^event`` of MSH-9 ("" when absent).

    Warnings, not errors (spec §3.2): MSH-18 ``~ISOIR87``/``ISO IR87`` and MSH-20 ``ISO2022-1994`` (seen
    in samples and S1's table), a missing MSH-21 (present in all samples, required by no quoted rule),
    and MSH-9.3 (several structures in spec §2 are inferred).
    """
    if raw[3:4] != "|" or _get(msh, 1) != "^~\\&":
        out.append(
            finding(
                "SS2-MSH-ENCODING",
                path,
                f"MSH-1/MSH-2 are {raw[3:4]!r}/{_get(msh, 1)!r}, expected '|'/'^~\\&'",
            )
        )
    msh9 = _get(msh, 8).split("^")
    event = "^".join(msh9[:2]) if len(msh9) >= 2 and msh9[0] and msh9[1] else ""
    allowed = EVENTS.get(name.data_type or "", ())
    if name.data_type and event not in allowed:
        out.append(
            finding(
                "SS2-MSH-9-EVENT",
                path,
                f"MSH-9 {_get(msh, 8)!r} is not an event of {name.data_type} "
                f"(expected {' or '.join(allowed)})",
            )
        )
    if event in STRUCTURES and _get(msh9, 2) != STRUCTURES[event]:
        got = repr(_get(msh9, 2)) if _get(msh9, 2) else "missing"
        out.append(finding("SS2-MSH-9-STRUCTURE", path, f"MSH-9.3 is {got}, {event} has {STRUCTURES[event]}"))
    version = _get(msh, 11).split("^")[0]
    if version != "2.5":
        out.append(finding("SS2-MSH-12", path, f"MSH-12 version {version!r}, expected '2.5'"))
    charset = _get(msh, 17)
    if charset != "~ISO IR87":
        if "ISOIR87" in {rep.replace(" ", "") for rep in charset.split("~")}:
            out.append(
                finding("SS2-MSH-18-VARIANT", path, f"MSH-18 {charset!r}; the HL7 form is '~ISO IR87'")
            )
        else:
            out.append(finding("SS2-MSH-18", path, f"MSH-18 {charset!r} does not declare '~ISO IR87'"))
    scheme = _get(msh, 19)
    if scheme == "ISO2022-1994":
        out.append(
            finding("SS2-MSH-20-VARIANT", path, "MSH-20 'ISO2022-1994'; the HL7 form is 'ISO 2022-1994'")
        )
    elif scheme != "ISO 2022-1994":
        out.append(finding("SS2-MSH-20", path, f"MSH-20 {scheme!r}, expected 'ISO 2022-1994'"))
    profile = _get(msh, 20)
    if not profile:
        out.append(
            finding("SS2-MSH-21", path, "MSH-21 (message profile) is missing; SS-MIX2 samples all set it")
        )
    elif _get(profile.split("^"), 1) != "SS-MIX2":
        out.append(finding("SS2-MSH-21", path, f"MSH-21 {profile!r} does not name the SS-MIX2 profile"))
    return event


def _check_pid(pid: list[str], name: NameParts, path: str, out: list[Finding]) -> None:
    """PID-3 identifier and the kanji/kana pair of PID-5, on the first PID (one patient per message).

    A PID-3.1 other than the folder's patient ID is an error (a misfiled record, issue 16); a PID-3
    without CX.5 = PI is a warning, as guideline samples use a bare ID (spec §3.3). The repetition
    checked is the one with CX.5 = PI, else the first.
    """
    reps = [rep.split("^") for rep in _get(pid, 3).split("~")]
    chosen = next((cx for cx in reps if _get(cx, 4) == "PI"), None)
    if chosen is None:
        out.append(
            finding("SS2-PID-3-PI", path, f"PID-3 {_get(pid, 3)!r} has no repetition with CX.5 = 'PI'")
        )
    cx1 = (chosen or reps[0])[0]
    if name.pid is not None and cx1 != name.pid:
        out.append(
            finding("SS2-PID-3-ID", path, f"PID-3.1 {cx1!r} differs from the file's patient ID {name.pid!r}")
        )
    kinds = {_get(xpn.split("^"), 7) for xpn in _get(pid, 5).split("~")}
    missing = [
        label for k, label in (("I", "kanji (XPN.8 = I)"), ("P", "kana (XPN.8 = P)")) if k not in kinds
    ]
    if missing:
        out.append(
            finding(
                "SS2-PID-5-NAME", path, f"PID-5 {_get(pid, 5)!r} lacks a {' and a '.join(missing)} repetition"
            )
        )


def _check_care_date(
    event: str, seg_fields: list[list[str]], ids: list[str], day: str, path: str, out: list[Finding]
) -> None:
    """The date folder against the care-date field of every such segment (as S2 checkCareDate does)."""
    where = CARE_DATE[event]
    if where is None:
        if day != "-":
            out.append(
                finding("SS2-CAREDATE", path, f"{event} has no care date and belongs under '-', not {day!r}")
            )
        return
    seg, n = where
    values = [_get(f, n)[:8] for f, i in zip(seg_fields, ids, strict=True) if i == seg]
    if not values:
        out.append(
            finding("SS2-CAREDATE", path, f"no {seg} segment holds the care date {seg}-{n} of {event}")
        )
    elif day == "-":
        out.append(
            finding("SS2-CAREDATE", path, f"{event} is stored under '-' but has {seg}-{n} {values[0]!r}")
        )
    elif wrong := [v for v in values if v != day]:
        out.append(
            finding(
                "SS2-CAREDATE",
                path,
                f"date folder {day!r} but {seg}-{n} (first 8 characters) is "
                f"{_listed([repr(v) for v in wrong])}",
            )
        )


def _check_codes(segments: list[str], seg_fields: list[list[str]], path: str, out: list[Finding]) -> None:
    """Every CWE-like triplet ``code^text^SYSTEM`` (components 1-3 and 4-6, also as subcomponents).

    Only fields in which a checked system name occurs are split, which keeps this cheap.
    JC10 in SPM-4 is the 3-digit JLAC10 specimen code (spec §3.4: ``023^血清^JC10``), not a full code.
    """
    bad: dict[str, list[str]] = {}
    for raw, fields in zip(segments, seg_fields, strict=True):
        if fields[0] == "MSH":
            continue
        numbers = sorted({raw.count("|", 0, m.start()) for m in _SYSTEMS.finditer(raw)})
        for n in numbers:
            for rep in fields[n].split("~"):
                comps = rep.split("^")
                groups = [comps] + [c.split("&") for c in comps if "&" in c]
                for parts in groups:
                    for k in (2, 5):
                        system = _get(parts, k)
                        if system not in _CODE_RULES:
                            continue
                        code = parts[k - 2]
                        rule, ok, form = _CODE_RULES[system]
                        if fields[0] == "SPM" and n == 4 and system == "JC10":
                            ok, form = _JC10_SPECIMEN.fullmatch, "3-digit JLAC10 specimen code"
                        if not ok(code):
                            bad.setdefault(rule, []).append(
                                f"{fields[0]}-{n} {code!r} ({system}: {len(code)} chars, expected {form})"
                            )
    for rule, items in bad.items():
        out.append(finding(rule, path, f"{len(items)} malformed code(s): {_listed(items)}"))


def _check_obx(
    seg_fields: list[list[str]], ids: list[str], name: NameParts, path: str, out: list[Finding]
) -> None:
    """OBX-2 value types of OML-11 (no SN) and decimal syntax of NM values."""
    bad_types: list[str] = []
    bad_nm: list[str] = []
    for fields, seg in zip(seg_fields, ids, strict=True):
        if seg == "OBX":
            vtype = _get(fields, 2)
            if name.data_type == "OML-11" and vtype not in _OML11_OBX_TYPES:
                bad_types.append(f"OBX {_get(fields, 1) or '?'}: OBX-2 {vtype!r}")
            if vtype == "NM":
                bad_nm += [
                    f"OBX-5 {v!r}"
                    for v in _get(fields, 5).split("~")
                    if v not in ("", '""') and not _NM.fullmatch(v)
                ]
        elif seg in _NM_FIELDS:
            for n in _NM_FIELDS[seg]:
                v = _get(fields, n)
                if v not in ("", '""') and not _NM.fullmatch(v):
                    bad_nm.append(f"{seg}-{n} {v!r}")
    if bad_types:
        out.append(finding("SS2-OBX-2-TYPE", path, f"OML-11 allows only NM, ST, CWE: {_listed(bad_types)}"))
    if bad_nm:
        out.append(finding("SS2-NM-VALUE", path, f"{len(bad_nm)} non-decimal NM value(s): {_listed(bad_nm)}"))
