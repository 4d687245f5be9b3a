"""rhin's HL7 v2 wire library: escape tables, the MSH-18 charset rule, building, parsing, ACK/ERR, MLLP.

The bottom layer of rhin: it imports nothing from ``synthetic``, ``simulator`` or ``harness`` (only the
standard library), so each of them, and the load tests, can build and read messages the same way. Its
shape is python-hl7's (parser, containers, util, client), split by concern:

* :mod:`.errors` — :class:`HL7Error` and the HL7 error vocabulary (table 0357, ERR-2 locations);
* :mod:`.delimiters` — MSH-1/MSH-2 and the escape tables (:func:`escape`, :func:`unescape`);
* :mod:`.charset` — the MSH-18 rule (:func:`codec_for`, :func:`charset_of`), :func:`encode`, and the MSH
  line read before the charset is known (:func:`header_text`, :func:`msh_delimiters`);
* :mod:`.build` — values → fields → segments, the one builder (:class:`Raw`, :class:`Repeated`,
  :func:`segment`, :func:`components`);
* :mod:`.model` — :class:`Message` and :class:`Segment` with lazy field access;
* :mod:`.parse` — :func:`parse` (text), :func:`decode` (bytes by MSH-18), :func:`parse_header`;
* :mod:`.ack` — :func:`ack` with v2.5 ERR, :class:`ControlIds`, :func:`basic_checks`;
* :mod:`.framing` — MLLP blocks and transport errors; :mod:`.client` the blocking client
  (:class:`BlockingClient`, gevent-friendly), :mod:`.aio` the asyncio one (:class:`MLLPClient`).

Why not python-hl7's parser: the hub only needs lazy field access, hand-built ACK/RSP with v2.5 ERR segments
and strict MSH-18 charset handling; doing it here keeps parsing off the hot path (fields are split on
demand) and adds no dependency. python-hl7 (0.4.5) splits every field, repetition and component up front
into nested containers: parsing the PIX query of ``benchmarks/bench_mllp.py`` and reading QPD-3 takes
69 µs there against 3.9 µs here, the JIS ADT (reading PID-5) 165 µs against 6.3 µs (decode + parse
+ one field read, best of 5 × 20,000 on the 2-core development machine, December 2026; python-hl7 has no
MSH-18 rule, so there the caller decodes first).

Parsing works on decoded text only: ISO-2022-JP kanji bytes include ``| ^ ~ \\ &``, so the raw bytes are
never split, except the MSH segment, which is read first to learn the charset (see :func:`decode`).

Numbering follows HL7: ``SEG-n`` is field *n* (MSH-1 is the field separator itself), components and
subcomponents are 1-based; repetitions are 0-based list indexes (``rep=0`` is the first).
"""

from .ack import ACK_CODES, ControlIds, ack, basic_checks
from .aio import MLLPClient
from .build import Component, Field, Raw, Repeated, Value, components, encode_field, segment
from .charset import (
    ASCII,
    ISO2022_JP,
    MSH18,
    UTF8,
    charset_of,
    codec_for,
    encode,
    header_text,
    msh_delimiters,
)
from .client import BlockingClient
from .delimiters import DEFAULT_DELIMITERS, Delimiters, escape, unescape
from .errors import (
    CharsetError,
    ErrorCode,
    ErrorDetail,
    ErrorLocation,
    HL7Error,
    ParseError,
    UndecodableError,
    UnencodableError,
    UnknownCharsetError,
)
from .framing import (
    END_BLOCK,
    START_BLOCK,
    ConnectionClosedError,
    Deframer,
    FramingError,
    HandshakeError,
    MLLPError,
    frame,
)
from .model import Message, Segment
from .parse import decode, parse, parse_header

__all__ = [
    "ACK_CODES",
    "ASCII",
    "DEFAULT_DELIMITERS",
    "END_BLOCK",
    "ISO2022_JP",
    "MSH18",
    "START_BLOCK",
    "UTF8",
    "BlockingClient",
    "CharsetError",
    "Component",
    "ConnectionClosedError",
    "ControlIds",
    "Deframer",
    "Delimiters",
    "ErrorCode",
    "ErrorDetail",
    "ErrorLocation",
    "Field",
    "FramingError",
    "HL7Error",
    "HandshakeError",
    "MLLPClient",
    "MLLPError",
    "Message",
    "ParseError",
    "Raw",
    "Repeated",
    "Segment",
    "UndecodableError",
    "UnencodableError",
    "UnknownCharsetError",
    "Value",
    "ack",
    "basic_checks",
    "charset_of",
    "codec_for",
    "components",
    "decode",
    "encode",
    "encode_field",
    "escape",
    "frame",
    "header_text",
    "msh_delimiters",
    "parse",
    "parse_header",
    "segment",
    "unescape",
]
