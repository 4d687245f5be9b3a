"""The HTML report: one self-contained file (inline CSS, SVG and a few lines of script; nothing fetched).

Sections: the summary (counts with stable element IDs, which the browser test compares with the JSON), one
table per suite, every failure with its expectation beside the exchanged messages (HL7 decoded into
numbered fields, the segments the failed checks look at highlighted; raw bytes in hex), the latency budgets
of repeated steps (the latency suite: percentiles against each budget, a histogram per step), and latency
histograms of every exchange by step kind with a percentile table. A small script recounts the rendered
result rows into ``data-rendered-*`` attributes of ``<body>``, so a browser can prove what it rendered
matches the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.scenarios.results import AssertionResult, RunResult
from harness.scenarios.subjects import Latency, parse_subject

from .plots import histogram_svg

__all__ = ["html_report", "write_html"]

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Hl7Segment:
    name: str
    fields: list[tuple[str, str]]
    highlight: bool


def hl7_segments(text: str | None, highlight: set[str]) -> list[Hl7Segment] | None:
    """Decoded ER7 (one segment per line) → numbered fields; None when the text is not HL7."""
    if not text:
        return None
    lines = [line for line in text.split("\n") if line]
    if not lines or not all(
        len(line) >= 3 and line[:3].isalnum() and line[3:4] in ("|", "") for line in lines
    ):
        return None
    segments = []
    for line in lines:
        name, parts = line[:3], line.split("|")
        if name == "MSH":
            numbered = [("MSH-1", "|")] + [(f"MSH-{n}", v) for n, v in enumerate(parts[1:], 2) if v]
        else:
            numbered = [(f"{name}-{n}", v) for n, v in enumerate(parts[1:], 1) if v]
        segments.append(Hl7Segment(name, numbered, name in highlight))
    return segments


def _failed_segments(a: AssertionResult) -> set[str]:
    out = set()
    for c in a.checks:
        if not c.passed:
            try:
                subject = parse_subject(c.subject)
            except ValueError:
                continue
            if subject.segment:
                out.add(subject.segment)
    return out


def _plots(result: RunResult) -> list[dict[str, Any]]:
    table = result.latency_table()
    plots = []
    for n, (kind, values) in enumerate(result.latencies().items()):
        plots.append({"kind": kind, "svg": histogram_svg(values, kind, f"plot{n}"), "stats": table[kind]})
    return plots


def budgets(result: RunResult) -> list[dict[str, Any]]:
    """One row per repeated step: its percentiles, the latency checks (budgets) and whether they held."""
    rows = []
    for n, (scenario, step) in enumerate(result.repeated_steps()):
        assert step.repeat is not None
        values = [float(v) for v in step.repeat["latencies_ms"]]
        latency = Latency(tuple(values))
        checks = [
            (a, c)
            for a in scenario.assertions
            if a.step == step.index
            for c in a.checks
            if c.subject.startswith("latency.")
        ]
        title = f"{scenario.id} step {step.index} {step.kind}"
        rows.append(
            {
                "scenario": scenario.id,
                "step": step.index,
                "kind": step.kind,
                "name": step.name,
                "count": len(values),
                "warmup": step.repeat.get("warmup", 0),
                "stats": {k: latency.stat(k) for k in ("p50", "p95", "p99", "max")},
                "checks": [
                    {
                        "assertion": a.assertion_id,
                        "status": a.status,
                        "subject": c.subject,
                        "budget": c.expected,
                        "actual": c.actual,
                        "passed": c.passed,
                    }
                    for a, c in checks
                ],
                "svg": histogram_svg(values, title, f"budget{n}") if values else "",
            }
        )
    return rows


def verdict(result: RunResult) -> str:
    """PASSED, FAILED, or INCOMPLETE (nothing failed, but skipped assertions the run did not allow)."""
    if not result.ok:
        return "FAILED"
    allowed = bool(result.options.get("allow_skips"))
    return "PASSED" if result.passed(allow_skips=allowed) else "INCOMPLETE"


def html_report(result: RunResult) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]), trim_blocks=True
    )
    env.globals["hl7_segments"] = hl7_segments
    env.globals["failed_segments"] = _failed_segments
    env.globals["nothing"] = frozenset()
    template = env.get_template("report.html.j2")
    suites: dict[str, list[Any]] = {}
    for scenario in result.scenarios:
        suites.setdefault(scenario.suite, []).append(scenario)
    problems = [a for a in result.assertions() if a.status in ("failed", "error")]
    remarks = {(s.suite, s.id): s.remarks for s in result.scenarios}
    return template.render(
        remarks=remarks,
        result=result,
        summary=result.summary(),
        suite_counts=result.suites(),
        suites=suites,
        problems=problems,
        plots=_plots(result),
        budgets=budgets(result),
        verdict=verdict(result),
    )


def write_html(result: RunResult, path: Path) -> Path:
    path.write_text(html_report(result), encoding="utf-8")
    return path
