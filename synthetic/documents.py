"""Clinical documents as HL7 CDA R2 XML in Japanese, for SS-MIX2 extended storage.

Four kinds — 退院時サマリー, 診療情報提供書, 経過記録 (SOAP), 看護記録 — are rendered from plain facts
(:class:`DocumentSpec`) into a CDA R2 document (``urn:hl7-org:v3``) laid out the way Japanese CDA documents
are: realmCode JP, patient names twice (kanji ``use="IDE"``, kana ``use="SYL"``), JST timestamps, facility
identifiers from the MHLW OID arcs, and a structuredBody whose sections carry LOINC codes, a Japanese
narrative and coded entries for diagnoses (ICD-10) and prescriptions.

Identifiers and codes (verified = found in published JP/HL7 specification sources, see the report):

* Document types (LOINC, 2.16.840.1.113883.6.1): 18842-5 退院時サマリー and 57133-1 診療情報提供書 (JAMI/HL7
  Japan 文書区分コード), 11506-3 経過記録 and 34746-8 看護記録 (LOINC document ontology).
* Section codes: LOINC as listed in the FHIR ``doc-section-codes`` value set / C-CDA; some Japanese sections
  (宛先, 依頼事項, 患者の反応, 申し送り) have no LOINC equivalent and are left uncoded (code is optional).
* Patient ID root: the spec's ``id_oid`` (1.2.392.100495.20.3.51.1 + 医療機関コード).
* Author ID root: 1.2.392.100495.20.3.41.1 + 医療機関コード (医師ID namespace, MHLW 電子処方箋 OID table).
* Organizations: 都道府県番号 1.2.392.100495.20.3.21, 点数表番号 .22, 医療機関番号 (7 digits) .23.
* Department: SS-MIX統一診療科コード 1.2.392.100495.20.2.51, on ``assignedAuthor/code``.
* Diagnoses: ICD-10 2.16.840.1.113883.6.3; codes are written in the dotted WHO form (I639 → I63.9).
* [Choice] Document ID root and templateIds: no verified Japanese arc exists for generic document IDs
  (…20.3.41 is the doctor-ID namespace, …20.3.11 the prescription-number one), so both are UUID-derived
  OIDs (``2.25.<uuid5>``, ITU-T X.667): ``2.25.<uuid5(OID, "rhin.cda.document.<医療機関コード>")>`` per
  custodian, and ``2.25.<uuid5(OID, "rhin.cda.template.<kind>")>`` per kind. Globally unique and stable.

Wording varies by document, from a generator seeded with a stable hash of ``document_id``; the same spec
always renders to the same bytes. Rendering is plain string building (ElementTree is several times
slower), because hundreds of thousands of documents are rendered per world.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from synthetic.clock import JST
from synthetic.rng import stable_int

DocumentKind = Literal["discharge_summary", "referral_letter", "progress_note", "nursing_note"]

#: kind → (LOINC document type code, Japanese display name).
DOCUMENT_TYPES: dict[DocumentKind, tuple[str, str]] = {
    "discharge_summary": ("18842-5", "退院時サマリー"),
    "referral_letter": ("57133-1", "診療情報提供書"),
    "progress_note": ("11506-3", "経過記録"),
    "nursing_note": ("34746-8", "看護記録"),
}

LOINC = "2.16.840.1.113883.6.1"
ICD10 = "2.16.840.1.113883.6.3"
DEPARTMENT_CODES = "1.2.392.100495.20.2.51"
DOCTOR_ID_ARC = "1.2.392.100495.20.3.41.1"
PREFECTURE_OID = "1.2.392.100495.20.3.21"
POINT_TABLE_OID = "1.2.392.100495.20.3.22"
INSTITUTION_OID = "1.2.392.100495.20.3.23"


@dataclass(frozen=True, slots=True)
class Person:
    """A clinician (the author)."""

    staff_id: str
    family: str
    given: str
    family_kana: str
    given_kana: str
    department_code: str
    department_name: str


@dataclass(frozen=True, slots=True)
class Org:
    """A facility; ``code`` is the 10-digit 医療機関コード."""

    code: str
    name: str
    address: str
    postcode: str
    phone: str


@dataclass(frozen=True, slots=True)
class PatientInfo:
    local_id: str
    id_oid: str
    family: str
    given: str
    family_kana: str
    given_kana: str
    birth_date: dt.date
    sex: str
    postcode: str
    address: str
    phone: str


@dataclass(frozen=True, slots=True)
class Dx:
    name: str
    icd10: str
    onset: dt.date | None
    status: str  # "confirmed" | "suspected" | "resolved"


@dataclass(frozen=True, slots=True)
class Rx:
    name: str
    dose: float  # per administration (1回量)
    unit: str
    usage: str
    days: int


@dataclass(frozen=True, slots=True)
class Lab:
    name: str
    value: str
    unit: str
    flag: str  # N/H/L/A
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class Proc:
    name: str
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    kind: DocumentKind
    document_id: str
    time: dt.datetime
    patient: PatientInfo
    author: Person
    custodian: Org
    state_title: str
    day: int
    diagnoses: list[Dx]
    procedures: list[Proc] = field(default_factory=list)
    drugs: list[Rx] = field(default_factory=list)
    labs: list[Lab] = field(default_factory=list)
    admitted: dt.datetime | None = None
    discharged: dt.datetime | None = None
    plan_title: str = ""
    recipient: Org | None = None
    recipient_department: str = ""


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


def _x(text: str) -> str:
    """Escape for text and double-quoted attributes; most strings need nothing, so test before translating."""
    return text if _NEEDS_ESCAPE.search(text) is None else text.translate(_ESCAPE)


def _jst(t: dt.datetime) -> dt.datetime:
    """World times are JST; naive ones are taken as JST already."""
    return t if t.tzinfo is None else t.astimezone(JST)


def _ts(t: dt.datetime) -> str:
    t = _jst(t)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}+0900"


def _date_ts(d: dt.date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _jdate(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _md(d: dt.date) -> str:
    return f"{d.month}月{d.day}日"


def _num(v: float) -> str:
    return f"{v:g}"


def _icd(code: str) -> str:
    """ICD-10 in the dotted WHO form: Japanese masters often drop the dot (I639 → I63.9)."""
    c = code.strip()
    if len(c) > 3 and "." not in c and c[0].isalpha() and c[1:3].isdigit():
        return f"{c[:3]}.{c[3:]}"
    return c


@functools.lru_cache(maxsize=4096)
def document_root(facility_code: str) -> str:
    """The document-ID root OID of a custodian (see the module docstring for the choice)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'rhin.cda.document.{facility_code}').int}"


