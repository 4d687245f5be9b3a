"""The scenario format, as pydantic models: what a YAML scenario may say, and nothing else (unknown keys are
errors everywhere).

A scenario picks its patients and facilities from the world by predicate (``given``), then runs steps. A step
is a mapping with exactly **one action key** naming its kind (``feed``, ``pix_query``, ``link`` …) beside the
common keys ``name``, ``expect`` and ``capture``::

    - name: PIX query for an ID the hub never saw
      pix_query: {from: V, patient: p, at: A, local_id: "NOPE${p.local_id@A}"}
      expect:
        - id: ITI9-unknown-patient
          that: {MSA-1: AE, QAK-2: AE, ERR-2: {erl: "QPD^1^3^1^1"}, ERR-3.1: "204"}

Why one action key rather than ``kind: feed``: the step reads like the operation it is, the action's own keys
sit under it (so an error path ``steps.3.feed.event`` points at the right line), and a misspelt action is an
"unknown key" like any other typo. Strings may hold ``${...}`` variables (see :mod:`.variables`); the loader
checks that every variable, patient and facility a step names is declared before the step runs.

The format's parts live beside this module: the shared field types (:mod:`.fields`), expectations
(:mod:`.expectations`), the action models with their step kinds (:mod:`.actions`, :mod:`.kinds`) and
``given``/``world`` (:mod:`.given`). This module builds ``Step`` and ``Scenario`` from them and re-exports
them, so ``from harness.scenarios.model import …`` is the one place a reader needs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from . import model_v3  # noqa: F401 - declares the PIXv3/PDQv3 kinds before Step is built
from .actions import Action
from .expectations import Expectation, Matcher
from .fields import StrictModel, SubjectKey, Tag, VarName
from .given import FacilitySelector, Given, PatientSelector, Range, WorldNeeds
from .kinds import KINDS, Family, names, seal
from .variables import BUILTIN_ROOTS, PARAM_ROOT, references

__all__ = [
    "ACTION_MODELS",
    "DATA_FOLDER_KINDS",
    "HTTP_KINDS",
    "LOCAL_KINDS",
    "MLLP_KINDS",
    "SCHEMA_VERSION",
    "STATE_KINDS",
    "V3_KINDS",
    "WITHDRAWAL_KINDS",
    "Action",
    "Expectation",
    "FacilitySelector",
    "Given",
    "Matcher",
    "PatientSelector",
    "Range",
    "Repeat",
    "Scenario",
    "Step",
    "WorldNeeds",
]

SCHEMA_VERSION: Final = 1

# ------------------------------------------------------------------------------------------- step kinds
# Derived from the declarations in actions.py (see kinds.py): nothing here lists a kind by name.

ACTION_MODELS: Final[dict[str, type[Action]]] = {kind.name: kind.model for kind in KINDS.values()}
MLLP_KINDS: Final = names(Family.MLLP)
LOCAL_KINDS: Final = names(Family.LOCAL)
"""Steps that read the world's files on this machine rather than talk to the hub."""
DATA_FOLDER_KINDS: Final = names(Family.DATA_FOLDER)
"""Steps that act on the hub's data folder: only the reference target's is on this machine."""
HTTP_KINDS: Final = names(Family.HTTP)
V3_KINDS: Final = names(Family.SOAP)
"""PIXv3/PDQv3 over SOAP: what a target with a ``soap`` address supports."""
STATE_KINDS: Final = names(changes_state=True)
"""Steps that change what the hub holds about a patient (identity, links, consent, emergency grants);
``mllp_raw`` because its bytes may be a feed. See :attr:`Scenario.changes_world`."""
WITHDRAWAL_KINDS: Final = names(withdraws=True)
"""Steps whose effect on a world patient cannot be set up again that day (:attr:`Scenario.consumes_world`)."""


