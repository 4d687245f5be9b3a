#!/usr/bin/env python3
"""Standalone validator for synthetic/data/codes/drugs.csv and labs.csv.

Not imported by the rhin package; stdlib only.  Usage:

    python3 synthetic/data/codes/check_codes.py [DIR]

Exits 0 when both files pass, 1 otherwise (problems are printed).
"""

import csv
import os
import re
import sys

DRUG_HEADER = [
    "key",
    "code",
    "system",
    "name",
    "kind",
    "unit",
    "unit_code",
    "dose",
    "times_per_day",
    "usage_code",
    "usage_text",
    "days",
    "indication",
    "source",
]
LAB_HEADER = [
    "key",
    "code",
    "system",
    "name",
    "specimen_code",
    "specimen_name",
    "unit",
    "unit_ascii",
    "value_type",
    "low",
    "high",
    "mean",
    "sd",
    "decimals",
    "panel",
    "source",
]

CODE_PATTERNS = {
    "HOT9": re.compile(r"^\d{9}$"),
    "99RHN": re.compile(r"^RHN\d{6}$"),
    "JC10": re.compile(r"^\d[A-Z]\d{15}$"),
    "99RHL": re.compile(r"^RHL\d{6}$"),
}
DRUG_SYSTEMS = {"HOT9", "99RHN"}
LAB_SYSTEMS = {"JC10", "99RHL"}
KINDS = {"oral", "injection", "external"}
INDICATIONS = {
    "hypertension",
    "diabetes",
    "dyslipidemia",
    "stroke_acute",
    "stroke_secondary",
    "hepatitis_b",
    "hepatitis_c",
    "liver_support",
    "infection",
    "pain",
    "gastric",
    "insomnia",
    "constipation",
    "fluid",
    "hemostasis",
    "anticonvulsant",
    "cough",
    "general",
}
PANELS = {
    "basic_chem",
    "liver",
    "renal",
    "lipid",
    "diabetes",
    "cbc",
    "coag",
    "electrolyte",
    "inflammation",
    "hbv",
    "hcv",
    "tumor_marker_liver",
    "cardiac",
    "vitals",
}
VALUE_TYPES = {"NM", "ST", "CWE"}
SPECIMENS = {
    "001": "尿",
    "017": "血液",
    "018": "全血",
    "019": "全血(添加物入り)",
    "022": "血漿",
    "023": "血清",
}
KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
USAGE_CODE_RE = re.compile(r"^[0-9A-Z]{16}$")
LOCAL_SOURCE_MARK = "local code"


def _is_ascii(s):
    try:
        s.encode("ascii")
    except UnicodeEncodeError:
        return False
    return True


def _jis_ok(s):
    try:
        s.encode("iso2022_jp")
    except UnicodeEncodeError:
        return False
    return True


def _num(s):
    try:
        return float(s)
    except ValueError:
        return None


