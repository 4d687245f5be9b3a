"""MSH-1/MSH-2 delimiters and the HL7 escape tables (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, ``\\Xhh\\``).

Escaping runs on decoded text, never on bytes: ISO-2022-JP kanji bytes include ``| ^ ~ \\ &``. One table per
delimiter set, built once and shared by every message that declares the same MSH-1/MSH-2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from .errors import ErrorCode, ErrorDetail, ErrorLocation, ParseError

__all__ = ["DEFAULT_DELIMITERS", "Delimiters", "escape", "unescape"]


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
    def escape_table(self) -> dict[int, str]:
        """``str.translate`` table: each delimiter and CR/LF → its escape sequence."""
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
    def special(self) -> frozenset[str]:
        """The characters :func:`escape` replaces (a value without them is returned as is)."""
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
    if delimiters.special.isdisjoint(text):
        return text
    return text.translate(delimiters.escape_table)


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
