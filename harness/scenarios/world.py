"""``given`` resolved against the world (:mod:`.worldindex` reads it; its types are re-exported here).

Allocation. Candidates for each patient variable are ordered by a hash of (run salt, scenario ID, variable,
patient index), and the first candidate not yet reserved in this run is taken: no two scenarios of a run
share a patient, which is what lets them run in parallel and in any subset. Scenarios are allocated scarcest
first (:meth:`Allocator.scarcity`: the fewest candidates for one of their variables, counting only patients
that leave facilities meeting the selectors naming that variable alone), then by ID, so a rare selector is
not starved by a common one. Patients are tried in hash order until the scenario's facility selectors that
refer to them can be met too (facilities are shared between scenarios, but distinct within one); facilities
are searched depth-first in their own hash order. The salt is the target's: the reference target's is empty
(every run on a fresh network picks the same patients); an external target's is new each run unless its
file fixes one.

Re-runs on a long-lived hub (:meth:`Allocator.allocate_all`). A scenario that changes world patients
(:attr:`~harness.scenarios.model.Scenario.changes_world`, derived from its step kinds) gets the world
patients a plan of *every* scenario there is, under the fixed :data:`PLAN_SALT`, gives it: pinned, the same
on every run whatever the salt or the selection; together they are the reserved pool. Any other scenario
takes world patients outside the pool and outside ``changed`` (the patients a target's state file says
earlier runs changed, :mod:`harness.scenarios.history`), so it always meets them as the world has them;
when none is left it gets a :class:`ReservedError`. A patient whose consent a scenario withdraws
(:attr:`~harness.scenarios.model.Scenario.consumes_world`) cannot be set up again the same way on the same
hub (every later form must be dated after the withdrawal), so once an earlier run has used its pin, that
variable takes a world patient outside the pool that no earlier run changed — one more each run, recorded
in the state file like every changed patient, until none is left (a :class:`ReservedError` then says so).
Fresh variables take any patient. The plan also rescues
a salt whose order starves a scarce scenario: the selection is allocated again with the plan's (disjoint)
choices tried first. Chosen over "changing scenarios take only fresh patients": several must change a
world patient with real data behind its gateways (withdrawal, disclosure, viewer kinds).

Fresh identities (``fresh: true``): :mod:`.bindings`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from synthetic.consent import ConsentState

from .bindings import Bindings, PatientBinding, fresh_epoch, scenario_tag, stable_hash
from .errors import SelectionError
from .model import FacilitySelector, PatientSelector, Scenario
from .worldindex import WorldFacility, WorldIndex, WorldPatient, WorldUser

__all__ = [
    "Allocator",
    "Bindings",
    "PatientBinding",
    "ReservedError",
    "WorldFacility",
    "WorldIndex",
    "WorldPatient",
    "WorldUser",
    "fresh_epoch",
    "scenario_tag",
]

_ATTEMPTS = 5000  # patient candidates tried per variable before giving up
_CHECKED = 500  # at most this many predicate matches: also check the facilities (scarcity is exact)
PLAN_SALT: Final = "rhin-plan"
"""Orders the plan that pins world patients to the scenarios changing them: fixed, so the reserved pool
is the same on every run."""


class ReservedError(SelectionError):
    """A scenario needing world patients as the world has them finds every candidate in the reserved pool
    or changed by an earlier run on the target: the selection cannot be satisfied on this hub."""


@dataclass(frozen=True)
class _Rules:
    """What a run's allocation must respect: the pinned world patients of scenarios that change them, the
    pool those pins make up, and the world patients earlier runs on the target changed."""

    pins: Mapping[str, Mapping[str, WorldPatient]] = field(default_factory=dict)
    pool: frozenset[int] = frozenset()
    changed: frozenset[int] = frozenset()
    prefer: Mapping[str, Mapping[str, WorldPatient]] = field(default_factory=dict)
    planned: bool = False  # a run's allocation after the plan (not the plan itself)
    demand: Mapping[int, float] = field(default_factory=dict)  # see Allocator._demand


class Allocator:
    """Resolves ``given`` for the scenarios of one run, never giving a patient to two of them, nor a patient
    a scenario may change to one that needs it as the world has it (:meth:`allocate_all`)."""

    def __init__(
        self,
        world: WorldIndex,
        salt: str = "",
        *,
        fresh_salt: str | None = None,
        changed: Iterable[int] = (),
    ) -> None:
        self.world = world
        self.salt = salt  # orders the candidates
        self.fresh_salt = salt if fresh_salt is None else fresh_salt  # fresh identities and scenario tags
        self.changed = frozenset(changed)  # world patients an earlier run on the target changed
        self.reserved: set[int] = set()
        self.pool: frozenset[int] = frozenset()  # set by allocate_all: the changing scenarios' patients

    def feasible(self, scenario: Scenario, var: str) -> list[WorldPatient]:
        """World patients meeting ``var``'s predicates and — when there are at most :data:`_CHECKED` of
        them, where scarcity matters — leaving facilities that meet the selectors naming ``var`` alone."""
        key = (scenario.given.model_dump_json(), var)
        found = self.world.feasible.get(key)
        if found is None:
            selector = scenario.given.patients[var]
            found = [p for p in self.world.patients if self._patient_ok(selector, p)]
            if len(found) <= _CHECKED:
                own = {n: s for n, s in scenario.given.facilities.items() if s.patients() <= {var}}
                found = [p for p in found if self._facilities(scenario.id, own, {var: p}) is not None]
            self.world.feasible[key] = found
        return found

    def scarcity(self, scenario: Scenario) -> int:
        """How many world patients the scenario's scarcest patient variable could take: scenarios are
        allocated scarcest first, so a rare selector (a stroke patient seen at four kinds of facility) is not
        starved by a common one that happened to hash onto its patient."""
        counts = [len(self.feasible(scenario, var)) for var in scenario.given.patients]
        return min(counts, default=len(self.world.patients))

    def allocate_all(
        self, scenarios: Sequence[Scenario], catalogue: Sequence[Scenario] = ()
    ) -> dict[str, Bindings | SelectionError]:
        """Bindings (or why there are none) for each scenario ID.

        First a plan for the whole ``catalogue`` (every scenario there is, selected or not) and the selection,
        ordered by a fixed salt: the world patients it gives scenarios that change them
        (:attr:`Scenario.changes_world`) are *pinned* to them, and together make the reserved :attr:`pool`
        — the same on every run, whatever the salt, the selection or its order. Then the selection, scarcest
        first, in this allocator's salt order: a changing scenario gets its pinned patients; a world patient
        of any other scenario is never from the pool nor one an earlier run changed (``changed``); fresh
        variables take any patient. If the salt's order starves a scenario the plan could serve, the
        selection is allocated again with the plan's choices tried first (the plan is disjoint)."""
        everything = {s.id: s for s in [*catalogue, *scenarios]}
        planner = Allocator(self.world, PLAN_SALT, fresh_salt=self.fresh_salt)
        plan = planner._greedy(list(everything.values()), _Rules())
        pins = {
            sid: {var: b.patient for var, b in found.patients.items() if not b.fresh}
            for sid, found in plan.items()
            if isinstance(found, Bindings) and everything[sid].changes_world
        }
        self.pool = frozenset(p.index for chosen in pins.values() for p in chosen.values())
        for sid, chosen in pins.items():  # a consumed pin an earlier run used up: another patient this time
            used = everything[sid].consumes_world
            pins[sid] = {v: p for v, p in chosen.items() if v not in used or p.index not in self.changed}
        rules = _Rules(pins, self.pool, self.changed, planned=True, demand=self._demand(everything.values()))
        out = self._greedy(scenarios, rules)
        starved = [s.id for s in scenarios if isinstance(out[s.id], SelectionError)]
        if any(isinstance(plan.get(sid), Bindings) for sid in starved):
            prefer = {
                sid: {var: b.patient for var, b in found.patients.items()}
                for sid, found in plan.items()
                if isinstance(found, Bindings)
            }
            again = self._greedy(scenarios, replace(rules, prefer=prefer))
            if sum(isinstance(v, SelectionError) for v in again.values()) < len(starved):
                out = again
        for s in scenarios:
            planned = plan.get(s.id)
            if s.changes_world and isinstance(planned, SelectionError):
                out[s.id] = planned  # why it has no pinned patients
        return out

    def _demand(self, catalogue: Iterable[Scenario]) -> dict[int, float]:
        """How much the catalogue's other scenarios need each scarce world patient: for every variable of a
        scenario that never changes its patients with at most :data:`_CHECKED` candidates outside the pool,
        1 / that count on each candidate. A consumed pin's replacement (a new patient every run on a
        long-lived hub, changed for good) is chosen least needed first: taken by the salt alone, it
        sometimes took the one patient a read-only scenario had left (dist-stroke-journey's second stroke
        patient, after four runs) and starved that scenario on every later run."""
        demand: dict[int, float] = {}
        for scenario in catalogue:
            if scenario.changes_world:
                continue
            for var, selector in scenario.given.patients.items():
                if selector.fresh:
                    continue
                free = [p.index for p in self.feasible(scenario, var) if p.index not in self.pool]
                if 0 < len(free) <= _CHECKED:
                    for index in free:
                        demand[index] = demand.get(index, 0.0) + 1 / len(free)
        return demand

    def _greedy(self, scenarios: Sequence[Scenario], rules: _Rules) -> dict[str, Bindings | SelectionError]:
        ids = {s.id for s in scenarios}
        self.reserved = {p.index for sid, chosen in rules.pins.items() if sid in ids for p in chosen.values()}
        order = sorted(scenarios, key=lambda s: (self._scarcity(s, rules), s.id))
        out: dict[str, Bindings | SelectionError] = {}
        for scenario in order:
            try:
                out[scenario.id] = self._allocate(scenario, rules)
            except SelectionError as exc:
                out[scenario.id] = exc
        return out

    def _scarcity(self, scenario: Scenario, rules: _Rules) -> int:
        counts = [len(self._candidates(scenario, var, rules)) for var in scenario.given.patients]
        return min(counts, default=len(self.world.patients))

    def _candidates(self, scenario: Scenario, var: str, rules: _Rules) -> list[WorldPatient]:
        """``var``'s candidates under the rules, before this run's reservations."""
        if scenario.given.patients[var].fresh:
            return self.feasible(scenario, var)
        pinned = rules.pins.get(scenario.id, {})
        if var in pinned:
            return [pinned[var]]
        barred = rules.pool | rules.changed
        if var in scenario.consumes_world and rules.planned and scenario.id in rules.pins:
            return [p for p in self.feasible(scenario, var) if p.index not in barred]  # its pin was used up
        if scenario.changes_world and rules.planned:
            return []  # the plan found it nothing: its error says why
        return [p for p in self.feasible(scenario, var) if p.index not in barred]

    def allocate(self, scenario: Scenario) -> Bindings:
        """Bindings for ``scenario`` alone (no pool, nothing changed); :class:`SelectionError` says which
        variable found nothing."""
        return self._allocate(scenario, _Rules())

    def _allocate(self, scenario: Scenario, rules: _Rules) -> Bindings:
        given = scenario.given
        mine = {p.index for p in rules.pins.get(scenario.id, {}).values()}
        chosen: dict[str, WorldPatient] = {}
        for var in given.patients:
            taken = (self.reserved - mine) | {p.index for p in chosen.values()}
            candidates = [p for p in self._candidates(scenario, var, rules) if p.index not in taken]
            if not candidates:
                raise self._nothing(scenario, var, rules)
            first = rules.prefer.get(scenario.id, {}).get(var)
            replacing = var in scenario.consumes_world and var not in rules.pins.get(scenario.id, {})
            demand = rules.demand if replacing else {}
            candidates.sort(
                key=lambda p: (
                    first is None or p.index != first.index,
                    demand.get(p.index, 0.0),
                    stable_hash(self.salt, scenario.id, var, p.index),
                )
            )
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

    def _nothing(self, scenario: Scenario, var: str, rules: _Rules) -> SelectionError:
        """Why ``var`` has no candidate: the world has none, this run gave them all away, or — a
        :class:`ReservedError` — the ones left are reserved or were changed by an earlier run."""
        matching = self.feasible(scenario, var)
        if not matching:
            selector = scenario.given.patients[var]
            if any(self._patient_ok(selector, p) for p in self.world.patients):
                return SelectionError(
                    f"{scenario.id}: no patient for given.patients.{var} leaves facilities that meet "
                    f"given.facilities ({', '.join(scenario.given.facilities)})"
                )
            return SelectionError(f"{scenario.id}: no patient in the world matches given.patients.{var}")
        if scenario.given.patients[var].fresh or var in rules.pins.get(scenario.id, {}):
            return SelectionError(
                f"{scenario.id}: every patient matching given.patients.{var} ({len(matching)}) went to "
                "other scenarios of this run"
            )
        pooled = sum(1 for p in matching if p.index in rules.pool)
        changed = sum(1 for p in matching if p.index in rules.changed and p.index not in rules.pool)
        if pooled + changed < len(matching):
            return SelectionError(
                f"{scenario.id}: every patient matching given.patients.{var} that no scenario may change "
                f"({len(matching) - pooled - changed}) went to other scenarios of this run"
            )
        return ReservedError(
            f"{scenario.id}: given.patients.{var} needs a world patient as the world has it; of the "
            f"{len(matching)} that match, {pooled} are reserved for scenarios that change patients and "
            f"{changed} were changed by earlier runs on this target"
        )

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
            options[var] = sorted(found, key=lambda f: stable_hash(self.salt, scenario_id, var, f.code))
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
