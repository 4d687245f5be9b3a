"""ADT messages (patient, visits, stays, allergies) and the diagnosis history PPR-01."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from hl7wire import components, segment
from synthetic import tables
from synthetic.model import Event
from synthetic.ssmix2.layout import NO_DATE, NO_DEPARTMENT, NO_ORDER
from synthetic.ssmix2.segments import (
    NO_VISIT,
    Built,
    Encounter,
    MessageContext,
    Visit,
    day,
    evn,
    join,
    msh,
    pid,
    pv1,
    ts,
)
from synthetic.ssmix2.text import esc


# -- ADT ----------------------------------------------------------------------------------------------
def _adt(
    ctx: MessageContext,
    event: Event,
    enc: Encounter,
    data_type: str,
    message_type: str,
    care: str,
    *,
    occurred: bool = False,
    pv2: str | None = None,
    visit: Visit = NO_VISIT,
) -> Built:
    segs = [msh(ctx, event, message_type), evn(event, occurred), pid(ctx, event), pv1(ctx, event, enc, visit)]
    if pv2 is not None:
        segs.append(pv2)
    dept = NO_DEPARTMENT if data_type == "ADT-00" else (event.department or NO_DEPARTMENT)
    return Built(data_type, care, NO_ORDER, dept, join(segs))


def pv2(*, expected_admit: dt.datetime | None = None, expected_discharge: dt.datetime | None = None) -> str:
    fields = [""] * 9
    if expected_admit is not None:
        fields[7] = ts(expected_admit)
    if expected_discharge is not None:
        fields[8] = ts(expected_discharge)
    return segment("PV2", *fields)


def adt_00(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, Encounter(), "ADT-00", "ADT^A08^ADT_A01", NO_DATE)


def adt_01(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(
        ctx, event, enc, "ADT-01", "ADT^A54^ADT_A54", NO_DATE, visit=Visit(attending=event.payload.get("to"))
    )


def adt_12(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(
        ctx, event, Encounter(), "ADT-12", "ADT^A04^ADT_A01", day(event.time), visit=Visit(admit=event.time)
    )


def adt_21(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    expected = enc.admitted or event.time
    return _adt(
        ctx, event, Encounter(), "ADT-21", "ADT^A14^ADT_A05", day(expected), pv2=pv2(expected_admit=expected)
    )


def adt_22(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, enc, "ADT-22", "ADT^A01^ADT_A01", day(enc.admitted or event.time))


def adt_31(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, enc, "ADT-31", "ADT^A21^ADT_A21", day(event.time), occurred=True)


def adt_32(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    return _adt(ctx, event, enc, "ADT-32", "ADT^A22^ADT_A21", day(event.time), occurred=True)


def adt_41(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    planned = dt.datetime.fromisoformat(event.payload["at"]) if "at" in event.payload else event.time
    return _adt(ctx, event, enc, "ADT-41", "ADT^A15^ADT_A15", day(planned), pv2=pv2(expected_admit=planned))


def adt_42(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    prior = components(esc(enc.prior_ward), "", "", "", "", "N") if enc.prior_ward else ""
    return _adt(
        ctx,
        event,
        enc,
        "ADT-42",
        "ADT^A02^ADT_A02",
        day(event.time),
        occurred=True,
        visit=Visit(prior_location=prior),
    )


def adt_51(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    expected = enc.discharged or event.time
    return _adt(
        ctx, event, enc, "ADT-51", "ADT^A16^ADT_A16", day(expected), pv2=pv2(expected_discharge=expected)
    )


def adt_52(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    # PV1-36 is an IS field (HL7 table 0112): 01 home, 02 transferred to another hospital, 20 expired
    if event.payload.get("disposition") == "death":
        disposition = "20"
    elif event.payload.get("to"):
        disposition = "02"
    else:
        disposition = "01"
    return _adt(
        ctx,
        event,
        enc,
        "ADT-52",
        "ADT^A03^ADT_A03",
        day(event.time),
        visit=Visit(discharge=event.time, disposition=disposition),
    )


def adt_61(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    p = event.payload
    kinds = {"DA": "薬剤アレルギー", "FA": "食物アレルギー", "EA": "環境アレルギー", "MA": "その他アレルギー"}
    severities = {"SV": "重度", "MO": "中等度", "MI": "軽度"}
    allergen_code = "RHA" + hashlib.sha1(p["name"].encode()).hexdigest()[:6].upper()
    iam = segment(
        "IAM",
        "1",
        components(p["type"], kinds[p["type"]], "HL70127"),
        components(allergen_code, esc(p["name"]), "99RHA"),
        components(p["severity"], severities[p["severity"]], "HL70128"),
        "",
        "A^追加^HL70323",
        "",
        "",
        "",
        "",
        f"{event.time:%Y%m}",
    )
    segs = [msh(ctx, event, "ADT^A60^ADT_A60"), evn(event), pid(ctx, event), pv1(ctx, event, enc), iam]
    return Built("ADT-61", NO_DATE, NO_ORDER, event.department or NO_DEPARTMENT, join(segs))


# -- diagnoses ----------------------------------------------------------------------------------------
#: MEDIS 病名管理番号 of 未コード化傷病名 (uncoded disease name; レセプト電算処理コード 0000999). Source:
#: nhoHQ/SSMIX2_support_documents doc/unspecified_icd10.md @2e17bb20 ("20084317は未コード化傷病名（レセプト
#: 電算処理コード：0000999）に対応する病名管理" — written ``20084317^【病名】^MDCDX2`` with the disease's
#: own name as text). The 0000999 of the brief is the receipt code, 7 digits, which ZPR-2 (8-digit
#: 管理番号, spec §5.2) cannot hold; 20084317 is the same concept in the 管理番号 scheme.
UNCODED_DISEASE = "20084317"


def disease_number(dx: tables.Diagnosis) -> str:
    """The diagnosis's verified 病名管理番号, or the uncoded-disease number where none was verified."""
    return dx.medis_code or UNCODED_DISEASE


