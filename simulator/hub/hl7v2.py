"""A small HL7 v2 (ER7) library for the hub's wire: parse, build, escape, charsets, ACK/ERR and basic checks.

Why not python-hl7: the hub only needs lazy field access, hand-built ACK/RSP with v2.5 ERR segments and strict
MSH-18 charset handling; doing it here keeps parsing off the hot path (fields are split on demand) and adds no
dependency. Parsing works on decoded text only: ISO-2022-JP kanji bytes include ``| ^ ~ \\ &``, so the raw
bytes are never split, except the MSH segment, which is read first to learn the charset (see :func:`decode`).

Numbering follows HL7: ``SEG-n`` is field *n* (MSH-1 is the field separator itself), components and
subcomponents are 1-based; repetitions are 0-based list indexes (``rep=0`` is the first).
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from functools import cached_property, lru_cache
from typing import Final

__all__ = [
    "ASCII",
    "DEFAULT_DELIMITERS",
    "ISO2022_JP",
    "UTF8",
    "CharsetError",
    "ControlIds",
    "Delimiters",
    "ErrorCode",
    "ErrorDetail",
    "ErrorLocation",
    "Field",
    "HL7Error",
    "Message",
    "ParseError",
    "Raw",
    "Repeated",
    "Segment",
    "UndecodableError",
    "UnencodableError",
    "UnknownCharsetError",
    "ack",
    "basic_checks",
    "charset_of",
    "codec_for",
    "decode",
    "encode",
    "escape",
    "parse",
    "parse_header",
    "unescape",
]

ASCII: Final = "ascii"
UTF8: Final = "utf-8"
ISO2022_JP: Final = "iso2022_jp"
ACK_CODES: Final = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})


# ------------------------------------------------------------------------------------------------ errors


class HL7Error(Exception):
    """Root of every error raised by the hub's wire layer (:mod:`.hl7v2` and :mod:`.mllp`)."""


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
    """MSH-18 names a charset the hub does not speak (answered with AR, 103 at ``MSH^1^18``)."""

    def __init__(self, value: str) -> None:
        text = f"MSH-18 {value!r} is not a supported character set"
        detail = ErrorDetail(ErrorCode.TABLE_VALUE_NOT_FOUND, ErrorLocation("MSH", field=18), diagnostic=text)
        super().__init__(text, detail, None)
        self.value = value


class UndecodableError(CharsetError):
    """The bytes are invalid in the declared charset (answered with AR, 102 at the segment holding them)."""

    def __init__(self, codec: str, position: int, location: ErrorLocation) -> None:
        text = f"byte {position} is not valid {codec} (segment {location.segment})"
        super().__init__(text, ErrorDetail(ErrorCode.DATA_TYPE_ERROR, location, diagnostic=text), codec)
        self.position = position


class UnencodableError(CharsetError):
    """A reply holds characters its charset cannot carry (e.g. 髙 or half-width kana in ISO-2022-JP)."""

    def __init__(self, codec: str, character: str) -> None:
        text = f"{character!r} cannot be encoded as {codec}"
        detail = ErrorDetail(ErrorCode.APPLICATION_INTERNAL_ERROR, diagnostic=text)
        super().__init__(text, detail, codec)
        self.character = character


# ------------------------------------------------------------------------------------------- delimiters


@dataclass(frozen=True)
class Delimiters:
    """MSH-1 and MSH-2; carries the escape tables so each message reuses them."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    @classmethod
    def from_msh(cls, field_separator: str, encoding_characters: str) -> Delimiters:
        """The delimiters an MSH declares; the same instance for the same characters (so its escape tables
        are built once, not per message)."""
        chars = field_separator + encoding_characters[:4]
        known = _DELIMITERS.get(chars)
        if known is not None:
            return known
        if len(chars) != 5 or len(set(chars)) != 5 or any(c.isalnum() or c in "\r\n " for c in chars):
            raise ParseError(
                f"unusable delimiters MSH-1 {field_separator!r} MSH-2 {encoding_characters!r}",
                ErrorDetail(ErrorCode.DATA_TYPE_ERROR, ErrorLocation("MSH", field=2)),
            )
        made = cls(*chars)
        if len(_DELIMITERS) < 64:  # a sender can only make us remember a few
            _DELIMITERS[chars] = made
        return made

    @cached_property
    def _escape_table(self) -> dict[int, str]:
        e = self.escape
        return {
            ord(self.escape): f"{e}E{e}",
            ord(self.field): f"{e}F{e}",
            ord(self.component): f"{e}S{e}",
            ord(self.subcomponent): f"{e}T{e}",
            ord(self.repetition): f"{e}R{e}",
            ord("\r"): f"{e}X0D{e}",
            ord("\n"): f"{e}X0A{e}",
        }

    @cached_property
    def _special(self) -> frozenset[str]:
        return frozenset(self.field + self.encoding_characters + "\r\n")

    @cached_property
    def _unescape_re(self) -> re.Pattern[str]:
        e = re.escape(self.escape)
        return re.compile(f"{e}([^{e}]*){e}")

    @cached_property
    def _named(self) -> dict[str, str]:
        return {
            "F": self.field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
        }


DEFAULT_DELIMITERS: Final = Delimiters()
_DELIMITERS: dict[str, Delimiters] = {"|^~\\&": DEFAULT_DELIMITERS}


def escape(text: str, delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Data → ER7: delimiters become ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, CR/LF ``\\X0D\\``/``\\X0A\\``."""
    if delimiters._special.isdisjoint(text):
        return text
    return text.translate(delimiters._escape_table)


