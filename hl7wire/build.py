"""Building ER7: the one place where values become fields and fields become a segment.

Two doors, one rule. :meth:`hl7wire.Message.add` takes *data* (strings are escaped, :class:`Raw` is not);
:func:`segment` and :func:`components` take *already-encoded* text (SS-MIX2 writers escape each value once,
cached, while assembling a field by hand). Both go through :func:`trimmed`: trailing empty fields (and
components, subcomponents, repetitions) are left out, as HL7 allows and as every sender in rhin writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .delimiters import DEFAULT_DELIMITERS, Delimiters, escape

__all__ = [
    "Component",
    "Field",
    "Raw",
    "Repeated",
    "Value",
    "components",
    "encode_field",
    "segment",
    "segment_fields",
    "trim",
    "trimmed",
]


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
"""What :meth:`hl7wire.Message.add` takes per field; strings are escaped, :class:`Raw` is not."""


def trim(items: list[str], keep: int = 0) -> list[str]:
    """Drop ``items``' trailing empty strings in place, never below ``keep`` items; returns ``items``.

    In place because every reply's MSH and MSA go through it (:func:`hl7wire.ack`): no copy per reply.
    """
    while len(items) > keep and not items[-1]:
        items.pop()
    return items


def trimmed(parts: Iterable[str], keep: int = 0) -> list[str]:
    """``parts`` as a new list without trailing empty strings, but never shorter than ``keep`` items."""
    return trim(list(parts), keep)


def _join_trimmed(sep: str, parts: Iterable[str]) -> str:
    return sep.join(trimmed(parts))


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


def encode_field(value: Field, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """One field's ER7: a string escaped, a sequence as components (of subcomponents), :class:`Raw` as is."""
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Repeated):
        return _join_trimmed(d.repetition, (_encode_value(v, d) for v in value.values))
    return _encode_value(value, d)


def segment_fields(name: str, encoded: Iterable[str], d: Delimiters = DEFAULT_DELIMITERS) -> list[str]:
    """``[name, SEG-1, SEG-2 …]`` from encoded fields, trailing empties dropped.

    For MSH, ``encoded`` starts at MSH-1 as for any segment, and MSH-1/MSH-2 are always ``d``'s.
    """
    fields = [name, *encoded]
    if name == "MSH":
        fields[1:3] = [d.field, d.encoding_characters]
        return trim(fields, 3)
    return trim(fields, 1)


def components(*parts: object) -> str:
    """Already-encoded components joined by ``^``, trailing empties dropped (None counts as empty)."""
    return _join_trimmed("^", ("" if p is None else str(p) for p in parts))


def segment(name: str, *fields: object) -> str:
    """A segment's text ``name|f1|f2…`` from already-encoded fields, trailing empties dropped.

    The text is written as it reads, so ``segment("MSH", "^~\\\\&", "APP")`` is ``MSH|^~\\&|APP``: its first
    field is MSH-2 (MSH-1 being the separator that follows the name).
    """
    return "|".join(trimmed([name, *("" if f is None else str(f) for f in fields)], 1))
