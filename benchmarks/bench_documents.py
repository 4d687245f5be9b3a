"""Benchmark: render CDA documents on one core and compare with the budget of 3,000 documents/s.

A full-scale world renders about 500k documents, so rendering must stay a small part of generation.
Specs are realistic in size (3 diagnoses, 4-6 drugs, ~10 labs, 2 procedures) and cycle through the four
kinds; building the specs is not timed.

    .venv/bin/python benchmarks/bench_documents.py [--count N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import get_args

from synthetic.documents import (
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

TARGET_PER_S = 3000.0


def make_specs(count: int) -> list[DocumentSpec]:
    kinds: tuple[DocumentKind, ...] = get_args(DocumentKind)
    org = Org("1710110072", "石川県立中央病院", "石川県金沢市鞍月東2丁目1番地", "920-8530", "076-237-8211")
    rec = Org(
        "1711234567",
        "金沢西リハビリテーション病院",
        "石川県金沢市西念1丁目1番1号",
        "920-0024",
        "076-000-0000",
    )
    author = CdaPerson("D00123", "山田", "花子", "ヤマダ", "ハナコ", "04", "神経内科")
    t0 = dt.datetime(2024, 4, 1, 10, 30)
    dxs = [
        Dx("アテローム血栓性脳梗塞", "I633", dt.date(2024, 4, 1), "confirmed"),
        Dx("高血圧症", "I10", None, "confirmed"),
        Dx("誤嚥性肺炎", "J690", dt.date(2024, 4, 5), "suspected"),
    ]
    drugs = [
        Rx("プラビックス錠７５ｍｇ", 1, "錠", "1日1回朝食後", 14),
        Rx("ノルバスク錠５ｍｇ", 1, "錠", "1日1回朝食後", 14),
        Rx("ガスター錠２０ｍｇ", 1, "錠", "1日1回就寝前", 14),
        Rx("酸化マグネシウム錠３３０ｍｇ「ヨシダ」", 1, "錠", "1日3回毎食後", 14),
        Rx("リピトール錠１０ｍｇ", 1, "錠", "1日1回夕食後", 14),
    ]
    labs = [
        Lab(name, value, unit, flag, t0 + dt.timedelta(days=d))
        for d in (0, 7)
        for name, value, unit, flag in (
            ("CRP", "5.2" if d == 0 else "0.8", "mg/dL", "H"),
            ("WBC", "11.2" if d == 0 else "6.8", "10^3/μL", "H" if d == 0 else "N"),
            ("AST(GOT)", "25", "U/L", "N"),
            ("ALT(GPT)", "31", "U/L", "N"),
            ("クレアチニン", "1.12", "mg/dL", "H"),
        )
    ]
    procs = [
        Proc("頭部ＭＲＩ（ＤＷＩ・ＦＬＡＩＲ・Ｔ２＊・ＭＲＡ）", t0),
        Proc("頸動脈超音波検査", t0 + dt.timedelta(days=2)),
    ]
    specs: list[DocumentSpec] = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        patient = PatientInfo(
            f"{i:07d}", "1.2.392.100495.20.3.51.11710110072", "髙橋", "太郎", "タカハシ", "タロウ",
            dt.date(1948, 5, 3), "M", "920-8530", "石川県金沢市鞍月1丁目1番地", "076-225-1111",
        )  # fmt: skip
        spec = DocumentSpec(
            kind, f"DOC{i:09d}", t0 + dt.timedelta(days=20), patient, author, org, "急性期治療", 21, dxs,
            procs, drugs, labs, admitted=t0, discharged=t0 + dt.timedelta(days=20),
            plan_title="回復期リハビリテーション", recipient=rec if kind == "referral_letter" else None,
            recipient_department="リハビリテーション科",
        )  # fmt: skip
        specs.append(spec)
    return specs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    specs = make_specs(args.count)
    render_cda(specs[0])  # warm caches (OIDs, translation table)
    start = time.perf_counter()
    size = 0
    for spec in specs:
        size += len(render_cda(spec))
    elapsed = time.perf_counter() - start
    rate = len(specs) / elapsed
    print(f"documents: {len(specs)}  elapsed: {elapsed:.2f} s  mean size: {size / len(specs) / 1024:.1f} KiB")
    print(f"documents/s: {rate:,.0f}  ratio to {TARGET_PER_S:,.0f}/s: {rate / TARGET_PER_S:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
