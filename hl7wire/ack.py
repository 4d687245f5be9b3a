"""Replies: ACK/RSP headers with MSA and v2.5 ERR segments, fresh control ids, and the checks every
message needs before an application looks at it.

Functions that stamp a time take it as a parameter (``now``): the wire layer has no clock of its own, so a
test, a simulation or the hub decides what "now" is.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from .build import Field, Repeated, trim, trimmed
from .delimiters import escape
from .errors import ErrorCode, ErrorDetail, ErrorLocation
from .model import Message, Segment

__all__ = ["ACK_CODES", "ControlIds", "ack", "basic_checks"]

ACK_CODES: Final = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})


@dataclass
class ControlIds:
    """Fresh MSH-10 values for replies: a per-instance prefix (random unless given) and a counter."""

    prefix: str = field(default_factory=lambda: secrets.token_hex(4))
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1), init=False, repr=False)

    def next(self) -> str:
        return f"{self.prefix}{next(self._counter)}"


def _legacy_version(version: str) -> bool:
    """Before v2.5 an ERR carries its location and code only in ERR-1 (ELD)."""
    parts = []
    for p in version.split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return bool(parts) and tuple(parts) < (2, 5)


_last_stamp: tuple[datetime | None, str] = (None, "")


def _timestamp(now: datetime | str) -> str:
    """MSH-7 text; the replies of one second share it (strftime with %z was a visible cost per reply)."""
    global _last_stamp
    if isinstance(now, str):
        return now
    second = now.replace(microsecond=0)
    last, text = _last_stamp
    if last is not None and last == second and last.tzinfo is second.tzinfo:
        return text
    text = now.strftime("%Y%m%d%H%M%S%z")
    _last_stamp = (second, text)
    return text


def _err_fields(error: ErrorDetail, legacy: bool) -> dict[int, Field]:
    code = ErrorCode(error.code)
    fields: dict[int, Field] = {
        2: Repeated(*(loc.parts() for loc in error.locations)),
        3: [str(code.value), code.text, "HL70357"],
        4: error.severity,
        7: error.diagnostic,
    }
    if legacy:
        eld = [str(code.value), code.text, "HL70357"]
        heads = [[*loc.parts()[:3], "", ""][:3] for loc in error.locations] or [["", "", ""]]
        fields[1] = Repeated(*([*head, eld] for head in heads))
    return fields


def ack(
    request: Message,
    code: str,
    *,
    control_id: str,
    now: datetime | str,
    errors: Sequence[ErrorDetail] = (),
    message_type: str = "ACK",
    event: str | None = None,
    structure: str | None = None,
    text: str = "",
    charset: str | None = None,
) -> Message:
    """MSH + MSA (+ one ERR per error) answering ``request``; append QAK/QPD/PID for an RSP.

    MSH swaps sender and receiver, takes MSH-7 from ``now`` (the caller's clock), MSH-9
    ``<message_type>^<event>^<structure>`` (event defaults to the request's, structure to ``ACK`` for ACKs),
    MSH-11/12 and MSH-18 from the request (``charset`` overrides MSH-18). MSA-2 echoes the request's MSH-10;
    ``text`` goes to MSA-3. ERR is in v2.5 form (ERR-2 location, ERR-3 ``code^text^HL70357``, ERR-4
    severity, ERR-7 diagnostic); for requests before v2.5 ERR-1 is filled as well.
    """
    if code not in ACK_CODES:
        raise ValueError(f"MSA-1 must be one of {sorted(ACK_CODES)}, not {code!r}")
    msh = request.segment("MSH")
    if msh is None:
        raise ValueError("cannot acknowledge a message without MSH")
    if event is None:
        event = msh.get(9, comp=2)
    if structure is None:
        structure = "ACK" if message_type == "ACK" else ""
    d = request.delimiters
    # Built as encoded fields directly (what Message.add would produce): every reply goes through here.
    kind = d.component.join(trimmed([escape(message_type, d), escape(event, d), escape(structure, d)]))
    header = [
        "MSH",
        d.field,
        d.encoding_characters,
        msh.field(5),
        msh.field(6),
        msh.field(3),
        msh.field(4),
        _timestamp(now),
        "",
        kind,
        escape(control_id, d),
        msh.field(11),
        msh.field(12),
        "",
        "",
        "",
        "",
        "",
        msh.field(18) if charset is None else charset,
    ]
    msa = ["MSA", escape(code, d), msh.field(10), escape(text, d)]
    reply = Message(d, [Segment(trim(header, 3), d), Segment(trim(msa, 1), d)])
    legacy = _legacy_version(msh.get(12, comp=1))
    for error in errors:
        reply.add("ERR", _err_fields(error, legacy))
    return reply


def basic_checks(msg: Message, *, versions: Iterable[str] | None = None) -> list[ErrorDetail]:
    """What every message needs: MSH first, MSH-9 type^event, MSH-10, MSH-12 (in ``versions`` if given)."""
    problems: list[ErrorDetail] = []

    def problem(code: ErrorCode, location: ErrorLocation, diagnostic: str) -> None:
        problems.append(ErrorDetail(code, location, diagnostic=diagnostic))

    segments = msg.segments()
    if not segments or segments[0].name != "MSH":
        first = segments[0].name if segments else "MSH"
        problem(ErrorCode.SEGMENT_SEQUENCE_ERROR, ErrorLocation(first), "the message must start with MSH")
    msh = msg.segment("MSH")
    if msh is None:
        return problems
    missing = ErrorCode.REQUIRED_FIELD_MISSING
    for comp, what in ((1, "message type"), (2, "trigger event")):
        if not msh.get(9, comp=comp):
            problem(missing, ErrorLocation("MSH", field=9, component=comp), f"MSH-9 {what} is missing")
    if not msh.get(10):
        problem(missing, ErrorLocation("MSH", field=10), "MSH-10 message control id is missing")
    version = msh.get(12, comp=1)
    if not version:
        problem(missing, ErrorLocation("MSH", field=12), "MSH-12 version id is missing")
    elif versions is not None and version not in (
        versions if isinstance(versions, frozenset) else set(versions)
    ):
        unsupported = ErrorCode.UNSUPPORTED_VERSION_ID
        problem(unsupported, ErrorLocation("MSH", field=12), f"version {version!r} is not supported")
    return problems
