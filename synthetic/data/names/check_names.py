#!/usr/bin/env python3
"""Standalone sanity check for the name tables in this directory (not imported by the package).

Usage: python3 check_names.py   -> exits 0 and prints a summary if all checks pass.
"""

import csv
import os
import re
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
KATAKANA = re.compile(r"^[ァ-ヶー]+$")  # full-width katakana + long-vowel mark; no middle dot
ERAS = {str(e) for e in range(1920, 2030, 10)}
SPEC = {
    "surnames.csv": ["kanji", "kana", "weight", "source"],
    "surname_variants.csv": ["kanji", "kana", "normalized", "weight", "source"],
    "given_names.csv": ["kanji", "kana", "sex", "era", "weight", "source"],
}
errors = []


def err(msg):
    errors.append(msg)


def jis_ok(s):
    try:
        s.encode("iso2022_jp")
        return True
    except UnicodeEncodeError:
        return False


def load(name):
    path = os.path.join(HERE, name)
    with open(path, "rb") as fh:
        raw = fh.read()
    if b"\r" in raw:
        err(f"{name}: contains CR (line endings must be LF)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != SPEC[name]:
        err(f"{name}: header {rows[0] if rows else None} != {SPEC[name]}")
    return [dict(zip(SPEC[name], r, strict=False)) for r in rows[1:]], rows[1:]


for name in SPEC:
    recs, raw = load(name)
    for i, r in enumerate(raw, 2):
        if len(r) != len(SPEC[name]):
            err(f"{name}:{i}: {len(r)} fields")
    dup = [r for r, c in Counter(tuple(r) for r in raw).items() if c > 1]
    if dup:
        err(f"{name}: duplicate rows {dup[:5]}")
    for i, r in enumerate(recs, 2):
        w = r.get("weight", "")
        if not re.fullmatch(r"[1-9][0-9]*", w or ""):
            err(f"{name}:{i}: weight {w!r} is not a positive integer")
        if not KATAKANA.match(r["kana"] or ""):
            err(f"{name}:{i}: kana {r['kana']!r} is not full-width katakana only")
        if not jis_ok(r["kana"]):
            err(f"{name}:{i}: kana {r['kana']!r} not encodable in iso2022_jp")
        if not r["kanji"]:
            err(f"{name}:{i}: empty kanji")
        if not r["source"].strip():
            err(f"{name}:{i}: empty source")
        if name == "surname_variants.csv":
            if jis_ok(r["kanji"]):
                err(f"{name}:{i}: {r['kanji']!r} encodes in iso2022_jp; belongs in surnames.csv")
            if not r["normalized"] or not jis_ok(r["normalized"]):
                err(f"{name}:{i}: normalized {r['normalized']!r} not encodable in iso2022_jp")
        elif not jis_ok(r["kanji"]):
            err(f"{name}:{i}: kanji {r['kanji']!r} not encodable in iso2022_jp")
        if name == "given_names.csv":
            if r["sex"] not in ("M", "F"):
                err(f"{name}:{i}: sex {r['sex']!r}")
            if r["era"] not in ERAS:
                err(f"{name}:{i}: era {r['era']!r}")
    if name == "surnames.csv":
        keys = Counter((r["kanji"], r["kana"]) for r in recs)
        if any(c > 1 for c in keys.values()):
            err(f"{name}: duplicate (kanji,kana)")
        n = len({r["kanji"] for r in recs})
        if n < 800:
            err(f"{name}: only {n} distinct surnames (< 800)")
        print(f"{name}: {len(recs)} rows, {n} distinct kanji")
    elif name == "surname_variants.csv":
        if not 10 <= len(recs) <= 20:
            err(f"{name}: {len(recs)} rows (want 10-20)")
        print(f"{name}: {len(recs)} rows")
    else:
        keys = Counter((r["kanji"], r["kana"], r["sex"], r["era"]) for r in recs)
        if any(c > 1 for c in keys.values()):
            err(f"{name}: duplicate (kanji,kana,sex,era)")
        per = Counter((r["era"], r["sex"]) for r in recs)
        for era in sorted(ERAS):
            for sex in "MF":
                if per[(era, sex)] < 40:
                    err(f"{name}: era {era} sex {sex} has {per[(era, sex)]} names (< 40)")
        print(f"{name}: {len(recs)} rows; per (era,sex) min {min(per.values())} max {max(per.values())}")

if errors:
    for e in errors:
        print("FAIL:", e)
    sys.exit(1)
print("OK")
