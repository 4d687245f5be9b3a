"""The message model: a :class:`Message` is a list of :class:`Segment`, each a list of encoded fields.

Fields are kept encoded and split on demand (components, repetitions, escapes only when asked for): the hub
reads a handful of fields per message, so splitting everything up front would be work thrown away.
Numbering follows HL7: ``SEG-n`` is field *n* (MSH-1 is the field separator itself), components and
subcomponents are 1-based; repetitions are 0-based list indexes (``rep=0`` is the first).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from .build import Field, encode_field, segment_fields
from .charset import encode
from .delimiters import DEFAULT_DELIMITERS, Delimiters, unescape

__all__ = ["Message", "Segment"]


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
    """An HL7 v2 message: parsed lazily from text (:func:`hl7wire.parse`) or built segment by segment."""

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

        Strings are escaped, so data never breaks the structure; :class:`~hl7wire.Raw` is inserted as is. For
        MSH, fields 1 and 2 always come from the message's delimiters.
        """
        d = self.delimiters
        if isinstance(fields, Mapping):
            size = max(fields, default=0)
            values: list[Field] = [fields.get(n) for n in range(1, size + 1)]
        else:
            values = list(fields)
        segment = Segment(segment_fields(name, (encode_field(v, d) for v in values), d), d)
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