def _one_action_schema(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [{"required": [kind]} for kind in ACTION_MODELS]


def _to_repeat(value: Any) -> Any:
    return {"count": value} if isinstance(value, int | str) and not isinstance(value, bool) else value


class Repeat(StrictModel):
    """Run the step ``warmup`` + ``count`` times (light-load latency): every expectation must hold for
    every repetition, except ``latency.*`` subjects, computed over the ``count`` timed ones."""

    count: int | str = Field(
        description="repetitions timed: 1 to 100,000, or ${param.NAME} (so a run can ask for more or fewer)"
    )
    warmup: Annotated[int, Field(ge=0, le=10_000)] = 0
    pause_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(0, description="sleep between repetitions")

    @field_validator("count")
    @classmethod
    def _count(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            if not re.fullmatch(r"\$\{param\.[A-Za-z_][A-Za-z0-9_]*\}", value):
                raise ValueError(f"a number of repetitions or ${{param.NAME}}, not {value!r}")
        elif not 1 <= value <= 100_000:
            raise ValueError(f"1 to 100000 repetitions, not {value}")
        return value


RepeatIn = Annotated[Repeat, BeforeValidator(_to_repeat, json_schema_input_type=int | str | Repeat)]


class StepBase(StrictModel):
    """One operation (exactly one action key) with its expectations and captures."""

    model_config = ConfigDict(json_schema_extra=_one_action_schema)

    name: str | None = None
    expect: list[Expectation] = Field(default_factory=list)
    capture: dict[VarName, SubjectKey] = Field(
        default_factory=dict, description="variable → subject of this step's reply, for later steps"
    )
    repeat: RepeatIn | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> StepBase:
        given = [kind for kind in ACTION_MODELS if getattr(self, kind) is not None]
        if not given:
            raise ValueError(f"a step needs one action key, one of: {', '.join(ACTION_MODELS)}")
        if len(given) > 1:
            raise ValueError(f"a step has exactly one action; this one has {' and '.join(given)}")
        ids = [e.id for e in self.expect]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"assertion IDs repeat within one step: {', '.join(duplicates)}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in ACTION_MODELS if getattr(self, kind) is not None)

    @property
    def action(self) -> Action:
        found: Action = getattr(self, self.kind)
        return found


def _step_model() -> type[StepBase]:
    """``Step``: :class:`StepBase` with one optional field per declared kind, in declaration order."""
    fields: dict[str, Any] = {kind.name: (kind.model | None, None) for kind in KINDS.values()}
    model = create_model("Step", __base__=StepBase, __module__=__name__, __doc__=StepBase.__doc__, **fields)
    seal(f"{__name__}.Step")
    return model


if TYPE_CHECKING:
    Step = StepBase
else:
    Step = _step_model()


# ------------------------------------------------------------------------------------------- scenario


def _to_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Scenario(StrictModel):
    """One scenario file."""

    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=100)]
    title: str
    tags: list[Tag] = Field(default_factory=list)
    remarks: Annotated[list[str], BeforeValidator(_to_list, json_schema_input_type=str | list[str])] = Field(
        default_factory=list, description="sources: IHE transaction and assertion, MHLW pattern, the seed"
    )
    default: bool = Field(
        True, description="false: not in the default selection; runs only when chosen (path, suite, tag, -k)"
    )
    params: dict[VarName, float | int | str] = Field(
        default_factory=dict,
        description="named values with their defaults (e.g. latency budgets), used as ${param.NAME}; "
        "`rhin run --param NAME=VALUE` and a target file's `params` override them",
    )
    world: WorldNeeds = Field(default_factory=WorldNeeds)
    given: Given = Field(default_factory=Given)
    exclusive: bool = Field(False, description="run alone (no other scenario at the same time)")
    steps: Annotated[list[Step], Field(min_length=1)]

    @property
    def assertion_count(self) -> int:
        return sum(len(step.expect) for step in self.steps)

    @property
    def changes_world(self) -> bool:
        """Whether the scenario may leave a world (not ``fresh``) patient other than the world has it.

        Derived from the step kinds, so it holds for every suite, present and future: a step of a
        :data:`STATE_KINDS` kind changes the world's state unless every name it uses — its ``patient`` and
        ``demographics_of``, and the roots of its ``${...}`` variables — is a fresh patient, a facility, a
        parameter or a built-in (a captured value might be a world patient's regional ID, so it counts). Such
        a scenario counts as changing *all* its world patients: the rule stays simple and errs on the safe
        side (its patients come from the reserved pool, see :mod:`harness.scenarios.world`)."""
        world = {v for v, p in self.given.patients.items() if not p.fresh}
        if not world:
            return False
        harmless = {v for v, p in self.given.patients.items() if p.fresh}
        harmless |= set(self.given.facilities) | set(BUILTIN_ROOTS) | {PARAM_ROOT}
        return any(step.kind in STATE_KINDS and not _names(step.action) <= harmless for step in self.steps)

    @property
    def consumes_world(self) -> frozenset[str]:
        """The world patients (variables) whose consent the scenario withdraws: a 同意撤回 is history for
        good — every later form must be dated after it (no date after today is accepted) — so such a patient
        can never again be brought to the state the scenario sets up on the same hub that day. On a
        long-lived target these variables take a patient no earlier run changed (see
        :mod:`harness.scenarios.world`), instead of the same pinned one every run."""
        world = {v for v, p in self.given.patients.items() if not p.fresh}
        return frozenset(
            var for step in self.steps if step.kind in WITHDRAWAL_KINDS for var in _names(step.action) & world
        )

    @property
    def needs_exclusive(self) -> bool:
        """Faults change shared gateways: such scenarios never run beside others."""
        return self.exclusive or any(step.kind == "fault" for step in self.steps)


def _names(value: Any) -> set[str]:
    """Every variable name an action uses: ``patient``/``demographics_of`` values and ``${...}`` roots."""
    out: set[str] = set()
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field_value = getattr(value, name)
            if name in ("patient", "demographics_of") and isinstance(field_value, str):
                out.add(field_value)
            else:
                out |= _names(field_value)
    elif isinstance(value, str):
        out |= {ref.root for ref in references(value) if not isinstance(ref, ValueError)}
    elif isinstance(value, dict):
        for item in value.values():
            out |= _names(item)
    elif isinstance(value, list | tuple):
        for item in value:
            out |= _names(item)
    return out