def _template(kind: str) -> str:
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'rhin.cda.template.{kind}').int}"


_TEMPLATES: dict[str, str] = {kind: _template(kind) for kind in DOCUMENT_TYPES}


@functools.lru_cache(maxsize=4096)
def _org_ids(code: str) -> str:
    """Facility identifiers split as in the MHLW CDA arcs: prefecture, point table, 7-digit number."""
    if len(code) == 10 and code.isdigit():
        return (
            f'<id root="{PREFECTURE_OID}" extension="{code[:2]}"/>'
            f'<id root="{POINT_TABLE_OID}" extension="{code[2]}"/>'
            f'<id root="{INSTITUTION_OID}" extension="{code[3:]}"/>'
        )
    return f'<id root="{INSTITUTION_OID}" extension="{_x(code)}"/>'


def _addr(postcode: str, address: str) -> str:
    return (
        f"<addr><postalCode>{_x(postcode)}</postalCode>"
        f"<streetAddressLine>{_x(address)}</streetAddressLine></addr>"
    )


def _tel(phone: str) -> str:
    return f'<telecom value="tel:{_x(phone)}"/>' if phone else ""


def _names(family: str, given: str, family_kana: str, given_kana: str) -> str:
    return (
        f'<name use="IDE"><family>{_x(family)}</family><given>{_x(given)}</given></name>'
        f'<name use="SYL"><family>{_x(family_kana)}</family><given>{_x(given_kana)}</given></name>'
    )


def _org_body(org: Org) -> str:
    return (
        f"{_org_ids(org.code)}<name>{_x(org.name)}</name>{_tel(org.phone)}{_addr(org.postcode, org.address)}"
    )


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _join(items: Sequence[str]) -> str:
    return "、".join(items)


