"""The runner of each step kind: a function ``(context, action) -> (observation, exchanges)`` registered
against its action model with ``@runs(Model)`` (as Locust's typed events take listeners), so no table lists
the kinds again. The step modules (``steps_*.py``) register their runners when imported; the engine imports
them all and :func:`check_complete` refuses a kind declared without a runner.

The decorator is typed: mypy checks that a runner registered for ``Feed`` takes a ``Feed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from .context import Context
from .kinds import KINDS, Action, kind_of
from .results import Exchange
from .subjects import Observation

__all__ = ["RUNNERS", "Outcome", "Runner", "check_complete", "runner_for", "runs"]

Outcome = tuple[Observation, list[Exchange]]
"""What a runner returns: what the step observed (its subjects' source) and the exchanges (evidence)."""
Runner = Callable[[Context, Any], Outcome]

RUNNERS: Final[dict[str, Runner]] = {}
"""Kind name → runner, filled by :func:`runs` (read it; register only through the decorator)."""

A = TypeVar("A", bound=Action)
R = TypeVar("R", bound=Outcome)


def runs(model: type[A]) -> Callable[[Callable[[Context, A], R]], Callable[[Context, A], R]]:
    """Decorator: the function runs steps of ``model``'s kind (exactly one runner per kind)."""
    kind = kind_of(model)

    def register(fn: Callable[[Context, A], R]) -> Callable[[Context, A], R]:
        if kind.name in RUNNERS:
            raise ValueError(
                f"step kind {kind.name!r} has two runners: {RUNNERS[kind.name].__name__} and {fn.__name__}"
            )
        RUNNERS[kind.name] = fn
        return fn

    return register


def runner_for(kind: str) -> Runner:
    """The runner of ``kind``."""
    try:
        return RUNNERS[kind]
    except KeyError:
        raise LookupError(
            f"step kind {kind!r} has no runner (a @runs function in a steps_*.py module)"
        ) from None


def check_complete() -> None:
    """Every declared kind has a runner (the engine calls this once its step modules are imported)."""
    missing = [name for name in KINDS if name not in RUNNERS]
    if missing:
        raise RuntimeError(
            f"step kinds without a runner: {', '.join(missing)} (register one with @runs(Model) in a step "
            "module the engine imports)"
        )