def unescape(text: str, delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """ER7 → data: F S T R E and ``\\Xhh…\\``; other sequences (``\\H\\``, ``\\.br\\``…) stay as sent."""
    if delimiters.escape not in text:
        return text
    named = delimiters._named

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in named:
            return named[code]
        if code[:1] == "X" and len(code) % 2 == 1 and len(code) > 1:
            try:
                return bytes.fromhex(code[1:]).decode("latin-1")
            except ValueError:
                pass
        return match.group(0)

    return delimiters._unescape_re.sub(one, text)


# ------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class Raw:
    """Already-encoded ER7 text, inserted as is (e.g. a field copied from a request)."""

    text: str


class Repeated:
    """A repeating field: ``Repeated("", [... "S"])`` encodes ``~^^^^^^S``."""

    __slots__ = ("values",)

    def __init__(self, *values: Value) -> None:
        self.values = values

    def __repr__(self) -> str:
        return f"Repeated{self.values!r}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Repeated) and self.values == other.values

    def __hash__(self) -> int:
        return hash(self.values)


Component = str | Sequence[str]
"""A component: a string, or its subcomponents."""
Value = str | Sequence[Component]
"""One repetition of a field: a string, or its components."""
Field = Value | Raw | Repeated | None
"""What :meth:`Message.add` takes per field; strings are escaped, :class:`Raw` is not."""


def _join_trimmed(sep: str, parts: Iterable[str]) -> str:
    items = list(parts)
    while items and not items[-1]:
        items.pop()
    return sep.join(items)


def _encode_value(value: Value, d: Delimiters) -> str:
    if isinstance(value, str):
        return escape(value, d)
    return _join_trimmed(
        d.component,
        (
            escape(c, d) if isinstance(c, str) else _join_trimmed(d.subcomponent, (escape(s, d) for s in c))
            for c in value
        ),
    )


def _encode_field(value: Field, d: Delimiters) -> str:
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Repeated):
        return _join_trimmed(d.repetition, (_encode_value(v, d) for v in value.values))
    return _encode_value(value, d)


# ------------------------------------------------------------------------------------------- model


class Segment:
    """One segment as its encoded fields; ``fields[n]`` is SEG-n (for MSH, ``fields[1]`` is MSH-1)."""

    __slots__ = ("delimiters", "fields")

    def __init__(self, fields: list[str], delimiters: Delimiters = DEFAULT_DELIMITERS) -> None:
        self.fields = fields
        self.delimiters = delimiters

    @property
    def name(self) -> str:
        return self.fields[0]

    def field(self, number: int) -> str:
        """SEG-n as encoded (escapes, repetitions and components intact); ``""`` when absent."""
        return self.fields[number] if 0 < number < len(self.fields) else ""

    def repetitions(self, number: int) -> list[str]:
        """The encoded repetitions of SEG-n (``[]`` when empty), for iterating e.g. QPD-4 domains."""
        raw = self.field(number)
        if not raw:
            return []
        if self.fields[0] == "MSH" and number <= 2:
            return [raw]
        return raw.split(self.delimiters.repetition)

    def get(self, number: int, rep: int = 0, comp: int | None = None, sub: int | None = None) -> str:
        """The value at SEG-n[rep].comp.sub; ``""`` when absent.

        A leaf (no lower delimiter inside) comes back unescaped; a composite (e.g. a whole CX when ``comp`` is
        not given) comes back in its encoded form, so nothing is ambiguous.
        """
        fields = self.fields
        if not 0 < number < len(fields):
            return ""
        value = fields[number]
        if not value:
            return ""
        d = self.delimiters
        if number <= 2 and fields[0] == "MSH":
            return value
        if rep or d.repetition in value:
            reps = value.split(d.repetition, rep + 1)
            if rep >= len(reps):
                return ""
            value = reps[rep]
        if comp is None:
            if sub is not None:
                raise ValueError("a subcomponent needs a component")
            if d.component in value or d.subcomponent in value:
                return value
        else:
            if comp < 1:
                raise ValueError("components are numbered from 1")
            comps = value.split(d.component, comp)  # (hot: no need to split what follows)
            if comp > len(comps):
                return ""
            value = comps[comp - 1]
            if sub is None:
                if d.subcomponent in value:
                    return value
            else:
                if sub < 1:
                    raise ValueError("subcomponents are numbered from 1")
                subs = value.split(d.subcomponent, sub)
                if sub > len(subs):
                    return ""
                value = subs[sub - 1]
        return unescape(value, d) if d.escape in value else value

    def to_er7(self) -> str:
        f = self.fields
        if f[0] == "MSH":
            return "MSH" + self.delimiters.field + self.delimiters.field.join(f[2:])
        return self.delimiters.field.join(f)

    def __repr__(self) -> str:
        return f"Segment({self.to_er7()!r})"


