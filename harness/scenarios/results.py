"""Results of a run: one :class:`AssertionResult` per expectation, grouped by scenario, with evidence.

Statuses: ``passed``; ``failed`` (the hub answered, and not as expected); ``error`` (the step could not be
carried out or an earlier step broke the scenario: nothing was learnt about the assertion); ``skipped``
(the target does not support a step kind, or the scenario needs a world or hub this run cannot give).
A run passes when nothing failed or errored. Every assertion of every selected scenario gets a result, so
counts never depend on how far a scenario got. :meth:`RunResult.to_json` is the JSON report's body and
:meth:`RunResult.from_json` reads it back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "REPORT_FORMAT",
    "AssertionResult",
    "CheckResult",
    "Exchange",
    "RunResult",
    "ScenarioResult",
    "Status",
    "StepRecord",
    "StepStatus",
    "percentile",
]

Status = Literal["passed", "failed", "error", "skipped"]
StepStatus = Literal["ok", "error", "skipped", "not-run"]
REPORT_FORMAT: Final = "rhin-run-report"
STATUSES: Final[tuple[Status, ...]] = ("passed", "failed", "error", "skipped")


@dataclass
class Exchange:
    """One request and its answer, decoded for people (HL7 with one segment per line), plus hex when raw."""

    protocol: Literal["mllp", "http", "note"]
    label: str
    request: str
    response: str | None
    elapsed_ms: float
    request_hex: str | None = None
    response_hex: str | None = None
    note: str = ""
    operation: str = ""  # when not the step's own kind (e.g. the automatic login before a link)
    timed: bool = True  # false: a repeated step's warm-up (left out of the latency figures)


@dataclass
class CheckResult:
    subject: str
    expected: str  # with variables substituted, for people
    actual: str
    passed: bool
    spec: str = ""  # as written in the scenario (variables unresolved)


@dataclass
class AssertionResult:
    assertion_id: str
    status: Status
    suite: str
    scenario: str
    step: int
    step_name: str
    kind: str
    title: str = ""
    message: str = ""
    location: str = ""
    duration_ms: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    evidence: list[Exchange] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int, str]:
        """Unique within a run: (suite, scenario, step, assertion ID)."""
        return (self.suite, self.scenario, self.step, self.assertion_id)

    @property
    def expected(self) -> str:
        return "; ".join(f"{c.subject} {c.expected}" for c in self.checks)

    @property
    def actual(self) -> str:
        return "; ".join(f"{c.subject} = {c.actual}" for c in self.checks)

    def outcome(self) -> tuple[Any, ...]:
        """What must be equal between a serial and a parallel run: each check's verdict against the
        expectation as written. Not timings or evidence, and not the values the hub chose itself (a
        continuation pointer, a regional ID), which differ between hub processes by design."""
        checks = tuple((c.subject, c.spec, c.passed) for c in self.checks)
        return (*self.key, self.status, self.message, checks)


@dataclass
class StepRecord:
    index: int
    name: str
    kind: str
    status: StepStatus
    elapsed_ms: float = 0.0
    error: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    repeat: dict[str, Any] | None = None  # a repeated step: count, warmup, latencies_ms (timed ones)


@dataclass
class ScenarioResult:
    suite: str
    id: str
    title: str
    path: str
    tags: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    given: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    duration_ms: float = 0.0
    assertions: list[AssertionResult] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def status(self) -> Status:
        statuses = {a.status for a in self.assertions}
        order: tuple[Status, ...] = ("error", "failed", "passed")
        for status in order:
            if status in statuses:
                return status
        return "error" if self.error else "skipped"


@dataclass
class RunResult:
    started: str
    finished: str
    target: dict[str, Any]
    world: dict[str, Any]
    options: dict[str, Any]
    scenarios: list[ScenarioResult] = field(default_factory=list)

    def assertions(self) -> Iterator[AssertionResult]:
        for scenario in self.scenarios:
            yield from scenario.assertions

    def summary(self) -> dict[str, int]:
        counts = Counter(a.status for a in self.assertions())
        out: dict[str, int] = {"assertions": sum(counts.values())}
        out |= {s: counts.get(s, 0) for s in STATUSES}
        out["scenarios"] = len(self.scenarios)
        out["scenarios_failed"] = sum(1 for s in self.scenarios if s.status in ("failed", "error"))
        return out

    @property
    def ok(self) -> bool:
        """Nothing failed or errored (skipped assertions are reported, not failures)."""
        s = self.summary()
        return s["failed"] == 0 and s["error"] == 0

    def passed(self, *, allow_skips: bool = False) -> bool:
        """``rhin run``'s verdict: every assertion passed — or, with ``allow_skips``, none failed or errored
        (for external targets that declare steps they do not support)."""
        s = self.summary()
        return self.ok and (allow_skips or s["skipped"] == 0)

    def suites(self) -> dict[str, dict[str, int]]:
        """Per suite: assertion counts by status."""
        out: dict[str, Counter[str]] = {}
        for a in self.assertions():
            out.setdefault(a.suite, Counter())[a.status] += 1
        return {
            suite: {s: c.get(s, 0) for s in STATUSES} | {"assertions": c.total()} for suite, c in out.items()
        }

    def latencies(self) -> dict[str, list[float]]:
        """Elapsed milliseconds of every exchange, by step kind (what the latency plots show)."""
        out: dict[str, list[float]] = {}
        for scenario in self.scenarios:
            for step in scenario.steps:
                for exchange in step.exchanges:
                    if exchange.protocol != "note" and exchange.timed:
                        out.setdefault(exchange.operation or step.kind, []).append(exchange.elapsed_ms)
        return dict(sorted(out.items()))

    def repeated_steps(self) -> list[tuple[ScenarioResult, StepRecord]]:
        """Steps run with ``repeat`` (the latency suite's measurements), in report order."""
        return [(s, st) for s in self.scenarios for st in s.steps if st.repeat is not None]

    def latency_table(self) -> dict[str, dict[str, float]]:
        table = {}
        for kind, values in self.latencies().items():
            ordered = sorted(values)
            table[kind] = {
                "count": float(len(ordered)),
                "p50": percentile(ordered, 50),
                "p90": percentile(ordered, 90),
                "p95": percentile(ordered, 95),
                "p99": percentile(ordered, 99),
                "max": ordered[-1],
            }
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "format_version": 1,
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "passed": self.passed(allow_skips=bool(self.options.get("allow_skips"))),
            "summary": self.summary(),
            "suites": self.suites(),
            "latency_ms": self.latency_table(),
            "target": self.target,
            "world": self.world,
            "options": self.options,
            "scenarios": [asdict(s) | {"status": s.status} for s in self.scenarios],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        scenarios = []
        for s in data["scenarios"]:
            s = {k: v for k, v in s.items() if k != "status"}
            assertions = [
                AssertionResult(
                    **{k: v for k, v in a.items() if k not in ("checks", "evidence")},
                    checks=[CheckResult(**c) for c in a["checks"]],
                    evidence=[Exchange(**e) for e in a["evidence"]],
                )
                for a in s.pop("assertions")
            ]
            steps = [
                StepRecord(
                    **{k: v for k, v in st.items() if k != "exchanges"},
                    exchanges=[Exchange(**e) for e in st["exchanges"]],
                )
                for st in s.pop("steps")
            ]
            scenarios.append(ScenarioResult(**s, assertions=assertions, steps=steps))
        return cls(
            data["started"], data["finished"], data["target"], data["world"], data["options"], scenarios
        )


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (the value a p % of observations do not exceed)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * p // 100))
    return round(ordered[min(len(ordered), int(rank)) - 1], 3)
