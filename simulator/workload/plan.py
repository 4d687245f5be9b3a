"""The workload applied to a world: facility weights, and the sessions and feed messages a run sends.

Everything here is a pure function of (world directory, workload, seed): session ``i`` is the same viewer,
patient and steps on every run, whichever process or user sends it, so "the same run picks the same patients
in the same order" holds per session index (a Locust worker takes indices ``w, w + W, w + 2W…``).

Consent is read as the world has it on its reference date. Nothing in a world happens after that date
(withdrawals and additions included), so the coverage is also what the hub sees on any later day.

Who views whom:
* ``care``: a user of a facility drawn by the power-law weights (:class:`.model.FacilityWeights`) opens a
  patient that facility holds a local ID for, who is sharing, and whose consent covers the facility.
* ``outside``: a user of a facility that holds the patient's local ID (so the hub links it) but is *outside*
  the patient's consent (an ``all_except`` exclusion, a list or per-facility form without it, a withdrawal),
  for a patient known at some disclosing facility. The hub must refuse every record: an entry in
  the timeline or a fetched byte is a leak.
* ``emergency``: a hospital user who asks the hub for a break-glass grant on a patient whose consent allows
  emergency viewing, then opens the timeline with ``purpose=emergency``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from synthetic.consent import ConsentState
from synthetic.errors import SyntheticError
from synthetic.stats import load_consents, sharing_patients
from synthetic.store import open_db, read_world_json

from .model import Workload, WorkloadError

__all__ = ["FeedMessage", "PlanFacility", "PlanPatient", "PlanUser", "PlannedSession", "WorldPlan"]

Intent = Literal["care", "outside", "emergency"]
FeedKind = Literal["register", "update", "join"]
_ACUTE_ROLES: Final = ("acute", "university")


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class PlanUser:
    user_id: str
    password: str
    viewer_kind: str


@dataclass(frozen=True, slots=True)
class PlanFacility:
    code: str
    kind: str
    role: str
    network_role: str
    namespace: str
    oid: str
    users: tuple[PlanUser, ...]  # viewing users (no clerks: they see patient basics only)


@dataclass(frozen=True, slots=True)
class PlanPatient:
    index: int
    patient_id: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    family_romaji: str
    given_romaji: str
    sex: str
    birth_date: str  # ISO
    postcode: str
    address: str
    phone: str
    local_ids: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PlannedSession:
    """One viewer session, fully decided before it runs."""

    index: int
    intent: Intent
    facility: str
    user: PlanUser
    patient: PlanPatient
    local_id: str  # the viewer facility's local ID ("" for an emergency viewer who holds none)
    find: Literal["pdq", "pix"]
    charset: str  # "iso-2022-jp" or "utf-8": the MLLP queries' MSH-18
    categories: tuple[str, ...]  # the k entries to open, as preferred item categories
    think_s: tuple[float, ...]  # before find, timeline, and each fetch


SESSION_BLOCK: Final = 1024  # sessions drawn together (WorldPlan.session)
_FIXED_DRAWS: Final = 7  # uniforms per session before the categories and think times


@dataclass(frozen=True)
class _Draws:
    """What a block of sessions is drawn from (:meth:`WorldPlan._block`)."""

    width: int  # uniforms per session: a multiple of 4 (one Philox block is four 64-bit words)
    kmax: int
    key: int
    outside: float  # the shares of outside and emergency sessions (0 when the world has no candidate)
    emergency: float
    codes: list[str]  # care facilities with a weight, their cumulative weights and patient pools
    cum: np.ndarray[Any, Any]
    pools: list[list[int]]
    pool_sizes: np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One ITI-8 message: ``register`` (A04, a new local ID), ``update`` (A08), ``join`` (A04, world ID)."""

    index: int
    kind: FeedKind
    facility: str
    local_id: str
    patient: PlanPatient
    phone: str