class Message:
    """An HL7 v2 message: parsed lazily from text (:func:`parse`) or built segment by segment."""

    __slots__ = ("_segments", "delimiters")

    def __init__(self, delimiters: Delimiters = DEFAULT_DELIMITERS, segments: Iterable[Segment] = ()) -> None:
        self.delimiters = delimiters
        self._segments = list(segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def segments(self, name: str | None = None) -> list[Segment]:
        """All segments, or those named ``name``, in message order."""
        if name is None:
            return list(self._segments)
        return [s for s in self._segments if s.fields[0] == name]

    def segment(self, name: str, index: int = 0) -> Segment | None:
        """The ``index``-th (0-based) segment named ``name``, or None."""
        for s in self._segments:
            if s.fields[0] == name:
                if index == 0:
                    return s
                index -= 1
        return None

    def get(
        self,
        name: str,
        number: int,
        rep: int = 0,
        comp: int | None = None,
        sub: int | None = None,
        *,
        index: int = 0,
    ) -> str:
        """``msg.get("QPD", 3, comp=4, sub=2)``: see :meth:`Segment.get`; ``""`` if the segment is absent."""
        seg = self.segment(name, index)
        return "" if seg is None else seg.get(number, rep, comp, sub)

    def add(self, name: str, fields: Sequence[Field] | Mapping[int, Field] = ()) -> Segment:
        """Append a segment: ``fields[i]`` is field i+1, or a mapping ``{field number: value}``.

        Strings are escaped, so data never breaks the structure; :class:`Raw` is inserted as is. For MSH,
        fields 1 and 2 always come from the message's delimiters.
        """
        d = self.delimiters
        if isinstance(fields, Mapping):
            size = max(fields, default=0)
            values: list[Field] = [fields.get(n) for n in range(1, size + 1)]
        else:
            values = list(fields)
        encoded = [name, *(_encode_field(v, d) for v in values)]
        if name == "MSH":
            encoded[1:3] = [d.field, d.encoding_characters]
        while len(encoded) > (3 if name == "MSH" else 1) and not encoded[-1]:
            encoded.pop()
        segment = Segment(encoded, d)
        self._segments.append(segment)
        return segment

    def append(self, segment: Segment) -> Segment:
        """Append an existing segment (e.g. the request's QPD echoed in an RSP)."""
        if segment.delimiters is not self.delimiters and segment.delimiters != self.delimiters:
            raise ValueError("segment uses other delimiters than this message")
        self._segments.append(segment)
        return segment

    def to_er7(self) -> str:
        """The message as text: segments each terminated by CR."""
        return "".join(s.to_er7() + "\r" for s in self._segments)

    __str__ = to_er7

    def encode(self, codec: str, errors: str = "strict") -> bytes:
        return encode(self.to_er7(), codec, errors)

    @property
    def message_type(self) -> tuple[str, str, str]:
        """MSH-9 as (type, trigger event, structure), e.g. ``("QBP", "Q23", "QBP_Q21")``."""
        return (self.get("MSH", 9, comp=1), self.get("MSH", 9, comp=2), self.get("MSH", 9, comp=3))

    @property
    def control_id(self) -> str:
        return self.get("MSH", 10)

    @property
    def version(self) -> str:
        return self.get("MSH", 12, comp=1)

    @property
    def charset_field(self) -> str:
        """MSH-18 exactly as sent (e.g. ``~ISO IR87``), which replies copy."""
        seg = self.segment("MSH")
        return "" if seg is None else seg.field(18)

    def __repr__(self) -> str:
        return f"Message({self.to_er7()!r})"


# ------------------------------------------------------------------------------------------- parsing


def _split_segments(text: str) -> list[str]:
    lines = re.split(r"\r\n?|\n", text) if "\n" in text else text.split("\r")
    return [line for line in lines if line]


def _msh_delimiters(line: str) -> Delimiters:
    if len(line) < 4:
        raise ParseError("MSH segment has no field separator")
    sep = line[3]
    enc = line[4:].split(sep, 1)[0]
    return Delimiters.from_msh(sep, enc)


def parse(text: str) -> Message:
    """Parse decoded ER7 text; delimiters come from the MSH segment (normally the first one).

    Raises :class:`ParseError` when there is no MSH or its delimiters are unusable.
    """
    lines = _split_segments(text)
    msh = next((line for line in lines if line.startswith("MSH")), None)
    if msh is None:
        raise ParseError("no MSH segment")
    d = _msh_delimiters(msh)
    sep = d.field
    segments = []
    for line in lines:
        fields = line.split(sep)
        if fields[0] == "MSH":
            fields.insert(1, sep)
        segments.append(Segment(fields, d))
    return Message(d, segments)


def _msh_line(raw: bytes) -> bytes:
    if raw.startswith(b"MSH"):
        start = 0
    else:
        found = [i for i in (raw.find(b"\rMSH"), raw.find(b"\nMSH")) if i >= 0]
        if not found:
            raise ParseError("no MSH segment")
        start = min(found) + 1
    ends = [i for i in (raw.find(b"\r", start), raw.find(b"\n", start)) if i >= 0]
    return raw[start : min(ends)] if ends else raw[start:]


def _header_text(raw: bytes) -> str:
    line = _msh_line(raw)
    # The MSH is ASCII by contract; a kanji facility name before MSH-18 must not be split as bytes.
    if b"\x1b" in line:
        return line.decode(ISO2022_JP, "replace")
    return line.decode("latin-1")


def parse_header(raw: bytes) -> Message:
    """Only the MSH of raw bytes, decoded without knowing the charset: enough to address an error ACK.

    Unusable MSH-2 falls back to the default encoding characters so a reject can still be sent.
    """
    line = _header_text(raw)
    try:
        d = _msh_delimiters(line)
    except ParseError:
        if len(line) < 4:
            raise
        d = Delimiters(field=line[3]) if line[3] not in "^~\\&" else DEFAULT_DELIMITERS
    fields = line.split(d.field)
    fields.insert(1, d.field)
    return Message(d, [Segment(fields, d)])


def codec_for(msh18: str, repetition: str = "~") -> str:
    """MSH-18 → Python codec.

    ``~ISO IR87``/``ISO IR87``/``~ISOIR87`` → ISO-2022-JP, ``UNICODE UTF-8`` → UTF-8, empty → ASCII;
    ``ISO IR6`` (ASCII) may accompany ISO IR87. Anything else raises :class:`UnknownCharsetError`.
    """
    if not msh18:
        return ASCII
    return _codec_for(msh18, repetition)


@lru_cache(maxsize=64)  # only answers are cached (not refusals), and senders use a handful of spellings
def _codec_for(msh18: str, repetition: str) -> str:
    names = {n.replace(" ", "").upper() for n in msh18.split(repetition)} - {"", "ISOIR6"}
    if not names:
        return ASCII
    if names == {"ISOIR87"}:
        return ISO2022_JP
    if names == {"UNICODEUTF-8"}:
        return UTF8
    raise UnknownCharsetError(msh18)


def charset_of(raw: bytes) -> str:
    """The codec a raw message declares in MSH-18, read from the MSH segment before decoding the rest."""
    line = _header_text(raw)
    d = _msh_delimiters(line)
    fields = line.split(d.field)
    return codec_for(fields[17] if len(fields) > 17 else "", d.repetition)


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


def encode(text: str, codec: str, errors: str = "strict") -> bytes:
    """Text → bytes for the wire; raises :class:`UnencodableError` rather than UnicodeEncodeError."""
    try:
        return text.encode(codec, errors)
    except UnicodeEncodeError as exc:
        raise UnencodableError(codec, exc.object[exc.start : exc.end]) from exc


# ------------------------------------------------------------------------------------------- ACK / ERR


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
    kind = _join_trimmed(d.component, (escape(message_type, d), escape(event, d), escape(structure, d)))
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
    while len(header) > 3 and not header[-1]:
        header.pop()
    msa = ["MSA", escape(code, d), msh.field(10), escape(text, d)]
    while len(msa) > 1 and not msa[-1]:
        msa.pop()
    reply = Message(d, [Segment(header, d), Segment(msa, d)])
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
