"""The shapes every router shares: identifier patterns (bodies and paths) and the strict request base.

One definition, so that a regional ID accepted in a body is the one a path accepts, and every request
body refuses unknown fields (a typo is a 422, not silently ignored).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CODE_PATTERN", "ID", "ID_PATTERN", "FacilityCode", "PathCode", "PathID", "StrictBody"]

ID_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._\-]*$"
CODE_PATTERN = r"^[0-9A-Za-z]+$"

ID = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
FacilityCode = Annotated[str, Field(min_length=1, max_length=16, pattern=CODE_PATTERN)]
PathID = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
PathCode = Annotated[str, Path(min_length=1, max_length=16, pattern=CODE_PATTERN)]


class StrictBody(BaseModel):
    """Base of every request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
