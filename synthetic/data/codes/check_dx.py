#!/usr/bin/env python3
"""Standalone checker for departments.csv, diagnoses.csv and procedures.csv.

Stdlib only; not imported by the rhin package.  Usage:

    python3 check_dx.py            # checks files next to this script
    python3 check_dx.py DIR        # checks files in DIR

Exit status 0 when every check passes, 1 otherwise.
"""

import csv
import os
import re
import sys

HEADERS = {
    "departments.csv": ["code", "name", "source"],
    "diagnoses.csv": ["key", "name", "icd10", "medis_code", "medis_exchange", "category", "source"],
    "procedures.csv": [
        "key",
        "kind",
        "name",
        "modality",
        "body_part",
        "jj1017",
        "local_code",
        "series",
        "images_per_series",
        "source",
    ],
}

DEPT_RE = re.compile(r"^[0-9A-Z]{2,3}$")
KEY_RE = re.compile(r"^[a-z0-9_]+$")
ICD_RE = re.compile(r"^[A-Z]\d{2}[0-9A-Z$]?$")
MEDIS_NO_RE = re.compile(r"^\d{8}$")
MEDIS_EX_RE = re.compile(r"^[0-9A-Z]{4}$")
JJ1017_RE = re.compile(r"^\d{32}$")
LOCAL_RE = re.compile(r"^RHP\d{4}$")
CATEGORIES = {"stroke", "hepatitis", "chronic", "acute", "other"}
KINDS = {"radiology", "endoscopy", "physiology"}
MODALITIES = {"CT", "MR", "US", "CR", "DX", "ES", "ECG", "XA", "RF", "NM"}
BODY_PARTS = {
    "HEAD",
    "BRAIN",
    "NECK",
    "CHEST",
    "ABDOMEN",
    "PELVIS",
    "HIP",
    "HEART",
    "STOMACH",
    "ESOPHAGUS",
    "COLON",
    "LARYNX",
    "LSPINE",
    "CSPINE",
    "TSPINE",
    "KNEE",
    "SHOULDER",
    "LIVER",
    "CAROTID",
    "WHOLEBODY",
    "EXTREMITY",
}

errors = []


def err(fname, line, msg):
    errors.append(f"{fname}:{line}: {msg}")


def encodable(s):
    try:
        s.encode("iso2022_jp")
        return True
    except UnicodeEncodeError:
        return False


def load(base, fname):
    path = os.path.join(base, fname)
    with open(path, "rb") as fb:
        raw = fb.read()
    if b"\r" in raw:
        err(fname, 0, "CR found; file must use LF line endings")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        err(fname, 0, f"not UTF-8: {e}")
        return []
    if text.startswith("\ufeff"):
        err(fname, 0, "BOM present")
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        err(fname, 0, "empty file")
        return []
    if rows[0] != HEADERS[fname]:
        err(fname, 1, f"header {rows[0]!r} != {HEADERS[fname]!r}")
    out = []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(HEADERS[fname]):
            err(fname, i, f"expected {len(HEADERS[fname])} fields, got {len(r)}")
            continue
        out.append((i, dict(zip(HEADERS[fname], r, strict=False))))
    if not out:
        err(fname, 0, "no data rows")
    return out


def check_common(fname, i, row):
    if not row["name"]:
        err(fname, i, "empty name")
    elif not encodable(row["name"]):
        err(fname, i, "name {!r} does not encode in iso2022_jp".format(row["name"]))
    if not row["source"].strip():
        err(fname, i, "empty source")


def check_keys(fname, rows):
    seen = set()
    for i, r in rows:
        k = r["key"]
        if not KEY_RE.match(k):
            err(fname, i, f"key {k!r} not lower-case ASCII [a-z0-9_]")
        if k in seen:
            err(fname, i, f"duplicate key {k!r}")
        seen.add(k)