def ppr_01(ctx: MessageContext, event: Event, enc: Encounter, _: Any) -> Built:
    dx_table = tables.diagnoses()
    segs = [msh(ctx, event, "PPR^ZD1^PPR_ZD1"), pid(ctx, event), pv1(ctx, event, enc)]
    for state in sorted(ctx.diagnoses.values(), key=lambda s: s.instance):
        dx = dx_table[state.key]
        suspected = state.status == "suspected"
        name = dx.name + ("の疑い" if suspected else "")
        number = disease_number(dx)
        timing = ["O", "外来時", "JHSD0004"] if state.outpatient else []
        prb = [""] * 18
        prb[0] = "UP" if state.resolved else "AD"
        prb[1] = ts(state.updated)
        prb[2] = components(number, esc(name), "MDCDX2")
        prb[3] = f"{state.instance:04d}"
        prb[6] = ts(state.recorded)
        prb[8] = state.resolved.replace("-", "")
        prb[9] = components(dx.icd10, "", "I10", *timing)
        prb[15] = state.onset.replace("-", "")
        if state.main:
            prb[17] = "1^主診断^JHSD0007"
        segs.append(segment("PRB", *prb))
        # ZPR-2 and ZPR-5 as CWE triplets, as in the guideline's PPR-01 sample (S2 sampleData).
        zpr2 = components(number, esc(dx.name), "MDCDX2")
        zpr5 = components(dx.medis_exchange, esc(dx.name), "MDCDX2") if dx.medis_exchange else ""
        segs.append(segment("ZPR", "", zpr2, "", "", zpr5, "", "疑い" if suspected else ""))
    return Built("PPR-01", NO_DATE, NO_ORDER, event.department or NO_DEPARTMENT, join(segs))
