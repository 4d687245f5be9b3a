"""The walk through a pathway's states: facilities, stays and visits, and the actions each state runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from synthetic.care.actions import act
from synthetic.care.engine import CareBase, StateRun
from synthetic.care.kinds import WARDS
from synthetic.model import Episode, Facility, LocalId
from synthetic.pathway import FacilityChoice, Pathway, State, Variant
from synthetic.rng import Weighted, triangular_int


class PatientCare(CareBase):
    """Builds one patient's care. Not thread-safe; one instance per patient."""

    def _facility(self, choice: FacilityChoice, previous: Facility | None) -> Facility | None:
        if choice.same_as:
            return self._state_facility.get(choice.same_as)
        near = self.p.address.municipality_code
        if choice.near == "previous" and previous is not None:
            near = previous.municipality_code
        assert choice.kind is not None
        pool = self.dir.candidates(choice.kind, tuple(choice.roles), near)
        return pool.pick(self.rng) if pool else None

    def _open(self, name: str, state: State, facility: Facility, start: dt.datetime) -> StateRun:
        if state.duration_days is None:
            end = self.cfg.window_end + dt.timedelta(days=1)
        else:
            end = start + dt.timedelta(
                days=max(triangular_int(self.rng, *state.duration_days), 1), hours=self.rng.randint(-2, 3)
            )
        department = self.dir.department(facility, state.department)
        doctors = facility.doctors(department) or facility.doctors()
        self._episode_seq += 1
        return StateRun(
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
        self, run: StateRun, variant: Variant, nxt: tuple[str, State, Facility] | None, *, dies: bool
    ) -> None:
        state = run.state
        f = run.facility
        day = dt.timedelta(days=1)
        if state.setting == "inpatient":
            if state.admission == "planned":
                self.emit(
                    run,
                    f,
                    run.start - dt.timedelta(days=self.rng.randint(3, 10)),
                    "admission_planned",
                    {"ward": run.ward},
                )
            self.emit(
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
                    act(self, run, rec.action, at.replace(hour=max(at.hour, 7)), variant)
                    k += 1
            if run.end <= self.cfg.window_end:
                self.emit(run, f, run.end - 2 * day, "discharge_planned", {})
                self._exit_actions(run, variant, run.end - dt.timedelta(hours=5), nxt)
                self._resolve_on_exit(run, run.end - dt.timedelta(hours=1))
                self.emit(
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
            self.emit(run, f, visit, kind, {"setting": state.setting})
            if first:
                self._diagnose(run, visit + dt.timedelta(minutes=5))
                self._enter_actions(run, variant, visit + dt.timedelta(minutes=10))
                if not variant.single_facility:
                    self._companions(run, variant)
                first = False
            for action in state.on_visit:
                act(self, run, action, visit + dt.timedelta(minutes=15), variant)
            last_visit = visit
            gap = max(triangular_int(self.rng, *state.visit_every_days), 1)
            visit = (visit + dt.timedelta(days=gap)).replace(hour=9) + dt.timedelta(
                minutes=self.rng.randint(0, 420)
            )
        if run.end <= self.cfg.window_end:
            self._exit_actions(run, variant, last_visit + dt.timedelta(minutes=40), nxt)
            self._resolve_on_exit(run, last_visit + dt.timedelta(minutes=45))

    def _enter_actions(self, run: StateRun, variant: Variant, base: dt.datetime) -> None:
        for action in run.state.on_enter:
            at = base + dt.timedelta(days=action.day or 0, minutes=self.rng.randint(0, 50))
            if at < run.end:
                act(self, run, action, at, variant)

    def _exit_actions(
        self, run: StateRun, variant: Variant, at: dt.datetime, nxt: tuple[str, State, Facility] | None
    ) -> None:
        for action in run.state.on_exit:
            if action.p < 1.0 and self.rng.random() >= action.p:
                continue
            if action.document is not None:
                self.emit_document(run, action.document, at, nxt)
            else:
                act(self, run, action.model_copy(update={"p": 1.0}), at - dt.timedelta(hours=2), variant)

    def _companions(self, run: StateRun, variant: Variant) -> None:
        for comp in run.state.companions:
            if self.rng.random() >= comp.p:
                continue
            facility = self._facility(comp.facility, run.facility)
            if facility is None:
                continue
            visit = run.start + dt.timedelta(days=self.rng.randint(3, 14), hours=10)
            while visit < run.end and visit <= self.cfg.window_end:
                self.emit(run, facility, visit, "care_visit", {"setting": "home"}, department="", doctor="")
                visit += dt.timedelta(days=max(triangular_int(self.rng, *comp.visit_every_days), 1))


def build_local_ids(care: PatientCare, local_id_of: Any) -> list[LocalId]:
    return [
        LocalId(care.p.index, code, local_id_of(care.dir.by_code[code], care.p.index), first)
        for code, first in sorted(care.local.items(), key=lambda kv: (kv[1], kv[0]))
    ]