def check_departments(base):
    f = "departments.csv"
    rows = load(base, f)
    seen = set()
    for i, r in rows:
        c = r["code"]
        if not DEPT_RE.match(c):
            err(f, i, f"department code {c!r} not 2-3 alphanumerics")
        if c in seen:
            err(f, i, f"duplicate code {c!r}")
        seen.add(c)
        check_common(f, i, r)
    for must in ("01", "9Z", "011"):
        if must not in seen:
            err(f, 0, f"expected code {must!r} missing")
    return len(rows)


def check_diagnoses(base):
    f = "diagnoses.csv"
    rows = load(base, f)
    check_keys(f, rows)
    cats = set()
    for i, r in rows:
        check_common(f, i, r)
        if not ICD_RE.match(r["icd10"]):
            err(f, i, "icd10 {!r} does not match {}".format(r["icd10"], ICD_RE.pattern))
        if r["medis_code"] and not MEDIS_NO_RE.match(r["medis_code"]):
            err(f, i, "medis_code {!r} not 8 digits".format(r["medis_code"]))
        if r["medis_exchange"] and not MEDIS_EX_RE.match(r["medis_exchange"]):
            err(f, i, "medis_exchange {!r} not 4 upper-case alphanumerics".format(r["medis_exchange"]))
        if (r["medis_code"] or r["medis_exchange"]) and "MEDIS" not in r["source"]:
            err(f, i, "MEDIS code present but source does not cite a MEDIS source")
        if r["category"] not in CATEGORIES:
            err(f, i, "category {!r} not in {}".format(r["category"], sorted(CATEGORIES)))
        cats.add(r["category"])
    for c in ("stroke", "hepatitis", "chronic", "acute"):
        if c not in cats:
            err(f, 0, f"no row with category {c!r}")
    if len(rows) < 40:
        err(f, 0, f"only {len(rows)} rows (< 40)")
    ex = [r["medis_exchange"] for _, r in rows if r["medis_exchange"]]
    no = [r["medis_code"] for _, r in rows if r["medis_code"]]
    if len(ex) != len(set(ex)):
        err(f, 0, "duplicate medis_exchange codes")
    if len(no) != len(set(no)):
        err(f, 0, "duplicate medis_code values")
    return len(rows)


def check_procedures(base):
    f = "procedures.csv"
    rows = load(base, f)
    check_keys(f, rows)
    locs = set()
    for i, r in rows:
        check_common(f, i, r)
        if r["kind"] not in KINDS:
            err(f, i, "kind {!r} not in {}".format(r["kind"], sorted(KINDS)))
        if r["modality"] not in MODALITIES:
            err(f, i, "modality {!r} not in {}".format(r["modality"], sorted(MODALITIES)))
        if r["body_part"] not in BODY_PARTS:
            err(f, i, "body_part {!r} not a known DICOM defined term".format(r["body_part"]))
        if r["jj1017"] and not JJ1017_RE.match(r["jj1017"]):
            err(f, i, "jj1017 {!r} not 32 digits".format(r["jj1017"]))
        if not LOCAL_RE.match(r["local_code"]):
            err(f, i, "local_code {!r} not RHP+4 digits".format(r["local_code"]))
        if r["local_code"] in locs:
            err(f, i, "duplicate local_code {!r}".format(r["local_code"]))
        locs.add(r["local_code"])
        for col in ("series", "images_per_series"):
            v = r[col]
            if not v.isdigit() or not (1 <= int(v) <= 2000):
                err(f, i, f"{col} {v!r} not an integer in 1..2000")
    return len(rows)


def main(argv):
    base = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    counts = {}
    for fname, fn in (
        ("departments.csv", check_departments),
        ("diagnoses.csv", check_diagnoses),
        ("procedures.csv", check_procedures),
    ):
        if not os.path.exists(os.path.join(base, fname)):
            err(fname, 0, "file missing")
            continue
        counts[fname] = fn(base)
    for e in errors:
        print("ERROR", e)
    for k, v in counts.items():
        print(f"{k}: {v} rows")
    print("FAIL" if errors else "OK")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
