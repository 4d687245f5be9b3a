"""A scenario's resolved ``given`` (:class:`Bindings`, made by :mod:`.world`'s allocator) and the fresh
identities of ``fresh: true`` patients.

Fresh identities (``fresh: true``): the world patient's names with local IDs ``ZZ`` + 8 base-36 characters
(hash of run salt, patient and facility; no facility format produces them) and a birth date of
``1000-01-01`` + (salt hash mod 400) × 366 days + the patient index in days — unique in the run and far from
any world birth date — so PDQ hit counts on them do not depend on what the hub already holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from .worldindex import WorldFacility, WorldPatient

__all__ = ["EPOCHS", "Bindings", "PatientBinding", "describe", "fresh_epoch", "scenario_tag", "stable_hash"]


def stable_hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


EPOCHS: Final = 400


def fresh_epoch(salt: str) -> int:
    """Which of :data:`EPOCHS` birth-date epochs a salt's fresh identities use: two runs on one hub with the
    same epoch would give a world patient used fresh by both the same names and birth date (PDQ would find
    both), so a target's state file keeps a new run off earlier epochs (:mod:`harness.scenarios.history`)."""
    return stable_hash("epoch", salt) % EPOCHS


def scenario_tag(scenario_id: str, salt: str = "") -> str:
    """8 hex digits naming a scenario in a run: control IDs, query tags and form IDs derive from it."""
    return hashlib.sha256(f"{salt}|{scenario_id}".encode()).hexdigest()[:8]


def _base36(number: int, width: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for _ in range(width):
        number, rest = divmod(number, 36)
        out.append(digits[rest])
    return "".join(reversed(out))


@dataclass
class PatientBinding:
    """A selected patient as the scenario uses it; ``rid`` is filled by a link step (or a capture)."""

    var: str
    patient: WorldPatient
    fresh: bool
    salt: str
    rid: str | None = None

    def local_id(self, facility_code: str) -> str:
        """The world's local ID at that facility, unless fresh or there is none: then a synthetic one."""
        if not self.fresh and facility_code in self.patient.local_ids:
            return self.patient.local_ids[facility_code]
        return "ZZ" + _base36(stable_hash("local", self.salt, self.patient.index, facility_code), 8)

    @property
    def birth_date(self) -> str:
        """YYYYMMDD (HL7 DT)."""
        return self.birth_date_iso.replace("-", "")

    @property
    def birth_date_iso(self) -> str:
        if not self.fresh:
            return self.patient.birth_date
        epoch = dt.date(1000, 1, 1) + dt.timedelta(days=fresh_epoch(self.salt) * 366)
        return (epoch + dt.timedelta(days=self.patient.index)).isoformat()


@dataclass
class Bindings:
    """A scenario's resolved ``given``."""

    tag: str
    patients: dict[str, PatientBinding] = field(default_factory=dict)
    facilities: dict[str, WorldFacility] = field(default_factory=dict)


def describe(bindings: Bindings) -> dict[str, Any]:
    """What a scenario was given, for reports."""
    return {
        "patients": {
            var: {
                "index": b.patient.index,
                "patient_id": b.patient.patient_id,
                "pathway": b.patient.pathway,
                "fresh": b.fresh,
                "rid": b.rid,
            }
            for var, b in bindings.patients.items()
        },
        "facilities": {
            var: {"code": f.code, "kind": f.kind, "name": f.name} for var, f in bindings.facilities.items()
        },
    }
