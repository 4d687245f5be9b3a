"""Care pathways as data: states, transitions with probabilities and durations, and what each state emits.

A pathway file (``synthetic/pathways/<id>.yaml``) is validated here; :mod:`synthetic.care` runs it. A
pathway has *variants*: the same states entered at a chosen start, optionally confined to the first
facility (``single_facility``: a transition that would move the patient elsewhere ends the pathway).
Numbers carry ``remarks`` naming where they come from, or saying they are assumptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from synthetic import tables
from synthetic.errors import ProfileError
from synthetic.yamlio import LineMap, Strict, line_for, load_yaml, validate

Prob = Annotated[float, Field(ge=0.0, le=1.0)]
Days = tuple[float, float, float]  # triangular low, mode, high


class FacilityChoice(Strict):
    kind: Literal["hospital", "clinic", "dental", "pharmacy", "care", "other"] | None = None
    roles: list[str] = []
    same_as: str | None = Field(default=None, description="Reuse the facility of an earlier state.")
    near: Literal["home", "previous"] = "home"

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.kind is None) == (self.same_as is None):
            raise ValueError("give either kind (with roles) or same_as")
        return self


class Diagnose(Strict):
    key: str | None = None
    one_of: dict[str, float] | None = None
    p: Prob = 1.0
    status: Literal["confirmed", "suspected"] = "confirmed"
    main: bool = False
    resolve_on_exit: bool = False
    min_age: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Only for patients at least this old."
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.key is None) == (self.one_of is None):
            raise ValueError("give either key or one_of")
        return self


class Prescribe(Strict):
    drugs: list[str] = []
    indications: list[str] = []
    per_indication: Annotated[int, Field(ge=1)] = 1
    days: int | None = None


class PathwayAction(Strict):
    """One thing a state does. Exactly one of the verbs is set; ``p`` and ``day`` qualify it."""

    p: Prob = 1.0
    day: Annotated[int, Field(ge=0)] | None = None
    when: list[str] = Field(default=[], description="Only for patients with one of these diagnoses.")
    labs: list[str] | None = None
    radiology: str | None = None
    endoscopy: str | None = None
    physiology: str | None = None
    prescription: Prescribe | None = None
    injection: str | None = None
    injection_days: Annotated[int, Field(ge=1)] = 1
    document: Literal["discharge_summary", "referral_letter", "progress_note", "nursing_note"] | None = None
    diet: str | None = None
    allergy: bool | None = None
    ward_transfer: bool | None = None
    doctor_change: bool | None = None
    outing: bool | None = None

    @model_validator(mode="after")
    def _one_verb(self) -> Self:
        verbs = [name for name in VERBS if getattr(self, name) is not None]
        if len(verbs) != 1:
            raise ValueError(f"an action needs exactly one verb, got {verbs or 'none'}")
        return self

    @property
    def verb(self) -> str:
        """The one verb that is set (the validator guarantees there is exactly one)."""
        return next(name for name in VERBS if getattr(self, name) is not None)


#: The fields of :class:`PathwayAction` that say what it does (``synthetic.care.actions.ACTIONS``: one each).
VERBS = (
    "labs",
    "radiology",
    "endoscopy",
    "physiology",
    "prescription",
    "injection",
    "document",
    "diet",
    "allergy",
    "ward_transfer",
    "doctor_change",
    "outing",
)


class Recurring(Strict):
    every_days: Annotated[float, Field(gt=0)]
    action: PathwayAction


class Companion(Strict):
    """A facility that sees the patient alongside the state (home-visit nursing, a pharmacy)."""

    facility: FacilityChoice
    p: Prob
    visit_every_days: Days


class State(Strict):
    title: str
    facility: FacilityChoice | None = None
    setting: Literal["inpatient", "outpatient", "home", "residential"] = "outpatient"
    department: str = ""
    admission: Literal["emergency", "planned"] | None = None
    duration_days: Days | None = Field(default=None, description="None: until the reference date")
    visit_every_days: Days | None = None
    diagnoses: list[Diagnose] = []
    on_enter: list[PathwayAction] = []
    on_visit: list[PathwayAction] = []
    recurring: list[Recurring] = []
    on_exit: list[PathwayAction] = []
    lab_effects: dict[str, dict[str, float]] = {}
    lab_trend_days: float | None = None
    lab_values: dict[str, dict[str, str]] = Field(
        default={},
        description="Reported values of non-numeric or below-detection tests, per diagnosis or 'all'.",
    )
    companions: list[Companion] = []
    pharmacy: Prob = 0.0
    transitions: dict[str, Prob] = {}
    terminal: bool = False

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.terminal:
            return self
        if self.facility is None:
            raise ValueError("a non-terminal state needs a facility")
        if self.setting == "outpatient" and self.visit_every_days is None:
            raise ValueError("an outpatient state needs visit_every_days")
        if self.transitions and abs(sum(self.transitions.values()) - 1.0) > 1e-6:
            raise ValueError(f"transition probabilities sum to {sum(self.transitions.values())}, not 1")
        if self.transitions and self.duration_days is None:
            raise ValueError("a state with transitions needs duration_days")
        return self


class Variant(Strict):
    start: str
    single_facility: bool = False
    pharmacy: bool = True
    min_age: int = 0
    onset: Literal["in_window", "ongoing"] = "in_window"


class Pathway(Strict):
    id: str
    title: str
    remarks: list[str]
    variants: dict[str, Variant]
    states: dict[str, State]

    @model_validator(mode="after")
    def _references(self) -> Self:
        names = set(self.states)
        for vname, variant in self.variants.items():
            if variant.start not in names:
                raise ValueError(f"variant {vname}: start state {variant.start!r} is not defined")
        for sname, state in self.states.items():
            for target in state.transitions:
                if target not in names:
                    raise ValueError(f"state {sname}: transition to undefined state {target!r}")
            if state.facility and state.facility.same_as and state.facility.same_as not in names:
                raise ValueError(f"state {sname}: same_as names undefined state {state.facility.same_as!r}")
        return self


class Allergen(Strict):
    name: str
    type: Literal["DA", "FA", "EA", "MA"]  # HL7 table 0127: drug, food, environmental, miscellaneous


class Common(Strict):
    """Shared pathway facts: which diagnosis calls for which drug indication; allergens to record."""

    indications: dict[str, list[str]]
    allergens: list[Allergen]
    remarks: list[str] = []


def _load(name: str, model: type[BaseModel]) -> tuple[BaseModel, LineMap, str]:
    resource = resources.files("synthetic") / "pathways" / f"{name}.yaml"
    text = resource.read_text(encoding="utf-8")
    source = f"synthetic/pathways/{name}.yaml"
    data, lines = load_yaml(text, source)
    return validate(model, data, lines, source), lines, source


def _action_refs(
    action: PathwayAction, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(key path, table, key) for every table reference an action makes."""
    for n, key in enumerate(action.when):
        yield (*path, "when", n), "diagnosis", key
    for n, panel in enumerate(action.labs or []):
        yield (*path, "labs", n), "panel", panel
    for verb in ("radiology", "endoscopy", "physiology"):
        value = getattr(action, verb)
        if value:
            yield (*path, verb), "procedure", value
    if action.injection:
        yield (*path, "injection"), "drug", action.injection
    if action.prescription:
        for n, key in enumerate(action.prescription.drugs):
            yield (*path, "prescription", "drugs", n), "drug", key
        for n, tag in enumerate(action.prescription.indications):
            yield (*path, "prescription", "indications", n), "indication", tag