class WorldPlan:
    """A world read once for load: facilities, patients, consent coverage, and the derived weights."""

    def __init__(self, world_dir: Path, workload: Workload, seed: int) -> None:
        try:
            meta = read_world_json(world_dir)
            db = open_db(world_dir)
        except SyntheticError as exc:
            raise WorkloadError(f"{world_dir}: {exc}") from exc
        self.world_dir = world_dir
        self.workload = workload
        self.seed = seed
        self.reference_date = dt.date.fromisoformat(meta["reference_date"])
        self.facilities: dict[str, PlanFacility] = {f["code"]: _facility(f) for f in meta["facilities"]}
        try:
            self.patients: tuple[PlanPatient, ...] = tuple(_patients(db))
            self.consents: dict[int, ConsentState] = load_consents(db)
        finally:
            db.close()
        self.sharing = sharing_patients(world_dir, self.reference_date)
        self._build_candidates()
        self._blocks: dict[int, list[PlannedSession]] = {}
        mix = workload.session
        self._tables = {
            "find": _table(mix.find),
            "charsets": _table(mix.charsets),
            "fetch_k": _table({str(k): w for k, w in mix.fetch_k.items()}),
            "categories": _table(mix.categories),
        }

    # ------------------------------------------------------------------------------- candidates

    def _build_candidates(self) -> None:
        day = self.reference_date
        care: dict[str, list[int]] = {code: [] for code in self.facilities}
        outside: list[tuple[int, str]] = []
        emergency: list[int] = []
        disclosing = {c for c, f in self.facilities.items() if f.network_role == "disclosing"}
        for p in self.patients:
            consent = self.consents.get(p.index)
            if consent is None:
                continue
            for code in sorted(p.local_ids):
                fac = self.facilities.get(code)
                if fac is None or not fac.users:
                    continue
                if consent.covers(code, day):
                    if p.index in self.sharing:
                        care[code].append(p.index)
                elif any(d in p.local_ids for d in disclosing):
                    outside.append((p.index, code))
            if p.index in self.sharing and consent.active(day) and consent.form.emergency_allowed:
                emergency.append(p.index)
        self.care_patients = care
        self.outside_pairs = outside
        self.emergency_patients = emergency
        self.emergency_viewers = sorted(
            c
            for c, f in self.facilities.items()
            if f.kind == "hospital" and f.role in _ACUTE_ROLES and f.users
        )

    @cached_property
    def weights(self) -> dict[str, float]:
        """Each facility's share of care sessions (sums to 1): Zipf over the activity rank; 0 for inactive
        hospitals and for facilities with no patient they may view."""
        spec = self.workload.facilities
        activity: dict[str, float] = {}
        for code, f in self.facilities.items():
            n = len(self.care_patients.get(code, ()))
            factor = spec.kind_factors.get(f.kind, 0.0) * spec.role_factors.get(f.role, 1.0)
            inactive = f.kind == "hospital" and (_hash(self.seed, "inactive", code) % 10_000) < (
                spec.inactive_hospital_share * 10_000
            )
            activity[code] = 0.0 if inactive else factor * n
        ranked = sorted((c for c in activity if activity[c] > 0), key=lambda c: (-activity[c], c))
        raw = {c: (rank + 1) ** -spec.zipf_exponent for rank, c in enumerate(ranked)}
        total = sum(raw.values())
        if total == 0:
            raise WorkloadError(f"{self.world_dir}: no facility may view any patient: nothing to load")
        return {c: raw.get(c, 0.0) / total for c in self.facilities}

    @cached_property
    def _cumulative(self) -> tuple[list[str], list[float]]:
        codes = [c for c, w in self.weights.items() if w > 0]
        return codes, list(itertools.accumulate(self.weights[c] for c in codes))

    # ------------------------------------------------------------------------------- sessions

    def session(self, index: int) -> PlannedSession:
        """PlannedSession ``index``: the same on every run of this world, workload and seed, whichever
        sessions were asked before it. A world with no candidate for an outside or emergency session gives
        a care session in its place.

        Drawn a block of :data:`SESSION_BLOCK` sessions at a time (:meth:`_block`): session ``i`` reads its
        own row of uniforms from a counter-based generator (NumPy's Philox, keyed by the seed, at counter
        ``i × row``), so a block is made in one vectorised step and no session depends on which were drawn
        before it (a Locust worker asks every P-th). (One :class:`random.Random` seeded per session cost
        ~21 µs a session, ~15 % of a simulated year.)"""
        block, row = divmod(index, SESSION_BLOCK)
        found = self._blocks.get(block)
        if found is None:
            if len(self._blocks) >= 8:  # a few blocks: Locust's workers interleave their indices
                self._blocks.pop(next(iter(self._blocks)))
            found = self._blocks[block] = self._block(block)
        return found[row]

    @cached_property
    def _draws(self) -> _Draws:
        """What :meth:`_block` reads: the candidates and the mix's tables as arrays."""
        mix = self.workload.session
        kmax = max(int(k) for k in self._tables["fetch_k"][0])
        codes, cum = self._cumulative
        return _Draws(
            width=-(-(_FIXED_DRAWS + 2 * kmax + 2) // 4) * 4,  # a whole number of Philox blocks
            kmax=kmax,
            key=_hash(self.seed, "sessions"),
            outside=mix.outside_consent_share if self.outside_pairs else 0.0,
            emergency=mix.emergency_share if self.emergency_patients and self.emergency_viewers else 0.0,
            codes=codes,
            cum=np.asarray(cum),
            pools=[self.care_patients[c] for c in codes],
            pool_sizes=np.asarray([len(self.care_patients[c]) for c in codes]),
        )

    def _block(self, block: int) -> list[PlannedSession]:
        """Sessions ``block × SESSION_BLOCK`` … of the next block (see :meth:`session`). Row ``r``: intent,
        two picks (care: facility by weight and patient of its pool; outside: the pair; emergency: patient
        and viewer), user, find, charset, k, then ``kmax`` categories and ``kmax + 2`` think times."""
        d = self._draws
        n = SESSION_BLOCK
        u = np.random.Generator(np.random.Philox(key=d.key, counter=block * n * d.width // 4)).random(
            (n, d.width)
        )

        def pick(column: np.ndarray[Any, Any], sizes: Any) -> list[int]:
            """Uniform index below each size (``random() × n``, floored, kept below n)."""
            chosen: list[int] = np.minimum(
                (column * sizes).astype(np.int64), np.maximum(sizes, 1) - 1
            ).tolist()
            return chosen

        def table(name: str, column: np.ndarray[Any, Any]) -> list[Any]:
            keys = self._tables[name][0]
            return [keys[i] for i in _choose(self._tables[name], column).tolist()]

        facility = _choose((d.codes, d.cum), u[:, 1])
        in_pool = pick(u[:, 2], d.pool_sizes[facility])
        pair = pick(u[:, 1], len(self.outside_pairs))
        e_patient = pick(u[:, 1], len(self.emergency_patients))
        e_viewer = pick(u[:, 2], len(self.emergency_viewers))
        user_u = u[:, 3].tolist()
        finds, charsets = table("find", u[:, 4]), table("charsets", u[:, 5])
        ks = [int(k) for k in table("fetch_k", u[:, 6])]
        keys = self._tables["categories"][0]
        cats: list[list[int]] = _choose(self._tables["categories"], u[:, 7 : 7 + d.kmax]).tolist()
        mean = self.workload.session.think_time_s
        thinks: list[list[float]] = (
            (-np.log1p(-u[:, 7 + d.kmax : 9 + 2 * d.kmax]) * mean).tolist()
            if mean > 0
            else [[0.0] * (d.kmax + 2)] * n
        )
        intent_u = u[:, 0].tolist()
        facility_i: list[int] = facility.tolist()
        out: list[PlannedSession] = []
        outside, emergency = d.outside, d.outside + d.emergency
        patients, facilities = self.patients, self.facilities
        for r in range(n):
            x = intent_u[r]
            intent: Intent
            if x < outside:
                intent = "outside"
                p_index, code = self.outside_pairs[pair[r]]
            elif x < emergency:
                intent = "emergency"
                p_index, code = self.emergency_patients[e_patient[r]], self.emergency_viewers[e_viewer[r]]
            else:
                intent = "care"
                code = d.codes[facility_i[r]]
                p_index = d.pools[facility_i[r]][in_pool[r]]
            patient = patients[p_index]
            users = facilities[code].users
            user = users[min(int(user_u[r] * len(users)), len(users) - 1)]
            local_id = patient.local_ids.get(code, "")
            find: Literal["pdq", "pix"] = finds[r] if local_id else "pdq"
            k = ks[r]
            out.append(
                PlannedSession(
                    block * n + r,
                    intent,
                    code,
                    user,
                    patient,
                    local_id,
                    find,
                    charsets[r],
                    tuple([keys[i] for i in cats[r][:k]]),
                    tuple(thinks[r][: k + 2]),
                )
            )
        return out

    # ------------------------------------------------------------------------------- feeds

    def feed_rate_per_s(self) -> tuple[float, float]:
        """(registrations, updates) per second at 1×, from the per-patient daily rates."""
        n = len(self.patients)
        feeds = self.workload.feeds
        return n * feeds.registrations_per_patient_day / 86_400, n * feeds.updates_per_patient_day / 86_400

    def feed(self, index: int, kind: Literal["register", "update"]) -> FeedMessage:
        """Feed message ``index`` of ``kind``: a new local ID (``RG`` + 8 base-36 characters, a format no
        facility uses) for a world person at one of their facilities, or an update of a world local ID."""
        rng = random.Random(f"{self.seed}|feed|{kind}|{index}")
        while True:
            patient = self.patients[rng.randrange(len(self.patients))]
            codes = sorted(c for c in patient.local_ids if c in self.facilities)
            if codes:
                break
        code = codes[rng.randrange(len(codes))]
        phone = f"076-{rng.randrange(200, 999)}-{rng.randrange(10_000):04d}"
        if kind == "register":
            local = "RG" + _base36(_hash(self.seed, "register", index), 8)
            return FeedMessage(index, "register", code, local, patient, phone)
        return FeedMessage(index, "update", code, patient.local_ids[code], patient, phone)

    @cached_property
    def join_facility(self) -> str | None:
        """The facility whose patients the join burst registers (``auto``: the viewing facility with the
        most local IDs)."""
        chosen = self.workload.feeds.join_facility
        if chosen is None:
            return None
        if chosen != "auto":
            if chosen not in self.facilities:
                raise WorkloadError(f"feeds.join_facility: no facility {chosen} in {self.world_dir}")
            return chosen
        counts: dict[str, int] = {}
        for p in self.patients:
            for code in p.local_ids:
                if code in self.facilities and self.facilities[code].network_role == "viewing":
                    counts[code] = counts.get(code, 0) + 1
        return min(counts, key=lambda c: (-counts[c], c)) if counts else None

    def join_burst(self) -> list[FeedMessage]:
        """Every patient of :attr:`join_facility`, in patient order, as A04 with the world's local ID."""
        code = self.join_facility
        if code is None:
            return []
        found = [p for p in self.patients if code in p.local_ids]
        return [FeedMessage(i, "join", code, p.local_ids[code], p, p.phone) for i, p in enumerate(found)]

    def describe(self) -> dict[str, Any]:
        """For reports: the derived figures."""
        return {
            "facilities_weighted": sum(1 for w in self.weights.values() if w > 0),
            "facilities_total": len(self.facilities),
            "care_patients": sum(len(v) for v in self.care_patients.values()),
            "outside_pairs": len(self.outside_pairs),
            "emergency_patients": len(self.emergency_patients),
            "join_facility": self.join_facility,
        }


def _table(weights: Mapping[Any, float]) -> tuple[list[Any], list[float]]:
    """Keys in a stable order (by their text) and their cumulative weights, for :func:`_choose`."""
    keys = sorted(weights, key=str)
    return keys, list(itertools.accumulate(weights[k] for k in keys))


def _choose(table: tuple[list[Any], list[float]] | tuple[list[Any], np.ndarray[Any, Any]], u: Any) -> Any:
    """For uniforms ``u`` (an array of any shape), the index of the key each picks, as ``random.choices``
    picks from the weights for the same ``random()``: ``bisect_right`` of ``u × total`` in the cumulative
    weights, kept below the last key."""
    cum = table[1]
    return np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), len(cum) - 1)


