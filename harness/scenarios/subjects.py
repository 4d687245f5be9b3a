"""Subjects (what an expectation looks at in a step's exchange) and matchers (what it must be).

Subjects of an MLLP step's reply:

* ``SEG-n`` the whole field as sent (every repetition, escapes intact), e.g. ``ERR-2``;
  ``SEG-n[r]`` repetition r (1-based), ``SEG-n.c`` / ``SEG-n.c.s`` component / subcomponent of the first
  repetition (unescaped), ``SEG-n[r].c``; ``SEG#k-…`` the k-th segment of that name (1-based);
  ``[*]`` and ``#*`` give lists (every repetition, every segment).
* ``count:SEG`` how many SEG segments; ``segments`` the segment names in order; ``type`` MSH-9 as sent;
  ``correlated`` MSA-2 equals the request's MSH-10; ``charset`` the reply's codec (``utf-8``,
  ``iso2022_jp``, ``ascii``); ``reply`` ``message``/``none``; ``connection`` ``open``/``closed`` after the
  exchange; ``text`` the decoded reply.

Subjects of an HTTP step's reply: ``status``, ``json:PATH`` (``a.b[0].c``, ``[-1]`` the last element;
``[*]`` maps over a list; ``[key=value]`` keeps the list's objects whose ``key`` renders as ``value``, e.g.
``json:sources[facility=${H.code}].status`` — ``${...}`` variables are allowed inside the brackets),
``header:NAME``, ``content_type``, ``body_size``, ``text``, ``span:PATH..PATH`` (seconds from the first
ISO date-time to the second), and for a fetch with ``world_file: true`` ``world_file`` (``identical``,
``different`` or ``missing``) and ``world_file_size``. Every step has ``elapsed_ms``; a repeated step has
``latency.count``, ``latency.mean``, ``latency.max`` and ``latency.pNN`` (nearest-rank percentiles over
its timed repetitions, milliseconds).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from hl7wire import Message, Segment

__all__ = [
    "HL7_ONLY",
    "HTTP_ONLY",
    "MISSING",
    "HttpObservation",
    "Latency",
    "MllpObservation",
    "Observation",
    "Subject",
    "check",
    "observe",
    "parse_subject",
    "render",
]

_HL7_PATH: Final = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:#(?P<idx>\*|[1-9][0-9]*))?-(?P<field>[1-9][0-9]*)"
    r"(?:\[(?P<rep>\*|[1-9][0-9]*)\])?(?:\.(?P<comp>[1-9][0-9]*)(?:\.(?P<sub>[1-9][0-9]*))?)?$"
)
_JSON_TOKEN: Final = re.compile(
    r"(?P<key>[A-Za-z0-9_\-]+)|\[(?P<index>\*|-?[0-9]+)\]|\[(?P<fkey>[A-Za-z0-9_\-]+)=(?P<fvalue>[^\]]*)\]|(?P<dot>\.)"
)
_LATENCY: Final = re.compile(r"^latency\.(?P<stat>count|mean|max|min|p(?P<p>[1-9][0-9]?|100))$")
HL7_ONLY: Final = frozenset(
    {"hl7", "count", "segments", "type", "correlated", "charset", "reply", "connection"}
)
HTTP_ONLY: Final = frozenset(
    {"status", "json", "header", "content_type", "body_size", "span", "world_file", "world_file_size"}
)
_PLAIN: Final = HL7_ONLY - {"hl7", "count"} | {
    "status",
    "content_type",
    "body_size",
    "text",
    "elapsed_ms",
    "world_file",
    "world_file_size",
}


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class Subject:
    """A parsed subject; ``kind`` is one of the names above (``hl7`` for field paths)."""

    kind: str
    text: str
    segment: str = ""
    index: int | Literal["*"] = 1
    field: int = 0
    rep: int | Literal["*"] | None = None
    comp: int | None = None
    sub: int | None = None
    path: str = ""
    tokens: tuple[tuple[str, str, str], ...] = ()  # a JSON path: (kind, a, b) with kind key/index/filter
    until: tuple[tuple[str, str, str], ...] = ()  # span: the second path


def json_tokens(path: str) -> tuple[tuple[str, str, str], ...]:
    """``a.b[0][k=v].c`` → (("key", "a", ""), ("key", "b", ""), ("index", "0", ""), ("filter", "k", "v"), …);
    ``ValueError`` when it is not a path."""
    out: list[tuple[str, str, str]] = []
    pos, expect_key = 0, True
    while pos < len(path):
        m = _JSON_TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f"{path!r} is not a JSON path (at {path[pos:]!r})")
        if m["key"] is not None:
            if not expect_key:
                raise ValueError(f"{path!r}: write a dot between names")
            out.append(("key", m["key"], ""))
            expect_key = False
        elif m["index"] is not None:
            out.append(("index", m["index"], ""))
            expect_key = False
        elif m["fkey"] is not None:
            out.append(("filter", m["fkey"], m["fvalue"]))
            expect_key = False
        else:
            if expect_key:
                raise ValueError(f"{path!r}: a dot must follow a name or a bracket")
            expect_key = True
        pos = m.end()
    if not out or expect_key or out[0][0] != "key":
        raise ValueError(f"{path!r} is not a JSON path (start with a name; no dot at the end)")
    return tuple(out)


def parse_subject(text: str) -> Subject:
    """Parse a subject; ``ValueError`` says what is wrong."""
    m = _HL7_PATH.match(text)
    if m:
        idx, rep = m["idx"], m["rep"]
        return Subject(
            "hl7",
            text,
            segment=m["seg"],
            index="*" if idx == "*" else int(idx or 1),
            field=int(m["field"]),
            rep=None if rep is None else "*" if rep == "*" else int(rep),
            comp=int(m["comp"]) if m["comp"] else None,
            sub=int(m["sub"]) if m["sub"] else None,
        )
    kind, _, rest = text.partition(":")
    if kind == "count" and re.fullmatch(r"[A-Z][A-Z0-9]{2}", rest):
        return Subject("count", text, segment=rest)
    if kind == "json" and rest:
        return Subject("json", text, path=rest, tokens=json_tokens(rest))
    if kind == "span" and ".." in rest:
        first, _, second = rest.partition("..")
        return Subject("span", text, path=rest, tokens=json_tokens(first), until=json_tokens(second))
    m = _LATENCY.match(text)
    if m:
        return Subject("latency", text, path=m["stat"])
    if kind == "header" and re.fullmatch(r"[A-Za-z0-9-]+", rest):
        return Subject("header", text, path=rest.lower())
    if text in _PLAIN:
        return Subject(text, text)
    raise ValueError(
        f"unknown subject {text!r}: use an HL7 field path (MSA-1, ERR-2, PID-3[2].1, PID#*-3.1), count:SEG, "
        f"json:PATH, header:NAME, span:PATH..PATH, latency.p95 (count, mean, min, max, pNN) or one of "
        f"{', '.join(sorted(_PLAIN))}"
    )


# ------------------------------------------------------------------------------------------- observations


@dataclass
class MllpObservation:
    """What an MLLP step saw: the decoded reply (if any) and what happened to the connection."""

    reply: Message | None
    codec: str | None
    request_control_id: str
    closed: bool
    elapsed_ms: float
    text: str = ""


@dataclass
class HttpObservation:
    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    json_body: Any = field(default=MISSING)
    world_file: str | None = None  # identical / different / missing, for a fetch compared with the world
    world_file_size: int | None = None


@dataclass(frozen=True)
class Latency:
    """The timed repetitions of a step (milliseconds, in order)."""

    values: tuple[float, ...]

    def stat(self, name: str) -> Any:
        ordered = sorted(self.values)
        if name == "count":
            return len(ordered)
        if not ordered:
            return MISSING
        if name == "mean":
            return round(sum(ordered) / len(ordered), 3)
        if name == "max":
            return round(ordered[-1], 3)
        if name == "min":
            return round(ordered[0], 3)
        rank = max(1, -(-len(ordered) * int(name[1:]) // 100))
        return round(ordered[min(len(ordered), rank) - 1], 3)


Observation = MllpObservation | HttpObservation


def _segments(message: Message, subject: Subject) -> list[Segment]:
    found = message.segments(subject.segment)
    if subject.index == "*":
        return found
    return found[subject.index - 1 : subject.index]


def _field_value(seg: Segment, subject: Subject) -> Any:
    if subject.rep == "*":
        count = len(seg.repetitions(subject.field))
        if subject.comp is None:
            return seg.repetitions(subject.field)
        return [seg.get(subject.field, r, subject.comp, subject.sub) for r in range(count)]
    if subject.rep is None and subject.comp is None:
        return seg.field(subject.field)
    rep = 0 if subject.rep is None else subject.rep - 1
    if subject.comp is None:
        reps = seg.repetitions(subject.field)
        return reps[rep] if rep < len(reps) else ""
    return seg.get(subject.field, rep, subject.comp, subject.sub)


def _json_path(value: Any, tokens: Sequence[tuple[str, str, str]]) -> Any:
    """Walk ``tokens``: a name on a list maps over it (``[*]`` and filters give lists)."""
    for kind, a, b in tokens:
        if kind == "key":
            if isinstance(value, list):
                value = [_json_path(item, [(kind, a, b)]) for item in value]
            elif isinstance(value, Mapping) and a in value:
                value = value[a]
            else:
                return MISSING
        elif kind == "filter":
            if not isinstance(value, list):
                return MISSING
            value = [v for v in value if isinstance(v, Mapping) and a in v and render(v[a]) == b]
        elif a == "*":
            if not isinstance(value, list):
                return MISSING
        else:
            index = int(a)
            if not isinstance(value, list) or not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
    return value


def _span(obs: HttpObservation, subject: Subject) -> Any:
    if obs.json_body is MISSING:
        return MISSING
    ends = [_json_path(obs.json_body, t) for t in (subject.tokens, subject.until)]
    try:
        start, end = (dt.datetime.fromisoformat(str(v)) for v in ends if isinstance(v, str))
    except ValueError:
        return MISSING
    try:
        return round((end - start).total_seconds(), 3)
    except TypeError:  # one aware, one naive
        return MISSING


def observe(subject: Subject, obs: Observation, latency: Latency | None = None) -> Any:
    """The observed value of ``subject`` (``MISSING`` when absent); ``latency``: a repeated step's timings."""
    if subject.kind == "elapsed_ms":
        return round(obs.elapsed_ms, 3)
    if subject.kind == "latency":
        return (latency or Latency((obs.elapsed_ms,))).stat(subject.path)
    if isinstance(obs, MllpObservation):
        return _observe_mllp(subject, obs)
    return _observe_http(subject, obs)


