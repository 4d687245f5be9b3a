"""Expectations checked against what a step observed: each subject read from the observation (every
repetition of a repeated step, except ``latency.*`` subjects, computed over the timed ones), each operator
applied, and the evidence a repeated step keeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .context import Context
from .expectations import Expectation
from .results import CheckResult, Exchange, Status
from .subjects import Latency, Observation, check, observe, parse_subject, render
from .variables import substitute

__all__ = ["evaluate", "kept"]


def _describe(ops: Mapping[str, Any]) -> str:
    words = {"equals": "=", "not": "≠", "one_of": "one of", "set": "same set as", "len": "length"}
    words |= {"le": "≤", "lt": "<", "ge": "≥", "gt": ">"}
    return " and ".join(f"{words.get(op, op)} {render(value)}" for op, value in ops.items())


def _resolved(value: Any, ctx: Context) -> Any:
    if isinstance(value, str):
        return substitute(value, ctx.resolve)
    if isinstance(value, list):
        return [_resolved(v, ctx) for v in value]
    return value


def evaluate(
    e: Expectation, observations: Sequence[Observation], latency: Latency | None, ctx: Context
) -> tuple[Status, str, list[CheckResult], set[int]]:
    """Status, message and checks of one expectation, and the repetitions (0-based) that failed it."""
    checks = []
    failing: set[int] = set()
    n = len(observations)
    for subject_text, matcher in e.that.items():
        written = matcher.operators()
        ops = {op: _resolved(v, ctx) for op, v in written.items()}
        subject = parse_subject(substitute(subject_text, ctx.resolve))
        if subject.kind == "latency" or n == 1:
            actual = observe(subject, observations[-1], latency)
            failed = check(ops, actual, strict_erl=ctx.target.strict_erl)
            shown = render(actual)
        else:  # every repetition must satisfy it; the first that does not is shown
            failed, shown = [], ""
            for i, obs in enumerate(observations):
                actual = observe(subject, obs)
                if check(ops, actual, strict_erl=ctx.target.strict_erl):
                    failed = ["repetition"]
                    failing.add(i)
                    if not shown:
                        shown = f"{render(actual)} (repetition {i + 1} of {n})"
            shown = shown or render(observe(subject, observations[-1]))
        checks.append(CheckResult(subject_text, _describe(ops), shown, not failed, _describe(written)))
    bad = [c.subject for c in checks if not c.passed]
    if not bad:
        return "passed", "", checks, failing
    return "failed", f"{len(bad)} of {len(checks)} checks failed: {', '.join(bad)}", checks, failing


def kept(runs: list[list[Exchange]], failing: set[int]) -> list[Exchange]:
    """A repeated step's evidence: the first, the last and failing repetitions in full, the others as
    timings only (a latency run would otherwise fill the report with identical exchanges)."""
    if len(runs) == 1:
        return runs[0]
    keep = {0, len(runs) - 1, *sorted(failing)[:3]}
    out = []
    for i, exchanges in enumerate(runs):
        for x in exchanges:
            if i in keep:
                out.append(x)
            else:
                note = "timing only: evidence is kept for the first, the last and failing repetitions"
                out.append(
                    Exchange(
                        x.protocol,
                        x.label,
                        "",
                        None,
                        x.elapsed_ms,
                        note=note,
                        operation=x.operation,
                        timed=x.timed,
                    )
                )
    return out
