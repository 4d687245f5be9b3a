"""Patients: demographics drawn per patient, independent of every other patient.

``demographics(ctx, i)`` is a pure function of (seed, i), so patient *i* is the same whatever the patient
count. A small share of patients deliberately repeat an earlier patient's name, sex and birth date
(same-name-same-birthday pairs happen in a prefecture of a million, and the hub's matching must cope).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from synthetic.geography import Geography, mobile
from synthetic.model import Address, PersonName
from synthetic.names import NameDrawer
from synthetic.profile import Profile
from synthetic.rng import Weighted, stream


@dataclass(frozen=True, slots=True)
class Demographics:
    name: PersonName
    sex: str
    birth_date: dt.date
    address: Address
    phone: str
    mobile: str
    twin_of: int | None  # index of the earlier patient whose name and birth date this one repeats


class PeopleFactory:
    def __init__(self, profile: Profile, seed: int, geo: Geography, drawer: NameDrawer) -> None:
        self.profile = profile
        self.seed = seed
        self.geo = geo
        self.drawer = drawer
        bands = profile.demographics.age_bands
        self.bands = Weighted(bands, [b.weight for b in bands])

    def demographics(self, index: int) -> Demographics:
        demo = self.profile.demographics
        rng = stream(self.seed, "patient", index, "demographics")
        twin_of = None
        if index > 0 and rng.random() < demo.same_name_and_birthdate_share:
            twin_of = rng.randrange(index)
            other = self.demographics(twin_of)
            name, sex, birth = other.name, other.sex, other.birth_date
        else:
            sex = "F" if rng.random() < demo.female_share else "M"
            band = self.bands.pick(rng)
            age_days = rng.randint(band.low * 365, band.high * 365 + 364)
            birth = self.profile.reference_date - dt.timedelta(days=age_days)
            name = self.drawer.person(rng, sex, birth.year, demo.variant_kanji_share)
        jis = self.geo.municipality(rng)
        address = self.geo.address(rng, jis)
        phone = self.geo.landline(rng, jis)
        return Demographics(name, sex, birth, address, phone, mobile(rng), twin_of)

    def previous_address(self, index: int, current: Address) -> Address:
        """Where the patient lived before a change of address (for ADT-00 update history)."""
        rng = stream(self.seed, "patient", index, "previous-address")
        for _ in range(10):
            candidate = self.geo.address(rng, self.geo.municipality(rng))
            if candidate.text != current.text:
                return candidate
        return self.geo.address(rng, current.municipality_code)