def _read(path, header, errors):
    if not os.path.exists(path):
        errors.append(f"{path}: missing")
        return []
    with open(path, "rb") as fb:
        raw = fb.read()
    if b"\r" in raw:
        errors.append(f"{path}: contains CR (line endings must be LF)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        errors.append(f"{path}: not UTF-8 ({exc})")
        return []
    if text.startswith("\ufeff"):
        errors.append(f"{path}: has a BOM")
        text = text[1:]
    rows = list(csv.reader(text.splitlines()))
    if not rows or rows[0] != header:
        errors.append(f"{path}: header mismatch: {rows[0] if rows else None!r}")
        return []
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            errors.append(f"{path}:{n}: {len(r)} columns, expected {len(header)}")
            continue
        out.append((n, dict(zip(header, r, strict=False))))
    if not out:
        errors.append(f"{path}: no data rows")
    return out


def _common(path, rows, systems, errors):
    keys, codes = set(), set()
    for n, r in rows:
        where = f"{os.path.basename(path)}:{n} ({r['key']})"
        if not r["key"] or not _is_ascii(r["key"]) or not KEY_RE.match(r["key"]):
            errors.append(f"{where}: key must be non-empty lower-case ASCII identifier")
        if r["key"] in keys:
            errors.append(f"{where}: duplicate key")
        keys.add(r["key"])
        sysname = r["system"]
        if sysname not in systems:
            errors.append(f"{where}: unknown system {sysname!r}")
        elif not CODE_PATTERNS[sysname].match(r["code"]):
            errors.append("{}: code {!r} does not match {} pattern".format(where, r["code"], sysname))
        if (sysname, r["code"]) in codes:
            errors.append("{}: duplicate code {}".format(where, r["code"]))
        codes.add((sysname, r["code"]))
        if not r["name"]:
            errors.append(f"{where}: empty name")
        elif not _jis_ok(r["name"]):
            errors.append("{}: name {!r} does not encode in iso2022_jp".format(where, r["name"]))
        if not r["source"]:
            errors.append(f"{where}: empty source")
        is_local = sysname.startswith("99")
        if is_local and LOCAL_SOURCE_MARK not in r["source"]:
            errors.append(f"{where}: local code must say 'local code' in source")
        if not is_local and LOCAL_SOURCE_MARK in r["source"]:
            errors.append(f"{where}: standard code but source says local")


def check_drugs(path, errors):
    rows = _read(path, DRUG_HEADER, errors)
    _common(path, rows, DRUG_SYSTEMS, errors)
    for n, r in rows:
        where = f"drugs.csv:{n} ({r['key']})"
        if r["kind"] not in KINDS:
            errors.append("{}: kind {!r}".format(where, r["kind"]))
        if not r["unit"]:
            errors.append(f"{where}: empty unit")
        if not r["unit_code"] or not _is_ascii(r["unit_code"]):
            errors.append(f"{where}: unit_code must be non-empty ASCII")
        dose = _num(r["dose"])
        if dose is None or dose <= 0:
            errors.append("{}: dose {!r} must be a positive number".format(where, r["dose"]))
        for col in ("times_per_day", "days"):
            if not r[col].isdigit() or int(r[col]) <= 0:
                errors.append(f"{where}: {col} {r[col]!r} must be a positive integer")
        if r["usage_code"] and not USAGE_CODE_RE.match(r["usage_code"]):
            errors.append("{}: usage_code {!r} is not a 16-character code".format(where, r["usage_code"]))
        if not r["usage_text"]:
            errors.append(f"{where}: empty usage_text")
        tags = r["indication"].split(";")
        bad = [t for t in tags if t not in INDICATIONS]
        if not r["indication"] or bad:
            errors.append("{}: indication tags {!r}".format(where, bad or r["indication"]))
    return len(rows)


def check_labs(path, errors):
    rows = _read(path, LAB_HEADER, errors)
    _common(path, rows, LAB_SYSTEMS, errors)
    for n, r in rows:
        where = f"labs.csv:{n} ({r['key']})"
        spec = r["specimen_code"]
        if spec:
            if spec not in SPECIMENS:
                errors.append(f"{where}: specimen_code {spec!r} unknown")
            elif r["specimen_name"] != SPECIMENS[spec]:
                errors.append(f"{where}: specimen_name {r['specimen_name']!r} != {SPECIMENS[spec]!r}")
        elif r["specimen_name"]:
            errors.append(f"{where}: specimen_name without specimen_code")
        if r["system"] == "JC10" and CODE_PATTERNS["JC10"].match(r["code"]):
            in_code = r["code"][9:12]
            expect = "" if in_code == "000" else in_code
            if spec != expect:
                errors.append(f"{where}: specimen_code {spec!r} but code carries {in_code!r}")
        if r["unit_ascii"] and not _is_ascii(r["unit_ascii"]):
            errors.append("{}: unit_ascii {!r} not ASCII".format(where, r["unit_ascii"]))
        vt = r["value_type"]
        if vt not in VALUE_TYPES:
            errors.append(f"{where}: value_type {vt!r}")
        nums = {}
        for col in ("low", "high", "mean", "sd", "decimals"):
            v = r[col]
            if v == "":
                if vt == "NM":
                    errors.append(f"{where}: {col} empty for NM")
                continue
            x = _num(v)
            if x is None:
                errors.append(f"{where}: {col} {v!r} not numeric")
            else:
                nums[col] = x
        if vt == "NM":
            if not r["unit_ascii"]:
                errors.append(f"{where}: NM without unit_ascii")
            if "low" in nums and "high" in nums and not nums["low"] < nums["high"]:
                errors.append("{}: low {} !< high {}".format(where, r["low"], r["high"]))
            if "sd" in nums and nums["sd"] < 0:
                errors.append(f"{where}: negative sd")
            if "decimals" in nums and (nums["decimals"] != int(nums["decimals"]) or nums["decimals"] < 0):
                errors.append(f"{where}: decimals must be a non-negative integer")
        tags = r["panel"].split(";")
        bad = [t for t in tags if t not in PANELS]
        if not r["panel"] or bad:
            errors.append("{}: panel tags {!r}".format(where, bad or r["panel"]))
    return len(rows)


def main(argv):
    base = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    errors = []
    nd = check_drugs(os.path.join(base, "drugs.csv"), errors)
    nl = check_labs(os.path.join(base, "labs.csv"), errors)
    for e in errors:
        print("ERROR " + e)
    print(f"drugs: {nd} rows, labs: {nl} rows, {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
