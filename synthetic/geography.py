"""Places: municipalities, secondary medical areas, real postcodes, addresses and phone numbers.

Addresses sample a real (postcode, municipality, town) row of Japan Post data for the prefecture,
with the municipality weighted by population, then add 丁目/番/号 (or 番地 in rural towns). Phone
numbers use the municipality's fixed-line area code, or a mobile prefix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from synthetic import tables
from synthetic.model import Address
from synthetic.rng import Weighted

MEDICAL_AREAS = ("南加賀", "石川中央", "能登中部", "能登北部")


@dataclass(frozen=True, slots=True)
class Geography:
    prefecture: str
    municipalities: dict[str, tables.Municipality]
    postcodes_by_municipality: dict[str, tuple[tables.Postcode, ...]]
    by_population: Weighted[str]
    by_area: dict[str, Weighted[str]]

    def municipality(self, rng: random.Random, area: str | None = None) -> str:
        return (self.by_area[area] if area else self.by_population).pick(rng)

    def address(self, rng: random.Random, jis_code: str) -> Address:
        row = rng.choice(self.postcodes_by_municipality[jis_code])
        if row.town.endswith(("丁目", "町", "通り")) or rng.random() < 0.55:
            suffix = f"{rng.randint(1, 5)}丁目{rng.randint(1, 27)}番{rng.randint(1, 20)}号"
        else:
            suffix = f"{rng.randint(1, 320)}番地"
            if rng.random() < 0.4:
                suffix += f"{rng.randint(1, 9)}"
        muni = self.municipalities[jis_code].name
        return Address(
            postcode=row.postcode,
            municipality_code=jis_code,
            municipality=muni,
            town=row.town,
            text=f"{self.prefecture}{muni}{row.town}{suffix}",
        )

    def landline(self, rng: random.Random, jis_code: str) -> str:
        area = rng.choice(self.municipalities[jis_code].phone_area_codes)
        # Japanese fixed numbers have 10 digits with the leading 0: area + local exchange + 4-digit line.
        exchange_len = 10 - len(area) - 4
        exchange = str(rng.randint(2 * 10 ** (exchange_len - 1), 10**exchange_len - 1))
        return f"{area}-{exchange}-{rng.randint(0, 9999):04d}"


def mobile(rng: random.Random) -> str:
    return f"{rng.choice(['090', '080', '070'])}-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"


@cache
def geography(prefecture: str) -> Geography:
    munis = {m.jis_code: m for m in tables.municipalities()}
    by_muni: dict[str, list[tables.Postcode]] = {}
    for p in tables.postcodes():
        by_muni.setdefault(p.jis_code, []).append(p)
    codes = sorted(munis)
    by_area = {}
    for area in MEDICAL_AREAS:
        members = [c for c in codes if munis[c].medical_area == area]
        by_area[area] = Weighted(members, [munis[c].population for c in members])
    return Geography(
        prefecture=prefecture,
        municipalities=munis,
        postcodes_by_municipality={k: tuple(v) for k, v in by_muni.items()},
        by_population=Weighted(codes, [munis[c].population for c in codes]),
        by_area=by_area,
    )