def _numeric(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


# -- wording ----------------------------------------------------------------------------------------

# Presenting complaints by diagnosis keyword, most specific first.
_COMPLAINTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("くも膜下出血",), ("突然発症の激しい頭痛と嘔吐", "突然の頭痛と意識障害")),
    (
        ("後遺症", "片麻痺", "失語", "構音障害", "嚥下障害"),
        ("片麻痺と日常生活動作の低下", "歩行障害と構音障害"),
    ),
    (("一過性脳虚血",), ("一過性の片側上下肢脱力", "短時間で改善した構音障害")),
    (("出血",), ("突然の片麻痺と構音障害", "頭痛と片側上下肢の脱力")),
    (("梗塞", "塞栓"), ("片側上下肢の脱力と構音障害", "急に生じた右上下肢の麻痺", "呂律困難とふらつき")),
    (("誤嚥性肺炎",), ("発熱とむせこみ", "発熱と湿性咳嗽")),
    (("肺炎",), ("発熱、咳嗽、呼吸困難", "発熱と湿性咳嗽")),
    (("気管支", "上気道", "インフルエンザ"), ("発熱と咳嗽", "咽頭痛と発熱")),
    (("腎盂腎炎", "尿路感染", "膀胱炎"), ("発熱と排尿時痛", "発熱と腰背部痛")),
    (("膵炎",), ("心窩部から背部に放散する痛み",)),
    (("胆",), ("右季肋部痛と発熱", "心窩部痛と発熱")),
    (("虫垂炎",), ("右下腹部痛",)),
    (("イレウス",), ("腹部膨満と嘔吐",)),
    (("骨折",), ("転倒後の疼痛と歩行困難", "転倒後からの強い痛み")),
    (("心筋梗塞",), ("胸痛と冷汗",)),
    (("心不全",), ("労作時の息切れと下腿浮腫", "呼吸困難と体重増加")),
    (("潰瘍",), ("心窩部痛と黒色便",)),
    (("胃腸炎", "大腸炎"), ("下痢と嘔吐",)),
    (("脱水",), ("食思不振と倦怠感",)),
    (("敗血症",), ("発熱と意識レベルの低下",)),
    (("肝", "ＨＢＶ", "ＨＣＶ"), ("肝機能異常", "全身倦怠感と肝機能障害")),
    (("糖尿病",), ("血糖コントロール不良",)),
    (("高血圧",), ("家庭血圧の高値",)),
)

_FEVERISH = ("炎", "感染", "敗血症", "インフルエンザ")


def _complaint(name: str, rng: random.Random) -> str:
    for keys, options in _COMPLAINTS:
        if any(k in name for k in keys):
            return rng.choice(options)
    return f"{name}の精査加療"


def _dx_label(d: Dx) -> str:
    if d.status == "suspected":
        return f"{d.name}の疑い"
    if d.status == "resolved":
        return f"{d.name}（治癒）"
    return d.name


def _lab_text(lab: Lab) -> str:
    mark = {"H": "（高値）", "L": "（低値）", "A": "（異常）"}.get(lab.flag, "")
    return f"{lab.name} {lab.value}{' ' + lab.unit if lab.unit else ''}{mark}"


def _lab_trends(labs: Sequence[Lab]) -> list[str]:
    """One phrase per lab measured more than once: the first and last values and the direction."""
    series: dict[str, list[Lab]] = {}
    for lab in sorted(labs, key=lambda v: v.time):
        series.setdefault(lab.name, []).append(lab)
    out: list[str] = []
    for name, values in series.items():
        if len(values) < 2:
            continue
        first, last = values[0], values[-1]
        a, b = _numeric(first.value), _numeric(last.value)
        unit = f" {last.unit}" if last.unit else ""
        if a is None or b is None or a == b:
            out.append(f"{name}は{last.value}{unit}前後で推移")
        else:
            out.append(f"{name}が{first.value}{unit}から{last.value}{unit}へ{'上昇' if b > a else '低下'}")
    return out


def _latest_abnormal(labs: Sequence[Lab]) -> list[Lab]:
    """The latest result of each test, if it is out of range."""
    latest: dict[str, Lab] = {}
    for lab in sorted(labs, key=lambda v: v.time):
        latest[lab.name] = lab
    return [lab for lab in latest.values() if lab.flag != "N"]


def _vitals(rng: random.Random, feverish: bool) -> tuple[str, str, str, str, str]:
    """Plausible vital signs (body temperature, BP, pulse, SpO2, respiration) as display strings."""
    bt = rng.uniform(37.4, 38.4) if feverish else rng.uniform(36.1, 37.1)
    sys_bp = rng.randint(106, 152)
    return (
        f"{bt:.1f}℃",
        f"{sys_bp}/{rng.randint(58, min(96, sys_bp - 30))}mmHg",
        f"{rng.randint(60, 96)}回/分",
        f"{rng.randint(94, 99)}%",
        f"{rng.randint(14, 20)}回/分",
    )


# -- XML building blocks ------------------------------------------------------------------------------


def _section(title: str, text: str, code: tuple[str, str] | None = None, entries: str = "") -> str:
    coded = (
        f'<code code="{code[0]}" codeSystem="{LOINC}" codeSystemName="LOINC" displayName="{code[1]}"/>'
        if code
        else ""
    )
    return (
        f"<component><section>{coded}<title>{title}</title><text>{text}</text>{entries}</section></component>"
    )


def _paras(lines: Sequence[str]) -> str:
    return "".join(f"<paragraph>{_x(line)}</paragraph>" for line in lines)


def _list(items: Sequence[str]) -> str:
    return "<list>" + "".join(f"<item>{_x(i)}</item>" for i in items) + "</list>"


