"""Expectations: an assertion ID and, per subject of the step's exchange, a matcher its value must satisfy."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, JsonValue, model_validator

from .fields import AssertionId, StrictModel, SubjectKey

__all__ = ["Bound", "Expectation", "Matcher", "MatcherIn"]


def _bound(value: Any) -> Any:
    if isinstance(value, str) and "${" not in value:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a number nor a ${{...}} variable") from None
    return value


Bound = Annotated[float | str, BeforeValidator(_bound)]
"""A number, or a string holding a ``${...}`` variable (e.g. ``${param.pix_p95_ms}``) resolved at run time."""


def _to_matcher(value: Any) -> Any:
    """A bare value means ``{equals: value}``; a mapping is a matcher (so its keys are checked)."""
    return value if isinstance(value, dict) else {"equals": value}


class Matcher(StrictModel):
    """What an observed value must satisfy; every operator given must hold.

    Values compare leniently across types the way HL7 needs (``QAK-4: 5`` matches the field ``"5"``).
    """

    equals: JsonValue = None
    one_of: list[JsonValue] | None = None
    not_: JsonValue = Field(None, alias="not")
    matches: str | None = Field(None, description="a regular expression searched in the value")
    contains: JsonValue = Field(None, description="a substring, or an element of a list")
    excludes: JsonValue = None
    present: bool | None = Field(None, description="true: non-empty; false: absent or empty")
    len: int | None = Field(None, ge=0)
    ge: Bound | None = None
    gt: Bound | None = None
    le: Bound | None = None
    lt: Bound | None = None
    set: list[JsonValue] | None = Field(None, description="a list equal to this one in any order")
    erl: str | None = Field(
        None, description="an ERR-2 error location (repetitions with ~), compared at the target's strictness"
    )

    @model_validator(mode="after")
    def _some_operator(self) -> Matcher:
        if not self.model_fields_set:
            raise ValueError("a matcher needs at least one operator (equals, one_of, matches, …)")
        return self

    def operators(self) -> dict[str, Any]:
        """The operators given, by their YAML names."""
        out = {}
        for name in self.model_fields_set:
            key = "not" if name == "not_" else name
            out[key] = getattr(self, name)
        return dict(sorted(out.items()))


MatcherIn = Annotated[
    Matcher,
    BeforeValidator(
        _to_matcher, json_schema_input_type=str | int | float | bool | None | list[Any] | Matcher
    ),
]


class Expectation(StrictModel):
    """One assertion: a stable ID, and the subjects of the step's exchange with what each must be."""

    id: AssertionId
    title: str | None = None
    that: Annotated[dict[SubjectKey, MatcherIn], Field(min_length=1)]
