"""The gateway's exceptions: one root, so callers can catch everything the gateway raises on purpose."""

from __future__ import annotations

__all__ = ["EntryIdError", "GatewayError", "UnknownDataTypeError"]


class GatewayError(Exception):
    """Root of every error raised by :mod:`simulator.gateway` (bad world, unknown facility, bad ID…)."""


class EntryIdError(GatewayError, ValueError):
    """An entry ID that is not one this gateway could have issued; ``entry_id`` is the offending text."""

    def __init__(self, entry_id: str, reason: str) -> None:
        self.entry_id = entry_id
        self.reason = reason
        shown = entry_id if len(entry_id) <= 80 else entry_id[:77] + "..."
        super().__init__(f"malformed entry ID {shown!r}: {reason}")


class UnknownDataTypeError(GatewayError, ValueError):
    """A data type that maps to no item category (not SS-MIX2, not a document code, not a modality)."""

    def __init__(self, data_type: str) -> None:
        self.data_type = data_type
        super().__init__(f"no item category for data type {data_type!r}")
