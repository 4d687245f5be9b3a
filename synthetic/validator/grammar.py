"""Segment grammars per MSH-9 event, matched in linear time.

The table (``synthetic/data/ssmix2/segment_order.json``) keeps the regex notation of its source, S2's
HL7_SEGMENTORDER.json, over segment IDs concatenated 3 characters at a time. Python's backtracking
``re`` takes exponential time on some of them when a long message fails (ORU^R01 with 22 OBR groups and
a bad last segment: ~5 s), and a vendor's odd file must not stall a run. So the notation — literal
``(XXX)`` tokens, groups, ``? * +``, a leading ``^`` and the one-segment wildcard ``(?!A|B)...`` — is
compiled here into a Glushkov position automaton and run as a lazily built DFA, one step per segment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType

_WILD = ""  # token of a wildcard position (one segment, minus its exclusions)


@dataclass(frozen=True, slots=True)
class Grammar:
    """The position automaton of one pattern; immutable, shared by all matchers of a process."""

    event: str
    pattern: str
    tokens: tuple[str, ...]  # per position: a segment ID, or _WILD
    excluded: tuple[frozenset[str], ...]  # per position: IDs a wildcard does not match
    follow: tuple[frozenset[int], ...]  # per position, plus the start state at index len(tokens)
    last: frozenset[int]
    nullable: bool


class _Parser:
    """Recursive descent over the restricted regex notation; builds the Glushkov sets as it goes."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern[1:] if pattern.startswith("^") else pattern
        self.i = 0
        self.tokens: list[str] = []
        self.excluded: list[frozenset[str]] = []
        self.follow: list[set[int]] = []

    def error(self, what: str) -> ValueError:
        return ValueError(f"segment grammar {self.text!r}: {what} at offset {self.i}")

    def position(self, token: str, excluded: frozenset[str] = frozenset()) -> tuple[bool, set[int], set[int]]:
        self.tokens.append(token)
        self.excluded.append(excluded)
        self.follow.append(set())
        p = len(self.tokens) - 1
        return False, {p}, {p}

    def seq(self) -> tuple[bool, set[int], set[int]]:
        nullable, first, last = True, set[int](), set[int]()
        while self.i < len(self.text) and self.text[self.i] != ")":
            n, f, la = self.item()
            for x in last:
                self.follow[x] |= f
            first = first | f if nullable else first
            last = la | last if n else la
            nullable = nullable and n
        return nullable, first, last

    def item(self) -> tuple[bool, set[int], set[int]]:
        n, f, la = self.atom()
        if self.i < len(self.text) and self.text[self.i] in "?*+":
            q = self.text[self.i]
            self.i += 1
            if q in "*+":
                for x in la:
                    self.follow[x] |= f
            n = n or q in "?*"
        return n, f, la

    def atom(self) -> tuple[bool, set[int], set[int]]:
        t = self.text
        if t.startswith("(?!", self.i):
            end = t.index(")", self.i)
            names = frozenset(t[self.i + 3 : end].split("|"))
            self.i = end + 1
            if not t.startswith("...", self.i):
                raise self.error("a (?!…) exclusion must be followed by '...'")
            self.i += 3
            return self.position(_WILD, names)
        if t.startswith("...", self.i):
            self.i += 3
            return self.position(_WILD)
        if t[self.i] != "(":
            raise self.error(f"unexpected {t[self.i]!r}")
        name = t[self.i + 1 : self.i + 4]
        if t[self.i + 4 : self.i + 5] == ")" and len(name) == 3 and name.isalnum() and name.isupper():
            self.i += 5
            return self.position(name)
        self.i += 1
        result = self.seq()
        if t[self.i : self.i + 1] != ")":
            raise self.error("missing ')'")
        self.i += 1
        return result


def compile_grammar(event: str, pattern: str) -> Grammar:
    parser = _Parser(pattern)
    nullable, first, last = parser.seq()
    if parser.i != len(parser.text):
        raise parser.error("unbalanced ')'")
    follow = [frozenset(s) for s in parser.follow] + [frozenset(first)]
    return Grammar(
        event, pattern, tuple(parser.tokens), tuple(parser.excluded), tuple(follow), frozenset(last), nullable
    )


@cache
def load_grammars() -> Mapping[str, Grammar]:
    """Event (``"ADT^A08"``) → grammar, from the bundled table; keys starting with ``_`` are notes."""
    text = (resources.files("synthetic") / "data" / "ssmix2" / "segment_order.json").read_text("utf-8")
    table: dict[str, str] = json.loads(text)
    return MappingProxyType(
        {
            event: compile_grammar(event, pattern)
            for event, pattern in table.items()
            if not event.startswith("_")
        }
    )


@dataclass
class SegmentMatcher:
    """Runs one grammar; caches DFA transitions, so keep one per worker task, not per file."""

    grammar: Grammar
    _steps: dict[tuple[frozenset[int], str], frozenset[int]] = field(default_factory=dict)

    def step(self, state: frozenset[int], token: str) -> frozenset[int]:
        key = (state, token)
        nxt = self._steps.get(key)
        if nxt is None:
            g = self.grammar
            nxt = frozenset(
                p
                for q in state
                for p in g.follow[q]
                if g.tokens[p] == token or (g.tokens[p] == _WILD and token not in g.excluded[p])
            )
            self._steps[key] = nxt
        return nxt

    def expected(self, state: frozenset[int]) -> list[str]:
        g = self.grammar
        names = {g.tokens[p] or "any segment" for q in state for p in g.follow[q]}
        return sorted(names)

    def match(self, ids: list[str]) -> str | None:
        """None when ``ids`` is a sentence of the grammar, else why not (first offending segment)."""
        g = self.grammar
        start = frozenset({len(g.tokens)})
        state = start
        for n, seg in enumerate(ids):
            nxt = self.step(state, seg)
            if not nxt:
                after = f"after {ids[n - 1]} (segment {n})" if n else "at the start"
                want = ", ".join(self.expected(state)) or "end of message"
                return f"segment {n + 1} {seg} is not allowed {after}; expected {want}"
            state = nxt
        if state & g.last or (state == start and g.nullable):
            return None
        want = ", ".join(self.expected(state))
        return f"message ends after segment {len(ids)} {ids[-1] if ids else ''}; expected {want}"
