"""The errors of the wire layer and the HL7 error vocabulary they carry (table 0357 codes, ERR-2 locations).

Every error a parser, codec or client raises is an :class:`HL7Error`; those a server answers with an AR carry
the :class:`ErrorDetail` to put in the ERR segment, so the reply is built from the exception alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = [
    "CharsetError",
    "ErrorCode",
    "ErrorDetail",
    "ErrorLocation",
    "HL7Error",
    "ParseError",
    "UndecodableError",
    "UnencodableError",
    "UnknownCharsetError",
]


class HL7Error(Exception):
    """Root of every error raised by :mod:`hl7wire` (parsing, charsets, MLLP transport)."""


class ErrorCode(IntEnum):
    """HL7 table 0357 (message error condition codes), as used in ERR-3."""

    MESSAGE_ACCEPTED = 0
    SEGMENT_SEQUENCE_ERROR = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE_ERROR = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT_CODE = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION_ID = 203
    UNKNOWN_KEY_IDENTIFIER = 204
    DUPLICATE_KEY_IDENTIFIER = 205
    APPLICATION_RECORD_LOCKED = 206
    APPLICATION_INTERNAL_ERROR = 207

    @property
    def text(self) -> str:
        """The table's description, e.g. ``Unknown key identifier`` for 204."""
        return _CODE_TEXT[self.value]


_CODE_TEXT: Final[Mapping[int, str]] = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}


@dataclass(frozen=True)
class ErrorLocation:
    """An ERL (ERR-2): ``SEG^sequence^field^repetition^component^subcomponent``, all 1-based.

    Trailing parts that are ``None`` are left out; a component implies repetition 1 when none is given, so
    ``ErrorLocation("QPD", field=3, component=4)`` renders ``QPD^1^3^1^4`` as MESA 10503 expects.
    """

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None

    def parts(self) -> list[str]:
        rep = self.repetition
        comp = self.component
        if self.subcomponent is not None and comp is None:
            comp = 1
        if comp is not None and rep is None:
            rep = 1
        values = [self.field, rep, comp, self.subcomponent]
        while values and values[-1] is None:
            values.pop()
        return [self.segment, str(self.sequence), *("" if v is None else str(v) for v in values)]

    def __str__(self) -> str:
        return "^".join(self.parts())

    @classmethod
    def parse(cls, text: str) -> ErrorLocation:
        """Read ``QPD^1^3^1^4`` back (for tests and for checking other hubs' ERR-2)."""
        parts = text.split("^")
        nums = [int(p) if p else None for p in parts[1:6]]
        nums += [None] * (5 - len(nums))
        return cls(parts[0], nums[0] or 1, nums[1], nums[2], nums[3], nums[4])


@dataclass(frozen=True)
class ErrorDetail:
    """One ERR segment: a 0357 code, where (one or more ERL), severity ``E``/``W`` and a diagnostic text."""

    code: ErrorCode
    location: ErrorLocation | tuple[ErrorLocation, ...] | None = None
    severity: str = "E"
    diagnostic: str = ""

    @property
    def locations(self) -> tuple[ErrorLocation, ...]:
        if self.location is None:
            return ()
        if isinstance(self.location, ErrorLocation):
            return (self.location,)
        return self.location


class ParseError(HL7Error):
    """The text is not an HL7 message we can read: no MSH segment, or an unusable MSH-1/MSH-2."""

    def __init__(self, message: str, detail: ErrorDetail | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class CharsetError(HL7Error):
    """The bytes cannot be turned into text (or back) under the message's declared charset."""

    def __init__(self, message: str, detail: ErrorDetail, codec: str | None) -> None:
        super().__init__(message)
        self.detail = detail
        self.codec = codec


class UnknownCharsetError(CharsetError):
    """MSH-18 names a charset rhin does not speak (a server answers AR, 103 at ``MSH^1^18``)."""

    def __init__(self, value: str) -> None:
        text = f"MSH-18 {value!r} is not a supported character set"
        detail = ErrorDetail(ErrorCode.TABLE_VALUE_NOT_FOUND, ErrorLocation("MSH", field=18), diagnostic=text)
        super().__init__(text, detail, None)
        self.value = value


class UndecodableError(CharsetError):
    """The bytes are invalid in the declared charset (a server answers AR, 102 at their segment)."""

    def __init__(self, codec: str, position: int, location: ErrorLocation) -> None:
        text = f"byte {position} is not valid {codec} (segment {location.segment})"
        super().__init__(text, ErrorDetail(ErrorCode.DATA_TYPE_ERROR, location, diagnostic=text), codec)
        self.position = position


class UnencodableError(CharsetError):
    """Text holds characters its charset cannot carry (e.g. 髙 or half-width kana in ISO-2022-JP)."""

    def __init__(self, codec: str, character: str) -> None:
        text = f"{character!r} cannot be encoded as {codec}"
        detail = ErrorDetail(ErrorCode.APPLICATION_INTERNAL_ERROR, diagnostic=text)
        super().__init__(text, detail, codec)
        self.character = character
