"""Parsing: decoded ER7 text → :class:`~hl7wire.Message`, and raw bytes → text by their MSH-18.

Parsing works on decoded text only (see :mod:`hl7wire.charset`); segments are split into fields here and
nothing further until a field is asked for.
"""

from __future__ import annotations

import re

from .charset import charset_of, header_text, msh_delimiters
from .delimiters import DEFAULT_DELIMITERS, Delimiters
from .errors import ErrorLocation, ParseError, UndecodableError
from .model import Message, Segment

__all__ = ["decode", "parse", "parse_header"]


def _split_segments(text: str) -> list[str]:
    lines = re.split(r"\r\n?|\n", text) if "\n" in text else text.split("\r")
    return [line for line in lines if line]


def parse(text: str) -> Message:
    """Parse decoded ER7 text; delimiters come from the MSH segment (normally the first one).

    Raises :class:`ParseError` when there is no MSH or its delimiters are unusable.
    """
    lines = _split_segments(text)
    msh = next((line for line in lines if line.startswith("MSH")), None)
    if msh is None:
        raise ParseError("no MSH segment")
    d = msh_delimiters(msh)
    sep = d.field
    segments = []
    for line in lines:
        fields = line.split(sep)
        if fields[0] == "MSH":
            fields.insert(1, sep)
        segments.append(Segment(fields, d))
    return Message(d, segments)


def parse_header(raw: bytes) -> Message:
    """Only the MSH of raw bytes, decoded without knowing the charset: enough to address an error ACK.

    Unusable MSH-2 falls back to the default encoding characters so a reject can still be sent.
    """
    line = header_text(raw)
    try:
        d = msh_delimiters(line)
    except ParseError:
        if len(line) < 4:
            raise
        d = Delimiters(field=line[3]) if line[3] not in "^~\\&" else DEFAULT_DELIMITERS
    fields = line.split(d.field)
    fields.insert(1, d.field)
    return Message(d, [Segment(fields, d)])


def _segment_location(raw: bytes, position: int) -> ErrorLocation:
    start = max(raw.rfind(b"\r", 0, position), raw.rfind(b"\n", 0, position)) + 1
    names = [line[:3] for line in re.split(rb"\r\n?|\n", raw[:start]) if line]
    name = raw[start : start + 3]
    label = name.decode("ascii", "replace") if name.isalnum() else "MSH"
    return ErrorLocation(label, names.count(name) + 1)


def decode(raw: bytes) -> tuple[Message, str]:
    """Raw MLLP payload → (message, codec). Raises :class:`CharsetError` or :class:`ParseError`."""
    codec = charset_of(raw)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise UndecodableError(codec, exc.start, _segment_location(raw, exc.start)) from exc
    return parse(text), codec
