"""The care engine: runs a pathway for one patient and records episodes, events and local IDs.

It walks the pathway's states from the variant's start, choosing a facility for each state (near the
patient's home, weighted by size), and emits the events each state defines: admissions and discharges,
outpatient visits, orders and their results, documents, diagnoses. Events at a non-disclosing facility are
kept as encounter summaries only (``detail="summary"``): that data never leaves the facility.

Everything draws from the patient's own stream, and times come from the world's clock, never the wall.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from synthetic import tables
from synthetic.model import Episode, Event, Facility, LocalId, Patient
from synthetic.pathway import Action, Common, FacilityChoice, Pathway, State, Variant
from synthetic.rng import Weighted, stable_int, triangular_int

#: The disclosure item category of each event kind (order results share their order's category).
KIND_CATEGORY: dict[str, str] = {
    "registration": "patient_basics",
    "demographics_update": "patient_basics",
    "outpatient_visit": "patient_basics",
    "admission_planned": "patient_basics",
    "admission": "patient_basics",
    "transfer_planned": "patient_basics",
    "ward_transfer": "patient_basics",
    "doctor_change": "patient_basics",
    "outing": "patient_basics",
    "outing_return": "patient_basics",
    "discharge_planned": "patient_basics",
    "discharge": "patient_basics",
    "allergy": "patient_basics",
    "care_visit": "patient_basics",
    "diagnosis": "diagnoses",
    "diet_order": "other",
    "prescription_order": "prescription_orders",
    "prescription_admin": "prescription_orders",
    "injection_order": "injection_orders",
    "injection_admin": "injection_orders",
    "lab_order": "lab_orders",
    "lab_result": "lab_results",
    "radiology_order": "radiology_orders",
    "radiology_done": "radiology_orders",
    "endoscopy_order": "endoscopy_orders",
    "endoscopy_done": "endoscopy_orders",
    "physiology_order": "physiology_results",
    "physiology_result": "physiology_results",
    "dispensing": "dispensing_results",
}
DOCUMENT_CATEGORY = {
    "discharge_summary": "discharge_summaries",
    "referral_letter": "referral_letters",
    "progress_note": "progress_notes",
    "nursing_note": "nursing_notes",
}
#: Kinds recorded at a non-disclosing facility (the encounter only).
SUMMARY_KINDS = frozenset({"outpatient_visit", "admission", "discharge", "care_visit", "dispensing"})
#: Order kinds that may be revised (condition flag 1→2) or cancelled (flag 0) after they are placed.
REVISABLE = frozenset({"prescription_order", "injection_order", "lab_order", "radiology_order"})
#: Event IDs are ``patient_index * EVENTS_PER_PATIENT + sequence``: unique, and an integer SQLite key.
EVENTS_PER_PATIENT = 100_000
WARDS = ("3東", "3西", "4東", "4西", "5東", "5西", "6東", "6西")


@dataclass(frozen=True, slots=True)
class CareConfig:
    window_start: dt.datetime
    window_end: dt.datetime  # the reference date, end of day: nothing happens after it
    revise_share: float
    cancel_share: float
    address_change_share: float


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


@dataclass(slots=True)
class _StateRun:
    state_name: str
    state: State
    facility: Facility
    start: dt.datetime
    end: dt.datetime  # planned end (may be past the window)
    department: str
    doctor: str
    episode_id: str
    ward: str = ""
    procedures: list[str] = field(default_factory=list)
    discharge_drugs: list[str] = field(default_factory=list)


class PatientCare:
    """Builds one patient's care. Not thread-safe; one instance per patient."""

    def __init__(
        self,
        patient: Patient,
        rng: random.Random,
        directory: Directory,
        common: Common,
        config: CareConfig,
    ) -> None:
        self.p = patient
        self.rng = rng
        self.dir = directory
        self.common = common
        self.cfg = config
        self.events: list[Event] = []
        self.episodes: list[Episode] = []
        self.local: dict[str, dt.date] = {}
        self.diagnoses: dict[str, dict[str, Any]] = {}  # key -> {status, onset, main}
        self.regimen: dict[str, list[str]] = {}  # indication -> drug keys, stable for the patient
        self.death: dt.datetime | None = None
        self._seq = 0
        self._episode_seq = 0
        self._state_facility: dict[str, Facility] = {}
        self._pharmacy: Facility | None = None
        self._labs = tables.labs()
        self._drugs = tables.drugs()
        self._dx = tables.diagnoses()
        self._proc = tables.procedures()

    # -- identifiers ------------------------------------------------------------------------------
    def _next_id(self) -> tuple[int, str]:
        """A new event ID (patient index · 10^5 + sequence) and the order number that goes with it."""
        self._seq += 1
        return self.p.index * EVENTS_PER_PATIENT + self._seq, f"{self.p.index:07d}{self._seq:05d}"

    # -- emission ---------------------------------------------------------------------------------
    def _emit(
        self,
        run: _StateRun | None,
        facility: Facility,
        time: dt.datetime,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        order_no: str = "",
        status: str = "new",
        category: str | None = None,
        department: str | None = None,
        doctor: str | None = None,
    ) -> int | None:
        """Record an event; returns its event ID, or None when it falls outside the window or life."""
        if time > self.cfg.window_end or time < self.cfg.window_start:
            return None
        if self.death is not None and time > self.death:
            return None
        full = facility.disclosing
        if not full and kind not in SUMMARY_KINDS:
            return None
        self._register(facility, time)
        event_id, _ = self._next_id()
        self.events.append(
            Event(
                event_id=event_id,
                patient_index=self.p.index,
                episode_id=run.episode_id if run else "",
                facility_code=facility.code,
                time=time,
                kind=kind,
                category=category or KIND_CATEGORY[kind],
                department=department if department is not None else (run.department if run else ""),
                doctor_id=doctor if doctor is not None else (run.doctor if run else ""),
                order_no=order_no,
                status=status,  # type: ignore[arg-type]
                detail="full" if full else "summary",
                payload=(payload or {}) if full else {},
            )
        )
        return event_id

    def _register(self, facility: Facility, time: dt.datetime) -> None:
        if facility.code in self.local:
            return
        self.local[facility.code] = time.date()
        if facility.disclosing:
            event_id, _ = self._next_id()
            self.events.append(
                Event(
                    event_id,
                    self.p.index,
                    "",
                    facility.code,
                    time - dt.timedelta(minutes=5),
                    "registration",
                    "patient_basics",
                    "",
                    "",
                    "",
                    "new",
                    "full",
                    {},
                )
            )

    def _order(
        self,
        run: _StateRun,
        time: dt.datetime,
        kind: str,
        result_kind: str | None,
        payload: dict[str, Any],
        result_payload: dict[str, Any] | None,
        result_delay: dt.timedelta,
    ) -> None:
        """An order, perhaps revised or cancelled, and its result unless cancelled."""
        if not run.facility.disclosing:
            return
        _, order_no = self._next_id()
        if self._emit(run, run.facility, time, kind, payload, order_no=order_no) is None:
            return
        if kind in REVISABLE:
            roll = self.rng.random()
            if roll < self.cfg.cancel_share:
                later = time + dt.timedelta(minutes=self.rng.randint(10, 240))
                self._emit(run, run.facility, later, kind, payload, order_no=order_no, status="cancelled")
                return
            if roll < self.cfg.cancel_share + self.cfg.revise_share:
                later = time + dt.timedelta(minutes=self.rng.randint(5, 120))
                revised = dict(payload, revision=1)
                self._emit(run, run.facility, later, kind, revised, order_no=order_no, status="revised")
        if result_kind is not None:
            self._emit(
                run, run.facility, time + result_delay, result_kind, result_payload or {}, order_no=order_no
            )

    # -- clinical content -------------------------------------------------------------------------
    def _diagnose(self, run: _StateRun, time: dt.datetime) -> None:
        age = time.year - self.p.birth_date.year
        for dx in run.state.diagnoses:
            if self.rng.random() >= dx.p or age < dx.min_age:
                continue
            if dx.one_of:
                # keep an earlier pick from the same group (the disease does not change between states)
                known = [k for k in dx.one_of if k in self.diagnoses]
                key = (
                    known[0] if known else Weighted(list(dx.one_of), list(dx.one_of.values())).pick(self.rng)
                )
            else:
                assert dx.key is not None
                key = dx.key
            if key not in self._dx:
                raise KeyError(f"pathway diagnosis {key!r} is not in diagnoses.csv")
            before = self.diagnoses.get(key)
            if before is not None and before["status"] == dx.status:
                continue
            onset = before["onset"] if before else self._onset(key, time)
            self.diagnoses[key] = {
                "status": dx.status,
                "onset": onset,
                "main": dx.main,
                "resolve": dx.resolve_on_exit,
            }
            self._emit_dx(run, time, key)

    def _onset(self, key: str, time: dt.datetime) -> str:
        if self._dx[key].category == "chronic":
            adult = dt.date(self.p.birth_date.year + 25, 1, 1)
            years_back = self.rng.randint(1, 15)
            onset = max(adult, time.date() - dt.timedelta(days=365 * years_back))
            return min(onset, time.date()).isoformat()
        return time.date().isoformat()

    def _emit_dx(self, run: _StateRun, time: dt.datetime, key: str) -> None:
        d = self.diagnoses[key]
        payload = {"key": key, "status": d["status"], "onset": d["onset"], "main": d["main"]}
        if "resolved" in d:
            payload["resolved"] = d["resolved"]
        self._emit(run, run.facility, time, "diagnosis", payload)

    def _resolve_on_exit(self, run: _StateRun, time: dt.datetime) -> None:
        for key, d in self.diagnoses.items():
            if d.get("resolve") and "resolved" not in d:
                d["resolved"] = time.date().isoformat()
                d["status"] = "resolved"
                self._emit_dx(run, time, key)

    def _conditions(self) -> list[str]:
        return [k for k, d in self.diagnoses.items() if d["status"] != "resolved"]

    def _lab_items(self, run: _StateRun, panels: list[str], time: dt.datetime) -> list[list[Any]]:
        active = ("all", *self._conditions())
        overrides: dict[str, str] = {}
        mults: dict[str, float] = {}
        for cond in reversed(active):  # a specific diagnosis wins over "all"
            overrides.update(run.state.lab_values.get(cond, {}))
        for cond in active:
            for key, m in run.state.lab_effects.get(cond, {}).items():
                mults[key] = mults.get(key, 1.0) * m
        trend = run.state.lab_trend_days
        decay = math.exp(-max((time - run.start).total_seconds() / 86400, 0.0) / trend) if trend else 1.0
        gauss = self.rng.gauss
        items: list[list[Any]] = []
        for test in _panel_tests(tuple(panels)):
            override = overrides.get(test.key)
            if override is not None or test.value_type != "NM" or (test.sd == 0 and test.mean == 0):
                if override is None:
                    override = (
                        "検出せず"
                        if test.value_type == "NM"
                        else ("(−)" if test.key.startswith("u_") else "陰性")
                    )
                flag = "A" if override in ("陽性", "(+)") or _is_number(override) else "N"
                items.append([test.key, override, flag])
                continue
            if test.mean is None or test.sd is None:
                continue
            mult = mults.get(test.key, 1.0)
            if decay != 1.0:
                mult = 1.0 + (mult - 1.0) * decay
            value = gauss(test.mean * mult, test.sd * math.sqrt(mult))
            value = max(value, 0.0)
            flag = "N"
            if test.high is not None and value > test.high:
                flag = "H"
            elif test.low is not None and value < test.low:
                flag = "L"
            items.append([test.key, f"{value:.{test.decimals}f}", flag])
        return items

    def _drugs_for(self, action_drugs: list[str], indications: list[str], per: int) -> list[str]:
        keys = list(action_drugs)
        patient_indications = {
            tag for dx in self._conditions() for tag in self.common.indications.get(dx, [])
        }
        for indication in indications:
            if indication not in patient_indications:
                continue
            if indication not in self.regimen:
                pool = sorted(
                    k for k, d in self._drugs.items() if indication in d.indications and d.kind == "oral"
                )
                self.regimen[indication] = self.rng.sample(pool, min(per, len(pool))) if pool else []
            keys += [k for k in self.regimen[indication] if k not in keys]
        for key in keys:
            if key not in self._drugs:
                raise KeyError(f"pathway drug {key!r} is not in drugs.csv")
        return keys

    def _rx_line(self, key: str, days: int | None) -> list[Any]:
        d = self._drugs[key]
        return [key, d.dose, d.unit, d.times_per_day, days or d.days, d.usage_text]

    def _pharmacy_for(self) -> Facility | None:
        if self._pharmacy is None:
            pool = self.dir.candidates("pharmacy", (), self.p.address.municipality_code)
            self._pharmacy = pool.pick(self.rng) if pool else None
        return self._pharmacy

    def _act(self, run: _StateRun, action: Action, time: dt.datetime, variant: Variant) -> None:
        if action.p < 1.0 and self.rng.random() >= action.p:
            return
        if action.when and not any(k in self.diagnoses for k in action.when):
            return
        inpatient = run.state.setting == "inpatient"
        hour = dt.timedelta(hours=1)
        if action.labs is not None:
            items = self._lab_items(run, action.labs, time)
            specimen = "blood" if any(not k.startswith("u_") for k, _, _ in items) else "urine"
            self._order(
                run,
                time,
                "lab_order",
                "lab_result",
                {"panels": action.labs, "specimen": specimen},
                {"items": items},
                dt.timedelta(minutes=self.rng.randint(50, 180)),
            )
        elif action.radiology or action.endoscopy or action.physiology:
            key = action.radiology or action.endoscopy or action.physiology or ""
            proc = self._proc.get(key)
            if proc is None:
                raise KeyError(f"pathway procedure {key!r} is not in procedures.csv")
            kind = {"radiology": "radiology", "endoscopy": "endoscopy", "physiology": "physiology"}[proc.kind]
            done_kind = {
                "radiology": "radiology_done",
                "endoscopy": "endoscopy_done",
                "physiology": "physiology_result",
            }[kind]
            payload: dict[str, Any] = {"procedure": key, "modality": proc.modality}
            result = dict(payload)
            if kind != "physiology" or proc.modality != "ECG":
                uid = stable_int("study", run.facility.code, self.p.index, self._seq, bits=120)
                result["study_uid"] = f"2.25.{uid}"
                result["series"] = proc.series
                result["images"] = proc.images_per_series
            if proc.modality == "ECG":
                hr = round(self.rng.gauss(72, 10))
                result["measurements"] = {
                    "hr": hr,
                    "pq": round(self.rng.gauss(160, 18)),
                    "qrs": round(self.rng.gauss(92, 10)),
                    "qt": round(self.rng.gauss(390, 25)),
                    "qtc": round(self.rng.gauss(420, 20)),
                    "rhythm": "af" if "atrial_fibrillation" in self.diagnoses else "sinus",
                }
            run.procedures.append(key)
            self._order(
                run,
                time,
                f"{kind}_order",
                done_kind,
                payload,
                result,
                dt.timedelta(minutes=self.rng.randint(30, 240)),
            )
        elif action.prescription is not None:
            rx = action.prescription
            keys = self._drugs_for(rx.drugs, rx.indications, rx.per_indication)
            if not keys:
                return
            lines = [self._rx_line(k, rx.days) for k in keys]
            setting = "inpatient" if inpatient else "outpatient"
            if run.state_name and time >= run.end - dt.timedelta(days=1):
                run.discharge_drugs = keys
            self._order(
                run,
                time,
                "prescription_order",
                "prescription_admin" if inpatient else None,
                {"rx": lines, "setting": setting},
                {"rx": lines, "administered": 1},
                18 * hour,
            )
            pharmacy = self._pharmacy_for() if variant.pharmacy and not inpatient else None
            if pharmacy is not None and self.rng.random() < run.state.pharmacy:
                self._emit(
                    run,
                    pharmacy,
                    time + hour,
                    "dispensing",
                    {"rx": lines, "from": run.facility.code},
                    department="",
                    doctor="",
                )
        elif action.injection is not None:
            drug = self._drugs.get(action.injection)
            if drug is None:
                raise KeyError(f"pathway drug {action.injection!r} is not in drugs.csv")
            line = self._rx_line(action.injection, action.injection_days)
            _, order_no = self._next_id()
            if self._emit(run, run.facility, time, "injection_order", {"rx": [line]}, order_no=order_no):
                for day in range(action.injection_days):
                    at = time + dt.timedelta(days=day, minutes=self.rng.randint(20, 90))
                    if at > run.end:
                        break
                    self._emit(
                        run,
                        run.facility,
                        at,
                        "injection_admin",
                        {"rx": [line], "dose_no": day + 1},
                        order_no=order_no,
                    )
        elif action.document is not None:
            self._document(run, action.document, time, None)
        elif action.diet is not None:
            _, order_no = self._next_id()
            self._emit(run, run.facility, time, "diet_order", {"diet": action.diet}, order_no=order_no)
        elif action.allergy:
            allergen = self.rng.choice(self.common.allergens)
            self._emit(
                run,
                run.facility,
                time,
                "allergy",
                {
                    "name": allergen.name,
                    "type": allergen.type,
                    "severity": self.rng.choice(["MI", "MO", "SV"]),
                },
            )
        elif action.ward_transfer and inpatient:
            new_ward = self.rng.choice([w for w in WARDS if w != run.ward])
            planned_at = time - dt.timedelta(hours=self.rng.randint(3, 20))
            if planned_at > run.start:
                self._emit(
                    run,
                    run.facility,
                    planned_at,
                    "transfer_planned",
                    {"to": new_ward, "at": time.isoformat()},
                )
            self._emit(run, run.facility, time, "ward_transfer", {"from": run.ward, "to": new_ward})
            run.ward = new_ward
        elif action.doctor_change:
            doctors = [d.staff_id for d in run.facility.doctors(run.department) if d.staff_id != run.doctor]
            if doctors:
                new = self.rng.choice(doctors)
                self._emit(run, run.facility, time, "doctor_change", {"from": run.doctor, "to": new})
                run.doctor = new
        elif action.outing and inpatient:
            back = time + dt.timedelta(days=1, hours=self.rng.randint(-3, 3))
            if back < run.end:
                self._emit(run, run.facility, time, "outing", {"overnight": True})
                self._emit(run, run.facility, back, "outing_return", {})

    def _document(
        self, run: _StateRun, kind: str, time: dt.datetime, nxt: tuple[str, State, Facility] | None
    ) -> None:
        payload: dict[str, Any] = {
            "doc": kind,
            "state": run.state_name,
            "diagnoses": self._conditions(),
            "day": (time.date() - run.start.date()).days + 1,
        }
        if kind in ("discharge_summary", "referral_letter"):
            payload["start"] = run.start.isoformat()
            payload["procedures"] = list(run.procedures)
            payload["drugs"] = list(run.discharge_drugs)
            if nxt is not None:
                payload["plan"] = nxt[0]
                payload["to"] = nxt[2].code
        if kind == "referral_letter" and nxt is None:
            return  # a referral letter needs someone to refer to
        self._emit(run, run.facility, time, "document", payload, category=DOCUMENT_CATEGORY[kind])

    # -- states -----------------------------------------------------------------------------------
    def _facility(self, choice: FacilityChoice, previous: Facility | None) -> Facility | None:
        if choice.same_as:
            return self._state_facility.get(choice.same_as)
        near = self.p.address.municipality_code
        if choice.near == "previous" and previous is not None:
            near = previous.municipality_code
        assert choice.kind is not None
        pool = self.dir.candidates(choice.kind, tuple(choice.roles), near)
        return pool.pick(self.rng) if pool else None

    def _open(self, name: str, state: State, facility: Facility, start: dt.datetime) -> _StateRun:
        if state.duration_days is None:
            end = self.cfg.window_end + dt.timedelta(days=1)
        else:
            end = start + dt.timedelta(
                days=max(triangular_int(self.rng, *state.duration_days), 1), hours=self.rng.randint(-2, 3)
            )
        department = self.dir.department(facility, state.department)
        doctors = facility.doctors(department) or facility.doctors()
        self._episode_seq += 1
        return _StateRun(
            state_name=name,
            state=state,
            facility=facility,
            start=start,
            end=end,
            department=department,
            doctor=self.rng.choice(doctors).staff_id if doctors else "",
            episode_id=f"S{self.p.index:07d}{self._episode_seq:03d}",
            ward=self.rng.choice(WARDS) if state.setting == "inpatient" else "",
        )

    def run(self, pathway: Pathway, variant_name: str, onset: dt.datetime) -> None:
        variant = pathway.variants[variant_name]
        name = variant.start
        previous: Facility | None = None
        chosen: Facility | None = None  # picked while the previous state ended (its referral names it)
        time = onset
        while name and time <= self.cfg.window_end:
            state = pathway.states[name]
            if state.terminal:
                if name == "death":
                    self.death = time
                break
            assert state.facility is not None
            facility = chosen if chosen is not None else self._facility(state.facility, previous)
            if facility is None or (
                variant.single_facility and previous is not None and facility is not previous
            ):
                break
            run = self._open(name, state, facility, time)
            self._state_facility[name] = facility
            nxt_name = self._pick_transition(state)
            nxt = self._peek_next(pathway, nxt_name, facility, variant)
            self._run_state(run, variant, nxt, dies=nxt_name == "death")
            self.episodes.append(
                Episode(
                    run.episode_id,
                    self.p.index,
                    f"{pathway.id}/{variant_name}",
                    name,
                    facility.code,
                    state.setting,
                    run.department,
                    run.doctor,
                    run.start,
                    run.end if run.end <= self.cfg.window_end else None,
                    "death" if nxt_name == "death" else (nxt_name or "ongoing"),
                )
            )
            if run.end > self.cfg.window_end:
                break
            previous = facility
            time = run.end + dt.timedelta(hours=self.rng.randint(0, 30) if nxt_name != "death" else 0)
            name = nxt_name
            chosen = nxt[2] if nxt is not None else None

    def _pick_transition(self, state: State) -> str:
        if not state.transitions:
            return ""
        names = list(state.transitions)
        return Weighted(names, [state.transitions[n] for n in names]).pick(self.rng)

    def _peek_next(
        self, pathway: Pathway, name: str, current: Facility, variant: Variant
    ) -> tuple[str, State, Facility] | None:
        if not name:
            return None
        state = pathway.states[name]
        if state.terminal or state.facility is None:
            return None
        facility = self._facility(state.facility, current)
        if facility is None or (variant.single_facility and facility is not current):
            return None
        return name, state, facility

    def _run_state(
        self, run: _StateRun, variant: Variant, nxt: tuple[str, State, Facility] | None, *, dies: bool
    ) -> None:
        state = run.state
        f = run.facility
        day = dt.timedelta(days=1)
        if state.setting == "inpatient":
            if state.admission == "planned":
                self._emit(
                    run,
                    f,
                    run.start - dt.timedelta(days=self.rng.randint(3, 10)),
                    "admission_planned",
                    {"ward": run.ward},
                )
            self._emit(
                run,
                f,
                run.start,
                "admission",
                {
                    "ward": run.ward,
                    "room": f"{run.ward[0]}{self.rng.randint(1, 20):02d}",
                    "bed": str(self.rng.randint(1, 4)),
                    "type": state.admission or "emergency",
                },
            )
            self._diagnose(run, run.start + dt.timedelta(minutes=30))
            self._enter_actions(run, variant, run.start + dt.timedelta(minutes=40))
            span_days = (min(run.end, self.cfg.window_end) - run.start).days
            for rec in state.recurring:
                k = 1
                while k * rec.every_days < span_days:
                    at = run.start + dt.timedelta(days=k * rec.every_days, hours=self.rng.randint(0, 8))
                    self._act(run, rec.action, at.replace(hour=max(at.hour, 7)), variant)
                    k += 1
            if run.end <= self.cfg.window_end:
                self._emit(run, f, run.end - 2 * day, "discharge_planned", {})
                self._exit_actions(run, variant, run.end - dt.timedelta(hours=5), nxt)
                self._resolve_on_exit(run, run.end - dt.timedelta(hours=1))
                self._emit(
                    run,
                    f,
                    run.end,
                    "discharge",
                    {
                        "disposition": "death" if dies else "home",
                        "to": nxt[2].code if nxt else "",
                    },
                )
            return
        # outpatient, home and residential states are a series of encounters
        assert state.visit_every_days is not None
        visit = run.start.replace(hour=9) + dt.timedelta(minutes=self.rng.randint(0, 420))
        first = True
        last_visit = visit
        while visit < run.end and visit <= self.cfg.window_end:
            kind = "outpatient_visit" if state.setting == "outpatient" else "care_visit"
            self._emit(run, f, visit, kind, {"setting": state.setting})
            if first:
                self._diagnose(run, visit + dt.timedelta(minutes=5))
                self._enter_actions(run, variant, visit + dt.timedelta(minutes=10))
                if not variant.single_facility:
                    self._companions(run, variant)
                first = False
            for action in state.on_visit:
                self._act(run, action, visit + dt.timedelta(minutes=15), variant)
            last_visit = visit
            gap = max(triangular_int(self.rng, *state.visit_every_days), 1)
            visit = (visit + dt.timedelta(days=gap)).replace(hour=9) + dt.timedelta(
                minutes=self.rng.randint(0, 420)
            )
        if run.end <= self.cfg.window_end:
            self._exit_actions(run, variant, last_visit + dt.timedelta(minutes=40), nxt)
            self._resolve_on_exit(run, last_visit + dt.timedelta(minutes=45))

    def _enter_actions(self, run: _StateRun, variant: Variant, base: dt.datetime) -> None:
        for action in run.state.on_enter:
            at = base + dt.timedelta(days=action.day or 0, minutes=self.rng.randint(0, 50))
            if at < run.end:
                self._act(run, action, at, variant)

    def _exit_actions(
        self, run: _StateRun, variant: Variant, at: dt.datetime, nxt: tuple[str, State, Facility] | None
    ) -> None:
        for action in run.state.on_exit:
            if action.p < 1.0 and self.rng.random() >= action.p:
                continue
            if action.document is not None:
                self._document(run, action.document, at, nxt)
            else:
                self._act(run, action.model_copy(update={"p": 1.0}), at - dt.timedelta(hours=2), variant)

    def _companions(self, run: _StateRun, variant: Variant) -> None:
        for comp in run.state.companions:
            if self.rng.random() >= comp.p:
                continue
            facility = self._facility(comp.facility, run.facility)
            if facility is None:
                continue
            visit = run.start + dt.timedelta(days=self.rng.randint(3, 14), hours=10)
            while visit < run.end and visit <= self.cfg.window_end:
                self._emit(run, facility, visit, "care_visit", {"setting": "home"}, department="", doctor="")
                visit += dt.timedelta(days=max(triangular_int(self.rng, *comp.visit_every_days), 1))


@functools.cache
def _panel_tests(panels: tuple[str, ...]) -> tuple[tables.LabTest, ...]:
    """The tests of the given panels, in lab-table order."""
    wanted = set(panels)
    return tuple(t for t in tables.labs().values() if not wanted.isdisjoint(t.panels))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def build_local_ids(care: PatientCare, local_id_of: Any) -> list[LocalId]:
    return [
        LocalId(care.p.index, code, local_id_of(care.dir.by_code[code], care.p.index), first)
        for code, first in sorted(care.local.items(), key=lambda kv: (kv[1], kv[0]))
    ]
