"""``build(profile, seed)``: the whole world as pure, deterministic data.

Facilities first (each from its own stream), then patients one by one: demographics, a pathway variant,
the care that pathway produces, then consent documents that make the patient sharing exactly when the
patient's quota flag says so. The flag comes from a stratified quota over blocks of patient indices, so the
sharing count matches the profile within a handful whatever the patient count, and stays prefix-stable.

Patients are independent, so building them is spread over processes (``jobs``); the result does not
depend on ``jobs``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from synthetic import pathway as pathways
from synthetic.care import EVENTS_PER_PATIENT, CareConfig, Directory, PatientCare, build_local_ids
from synthetic.consent import build_consent, sharing_possible
from synthetic.facilities import build_facilities, local_id
from synthetic.geography import geography
from synthetic.model import Event, Facility, Patient, PatientRecord
from synthetic.names import drawer
from synthetic.people import Demographics, PeopleFactory
from synthetic.profile import Profile
from synthetic.rng import Weighted, stable_int, stream

SHARING_BLOCK = 100
MAX_CARE_ATTEMPTS = 40
#: Shares of placed orders that are later revised or cancelled, so SS-MIX2 condition-flag history exists.
ORDER_REVISE_SHARE = 0.03
ORDER_CANCEL_SHARE = 0.015


@dataclass(frozen=True, slots=True)
class World:
    profile: Profile
    seed: int
    facilities: list[Facility]
    patients: list[PatientRecord]

    @property
    def reference_date(self) -> dt.date:
        return self.profile.reference_date


class SharingQuota:
    """Which patients are sharing: a cumulative quota over blocks of B indices, chosen by hash order.

    Block b holds ``floor((b+1)·B·share) − floor(b·B·share)`` sharing patients, so complete blocks sum to
    ``floor(n·share)`` exactly and a partial block is off by at most a few; which positions in a block are
    chosen comes from a hash, so patient *i*'s flag never depends on how many patients there are.
    """

    def __init__(self, seed: int, share: float) -> None:
        self.seed = seed
        self.share = share
        self._blocks: dict[int, frozenset[int]] = {}

    def __call__(self, index: int) -> bool:
        block, position = divmod(index, SHARING_BLOCK)
        chosen = self._blocks.get(block)
        if chosen is None:
            quota = math.floor((block + 1) * SHARING_BLOCK * self.share) - math.floor(
                block * SHARING_BLOCK * self.share
            )
            order = sorted(range(SHARING_BLOCK), key=lambda i: stable_int(self.seed, "sharing", block, i))
            chosen = frozenset(order[:quota])
            self._blocks = {block: chosen}
        return position in chosen


class PatientBuilder:
    """Everything needed to build any one patient; picklable inputs only, so workers can rebuild it."""

    def __init__(self, profile: Profile, seed: int, facilities: list[Facility]) -> None:
        self.profile = profile
        self.seed = seed
        geo = geography(profile.prefecture)
        self.people = PeopleFactory(profile, seed, geo, drawer())
        self.directory = Directory(facilities, {c: m.medical_area for c, m in geo.municipalities.items()})
        self.common = pathways.common()
        start = dt.datetime.combine(
            profile.reference_date - dt.timedelta(days=profile.history_days), dt.time()
        )
        end = dt.datetime.combine(profile.reference_date, dt.time(23, 59, 59))
        self.config = CareConfig(
            start, end, ORDER_REVISE_SHARE, ORDER_CANCEL_SHARE, profile.demographics.address_change_share
        )
        self.quota = SharingQuota(seed, profile.sharing_ratio())
        self.mix = {
            True: self._mix(profile.pathways.sharing),
            False: self._mix(profile.pathways.non_sharing),
        }
        self.all_codes = [f.code for f in facilities]

    @staticmethod
    def _mix(spec: dict[str, float]) -> list[tuple[str, str, float]]:
        out = []
        for key, weight in spec.items():
            name, _, variant = key.partition("/")
            pw = pathways.pathway(name)
            if variant not in pw.variants:
                raise KeyError(f"profile names pathway variant {key!r}, which {name}.yaml does not define")
            out.append((name, variant, weight))
        return out

    def _choose(self, rng_index: int, target: bool, age: int, attempt: int) -> tuple[str, str]:
        rng = stream(self.seed, "patient", rng_index, "pathway", attempt)
        options = [
            (n, v, w) for n, v, w in self.mix[target] if pathways.pathway(n).variants[v].min_age <= age
        ]
        if not options:
            options = [min(self.mix[target], key=lambda o: pathways.pathway(o[0]).variants[o[1]].min_age)]
        pick = Weighted(options, [w for _, _, w in options]).pick(rng)
        return pick[0], pick[1]

    def build(self, index: int) -> PatientRecord:
        demo = self.people.demographics(index)
        target = self.quota(index)
        ref = self.profile.reference_date
        age = ref.year - demo.birth_date.year
        care: PatientCare | None = None
        chosen = ("", "")
        for attempt in range(MAX_CARE_ATTEMPTS):
            chosen = self._choose(index, target, age, attempt)
            pw = pathways.pathway(chosen[0])
            variant = pw.variants[chosen[1]]
            rng = stream(self.seed, "patient", index, "care", attempt)
            care = PatientCare(
                self._patient_stub(index, demo, target), rng, self.directory, self.common, self.config
            )
            window = self.config.window_end - self.config.window_start
            if variant.onset == "ongoing":
                onset = self.config.window_start + dt.timedelta(days=rng.uniform(0, 56))
            else:
                onset = self.config.window_start + dt.timedelta(
                    seconds=rng.uniform(0, window.total_seconds() - 86400 * 7)
                )
            care.run(pw, chosen[1], onset)
            if not care.local:
                continue
            if not target or sharing_possible(care.local, self._held(care.events), self.directory.by_code):
                break
        assert care is not None
        if not care.local:
            raise RuntimeError(f"patient {index}: no pathway attempt produced any care")
        rng = stream(self.seed, "patient", index, "consent")
        self._address_change(index, demo, care, rng)
        held = self._held(care.events)
        consent = build_consent(
            rng, self.profile, index, care.local, held, self.directory.by_code, self.all_codes, target, ref
        )
        patient = self._patient_stub(index, demo, target, care.death)
        return PatientRecord(
            patient=patient,
            local_ids=build_local_ids(care, local_id),
            episodes=care.episodes,
            events=sorted(care.events, key=lambda e: (e.time, e.event_id)),
            consent=consent.form,
            additions=list(consent.additions),
            withdrawal=consent.withdrawal,
            pathway=f"{chosen[0]}/{chosen[1]}",
        )

    def _patient_stub(
        self, index: int, demo: Demographics, target: bool, death: dt.datetime | None = None
    ) -> Patient:
        a = 7_919 * 2 + 1  # odd, not a multiple of 5: an affine bijection mod 10^9
        regional = (a * (index + 1) + stable_int(self.seed, "regional-offset") % 10**9) % 10**9
        return Patient(
            index=index,
            patient_id=f"P{index + 1:07d}",
            regional_id=f"R{regional:09d}",
            name=demo.name,
            sex=demo.sex,  # type: ignore[arg-type]
            birth_date=demo.birth_date,
            address=demo.address,
            phone=demo.phone,
            mobile=demo.mobile,
            death=death,
            sharing_target=target,
        )

    def _held(self, events: list[Event]) -> dict[str, set[str]]:
        held: dict[str, set[str]] = {}
        for e in events:
            if e.detail == "full" and e.status != "cancelled":
                held.setdefault(e.facility_code, set()).add(e.category)
        return held

    def _address_change(self, index: int, demo: Demographics, care: PatientCare, rng: random.Random) -> None:
        """Some patients move: one ADT-00 update at their first disclosing facility, old → current address."""
        if rng.random() >= self.profile.demographics.address_change_share:
            return
        sites = [e for e in care.events if e.kind == "registration"]
        if not sites:
            return
        first = sites[0]
        last_time = max(e.time for e in care.events if e.facility_code == first.facility_code)
        if last_time <= first.time + dt.timedelta(days=2):
            return
        span = (last_time - first.time).total_seconds()
        when = first.time + dt.timedelta(seconds=rng.uniform(86400, span))
        old = self.people.previous_address(index, demo.address)
        care.events.append(
            Event(
                index * EVENTS_PER_PATIENT + EVENTS_PER_PATIENT - 1,
                index,
                "",
                first.facility_code,
                when,
                "demographics_update",
                "patient_basics",
                "",
                "",
                "",
                "new",
                "full",
                {
                    "field": "address",
                    "old": {"postcode": old.postcode, "text": old.text},
                    "new": {"postcode": demo.address.postcode, "text": demo.address.text},
                },
            )
        )


# -- process pool plumbing ---------------------------------------------------------------------------
_WORKER: PatientBuilder | None = None


_WORKER_TRANSFORM: Callable[[PatientRecord], Any] | None = None


def _init_worker(
    profile: Profile, seed: int, facilities: list[Facility], transform: Callable[[PatientRecord], Any]
) -> None:
    global _WORKER, _WORKER_TRANSFORM
    _WORKER = PatientBuilder(profile, seed, facilities)
    _WORKER_TRANSFORM = transform


def _build_chunk(indices: range) -> list[Any]:
    assert _WORKER is not None
    assert _WORKER_TRANSFORM is not None
    return [_WORKER_TRANSFORM(_WORKER.build(i)) for i in indices]


def _identity(record: PatientRecord) -> PatientRecord:
    return record


def iter_patients(
    profile: Profile,
    seed: int,
    facilities: list[Facility],
    jobs: int = 1,
    transform: Callable[[PatientRecord], Any] = _identity,
    chunk: int = 200,
) -> Iterator[Any]:
    """``transform(patient)`` for every patient in index order, built by ``jobs`` processes (1: here).

    ``transform`` runs in the worker (it must be a module-level function), so heavy per-patient work such
    as turning records into database rows is spread over the cores too.
    """
    total = profile.registered_patients
    if jobs <= 1 or total <= chunk:
        builder = PatientBuilder(profile, seed, facilities)
        for i in range(total):
            yield transform(builder.build(i))
        return
    ranges = [range(s, min(s + chunk, total)) for s in range(0, total, chunk)]
    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(profile, seed, facilities, transform)
    ) as pool:
        for results in pool.map(_build_chunk, ranges):
            yield from results


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def build(profile: Profile, seed: int, jobs: int = 1, progress: Callable[[int], None] | None = None) -> World:
    """The world in memory (fine for small profiles; :func:`synthetic.store.write_world` streams)."""
    geo = geography(profile.prefecture)
    facilities = build_facilities(profile, seed, geo, drawer())
    patients = []
    for record in iter_patients(profile, seed, facilities, jobs):
        patients.append(record)
        if progress:
            progress(1)
    return World(profile, seed, facilities, patients)
