"""Facilities indexed for the care engine: where a patient is seen, in which department."""

from __future__ import annotations

import math

from synthetic import tables
from synthetic.model import Facility
from synthetic.rng import Weighted


class Directory:
    """Facilities indexed for the engine: candidates per (kind, roles) near a municipality, departments."""

    def __init__(self, facilities: list[Facility], municipality_area: dict[str, str]) -> None:
        self.facilities = facilities
        self.by_code = {f.code: f for f in facilities}
        self.area = municipality_area
        self._cache: dict[tuple[str, tuple[str, ...], str], Weighted[Facility] | None] = {}
        dept_names = tables.departments()
        self.dept_code_by_name = {name: code for code, name in dept_names.items()}

    def candidates(self, kind: str, roles: tuple[str, ...], near_muni: str) -> Weighted[Facility] | None:
        key = (kind, roles, near_muni)
        if key not in self._cache:
            pool = [f for f in self.facilities if f.kind == kind and (not roles or f.role in roles)]
            home_area = self.area[near_muni]
            weights = []
            for f in pool:
                if f.municipality_code == near_muni:
                    w = 6.0
                elif f.medical_area == home_area:
                    w = 3.0
                elif f.medical_area == "石川中央" and kind == "hospital":
                    w = 1.0  # tertiary care is concentrated in the central area
                else:
                    w = 0.15
                if f.beds:
                    w *= math.sqrt(f.beds) / 10
                weights.append(w)
            self._cache[key] = Weighted(pool, weights) if pool else None
        return self._cache[key]

    def department(self, facility: Facility, wanted: str) -> str:
        for name in wanted.split("|") if wanted else []:
            code = self.dept_code_by_name.get(name)
            if code and code in facility.departments:
                return code
        return facility.departments[0] if facility.departments else ""
