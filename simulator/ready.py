"""The ``ready: {json}`` line a simulator process prints once listening, and its reader (simulator.network).

One place for the contract, so the writers (``python -m simulator.hub``, ``python -m simulator.gateway``)
and the reader cannot drift apart: exactly one line, the prefix, then compact JSON with the real ports.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["PREFIX", "announce", "parse"]

PREFIX: Final = "ready: "


def announce(info: Mapping[str, Any]) -> None:
    """Print the ready line on stdout and flush it (the parent waits for it)."""
    sys.stdout.write(PREFIX + json.dumps(info, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse(line: str) -> dict[str, Any] | None:
    """The document of a ready line, or None for any other line (children may log before it)."""
    if not line.startswith(PREFIX):
        return None
    info: dict[str, Any] = json.loads(line[len(PREFIX) :])
    return info