def _observe_mllp(subject: Subject, obs: MllpObservation) -> Any:
    kind, reply = subject.kind, obs.reply
    if kind == "reply":
        return "none" if reply is None else "message"
    if kind == "connection":
        return "closed" if obs.closed else "open"
    if kind == "text":
        return obs.text if obs.text else MISSING
    if reply is None:
        return MISSING
    if kind == "charset":
        return obs.codec or MISSING
    if kind == "type":
        return reply.get("MSH", 9) if reply.segment("MSH") is not None else MISSING
    if kind == "correlated":
        return bool(obs.request_control_id) and reply.get("MSA", 2) == obs.request_control_id
    if kind == "segments":
        return [s.name for s in reply]
    if kind == "count":
        return len(reply.segments(subject.segment))
    segs = _segments(reply, subject)
    if subject.index == "*":
        return [_field_value(s, subject) for s in segs]
    return _field_value(segs[0], subject) if segs else MISSING


def _observe_http(subject: Subject, obs: HttpObservation) -> Any:
    kind = subject.kind
    if kind == "status":
        return obs.status
    if kind == "header":
        return obs.headers.get(subject.path, MISSING)
    if kind == "content_type":
        return obs.headers.get("content-type", MISSING)
    if kind == "body_size":
        return len(obs.body)
    if kind == "text":
        return obs.body.decode("utf-8", "replace")
    if kind == "json":
        return MISSING if obs.json_body is MISSING else _json_path(obs.json_body, subject.tokens)
    if kind == "span":
        return _span(obs, subject)
    if kind == "world_file":
        return MISSING if obs.world_file is None else obs.world_file
    if kind == "world_file_size":
        return MISSING if obs.world_file_size is None else obs.world_file_size
    return MISSING