def _dx_items(dxs: Sequence[Dx], prefix: str, with_ids: bool) -> str:
    out = ["<list>"]
    for i, d in enumerate(dxs, 1):
        role = "主病名" if i == 1 else "副病名"
        onset = f"　発症日：{_jdate(d.onset)}" if d.onset else ""
        body = f"{role}：{_x(_dx_label(d))}（{_x(_icd(d.icd10))}）{onset}"
        out.append(
            f'<item><content ID="{prefix}{i}">{body}</content></item>' if with_ids else f"<item>{body}</item>"
        )
    out.append("</list>")
    return "".join(out)


def _dx_entries(dxs: Sequence[Dx], prefix: str) -> str:
    out: list[str] = []
    for i, d in enumerate(dxs, 1):
        low = f'<low value="{_date_ts(d.onset)}"/>' if d.onset else '<low nullFlavor="UNK"/>'
        high = '<high nullFlavor="UNK"/>' if d.status == "resolved" else ""
        out.append(
            '<entry><observation classCode="OBS" moodCode="EVN">'
            f'<code code="29308-4" codeSystem="{LOINC}" codeSystemName="LOINC" displayName="Diagnosis"/>'
            f'<text><reference value="#{prefix}{i}"/></text><statusCode code="completed"/>'
            f"<effectiveTime>{low}{high}</effectiveTime>"
            f'<value xsi:type="CD" code="{_x(_icd(d.icd10))}" codeSystem="{ICD10}" codeSystemName="ICD-10"'
            f' displayName="{_x(d.name)}"/></observation></entry>'
        )
    return "".join(out)