def _references(pw: Pathway) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    for sname, state in pw.states.items():
        base: tuple[str | int, ...] = ("states", sname)
        for n, dx in enumerate(state.diagnoses):
            for key in [dx.key] if dx.key else list(dx.one_of or {}):
                yield (*base, "diagnoses", n), "diagnosis", key
        for section in ("on_enter", "on_visit", "on_exit"):
            for n, action in enumerate(getattr(state, section)):
                yield from _action_refs(action, (*base, section, n))
        for n, rec in enumerate(state.recurring):
            yield from _action_refs(rec.action, (*base, "recurring", n, "action"))
        for section in ("lab_effects", "lab_values"):
            for cond, labs in getattr(state, section).items():
                if cond != "all":
                    yield (*base, section, cond), "diagnosis", cond
                for lab in labs:
                    yield (*base, section, cond, lab), "lab", lab


def check_references(pw: Pathway, lines: LineMap, source: str) -> None:
    """Every drug, lab, panel, procedure, diagnosis and indication a pathway names must exist."""
    known = {
        "diagnosis": set(tables.diagnoses()),
        "drug": set(tables.drugs()),
        "lab": set(tables.labs()),
        "panel": {p for t in tables.labs().values() for p in t.panels},
        "procedure": set(tables.procedures()),
        "indication": {i for d in tables.drugs().values() for i in d.indications},
    }
    problems = [
        (line_for(path, lines), ".".join(map(str, path)), f"unknown {table} {key!r}")
        for path, table, key in _references(pw)
        if key not in known[table]
    ]
    if problems:
        raise ProfileError(source, problems)


@cache
def pathway(name: str) -> Pathway:
    loaded, lines, source = _load(name, Pathway)
    assert isinstance(loaded, Pathway)
    check_references(loaded, lines, source)
    return loaded


@cache
def common() -> Common:
    loaded, _, _ = _load("common", Common)
    assert isinstance(loaded, Common)
    return loaded


def pathway_names() -> list[str]:
    folder = resources.files("synthetic") / "pathways"
    return sorted(
        p.name.removesuffix(".yaml")
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and p.name != "common.yaml"
    )
