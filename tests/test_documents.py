"""CDA R2 documents: structure, Japanese conventions, narrative facts, escaping and determinism."""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any, get_args

import pytest

from synthetic.documents import (
    DOCUMENT_TYPES,
    CdaPerson,
    DocumentKind,
    DocumentSpec,
    Dx,
    Lab,
    Org,
    PatientInfo,
    Proc,
    Rx,
    render_cda,
)

NS = {"h": "urn:hl7-org:v3"}
H = "{urn:hl7-org:v3}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
KINDS: tuple[DocumentKind, ...] = get_args(DocumentKind)
T0 = dt.datetime(2024, 4, 1, 10, 30)
CLOSING = "ご高診のほどよろしくお願い申し上げます。"


def make_spec(kind: DocumentKind = "discharge_summary", **changes: Any) -> DocumentSpec:
    spec = DocumentSpec(
        kind=kind,
        document_id=f"DOC-0001-{kind}",
        time=T0 + dt.timedelta(days=20, hours=5),
        patient=PatientInfo(
            local_id="0012345",
            id_oid="1.2.392.100495.20.3.51.11710110072",
            family="髙橋",
            given="太郎",
            family_kana="タカハシ",
            given_kana="タロウ",
            birth_date=dt.date(1948, 5, 3),
            sex="M",
            postcode="920-8530",
            address="石川県金沢市鞍月1丁目1番地",
            phone="076-225-1111",
        ),
        author=CdaPerson("D00123", "山田", "花子", "ヤマダ", "ハナコ", "04", "神経内科"),
        custodian=Org(
            "1710110072", "石川県立中央病院", "石川県金沢市鞍月東2丁目1番地", "920-8530", "076-237-8211"
        ),
        state_title="急性期治療",
        day=21,
        diagnoses=[
            Dx("アテローム血栓性脳梗塞", "I633", dt.date(2024, 4, 1), "confirmed"),
            Dx("高血圧症", "I10", None, "confirmed"),
            Dx("誤嚥性肺炎", "J690", dt.date(2024, 4, 5), "suspected"),
        ],
        procedures=[
            Proc("頭部ＭＲＩ（ＤＷＩ・ＦＬＡＩＲ・Ｔ２＊・ＭＲＡ）", T0 + dt.timedelta(hours=2)),
            Proc("頸動脈超音波検査", T0 + dt.timedelta(days=2)),
        ],
        drugs=[
            Rx("プラビックス錠７５ｍｇ", 1, "錠", "1日1回朝食後", 14),
            Rx("酸化マグネシウム錠３３０ｍｇ「ヨシダ」", 1, "錠", "1日3回毎食後", 14),
        ],
        labs=[
            Lab("CRP", "5.2", "mg/dL", "H", T0),
            Lab("CRP", "0.8", "mg/dL", "H", T0 + dt.timedelta(days=7)),
            Lab("AST(GOT)", "25", "U/L", "N", T0),
        ],
        admitted=T0,
        discharged=T0 + dt.timedelta(days=20),
        plan_title="回復期リハビリテーション",
        recipient=Org(
            "1711234567",
            "金沢西リハビリテーション病院",
            "石川県金沢市西念1丁目1番1号",
            "920-0024",
            "076-000-0000",
        )
        if kind == "referral_letter"
        else None,
        recipient_department="リハビリテーション科" if kind == "referral_letter" else "",
    )
    return dataclasses.replace(spec, **changes)


def parse(spec: DocumentSpec) -> ET.Element:
    return ET.fromstring(render_cda(spec))


def narrative(root: ET.Element) -> str:
    return "\n".join("".join(text.itertext()) for text in root.iterfind(".//h:section/h:text", NS))


def names(parent: ET.Element) -> dict[str, tuple[str, str]]:
    out = {}
    for name in parent.findall("h:name", NS):
        out[name.get("use", "")] = (name.findtext("h:family", "", NS), name.findtext("h:given", "", NS))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_header(kind: DocumentKind) -> None:
    spec = make_spec(kind)
    data = render_cda(spec)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(data)
    assert root.tag == f"{H}ClinicalDocument"
    assert root.find("h:realmCode", NS).get("code") == "JP"  # type: ignore[union-attr]
    assert root.find("h:typeId", NS).get("extension") == "POCD_HD000040"  # type: ignore[union-attr]
    assert root.find("h:templateId", NS) is not None
    assert root.find("h:id", NS).get("extension") == spec.document_id  # type: ignore[union-attr]
    code = root.find("h:code", NS)
    assert code is not None
    assert (code.get("code"), code.get("displayName")) == DOCUMENT_TYPES[kind]
    assert code.get("codeSystem") == "2.16.840.1.113883.6.1"
    assert root.findtext("h:title", None, NS) == DOCUMENT_TYPES[kind][1]
    assert root.find("h:effectiveTime", NS).get("value") == "20240421153000+0900"  # type: ignore[union-attr]
    assert root.find("h:confidentialityCode", NS).get("code") == "N"  # type: ignore[union-attr]
    assert root.find("h:languageCode", NS).get("code") == "ja-JP"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