def _rx_table(drugs: Sequence[Rx], prefix: str) -> str:
    rows = "".join(
        f'<tr ID="{prefix}{i}"><td>{_x(r.name)}</td><td>1回{_num(r.dose)}{_x(r.unit)}</td>'
        f"<td>{_x(r.usage)}</td><td>{r.days}日分</td></tr>"
        for i, r in enumerate(drugs, 1)
    )
    return (
        "<table><thead><tr><th>薬剤名</th><th>用量</th><th>用法</th><th>日数</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


# Units that are valid UCUM as written; 錠, 包, A (ampoule), 単位 … stay in the narrative only.
_UCUM_UNITS = frozenset({"mg", "g", "kg", "ug", "mL", "L"})


def _rx_entries(drugs: Sequence[Rx], prefix: str, start: dt.date) -> str:
    out: list[str] = []
    for i, r in enumerate(drugs, 1):
        end = start + dt.timedelta(days=max(r.days - 1, 0))
        unit = f' unit="{r.unit}"' if r.unit in _UCUM_UNITS else ""
        out.append(
            '<entry><substanceAdministration classCode="SBADM" moodCode="INT">'
            f'<text><reference value="#{prefix}{i}"/></text><statusCode code="active"/>'
            f'<effectiveTime xsi:type="IVL_TS"><low value="{_date_ts(start)}"/>'
            f'<high value="{_date_ts(end)}"/></effectiveTime><doseQuantity value="{_num(r.dose)}"{unit}/>'
            f"<consumable><manufacturedProduct><manufacturedMaterial><name>{_x(r.name)}</name>"
            "</manufacturedMaterial></manufacturedProduct></consumable></substanceAdministration></entry>"
        )
    return "".join(out)


def _lab_table(labs: Sequence[Lab]) -> str:
    rows = "".join(
        f"<tr><td>{_md(_jst(lab.time).date())}</td><td>{_x(lab.name)}</td>"
        f"<td>{_x(lab.value)}</td><td>{_x(lab.unit)}</td><td>{_x(lab.flag)}</td></tr>"
        for lab in sorted(labs, key=lambda v: v.time)
    )
    return (
        "<table><thead><tr><th>検査日</th><th>項目</th><th>結果</th><th>単位</th><th>判定</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


# -- narratives per kind ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Ctx:
    """Facts derived once per document and shared by the narrative builders."""

    spec: DocumentSpec
    rng: random.Random
    main: str
    complaint: str
    doctor: str
    admitted: dt.datetime | None
    discharged: dt.datetime | None


def _course(c: _Ctx, *, until: str) -> list[str]:
    """The clinical course (入院後経過 / 経過): admission, procedures, lab trends, state and day count."""
    s, rng = c.spec, c.rng
    lines: list[str] = []
    if c.admitted is not None:
        adm = _jdate(c.admitted.date())
        lines.append(
            rng.choice(
                (
                    f"{adm}、{c.complaint}を主訴に来院し、{c.main}と診断され同日入院となった。",
                    f"{c.complaint}のため{adm}に当院{s.author.department_name}へ入院。精査の結果{c.main}と診断した。",
                    f"{adm}に{c.main}の診断で{s.author.department_name}に入院となった。"
                    f"入院時は{c.complaint}を認めていた。",
                )
            )
        )
    else:
        lines.append(
            rng.choice(
                (
                    f"{c.main}にて当院{s.author.department_name}で{s.state_title}を行っている。",
                    f"{c.complaint}を契機に{c.main}と診断され、当院で{s.state_title}中である。",
                )
            )
        )
    others = [_dx_label(d) for d in s.diagnoses[1:]]
    if others:
        lines.append(
            rng.choice(
                (
                    f"併存症として{_join(others)}があり、従来の治療を継続した。",
                    f"{_join(others)}を合併しており、並行して管理を行った。",
                )
            )
        )
    if s.procedures:
        procs = [f"{_md(_jst(p.time).date())}に{p.name}" for p in sorted(s.procedures, key=lambda p: p.time)]
        lines.append(
            rng.choice(
                (
                    f"検査として{_join(procs)}を施行し、所見を踏まえて治療方針を決定した。",
                    f"{_join(procs)}を実施した。結果は治療方針の決定と効果判定に用いた。",
                )
            )
        )
    trends = _lab_trends(s.labs)
    if trends:
        lines.append(f"血液検査では、{_join(trends)}した。")
    abnormal = _latest_abnormal(s.labs)
    if abnormal:
        found = _join([_lab_text(v) for v in abnormal])
        lines.append(
            rng.choice(
                (
                    f"直近の検査で{found}を認め、引き続き経過観察を要する。",
                    f"なお{found}であり、今後も再検が必要である。",
                )
            )
        )
    elif s.labs:
        lines.append("直近の血液検査に明らかな異常値は認めない。")
    lines.append(
        rng.choice(
            (
                f"{s.state_title}として{s.day}日目の時点で全身状態は安定しており、{until}",
                f"{s.state_title}開始から{s.day}日が経過し、症状は改善傾向にある。{until}",
                f"{s.day}日間の{s.state_title}により状態は安定した。{until}",
            )
        )
    )
    return lines


def _discharge_summary(c: _Ctx) -> str:
    s, rng = c.spec, c.rng
    assert c.admitted is not None
    assert c.discharged is not None
    adm, dis = c.admitted.date(), c.discharged.date()
    stay = (dis - adm).days + 1
    at_admission = [d for d in s.diagnoses if d.onset is None or d.onset <= adm] or s.diagnoses[:1]
    period = _list(
        [
            f"入院日：{_jdate(adm)}",
            f"退院日：{_jdate(dis)}（在院日数 {stay}日）",
            f"診療科：{s.author.department_name}　主治医：{c.doctor}",
            f"病期：{s.state_title}（入院{s.day}日目に退院）",
        ]
    )
    reason = _paras(
        [
            f"主訴：{c.complaint}",
            rng.choice(
                (
                    f"入院理由：{c.complaint}を認め、{c.main}の加療目的に入院となった。",
                    f"入院理由：{c.main}に対する精査および治療のため。",
                )
            ),
        ]
    )
    until = rng.choice((f"{_jdate(dis)}に退院とした。", f"{_jdate(dis)}退院となった。"))
    course = _paras(_course(c, until=until))
    if s.drugs:
        rx = _rx_table(s.drugs, "rx") + _paras([f"以上{len(s.drugs)}剤を処方した。"])
    else:
        rx = _paras(["退院時処方なし。"])
    plan = _plan_lines(c)
    return "".join(
        (
            _section("入院期間", period),
            _section(
                "入院時診断",
                _dx_items(at_admission, "adx", False),
                ("46241-6", "Hospital admission diagnosis"),
            ),
            _section(
                "退院時診断",
                _dx_items(s.diagnoses, "dx", True),
                ("11535-2", "Hospital discharge diagnosis"),
                _dx_entries(s.diagnoses, "dx"),
            ),
            _section("主訴・入院理由", reason, ("10154-3", "Chief complaint")),
            _section("入院後経過", course, ("8648-8", "Hospital course")),
            _section(
                "退院時処方",
                rx,
                ("10183-2", "Hospital discharge medications"),
                _rx_entries(s.drugs, "rx", dis),
            ),
            _section("今後の方針", _paras(plan), ("18776-5", "Plan of care")),
        )
    )


def _plan_lines(c: _Ctx) -> list[str]:
    s, rng = c.spec, c.rng
    lines: list[str] = []
    where = s.recipient.name if s.recipient else ""
    dept = f"（{s.recipient_department}）" if s.recipient and s.recipient_department else ""
    if s.plan_title and where:
        lines.append(
            rng.choice(
                (
                    f"退院後は{where}{dept}へご紹介のうえ、{s.plan_title}とする方針である。",
                    f"{where}{dept}へ診療情報を提供し、{s.plan_title}へ移行する予定。",
                )
            )
        )
    elif s.plan_title:
        lines.append(f"今後は{s.plan_title}へ移行する方針である。")
    else:
        lines.append(f"当院{s.author.department_name}外来にて経過観察を継続する。")
    if s.drugs:
        lines.append(
            rng.choice(
                (
                    "退院時処方を継続し、服薬状況を確認していただく。",
                    "処方内容は退院時処方のとおり継続とする。",
                )
            )
        )
    if _latest_abnormal(s.labs):
        lines.append(
            rng.choice(("異常値の残る検査項目は次回受診時に再検する。", "検査値の推移を外来で確認する。"))
        )
    return lines


def _referral_letter(c: _Ctx) -> str:
    s, rng = c.spec, c.rng
    assert s.recipient is not None
    dept = s.recipient_department or "ご担当科"
    address = _paras(
        [
            s.recipient.name,
            f"{dept}　ご担当先生　御侍史",
            f"紹介元：{s.custodian.name}　{s.author.department_name}　{c.doctor}",
        ]
    )
    plan = s.plan_title or "継続診療"
    purpose = _paras(
        [
            rng.choice(("平素より大変お世話になっております。", "いつも大変お世話になっております。")),
            rng.choice(
                (
                    f"{c.main}の患者様について、{plan}をお願いいたしたくご紹介申し上げます。",
                    f"{c.main}にて当院で加療中の患者様です。{plan}をお願いしたく、ご紹介いたします。",
                )
            ),
        ]
    )
    others = s.diagnoses[1:]
    history = (
        _list([_dx_label(d) + (f"（{_jdate(d.onset)}発症）" if d.onset else "") for d in others])
        if others
        else _paras(["特記すべき既往歴なし。"])
    )
    until = (
        rng.choice(
            (
                f"{_jdate(c.discharged.date())}に退院予定である。",
                f"{_jdate(c.discharged.date())}退院となった。",
            )
        )
        if c.discharged is not None
        else "現在も外来で経過を診ている。"
    )
    course = _paras(_course(c, until=until))
    rx = _rx_table(s.drugs, "rx") if s.drugs else _paras(["現在、定期処方はありません。"])
    if s.labs or s.procedures:
        tests = (_lab_table(s.labs) if s.labs else "") + (
            _list(
                [
                    f"{_jdate(_jst(p.time).date())}　{p.name}"
                    for p in sorted(s.procedures, key=lambda p: p.time)
                ]
            )
            if s.procedures
            else ""
        )
        abnormal = _latest_abnormal(s.labs)
        if abnormal:
            tests += _paras([f"注目すべき所見：{_join([_lab_text(v) for v in abnormal])}"])
    else:
        tests = _paras(["特記すべき検査結果はありません。"])
    request = [
        rng.choice(
            (
                f"お忙しいところ恐縮ですが、{plan}についてご高配を賜りますようお願い申し上げます。",
                f"{plan}につきまして、よろしくご指導のほどお願いいたします。",
            )
        ),
        rng.choice(
            (
                "処方内容は上記のとおりです。ご不明な点がございましたら当院までお問い合わせください。",
                "画像および検査結果の詳細は別途お送りいたします。",
            )
        ),
        "ご高診のほどよろしくお願い申し上げます。",
    ]
    start = (c.discharged or s.time).date()
    return "".join(
        (
            _section("宛先", address),
            _section("紹介目的", purpose, ("42349-1", "Reason for referral")),
            _section(
                "傷病名",
                _dx_items(s.diagnoses, "dx", True),
                ("11450-4", "Problem list"),
                _dx_entries(s.diagnoses, "dx"),
            ),
            _section("既往歴・併存症", history, ("11348-0", "History of past illness")),
            _section("現病歴・経過", course, ("10164-2", "History of present illness")),
            _section(
                "現在の処方", rx, ("10160-0", "History of medication use"), _rx_entries(s.drugs, "rx", start)
            ),
            _section("検査結果", tests, ("30954-2", "Relevant diagnostic tests/laboratory data")),
            _section("依頼事項", _paras(request)),
        )
    )


def _progress_note(c: _Ctx) -> str:
    s, rng = c.spec, c.rng
    improving = s.day > 2
    subjective = [
        rng.choice(
            (
                f"{c.complaint}は{'入院時より軽快している' if improving else 'まだ残っている'}とのこと。",
                f"「{'だいぶ楽になりました' if improving else 'まだつらいです'}」との訴えあり。",
                f"{'症状は落ち着いている' if improving else '症状の改善は乏しい'}と本人より。",
            )
        ),
        rng.choice(
            ("夜間は良眠できている。", "食事は7割程度摂取。", "疼痛の訴えなし。", "夜間に数回覚醒あり。")
        ),
    ]
    bt, bp, hr, spo2, rr = _vitals(rng, not improving and any(k in c.main for k in _FEVERISH))
    objective = [f"体温 {bt}、血圧 {bp}、脈拍 {hr}、SpO2 {spo2}、呼吸数 {rr}。"]
    objective.append(rng.choice(("意識清明。", "意識清明、会話良好。", "表情穏やか。")))
    abnormal = _latest_abnormal(s.labs)
    if abnormal:
        objective.append(f"検査：{_join([_lab_text(v) for v in abnormal])}。")
    elif s.labs:
        objective.append("検査：明らかな異常値なし。")
    today = [p for p in s.procedures if _jst(p.time).date() == _jst(s.time).date()]
    if today:
        objective.append(f"本日{_join([p.name for p in today])}を施行。")
    assessment_items = [
        f"#{i} {_dx_label(d)}："
        + (
            rng.choice(("改善傾向。", "経過良好。", "安定している。"))
            if improving
            else rng.choice(("治療継続中。", "経過観察を要する。"))
        )
        for i, d in enumerate(s.diagnoses, 1)
    ]
    assessment_items.append(f"{s.state_title} {s.day}日目。")
    plan = [rng.choice(("現治療を継続。", "現行の治療方針を継続する。"))]
    if s.drugs:
        plan.append(f"{_join([r.name for r in s.drugs])}を継続。")
    if abnormal:
        plan.append(f"{_join([v.name for v in abnormal])}を再検する。")
    if s.plan_title:
        plan.append(f"{s.plan_title}に向けて調整を進める。")
    return "".join(
        (
            _section("S（主観的情報）", _paras(subjective), ("61150-9", "Subjective")),
            _section("O（客観的情報）", _paras(objective), ("61149-1", "Objective")),
            _section(
                "A（評価）",
                _dx_items(s.diagnoses, "dx", True) + _paras(assessment_items),
                ("51848-0", "Assessment"),
                _dx_entries(s.diagnoses, "dx"),
            ),
            _section("P（計画）", _paras(plan), ("18776-5", "Plan of care")),
        )
    )


_STROKE_CARE = ("2時間毎の体位変換", "口腔ケア", "嚥下状態に合わせた食事介助", "麻痺側上下肢の良肢位保持")
_GENERAL_CARE = ("全身清拭", "転倒予防のための環境整備", "排泄介助", "点滴刺入部の観察", "歩行時の見守り")


def _nursing_note(c: _Ctx) -> str:
    s, rng = c.spec, c.rng
    feverish = s.day <= 2 and any(k in c.main for k in _FEVERISH)
    bt, bp, hr, spo2, rr = _vitals(rng, feverish)
    observe = [
        f"{_join([_dx_label(d) for d in s.diagnoses]) or c.main}にて{s.state_title}中（{s.day}日目）。",
        f"体温 {bt}、血圧 {bp}、脈拍 {hr}・整、SpO2 {spo2}（室内気）、呼吸数 {rr}。",
        rng.choice(
            ("意識清明。顔色良好。", "意識清明、疼痛の訴えなし。", "倦怠感の訴えあるが、表情は穏やか。")
        ),
    ]
    abnormal = _latest_abnormal(s.labs)
    if abnormal:
        observe.append(f"検査値：{_join([_lab_text(v) for v in abnormal])}。")
    stroke = any(k in c.main for k in ("脳", "麻痺", "嚥下", "構音", "失語"))
    pool = _STROKE_CARE + _GENERAL_CARE[:2] if stroke else _GENERAL_CARE
    care = rng.sample(pool, k=min(3, len(pool)))
    if s.drugs:
        care.append(f"服薬管理（{_join([r.name for r in s.drugs])}）")
    reaction = [
        rng.choice(
            (
                "ケアに対して協力的で、「ありがとう」との発言あり。",
                "説明に対してうなずきがあり、理解は良好。",
                "やや疲労感の訴えあり、休息を促した。",
                "表情穏やかで、自ら体動を試みる様子がみられる。",
            )
        )
    ]
    handover = [
        rng.choice(
            ("バイタルサインの変動に注意。", "転倒リスクあり、離床時は付き添い。", "夜間の睡眠状況を観察。")
        ),
    ]
    if abnormal:
        handover.append(f"{_join([v.name for v in abnormal])}の異常値あり、次回採血結果を確認。")
    if s.plan_title:
        handover.append(f"{s.plan_title}に向けた調整中。")
    return "".join(
        (
            _section("観察項目", _paras(observe), ("8716-3", "Vital signs")),
            _section("ケア内容", _list(care), ("62387-6", "Interventions provided")),
            _section("患者の反応", _paras(reaction)),
            _section("申し送り", _paras(handover)),
        )
    )


# -- the document -------------------------------------------------------------------------------------


def render_cda(spec: DocumentSpec) -> bytes:
    """Render one document as UTF-8 CDA R2 XML (with the XML declaration). Deterministic in ``spec``."""
    if spec.kind not in DOCUMENT_TYPES:
        raise ValueError(f"unknown document kind {spec.kind!r}")
    if spec.kind == "referral_letter" and spec.recipient is None:
        raise ValueError("a referral letter needs a recipient")
    rng = random.Random(stable_int("cda-wording", spec.document_id))
    admitted, discharged = spec.admitted, spec.discharged
    if spec.kind == "discharge_summary":
        # A discharge summary always spans a stay: derive what is missing from the document time and day.
        discharged = discharged or spec.time
        admitted = admitted or discharged - dt.timedelta(days=max(spec.day - 1, 0))
    first = spec.diagnoses[0] if spec.diagnoses else None
    main = "原疾患" if first is None else f"{first.name}の疑い" if first.status == "suspected" else first.name
    ctx = _Ctx(
        spec=spec,
        rng=rng,
        main=main,
        complaint=_complaint(main, rng),
        doctor=f"{spec.author.family}　{spec.author.given}",
        admitted=admitted,
        discharged=discharged,
    )
    builders = {
        "discharge_summary": _discharge_summary,
        "referral_letter": _referral_letter,
        "progress_note": _progress_note,
        "nursing_note": _nursing_note,
    }
    body = builders[spec.kind](ctx)

    code, title = DOCUMENT_TYPES[spec.kind]
    now = _ts(spec.time)
    p, a, org = spec.patient, spec.author, spec.custodian
    sex = p.sex if p.sex in ("M", "F") else "UN"
    root = document_root(org.code)
    doc_id = _x(spec.document_id)
    author_id = f'<id root="{DOCTOR_ID_ARC}{_x(org.code)}" extension="{_x(a.staff_id)}"/>'
    author_names = _names(a.family, a.given, a.family_kana, a.given_kana)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<realmCode code="JP"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        f'<templateId root="{_TEMPLATES[spec.kind]}"/>'
        f'<id root="{root}" extension="{doc_id}"/>'
        f'<code code="{code}" codeSystem="{LOINC}" codeSystemName="LOINC" displayName="{title}"/>'
        f"<title>{title}</title>"
        f'<effectiveTime value="{now}"/>'
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>'
        '<languageCode code="ja-JP"/>'
        f'<setId root="{root}" extension="{doc_id}"/><versionNumber value="1"/>',
        # recordTarget
        f'<recordTarget><patientRole><id root="{_x(p.id_oid)}" extension="{_x(p.local_id)}"/>'
        f"{_addr(p.postcode, p.address)}{_tel(p.phone)}<patient>"
        f"{_names(p.family, p.given, p.family_kana, p.given_kana)}"
        f'<administrativeGenderCode code="{sex}" codeSystem="2.16.840.1.113883.5.1"/>'
        f'<birthTime value="{_date_ts(p.birth_date)}"/></patient></patientRole></recordTarget>',
        # author
        f'<author><time value="{now}"/><assignedAuthor>{author_id}'
        f'<code code="{_x(a.department_code)}" codeSystem="{DEPARTMENT_CODES}" codeSystemName="SS-MIX2診療科"'
        f' displayName="{_x(a.department_name)}"/>'
        f"<assignedPerson>{author_names}</assignedPerson>"
        f"<representedOrganization>{_org_body(org)}</representedOrganization></assignedAuthor></author>",
        # custodian
        "<custodian><assignedCustodian><representedCustodianOrganization>"
        f"{_org_body(org)}</representedCustodianOrganization></assignedCustodian></custodian>",
    ]
    if spec.recipient is not None:
        dept = spec.recipient_department
        parts.append(
            '<informationRecipient typeCode="PRCP"><intendedRecipient>'
            + (
                f"<informationRecipient><name>{_x(dept)}　ご担当先生</name></informationRecipient>"
                if dept
                else ""
            )
            + f"<receivedOrganization>{_org_body(spec.recipient)}</receivedOrganization>"
            "</intendedRecipient></informationRecipient>"
        )
    parts.append(
        f'<legalAuthenticator><time value="{now}"/><signatureCode code="S"/>'
        f"<assignedEntity>{author_id}<assignedPerson>{author_names}</assignedPerson></assignedEntity>"
        "</legalAuthenticator>"
    )
    if admitted is not None:
        high = f'<high value="{_ts(discharged)}"/>' if discharged is not None else ""
        parts.append(
            "<componentOf><encompassingEncounter>"
            '<code code="IMP" codeSystem="2.16.840.1.113883.5.4" displayName="inpatient encounter"/>'
            f'<effectiveTime><low value="{_ts(admitted)}"/>{high}</effectiveTime>'
            "</encompassingEncounter></componentOf>"
        )
    parts.append(f"<component><structuredBody>{body}</structuredBody></component></ClinicalDocument>\n")
    return "".join(parts).encode("utf-8", "replace")
