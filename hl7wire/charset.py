"""The MSH-18 charset rule: which codec a message's bytes are in, learned before the rest is decoded.

Japanese senders declare ``~ISO IR87`` (ISO-2022-JP: ASCII + JIS X 0208, JAHIS practice), ``UNICODE UTF-8``,
or nothing (ASCII). The MSH is ASCII by contract, so it is read from the raw bytes first; nothing else is
split as bytes, since JIS kanji bytes include ``| ^ ~ \\ &``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from .delimiters import Delimiters
from .errors import ParseError, UnencodableError, UnknownCharsetError

__all__ = [
    "ASCII",
    "ISO2022_JP",
    "MSH18",
    "UTF8",
    "charset_of",
    "codec_for",
    "encode",
    "header_text",
    "msh_delimiters",
]

ASCII: Final = "ascii"
UTF8: Final = "utf-8"
ISO2022_JP: Final = "iso2022_jp"
MSH18: Final[Mapping[str, str]] = {ISO2022_JP: "~ISO IR87", UTF8: "UNICODE UTF-8", ASCII: ""}
"""Codec → the MSH-18 Japanese senders write for it, as encoded ER7 (``~ISO IR87``: an empty first
repetition, then ISO IR87, the JAHIS form); :func:`codec_for` reads each back to its codec."""


def msh_delimiters(line: str) -> Delimiters:
    """The delimiters an MSH line (text) declares; :class:`ParseError` when it has none or unusable ones."""
    if len(line) < 4:
        raise ParseError("MSH segment has no field separator")
    sep = line[3]
    enc = line[4:].split(sep, 1)[0]
    return Delimiters.from_msh(sep, enc)


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


def header_text(raw: bytes) -> str:
    """The MSH line of raw bytes as text, without knowing the charset yet."""
    line = _msh_line(raw)
    # The MSH is ASCII by contract; a kanji facility name before MSH-18 must not be split as bytes.
    if b"\x1b" in line:
        return line.decode(ISO2022_JP, "replace")
    return line.decode("latin-1")


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
    line = header_text(raw)
    d = msh_delimiters(line)
    fields = line.split(d.field)
    return codec_for(fields[17] if len(fields) > 17 else "", d.repetition)


def encode(text: str, codec: str, errors: str = "strict") -> bytes:
    """Text → bytes for the wire; raises :class:`UnencodableError` rather than UnicodeEncodeError."""
    try:
        return text.encode(codec, errors)
    except UnicodeEncodeError as exc:
        raise UnencodableError(codec, exc.object[exc.start : exc.end]) from exc