def test_patient_author_custodian(kind: DocumentKind) -> None:
    spec = make_spec(kind)
    root = parse(spec)
    role = root.find("h:recordTarget/h:patientRole", NS)
    assert role is not None
    pid = role.find("h:id", NS)
    assert pid is not None
    assert (pid.get("root"), pid.get("extension")) == (spec.patient.id_oid, spec.patient.local_id)
    assert role.findtext("h:addr/h:postalCode", None, NS) == "920-8530"
    assert role.find("h:telecom", NS).get("value") == "tel:076-225-1111"  # type: ignore[union-attr]
    patient = role.find("h:patient", NS)
    assert patient is not None
    assert names(patient) == {"IDE": ("髙橋", "太郎"), "SYL": ("タカハシ", "タロウ")}
    assert patient.find("h:administrativeGenderCode", NS).get("code") == "M"  # type: ignore[union-attr]
    assert patient.find("h:birthTime", NS).get("value") == "19480503"  # type: ignore[union-attr]

    author = root.find("h:author/h:assignedAuthor", NS)
    assert author is not None
    aid = author.find("h:id", NS)
    assert aid is not None
    assert (aid.get("root"), aid.get("extension")) == ("1.2.392.100495.20.3.41.11710110072", "D00123")
    assert names(author.find("h:assignedPerson", NS))["IDE"] == ("山田", "花子")  # type: ignore[arg-type]
    assert author.find("h:code", NS).get("displayName") == "神経内科"  # type: ignore[union-attr]
    assert author.findtext("h:representedOrganization/h:name", None, NS) == "石川県立中央病院"
    custodian = root.find("h:custodian/h:assignedCustodian/h:representedCustodianOrganization", NS)
    assert custodian is not None
    assert custodian.findtext("h:name", None, NS) == "石川県立中央病院"
    ids = {i.get("root"): i.get("extension") for i in custodian.findall("h:id", NS)}
    assert ids == {
        "1.2.392.100495.20.3.21": "17",
        "1.2.392.100495.20.3.22": "1",
        "1.2.392.100495.20.3.23": "0110072",
    }


def test_referral_letter_recipient_and_closing() -> None:
    spec = make_spec("referral_letter")
    root = parse(spec)
    recipient = root.find("h:informationRecipient/h:intendedRecipient", NS)
    assert recipient is not None
    assert recipient.findtext("h:receivedOrganization/h:name", None, NS) == "金沢西リハビリテーション病院"
    assert "リハビリテーション科" in "".join(recipient.itertext())
    text = narrative(root)
    assert "金沢西リハビリテーション病院" in text
    assert "御侍史" in text
    assert text.rstrip().endswith(CLOSING)
    titles = [t.text for t in root.iterfind(".//h:section/h:title", NS)]
    assert titles[:3] == ["宛先", "紹介目的", "傷病名"]


def test_referral_letter_needs_recipient() -> None:
    with pytest.raises(ValueError, match="recipient"):
        render_cda(make_spec("referral_letter", recipient=None))


def test_discharge_summary_encounter_and_sections() -> None:
    root = parse(make_spec("discharge_summary"))
    times = root.find("h:componentOf/h:encompassingEncounter/h:effectiveTime", NS)
    assert times is not None
    assert times.find("h:low", NS).get("value") == "20240401103000+0900"  # type: ignore[union-attr]
    assert times.find("h:high", NS).get("value") == "20240421103000+0900"  # type: ignore[union-attr]
    titles = [t.text for t in root.iterfind(".//h:section/h:title", NS)]
    for title in ("入院時診断", "退院時診断", "主訴・入院理由", "入院後経過", "退院時処方", "今後の方針"):
        assert title in titles
    text = narrative(root)
    assert "2024年4月1日" in text
    assert "2024年4月21日" in text
    assert "回復期リハビリテーション" in text
    assert "頸動脈超音波検査" in text
    assert "CRPが5.2 mg/dLから0.8 mg/dLへ低下" in text
    assert "急性期治療" in text


def test_discharge_summary_derives_a_missing_stay() -> None:
    root = parse(make_spec("discharge_summary", admitted=None, discharged=None, day=5))
    times = root.find("h:componentOf/h:encompassingEncounter/h:effectiveTime", NS)
    assert times is not None
    assert times.find("h:low", NS).get("value") == "20240417153000+0900"  # type: ignore[union-attr]
    assert times.find("h:high", NS).get("value") == "20240421153000+0900"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
def test_narrative_holds_every_diagnosis_and_drug(kind: DocumentKind) -> None:
    spec = make_spec(kind)
    text = narrative(parse(spec))
    for dx in spec.diagnoses:
        assert dx.name in text
    for rx in spec.drugs:
        assert rx.name in text


