"""The scenario format's building blocks: the strict base every model shares (unknown keys are errors
everywhere) and the constrained string types its fields use (variable names, ``${...}`` texts, assertion
IDs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .subjects import parse_subject

__all__ = [
    "AssertionId",
    "Charset",
    "ConnName",
    "ConsentPattern",
    "Purpose",
    "StrictModel",
    "SubjectKey",
    "Tag",
    "Text",
    "VarName",
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=40)]
ConnName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=40)]
Text = Annotated[str, Field(max_length=2_000_000)]
"""A string that may hold ``${...}`` variables, substituted when the step runs."""
AssertionId = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=80)]
"""``ITI9-unknown-patient``, ``ITI8-019``, ``CONSENT-withdrawn-denies-fetch``: PREFIX-rest."""
Tag = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=40)]
Charset = Literal["utf-8", "iso-2022-jp", "ascii"]
Purpose = Literal["care", "emergency"]
ConsentPattern = Literal["all", "all_except", "allow_list", "per_facility"]


def _subject(text: str) -> str:
    parse_subject(text)  # raises ValueError with the reason
    return text


SubjectKey = Annotated[str, AfterValidator(_subject)]