# ------------------------------------------------------------------------------------------- matching


def render(value: Any) -> str:
    """A value as shown in reports (JSON-ish, Japanese kept)."""
    if value is MISSING:
        return "<absent>"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _same(expected: Any, actual: Any) -> bool:
    """Equality that lets YAML scalars meet HL7 strings (``5`` = ``"5"``) and JSON numbers meet numbers."""
    if actual is MISSING:
        return False
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _same(e, a) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        if isinstance(expected, bool) and isinstance(actual, bool):
            return expected == actual
        return str(expected).lower() == str(actual).lower()
    if isinstance(actual, str) and isinstance(expected, int | float):
        return actual == str(expected) or _number(actual) == expected
    if isinstance(expected, str) and isinstance(actual, int | float):
        return _number(expected) == actual
    if expected is None:
        return actual is None
    return bool(expected == actual)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _empty(value: Any) -> bool:
    return value is MISSING or value is None or value == "" or value == [] or value == {}


def _erl_same(expected: str, actual: str, strict: bool) -> bool:
    """ERR-2 locations: strict is exact; lenient compares segment and field and the set of the other parts
    (OHIE-CR-09 writes QPD^1^3^4^1 where MESA writes QPD^1^3^1^4, hub-protocols §1.2)."""
    want, got = expected.split("~"), actual.split("~")
    if strict:
        return want == got
    if len(want) != len(got):
        return False

    def loose(erl: str) -> tuple[str, str, tuple[str, ...]]:
        parts = [*erl.split("^"), "", ""]
        rest = sorted(p for p in parts[3:] if p not in ("", "1"))
        return parts[0], parts[2], tuple(rest)

    return sorted(map(loose, want)) == sorted(map(loose, got))


