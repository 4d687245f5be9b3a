"""Step kinds, declared once: each action model names its kind with :func:`step_kind`, and everything else
derives from this registry.

What derives from it: the ``Step`` model's action keys, its "exactly one action" check and the JSON
schema's ``oneOf`` (:mod:`.model`); the family sets (``MLLP_KINDS``, ``HTTP_KINDS`` …) that decide which
subjects a step may assert (:mod:`.loader`) and what a target supports by default (:mod:`harness.targets`);
which steps change the hub's state (re-runs, :mod:`.world`); and the runner table the engine calls, where
each kind's runner registers with ``@runs(Model)`` (:mod:`.runners`). The order of registration is the
order of the action keys in the schema and in error messages.

Adding a kind is one declaration and one runner (and, for a new step module, its line in the engine's
``STEP_MODULES``); nothing lists the kinds again::

    # actions.py, or a module model.py imports before it builds ``Step`` (then the registry is sealed)
    @step_kind("pix_query_v3", Family.SOAP)
    class PixQueryV3(Action):
        \"\"\"ITI-45 PIXV3 query (PRPA_IN201309UV02) from ``from`` for ``patient``'s ID at ``at``.\"\"\"

        from_: VarName = Field(alias="from")
        patient: VarName

    # steps_v3.py (a step module: engine.STEP_MODULES imports it, which registers its runners)
    @runs(PixQueryV3)
    def run_pix_v3(ctx: Context, a: PixQueryV3) -> tuple[HttpObservation, list[Exchange]]: ...

A kind whose replies are neither HL7 v2 nor JSON adds a :class:`Family` and says in
``loader._subject_kinds`` which subjects apply to it. The engine refuses to start if a kind has no runner.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

from .fields import StrictModel

__all__ = ["KINDS", "Action", "Family", "StepKind", "kind_of", "names", "seal", "step_kind"]


class Action(StrictModel):
    """Base of every step action."""


class Family(StrEnum):
    """How a kind reaches what it tests; decides the subjects it may assert and the targets that run it."""

    MLLP = "mllp"
    """HL7 v2 over MLLP to the hub: replies are HL7 messages."""
    HTTP = "http"
    """The hub's HTTP API (or a gateway's admin API): replies are HTTP with JSON bodies."""
    LOCAL = "local"
    """The world's files on this machine; no hub involved, so every target runs it (given local files)."""
    DATA_FOLDER = "data_folder"
    """The hub's data folder: only the reference target's is on this machine."""
    SOAP = "soap"
    """HL7 v3 over SOAP 1.2 (PIXv3/PDQv3): a reply is observed as an HTTP one, its document read into JSON."""
    TIMER = "timer"
    """Nothing is exchanged (a pause)."""


@dataclass(frozen=True)
class StepKind:
    """One step kind: its action key, its model, its family and what it does to the hub's state."""

    name: str
    model: type[Action]
    family: Family
    changes_state: bool
    """It may change what the hub holds about a patient (identity, links, consent, emergency grants)."""
    withdraws: bool
    """Its effect on a world patient cannot be set up again that day (a consent withdrawal)."""


KINDS: Final[dict[str, StepKind]] = {}
"""Every kind, in registration order (read it; register only through :func:`step_kind`)."""
_BY_MODEL: Final[dict[type[Action], StepKind]] = {}
_RESERVED: Final = frozenset({"name", "expect", "capture", "repeat", "kind", "action"})
_sealed: list[str] = []  # the module that built the Step model, once it has

A = TypeVar("A", bound=Action)


def step_kind(
    name: str, family: Family, *, changes_state: bool = False, withdraws: bool = False
) -> Callable[[type[A]], type[A]]:
    """Class decorator: declare ``model`` as the action of steps whose action key is ``name``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in _RESERVED:
        raise ValueError(f"{name!r} cannot be a step kind: lower_snake_case, not one of {sorted(_RESERVED)}")

    def register(model: type[A]) -> type[A]:
        if name in KINDS or model in _BY_MODEL:
            raise ValueError(f"step kind {name!r} ({model.__name__}) is declared twice")
        if _sealed:
            raise RuntimeError(
                f"step kind {name!r} declared after {_sealed[0]} built the Step model: declare it in "
                "harness/scenarios/actions.py (or a module model.py imports before it builds Step)"
            )
        kind = StepKind(name, model, family, changes_state, withdraws)
        KINDS[name] = kind
        _BY_MODEL[model] = kind
        return model

    return register


def kind_of(model: type[Action]) -> StepKind:
    """The kind ``model`` was declared as."""
    try:
        return _BY_MODEL[model]
    except KeyError:
        raise ValueError(f"{model.__name__} is not declared as a step kind (@step_kind)") from None


def names(
    *families: Family, changes_state: bool | None = None, withdraws: bool | None = None
) -> frozenset[str]:
    """The kinds of any of ``families`` (all if none given) with the given state flags."""
    return frozenset(
        k.name
        for k in KINDS.values()
        if (not families or k.family in families)
        and (changes_state is None or k.changes_state == changes_state)
        and (withdraws is None or k.withdraws == withdraws)
    )


def seal(by: str) -> None:
    """No kind may be declared from now on (``by`` built the Step model from the kinds declared so far)."""
    if not _sealed:
        _sealed.append(by)