def _base36(number: int, width: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for _ in range(width):
        number, r = divmod(number, 36)
        out.append(digits[r])
    return "".join(reversed(out))


def _facility(f: Mapping[str, Any]) -> PlanFacility:
    users = tuple(
        PlanUser(str(u["user_id"]), str(u["password"]), str(u.get("viewer_kind", "")))
        for u in f.get("users", ())
        if u.get("viewer_kind") != "clerk"
    )
    authority = f["assigning_authority"]
    return PlanFacility(
        code=str(f["code"]),
        kind=str(f.get("kind", "")),
        role=str(f.get("role", "")),
        network_role=str(f.get("network_role", "viewing")),
        namespace=str(authority["namespace"]),
        oid=str(authority["oid"]),
        users=users,
    )


def _patients(db: Any) -> Sequence[PlanPatient]:
    local: dict[int, dict[str, str]] = {}
    for r in db.execute("SELECT patient_index, facility_code, local_id FROM local_ids ORDER BY 1, 2"):
        local.setdefault(r[0], {})[r[1]] = r[2]
    return [
        PlanPatient(
            index=r["patient_index"],
            patient_id=r["patient_id"],
            family_name=r["family_name"],
            given_name=r["given_name"],
            family_kana=r["family_kana"],
            given_kana=r["given_kana"],
            family_romaji=r["family_romaji"],
            given_romaji=r["given_romaji"],
            sex=r["sex"],
            birth_date=r["birth_date"],
            postcode=r["postcode"] or "",
            address=r["address"] or "",
            phone=r["phone"] or r["mobile"] or "",
            local_ids=local.get(r["patient_index"], {}),
        )
        for r in db.execute("SELECT * FROM patients ORDER BY patient_index")
    ]
