"""The world as scenarios see it, and ``given`` resolved against it: deterministic, disjoint allocation.

Allocation. Candidates for each patient variable are ordered by a hash of (run salt, scenario ID, variable,
patient index), and the first candidate not yet reserved in this run is taken: no two scenarios of a run
share a patient, which is what lets them run in parallel and in any subset. Scenarios are allocated scarcest
first (:meth:`Allocator.scarcity`: the fewest candidates for one of their variables), then by ID, so a rare
selector is not starved by a common one. Patients are tried in hash order until the scenario's facility
selectors that refer to them can be met too (facilities are shared between scenarios, but distinct within
one); facilities are searched depth-first in their own hash order. The salt is the target's: the reference
target's is empty (every run on a fresh network picks the same patients); an external target's is new each
run unless its file fixes one, so runs against a long-lived hub mostly pick other patients than the runs
before, whose state they may have changed.

Fresh identities (``fresh: true``): the world patient's names with local IDs ``ZZ`` + 8 base-36 characters
(hash of run salt, patient and facility; no facility format produces them) and a birth date of
``1000-01-01`` + (salt hash mod 400) × 366 days + the patient index in days — unique in the run and far from
any world birth date — so PDQ hit counts on them do not depend on what the hub already holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthetic.consent import ConsentState
from synthetic.errors import SyntheticError
from synthetic.stats import load_consents, sharing_patients
from synthetic.store import open_db, read_world_json

from .errors import SelectionError
from .model import FacilitySelector, PatientSelector, Scenario

__all__ = [
    "Allocator",
    "Bindings",
    "PatientBinding",
    "WorldFacility",
    "WorldIndex",
    "WorldPatient",
    "WorldUser",
    "scenario_tag",
]

_ATTEMPTS = 5000  # patient candidates tried per variable before giving up


@dataclass(frozen=True)
class WorldUser:
    facility: str
    user_id: str
    password: str
    viewer_kind: str


@dataclass(frozen=True)
class WorldFacility:
    code: str
    kind: str
    role: str
    network_role: str
    name: str
    link_type: str
    namespace: str
    oid: str
    disclosure: frozenset[str]
    users: tuple[WorldUser, ...]

    @property
    def disclosing(self) -> bool:
        return self.network_role == "disclosing"

    @property
    def hd(self) -> str:
        return f"{self.namespace}&{self.oid}&ISO"


@dataclass(frozen=True)
class WorldPatient:
    index: int
    patient_id: str
    regional_id: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    family_romaji: str
    given_romaji: str
    family_name_variant: str
    sex: str
    birth_date: str  # ISO YYYY-MM-DD
    death_time: str | None
    postcode: str
    address: str
    phone: str
    pathway: str
    sharing_target: bool
    local_ids: Mapping[str, str]  # facility code → local ID


class WorldIndex:
    """world.json + world.sqlite, read once per run (patients, local IDs, consents; not the events)."""

    def __init__(self, world_dir: Path) -> None:
        try:
            meta = read_world_json(world_dir)
            db = open_db(world_dir)
        except SyntheticError as exc:
            raise SelectionError(str(exc)) from exc
        self.dir = world_dir
        self.profile: str = meta["profile"]
        self.seed: int = int(meta["seed"])
        self.reference_date = dt.date.fromisoformat(meta["reference_date"])
        self.facilities = tuple(_facility(f) for f in meta["facilities"])
        self.by_code = {f.code: f for f in self.facilities}
        try:
            self.patients = tuple(_patients(db))
            self.consents: dict[int, ConsentState] = load_consents(db)
        finally:
            db.close()
        self._sharing: set[int] | None = None
        self._held: dict[int, dict[str, frozenset[str]]] | None = None

    @property
    def registered(self) -> int:
        return len(self.patients)

    def held(self, patient_index: int) -> Mapping[str, frozenset[str]]:
        """Facility → item categories it holds data of the patient in (world events with full detail that
        were not cancelled; ``images`` where an imaging study was performed). Read on first use."""
        if self._held is None:
            found: dict[int, dict[str, set[str]]] = {}
            db = open_db(self.dir)
            try:
                rows = db.execute(
                    "SELECT patient_index, facility_code, category, max(instr(payload, '\"study_uid\"') > 0)"
                    " FROM events WHERE detail = 'full' AND status != 'cancelled'"
                    " GROUP BY patient_index, facility_code, category"
                )
                for index, code, category, imaging in rows:
                    held = found.setdefault(index, {}).setdefault(code, set())
                    held.add(category)
                    if imaging:
                        held.add("images")
            finally:
                db.close()
            self._held = {i: {code: frozenset(c) for code, c in by.items()} for i, by in found.items()}
        return self._held.get(patient_index, {})

    def sharing(self) -> set[int]:
        """Patients sharing on the reference date (synthetic's own definition, computed on first use)."""
        if self._sharing is None:
            self._sharing = sharing_patients(self.dir, self.reference_date)
        return self._sharing

    def users(self) -> dict[str, tuple[WorldUser, ...]]:
        return {f.code: f.users for f in self.facilities}


def _facility(f: Mapping[str, Any]) -> WorldFacility:
    code = str(f["code"])
    authority = f["assigning_authority"]
    users = tuple(
        WorldUser(code, str(u["user_id"]), str(u["password"]), str(u.get("viewer_kind", "")))
        for u in f.get("users", ())
    )
    return WorldFacility(
        code=code,
        kind=str(f.get("kind", "")),
        role=str(f.get("role", "")),
        network_role=str(f.get("network_role", "viewing")),
        name=str(f.get("name", "")),
        link_type=str(f.get("link_type", "")),
        namespace=str(authority["namespace"]),
        oid=str(authority["oid"]),
        disclosure=frozenset(f.get("disclosure") or ()),
        users=users,
    )


def _patients(db: sqlite3.Connection) -> Iterator[WorldPatient]:
    local: dict[int, dict[str, str]] = {}
    for r in db.execute("SELECT patient_index, facility_code, local_id FROM local_ids ORDER BY 1, 2"):
        local.setdefault(r[0], {})[r[1]] = r[2]
    for r in db.execute("SELECT * FROM patients ORDER BY patient_index"):
        yield WorldPatient(
            index=r["patient_index"],
            patient_id=r["patient_id"],
            regional_id=r["regional_id"],
            family_name=r["family_name"],
            given_name=r["given_name"],
            family_kana=r["family_kana"],
            given_kana=r["given_kana"],
            family_romaji=r["family_romaji"],
            given_romaji=r["given_romaji"],
            family_name_variant=r["family_name_variant"],
            sex=r["sex"],
            birth_date=r["birth_date"],
            death_time=r["death_time"],
            postcode=r["postcode"],
            address=r["address"],
            phone=r["phone"],
            pathway=r["pathway"],
            sharing_target=bool(r["sharing_target"]),
            local_ids=local.get(r["patient_index"], {}),
        )


# ------------------------------------------------------------------------------------------- bindings


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


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
        return "ZZ" + _base36(_hash("local", self.salt, self.patient.index, facility_code), 8)

    @property
    def birth_date(self) -> str:
        """YYYYMMDD (HL7 DT)."""
        return self.birth_date_iso.replace("-", "")

    @property
    def birth_date_iso(self) -> str:
        if not self.fresh:
            return self.patient.birth_date
        epoch = dt.date(1000, 1, 1) + dt.timedelta(days=(_hash("epoch", self.salt) % 400) * 366)
        return (epoch + dt.timedelta(days=self.patient.index)).isoformat()


@dataclass
class Bindings:
    """A scenario's resolved ``given``."""

    tag: str
    patients: dict[str, PatientBinding] = field(default_factory=dict)
    facilities: dict[str, WorldFacility] = field(default_factory=dict)


class Allocator:
    """Resolves ``given`` for the scenarios of one run, never giving a patient to two of them."""

    def __init__(self, world: WorldIndex, salt: str = "", *, fresh_salt: str | None = None) -> None:
        self.world = world
        self.salt = salt  # orders the candidates
        self.fresh_salt = salt if fresh_salt is None else fresh_salt  # fresh identities and scenario tags
        self.reserved: set[int] = set()

    def scarcity(self, scenario: Scenario) -> int:
        """How many world patients the scenario's scarcest patient variable could take (fresh ones count
        as plenty): scenarios are allocated scarcest first, so a rare selector (a stroke patient seen at
        four kinds of facility) is not starved by a common one that happened to hash onto its patient."""
        counts = [
            sum(1 for p in self.world.patients if self._patient_ok(selector, p))
            for selector in scenario.given.patients.values()
        ]
        return min(counts, default=len(self.world.patients))

    def allocate_all(self, scenarios: Sequence[Scenario]) -> dict[str, Bindings | SelectionError]:
        """Bindings (or why there are none) for each scenario ID, allocated scarcest first, then by ID."""
        order = sorted(scenarios, key=lambda s: (self.scarcity(s), s.id))
        out: dict[str, Bindings | SelectionError] = {}
        for scenario in order:
            try:
                out[scenario.id] = self.allocate(scenario)
            except SelectionError as exc:
                out[scenario.id] = exc
        return out

    def allocate(self, scenario: Scenario) -> Bindings:
        """Bindings for ``scenario``; :class:`SelectionError` says which variable found nothing."""
        given = scenario.given
        chosen: dict[str, WorldPatient] = {}
        for var, selector in given.patients.items():
            taken = self.reserved | {p.index for p in chosen.values()}
            candidates = [
                p for p in self.world.patients if p.index not in taken and self._patient_ok(selector, p)
            ]
            if not candidates:
                raise SelectionError(f"{scenario.id}: no patient in the world matches given.patients.{var}")
            candidates.sort(key=lambda p: _hash(self.salt, scenario.id, var, p.index))
            for candidate in candidates[:_ATTEMPTS]:
                trial = {**chosen, var: candidate}
                relevant = {n: s for n, s in given.facilities.items() if s.patients() <= set(trial)}
                if self._facilities(scenario.id, relevant, trial) is not None:
                    chosen = trial
                    break
            else:
                raise SelectionError(
                    f"{scenario.id}: no patient for given.patients.{var} leaves facilities that meet "
                    f"given.facilities ({', '.join(given.facilities)})"
                )
        facilities = self._facilities(scenario.id, dict(given.facilities), chosen)
        if facilities is None:
            raise SelectionError(f"{scenario.id}: no facilities in the world meet given.facilities")
        self.reserved.update(p.index for p in chosen.values())
        bindings = Bindings(scenario_tag(scenario.id, self.fresh_salt))
        for var, patient in chosen.items():
            fresh = given.patients[var].fresh
            bindings.patients[var] = PatientBinding(var, patient, fresh, self.fresh_salt)
        bindings.facilities = facilities
        return bindings

    # ----------------------------------------------------------------------------------- predicates

    def _patient_ok(self, s: PatientSelector, p: WorldPatient) -> bool:
        checks: list[Callable[[], bool]] = []
        consent = self.world.consents.get(p.index)
        if s.pathway is not None:
            checks.append(
                lambda: any(p.pathway == x or p.pathway.startswith(x + "/") for x in s.pathway or ())
            )
        if s.sharing is not None:
            checks.append(lambda: (p.index in self.world.sharing()) == s.sharing)
        if s.sex is not None:
            checks.append(lambda: p.sex == s.sex)
        if s.alive is not None:
            checks.append(lambda: (p.death_time is None) == s.alive)
        if s.variant_kanji is not None:
            checks.append(lambda: bool(p.family_name_variant) == s.variant_kanji)
        if s.facilities is not None:
            facilities = s.facilities
            checks.append(lambda: facilities.holds(len(p.local_ids)))
        if s.disclosing_facilities is not None:
            disclosing = s.disclosing_facilities
            by_code = self.world.by_code
            checks.append(
                lambda: disclosing.holds(
                    sum(1 for c in p.local_ids if c in by_code and by_code[c].disclosing)
                )
            )
        consent_keys = (s.consent, s.consent_facilities, s.additions, s.withdrawn, s.emergency_allowed)
        if any(k is not None for k in consent_keys):
            if consent is None:
                return False
            checks.extend(self._consent_checks(s, consent))
        return all(check() for check in checks)

    def _consent_checks(self, s: PatientSelector, consent: ConsentState) -> Iterator[Callable[[], bool]]:
        form = consent.form
        if s.consent is not None:
            patterns = s.consent
            yield lambda: form.pattern in patterns
        if s.consent_facilities is not None:
            size = s.consent_facilities
            yield lambda: size.holds(len(form.facilities))
        if s.additions is not None:
            additions = s.additions
            yield lambda: additions.holds(len(consent.additions))
        if s.withdrawn is not None:
            on = self.world.reference_date
            withdrawn = s.withdrawn
            yield (
                lambda: (
                    (consent.withdrawal is not None and consent.withdrawal.withdrawn_on <= on) == withdrawn
                )
            )
        if s.emergency_allowed is not None:
            allowed = s.emergency_allowed
            yield lambda: form.emergency_allowed == allowed

    def _facility_ok(
        self, s: FacilitySelector, f: WorldFacility, patients: Mapping[str, WorldPatient]
    ) -> bool:
        on = self.world.reference_date
        if s.code is not None and f.code != s.code:
            return False
        if s.kind is not None and f.kind not in s.kind:
            return False
        if s.role is not None and f.role not in s.role:
            return False
        if s.disclosing is not None and f.disclosing != s.disclosing:
            return False
        if s.link_type is not None and f.link_type not in s.link_type:
            return False
        if s.discloses is not None and not set(s.discloses) <= f.disclosure:
            return False
        if s.not_discloses is not None and set(s.not_discloses) & f.disclosure:
            return False
        if s.user_kind is not None and not any(u.viewer_kind == s.user_kind for u in f.users):
            return False
        for var in s.local_id_of or ():
            if f.code not in patients[var].local_ids:
                return False
        for var in s.no_local_id_of or ():
            if f.code in patients[var].local_ids:
                return False
        for var, inside in _consent_refs(s):
            consent = self.world.consents.get(patients[var].index)
            covered = consent is not None and consent.covers(f.code, on)
            if covered != inside:
                return False
        for var in s.added_for or ():
            consent = self.world.consents.get(patients[var].index)
            if consent is None or not any(
                a.facility_code == f.code and a.signed_on <= on for a in consent.additions
            ):
                return False
        for holds in s.holds or ():
            held = self.world.held(patients[holds.patient].index).get(f.code)
            if held is None or not set(holds.categories) <= held:
                return False
        return True

    def _facilities(
        self,
        scenario_id: str,
        selectors: Mapping[str, FacilitySelector],
        patients: Mapping[str, WorldPatient],
    ) -> dict[str, WorldFacility] | None:
        """A distinct facility per variable meeting its selector (depth-first, hash-ordered candidates)."""
        order = list(selectors)
        options: dict[str, list[WorldFacility]] = {}
        for var in order:
            found = [f for f in self.world.facilities if self._facility_ok(selectors[var], f, patients)]
            if not found:
                return None
            options[var] = sorted(found, key=lambda f: _hash(self.salt, scenario_id, var, f.code))
        order.sort(key=lambda v: len(options[v]))  # most constrained first
        picked: dict[str, WorldFacility] = {}

        def search(n: int) -> bool:
            if n == len(order):
                return True
            var = order[n]
            used = {f.code for f in picked.values()}
            for facility in options[var]:
                if facility.code in used:
                    continue
                picked[var] = facility
                if search(n + 1):
                    return True
                del picked[var]
            return False

        if not search(0):
            return None
        return {var: picked[var] for var in selectors}


def _consent_refs(s: FacilitySelector) -> Iterable[tuple[str, bool]]:
    for var in s.in_consent_of or ():
        yield var, True
    for var in s.outside_consent_of or ():
        yield var, False


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
