"""Bundled data tables (CSV under ``synthetic/data``), each with a stated source, loaded once per process.

Tables are plain CSV so people can read and extend them; this module checks their headers and turns
rows into typed records. A missing or malformed table is a :class:`DataTableError`, never a silent gap.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

from synthetic.errors import DataTableError


def read_table(relpath: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of ``synthetic/data/<relpath>``; the header must be exactly ``columns``."""
    resource = resources.files("synthetic") / "data" / relpath
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataTableError(f"data table {relpath} is missing from the package") from exc
    reader = csv.reader(text.splitlines())
    header = tuple(next(reader, ()))
    if header != columns:
        raise DataTableError(f"data table {relpath}: header {header} is not {columns}")
    rows = []
    for number, raw in enumerate(reader, start=2):
        if not raw:
            continue
        if len(raw) != len(columns):
            raise DataTableError(f"data table {relpath}:{number}: {len(raw)} fields, expected {len(columns)}")
        rows.append(dict(zip(columns, raw, strict=True)))
    if not rows:
        raise DataTableError(f"data table {relpath} has no rows")
    return rows


def _float(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise DataTableError(f"{where}: {value!r} is not a number") from exc


@dataclass(frozen=True, slots=True)
class Municipality:
    jis_code: str
    name: str
    kana: str
    medical_area: str
    population: int
    phone_area_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Postcode:
    postcode: str
    jis_code: str
    municipality: str
    town: str
    town_kana: str


@dataclass(frozen=True, slots=True)
class Surname:
    kanji: str
    kana: str
    weight: float
    normalized: str  # the JIS X 0208 form; equals kanji unless the name uses a variant character


@dataclass(frozen=True, slots=True)
class GivenName:
    kanji: str
    kana: str
    sex: str
    era: int
    weight: float


@cache
def municipalities() -> tuple[Municipality, ...]:
    rows = read_table(
        "geo/municipalities.csv",
        (
            "jis_code",
            "name",
            "name_kana",
            "medical_area",
            "population",
            "population_date",
            "phone_area_codes",
            "source",
        ),
    )
    return tuple(
        Municipality(
            jis_code=r["jis_code"],
            name=r["name"],
            kana=r["name_kana"],
            medical_area=r["medical_area"],
            population=int(r["population"]),
            phone_area_codes=tuple(r["phone_area_codes"].split(";")),
        )
        for r in rows
    )


@cache
def postcodes() -> tuple[Postcode, ...]:
    rows = read_table("geo/postcodes.csv", ("postcode", "jis_code", "municipality", "town", "town_kana"))
    return tuple(Postcode(**r) for r in rows)


@cache
def surnames() -> tuple[Surname, ...]:
    rows = read_table("names/surnames.csv", ("kanji", "kana", "weight", "source"))
    return tuple(
        Surname(r["kanji"], r["kana"], _float(r["weight"], "names/surnames.csv"), r["kanji"]) for r in rows
    )


@cache
def surname_variants() -> tuple[Surname, ...]:
    rows = read_table("names/surname_variants.csv", ("kanji", "kana", "normalized", "weight", "source"))
    return tuple(
        Surname(r["kanji"], r["kana"], _float(r["weight"], "names/surname_variants.csv"), r["normalized"])
        for r in rows
    )


@cache
def given_names() -> tuple[GivenName, ...]:
    rows = read_table("names/given_names.csv", ("kanji", "kana", "sex", "era", "weight", "source"))
    return tuple(
        GivenName(r["kanji"], r["kana"], r["sex"], int(r["era"]), _float(r["weight"], "given_names"))
        for r in rows
    )


@cache
def facility_words() -> tuple[tuple[str, str, str], ...]:
    """(word, kana, use) rows used to compose facility names."""
    rows = read_table("names/facility_words.csv", ("word", "kana", "use", "source"))
    return tuple((r["word"], r["kana"], r["use"]) for r in rows)


@cache
def departments() -> dict[str, str]:
    """SS-MIX統一診療科コード → name."""
    rows = read_table("codes/departments.csv", ("code", "name", "source"))
    return {r["code"]: r["name"] for r in rows}


@dataclass(frozen=True, slots=True)
class Drug:
    key: str
    code: str
    system: str
    name: str
    kind: str
    unit: str
    unit_code: str
    dose: float
    times_per_day: int
    usage_code: str
    usage_text: str
    days: int
    indications: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LabTest:
    key: str
    code: str
    system: str
    name: str
    specimen_code: str
    specimen_name: str
    unit: str
    unit_ascii: str
    value_type: str
    low: float | None
    high: float | None
    mean: float | None
    sd: float | None
    decimals: int
    panels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Diagnosis:
    key: str
    name: str
    icd10: str
    medis_code: str
    medis_exchange: str
    category: str


@dataclass(frozen=True, slots=True)
class Procedure:
    key: str
    kind: str
    name: str
    modality: str
    body_part: str
    jj1017: str
    local_code: str
    series: int
    images_per_series: int


def _opt_float(value: str, where: str) -> float | None:
    return None if value.strip() == "" else _float(value, where)


@cache
def drugs() -> dict[str, Drug]:
    cols = (
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
    )
    out = {}
    for r in read_table("codes/drugs.csv", cols):
        out[r["key"]] = Drug(
            key=r["key"],
            code=r["code"],
            system=r["system"],
            name=r["name"],
            kind=r["kind"],
            unit=r["unit"],
            unit_code=r["unit_code"],
            dose=_float(r["dose"], "codes/drugs.csv"),
            times_per_day=int(r["times_per_day"] or 1),
            usage_code=r["usage_code"],
            usage_text=r["usage_text"],
            days=int(r["days"] or 1),
            indications=tuple(t for t in r["indication"].split(";") if t),
        )
    return out


@cache
def labs() -> dict[str, LabTest]:
    cols = (
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
    )
    out = {}
    for r in read_table("codes/labs.csv", cols):
        w = f"codes/labs.csv:{r['key']}"
        out[r["key"]] = LabTest(
            key=r["key"],
            code=r["code"],
            system=r["system"],
            name=r["name"],
            specimen_code=r["specimen_code"],
            specimen_name=r["specimen_name"],
            unit=r["unit"],
            unit_ascii=r["unit_ascii"],
            value_type=r["value_type"],
            low=_opt_float(r["low"], w),
            high=_opt_float(r["high"], w),
            mean=_opt_float(r["mean"], w),
            sd=_opt_float(r["sd"], w),
            decimals=int(r["decimals"] or 0),
            panels=tuple(t for t in r["panel"].split(";") if t),
        )
    return out


@cache
def diagnoses() -> dict[str, Diagnosis]:
    cols = ("key", "name", "icd10", "medis_code", "medis_exchange", "category", "source")
    return {
        r["key"]: Diagnosis(
            r["key"], r["name"], r["icd10"], r["medis_code"], r["medis_exchange"], r["category"]
        )
        for r in read_table("codes/diagnoses.csv", cols)
    }


@cache
def procedures() -> dict[str, Procedure]:
    cols = (
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
    )
    return {
        r["key"]: Procedure(
            r["key"],
            r["kind"],
            r["name"],
            r["modality"],
            r["body_part"],
            r["jj1017"],
            r["local_code"],
            int(r["series"] or 1),
            int(r["images_per_series"] or 1),
        )
        for r in read_table("codes/procedures.csv", cols)
    }


@cache
def lab_panels() -> dict[str, tuple[str, str]]:
    """Order-set (panel) key → (local code, name); system 99RHP in messages."""
    rows = read_table("codes/lab_panels.csv", ("panel", "code", "name", "source"))
    return {r["panel"]: (r["code"], r["name"]) for r in rows}