@pytest.mark.parametrize("kind", ["discharge_summary", "referral_letter", "progress_note"])
def test_coded_entries(kind: DocumentKind) -> None:
    spec = make_spec(kind)
    root = parse(spec)
    values = root.findall(".//h:entry/h:observation/h:value", NS)
    assert [(v.get("code"), v.get("displayName")) for v in values] == [
        ("I63.3", "アテローム血栓性脳梗塞"),
        ("I10", "高血圧症"),
        ("J69.0", "誤嚥性肺炎"),
    ]
    assert {v.get("codeSystem") for v in values} == {"2.16.840.1.113883.6.3"}
    assert {v.get(XSI_TYPE) for v in values} == {"CD"}
    # every entry points at an ID in the narrative
    ids = {e.get("ID") for e in root.iter() if e.get("ID")}
    refs = {r.get("value", "")[1:] for r in root.iterfind(".//h:entry//h:reference", NS)}
    assert refs
    assert refs <= ids
    if kind != "progress_note":
        drugs = root.findall(".//h:entry/h:substanceAdministration//h:manufacturedMaterial/h:name", NS)
        assert [d.text for d in drugs] == [r.name for r in spec.drugs]


@pytest.mark.parametrize("kind", KINDS)
def test_abnormal_labs_are_named_with_values(kind: DocumentKind) -> None:
    text = narrative(parse(make_spec(kind)))
    assert "CRP 0.8 mg/dL" in text


@pytest.mark.parametrize("kind", KINDS)
def test_special_characters_are_escaped(kind: DocumentKind) -> None:
    nasty = 'A&B <"x"> \x01'
    spec = make_spec(
        kind,
        document_id='D&<"1',
        patient=dataclasses.replace(make_spec().patient, family="髙&橋", given='<太"郎>', address=nasty),
        custodian=Org("1710110072", "病院 & <診療所>", nasty, "920-8530", '076"1'),
        diagnoses=[Dx('脳梗塞 & <"疑">', "I639", None, "confirmed")],
        drugs=[Rx("薬<A>&B", 0.5, "mg", '1日1回 "朝"', 7)],
        state_title="急性期 & <治療>",
    )
    data = render_cda(spec)
    root = ET.fromstring(data)  # parses
    assert root.find("h:id", NS).get("extension") == 'D&<"1'  # type: ignore[union-attr]
    patient = root.find("h:recordTarget/h:patientRole/h:patient", NS)
    assert names(patient)["IDE"] == ("髙&橋", '<太"郎>')  # type: ignore[arg-type]
    assert root.findtext("h:recordTarget/h:patientRole/h:addr/h:streetAddressLine", None, NS) == 'A&B <"x"> '
    text = narrative(root)
    assert '脳梗塞 & <"疑">' in text
    assert "薬<A>&B" in text


def test_variant_kanji_survive_as_utf8() -> None:
    data = render_cda(make_spec("progress_note"))
    assert "髙橋".encode() in data
    root = ET.fromstring(data)
    assert root.findtext(".//h:patient/h:name[@use='IDE']/h:family", None, NS) == "髙橋"


@pytest.mark.parametrize("kind", KINDS)
def test_same_spec_same_bytes(kind: DocumentKind) -> None:
    assert render_cda(make_spec(kind)) == render_cda(make_spec(kind))


def facts(el: ET.Element) -> list[tuple[str, dict[str, str]]]:
    """Elements and attributes outside the narrative, without the document identifiers."""
    out = [(el.tag, {} if el.tag in (f"{H}id", f"{H}setId") else dict(el.attrib))]
    for child in el:
        if child.tag != f"{H}text":
            out.extend(facts(child))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_wording_varies_with_document_id_but_facts_do_not(kind: DocumentKind) -> None:
    base = parse(make_spec(kind))
    texts = set()
    for n in range(12):
        other = parse(make_spec(kind, document_id=f"DOC-{n:04d}"))
        # structural facts: same elements and coded attributes outside the narrative
        assert facts(other) == facts(base)
        text = narrative(other)
        for dx in make_spec(kind).diagnoses:
            assert dx.name in text
        texts.add(text)
    assert len(texts) > 1


def test_outpatient_progress_note_has_no_encounter() -> None:
    spec = make_spec(
        "progress_note", admitted=None, discharged=None, state_title="かかりつけ医での継続診療", day=3
    )
    root = parse(spec)
    assert root.find("h:componentOf", NS) is None
    assert "かかりつけ医での継続診療" in narrative(root)


def test_aware_times_are_written_in_jst() -> None:
    utc = dt.datetime(2024, 4, 21, 6, 30, tzinfo=dt.UTC)
    root = parse(make_spec("nursing_note", time=utc))
    assert root.find("h:effectiveTime", NS).get("value") == "20240421153000+0900"  # type: ignore[union-attr]


def test_empty_lists_render() -> None:
    for kind in KINDS:
        spec = make_spec(kind, diagnoses=[], drugs=[], labs=[], procedures=[], plan_title="")
        ET.fromstring(render_cda(spec))