def check(operators: Mapping[str, Any], actual: Any, *, strict_erl: bool = True) -> list[str]:
    """The operators that failed (empty: the value satisfies the matcher)."""
    failed = []
    for op, expected in operators.items():
        if not _holds(op, expected, actual, strict_erl):
            failed.append(op)
    return failed


def _holds(op: str, expected: Any, actual: Any, strict_erl: bool) -> bool:
    if op == "equals":
        return _same(expected, actual) or (expected is None and actual is MISSING)
    if op == "one_of":
        return any(_same(e, actual) for e in expected)
    if op == "not":
        return not _same(expected, actual)
    if op == "present":
        return _empty(actual) != bool(expected)
    if actual is MISSING:
        return False
    if op == "matches":
        return re.search(expected, render(actual)) is not None
    if op in ("contains", "excludes"):
        if isinstance(actual, list):
            inside = any(_same(expected, a) for a in actual)
        else:
            inside = render(expected) in render(actual)
        return inside if op == "contains" else not inside
    if op == "len":
        return isinstance(actual, Sequence) and len(actual) == expected
    if op == "set":
        return isinstance(actual, list) and sorted(map(render, actual)) == sorted(map(render, expected))
    if op == "erl":
        return isinstance(actual, str) and _erl_same(expected, actual, strict_erl)
    number = _number(actual)
    if number is None:
        return False
    bound = float(expected)
    return {"ge": number >= bound, "gt": number > bound, "le": number <= bound, "lt": number < bound}[op]
