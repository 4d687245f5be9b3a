"""The engine's state and primitives: event emission, orders, diagnoses, labs and drugs, documents."""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from synthetic import tables
from synthetic.care.directory import Directory
from synthetic.care.kinds import (
    DOCUMENT_CATEGORY,
    EVENTS_PER_PATIENT,
    KIND_CATEGORY,
    REVISABLE,
    SUMMARY_KINDS,
    CareConfig,
)
from synthetic.model import Episode, Event, Facility, Patient
from synthetic.pathway import Common, State
from synthetic.rng import Weighted


@dataclass(slots=True)
class StateRun:
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


class CareBase:
    """One patient's care so far, and the primitives the actions and the walk through states build on."""

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
        self.seq = 0
        self._episode_seq = 0
        self._state_facility: dict[str, Facility] = {}
        self._pharmacy: Facility | None = None
        self._labs = tables.labs()
        self.drug_table = tables.drugs()
        self._dx = tables.diagnoses()
        self.procedure_table = tables.procedures()

    # -- identifiers ------------------------------------------------------------------------------
    def next_id(self) -> tuple[int, str]:
        """A new event ID (patient index · 10^5 + sequence) and the order number that goes with it."""
        self.seq += 1
        return self.p.index * EVENTS_PER_PATIENT + self.seq, f"{self.p.index:07d}{self.seq:05d}"

    # -- emission ---------------------------------------------------------------------------------
    def emit(
        self,
        run: StateRun | None,
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
        event_id, _ = self.next_id()
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
            event_id, _ = self.next_id()
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

    def order(
        self,
        run: StateRun,
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
        _, order_no = self.next_id()
        if self.emit(run, run.facility, time, kind, payload, order_no=order_no) is None:
            return
        if kind in REVISABLE:
            roll = self.rng.random()
            if roll < self.cfg.cancel_share:
                later = time + dt.timedelta(minutes=self.rng.randint(10, 240))
                self.emit(run, run.facility, later, kind, payload, order_no=order_no, status="cancelled")
                return
            if roll < self.cfg.cancel_share + self.cfg.revise_share:
                later = time + dt.timedelta(minutes=self.rng.randint(5, 120))
                revised = dict(payload, revision=1)
                self.emit(run, run.facility, later, kind, revised, order_no=order_no, status="revised")
        if result_kind is not None:
            self.emit(
                run, run.facility, time + result_delay, result_kind, result_payload or {}, order_no=order_no
            )

    # -- clinical content -------------------------------------------------------------------------
    def _diagnose(self, run: StateRun, time: dt.datetime) -> None:
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

    def _emit_dx(self, run: StateRun, time: dt.datetime, key: str) -> None:
        d = self.diagnoses[key]
        payload = {"key": key, "status": d["status"], "onset": d["onset"], "main": d["main"]}
        if "resolved" in d:
            payload["resolved"] = d["resolved"]
        self.emit(run, run.facility, time, "diagnosis", payload)

    def _resolve_on_exit(self, run: StateRun, time: dt.datetime) -> None:
        for key, d in self.diagnoses.items():
            if d.get("resolve") and "resolved" not in d:
                d["resolved"] = time.date().isoformat()
                d["status"] = "resolved"
                self._emit_dx(run, time, key)

    def _conditions(self) -> list[str]:
        return [k for k, d in self.diagnoses.items() if d["status"] != "resolved"]

    def lab_items(self, run: StateRun, panels: list[str], time: dt.datetime) -> list[list[Any]]:
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

    def drugs_for(self, action_drugs: list[str], indications: list[str], per: int) -> list[str]:
        keys = list(action_drugs)
        patient_indications = {
            tag for dx in self._conditions() for tag in self.common.indications.get(dx, [])
        }
        for indication in indications:
            if indication not in patient_indications:
                continue
            if indication not in self.regimen:
                pool = sorted(
                    k for k, d in self.drug_table.items() if indication in d.indications and d.kind == "oral"
                )
                self.regimen[indication] = self.rng.sample(pool, min(per, len(pool))) if pool else []
            keys += [k for k in self.regimen[indication] if k not in keys]
        for key in keys:
            if key not in self.drug_table:
                raise KeyError(f"pathway drug {key!r} is not in drugs.csv")
        return keys

    def rx_line(self, key: str, days: int | None) -> list[Any]:
        d = self.drug_table[key]
        return [key, d.dose, d.unit, d.times_per_day, days or d.days, d.usage_text]

    def pharmacy_for(self) -> Facility | None:
        if self._pharmacy is None:
            pool = self.dir.candidates("pharmacy", (), self.p.address.municipality_code)
            self._pharmacy = pool.pick(self.rng) if pool else None
        return self._pharmacy

    def emit_document(
        self, run: StateRun, kind: str, time: dt.datetime, nxt: tuple[str, State, Facility] | None
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
        self.emit(run, run.facility, time, "document", payload, category=DOCUMENT_CATEGORY[kind])


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
