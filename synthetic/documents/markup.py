"""XML text helpers and CDA building blocks (sections, lists, coded entries): plain string building."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence

from synthetic.clock import JST
from synthetic.documents.spec import (
    ICD10,
    INSTITUTION_OID,
    LOINC,
    POINT_TABLE_OID,
    PREFECTURE_OID,
    Dx,
    Lab,
    Org,
    Rx,
)

# -- low-level helpers ------------------------------------------------------------------------------

# XML 1.0 forbids most C0 controls even as references: drop them rather than emit an unparsable document.
_ESCAPE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        **{chr(c): None for c in range(32) if c not in (9, 10, 13)},
        "\ufffe": None,
        "\uffff": None,
    }
)


_NEEDS_ESCAPE = re.compile('[&<>"\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')


def esc(text: str) -> str:
    """Escape for text and double-quoted attributes; most strings need nothing, so test before translating."""
    return text if _NEEDS_ESCAPE.search(text) is None else text.translate(_ESCAPE)


def to_jst(t: dt.datetime) -> dt.datetime:
    """World times are JST; naive ones are taken as JST already."""
    return t if t.tzinfo is None else t.astimezone(JST)


def ts(t: dt.datetime) -> str:
    t = to_jst(t)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}+0900"


def date_ts(d: dt.date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def jdate(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def month_day(d: dt.date) -> str:
    return f"{d.month}月{d.day}日"


def num(v: float) -> str:
    return f"{v:g}"


def icd(code: str) -> str:
    """ICD-10 in the dotted WHO form: Japanese masters often drop the dot (I639 → I63.9)."""
    c = code.strip()
    if len(c) > 3 and "." not in c and c[0].isalpha() and c[1:3].isdigit():
        return f"{c[:3]}.{c[3:]}"
    return c


@functools.lru_cache(maxsize=4096)
def _org_ids(code: str) -> str:
    """Facility identifiers split as in the MHLW CDA arcs: prefecture, point table, 7-digit number."""
    if len(code) == 10 and code.isdigit():
        return (
            f'<id root="{PREFECTURE_OID}" extension="{code[:2]}"/>'
            f'<id root="{POINT_TABLE_OID}" extension="{code[2]}"/>'
            f'<id root="{INSTITUTION_OID}" extension="{code[3:]}"/>'
        )
    return f'<id root="{INSTITUTION_OID}" extension="{esc(code)}"/>'


def addr(postcode: str, address: str) -> str:
    return (
        f"<addr><postalCode>{esc(postcode)}</postalCode>"
        f"<streetAddressLine>{esc(address)}</streetAddressLine></addr>"
    )


def tel(phone: str) -> str:
    return f'<telecom value="tel:{esc(phone)}"/>' if phone else ""


def person_names(family: str, given: str, family_kana: str, given_kana: str) -> str:
    return (
        f'<name use="IDE"><family>{esc(family)}</family><given>{esc(given)}</given></name>'
        f'<name use="SYL"><family>{esc(family_kana)}</family><given>{esc(given_kana)}</given></name>'
    )


def org_body(org: Org) -> str:
    return (
        f"{_org_ids(org.code)}<name>{esc(org.name)}</name>{tel(org.phone)}{addr(org.postcode, org.address)}"
    )


def join_ja(items: Sequence[str]) -> str:
    return "、".join(items)


# -- XML building blocks ------------------------------------------------------------------------------


def dx_label(d: Dx) -> str:
    if d.status == "suspected":
        return f"{d.name}の疑い"
    if d.status == "resolved":
        return f"{d.name}（治癒）"
    return d.name


def section(title: str, text: str, code: tuple[str, str] | None = None, entries: str = "") -> str:
    coded = (
        f'<code code="{code[0]}" codeSystem="{LOINC}" codeSystemName="LOINC" displayName="{code[1]}"/>'
        if code
        else ""
    )
    return (
        f"<component><section>{coded}<title>{title}</title><text>{text}</text>{entries}</section></component>"
    )


def paras(lines: Sequence[str]) -> str:
    return "".join(f"<paragraph>{esc(line)}</paragraph>" for line in lines)


def items_list(items: Sequence[str]) -> str:
    return "<list>" + "".join(f"<item>{esc(i)}</item>" for i in items) + "</list>"


def dx_items(dxs: Sequence[Dx], prefix: str, with_ids: bool) -> str:
    out = ["<list>"]
    for i, d in enumerate(dxs, 1):
        role = "主病名" if i == 1 else "副病名"
        onset = f"　発症日：{jdate(d.onset)}" if d.onset else ""
        body = f"{role}：{esc(dx_label(d))}（{esc(icd(d.icd10))}）{onset}"
        out.append(
            f'<item><content ID="{prefix}{i}">{body}</content></item>' if with_ids else f"<item>{body}</item>"
        )
    out.append("</list>")
    return "".join(out)


def dx_entries(dxs: Sequence[Dx], prefix: str) -> str:
    out: list[str] = []
    for i, d in enumerate(dxs, 1):
        low = f'<low value="{date_ts(d.onset)}"/>' if d.onset else '<low nullFlavor="UNK"/>'
        high = '<high nullFlavor="UNK"/>' if d.status == "resolved" else ""
        out.append(
            '<entry><observation classCode="OBS" moodCode="EVN">'
            f'<code code="29308-4" codeSystem="{LOINC}" codeSystemName="LOINC" displayName="Diagnosis"/>'
            f'<text><reference value="#{prefix}{i}"/></text><statusCode code="completed"/>'
            f"<effectiveTime>{low}{high}</effectiveTime>"
            f'<value xsi:type="CD" code="{esc(icd(d.icd10))}" codeSystem="{ICD10}" codeSystemName="ICD-10"'
            f' displayName="{esc(d.name)}"/></observation></entry>'
        )
    return "".join(out)


def rx_table(drugs: Sequence[Rx], prefix: str) -> str:
    rows = "".join(
        f'<tr ID="{prefix}{i}"><td>{esc(r.name)}</td><td>1回{num(r.dose)}{esc(r.unit)}</td>'
        f"<td>{esc(r.usage)}</td><td>{r.days}日分</td></tr>"
        for i, r in enumerate(drugs, 1)
    )
    return (
        "<table><thead><tr><th>薬剤名</th><th>用量</th><th>用法</th><th>日数</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


# Units that are valid UCUM as written; 錠, 包, A (ampoule), 単位 … stay in the narrative only.
_UCUM_UNITS = frozenset({"mg", "g", "kg", "ug", "mL", "L"})


def rx_entries(drugs: Sequence[Rx], prefix: str, start: dt.date) -> str:
    out: list[str] = []
    for i, r in enumerate(drugs, 1):
        end = start + dt.timedelta(days=max(r.days - 1, 0))
        unit = f' unit="{r.unit}"' if r.unit in _UCUM_UNITS else ""
        out.append(
            '<entry><substanceAdministration classCode="SBADM" moodCode="INT">'
            f'<text><reference value="#{prefix}{i}"/></text><statusCode code="active"/>'
            f'<effectiveTime xsi:type="IVL_TS"><low value="{date_ts(start)}"/>'
            f'<high value="{date_ts(end)}"/></effectiveTime><doseQuantity value="{num(r.dose)}"{unit}/>'
            f"<consumable><manufacturedProduct><manufacturedMaterial><name>{esc(r.name)}</name>"
            "</manufacturedMaterial></manufacturedProduct></consumable></substanceAdministration></entry>"
        )
    return "".join(out)


def lab_table(labs: Sequence[Lab]) -> str:
    rows = "".join(
        f"<tr><td>{month_day(to_jst(lab.time).date())}</td><td>{esc(lab.name)}</td>"
        f"<td>{esc(lab.value)}</td><td>{esc(lab.unit)}</td><td>{esc(lab.flag)}</td></tr>"
        for lab in sorted(labs, key=lambda v: v.time)
    )
    return (
        "<table><thead><tr><th>検査日</th><th>項目</th><th>結果</th><th>単位</th><th>判定</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
