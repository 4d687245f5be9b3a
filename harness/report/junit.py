"""JUnit XML: one ``testsuite`` per scenario suite, one ``testcase`` per assertion, evidence in the text.

CI dashboards group by ``classname`` (``suite.scenario``) and show ``name`` (``ASSERTION-ID · step n``); a
failed or errored assertion carries its checks (expected vs actual) and the exchanged messages, decoded, in
the failure text, so the dashboard alone says why.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

from harness.scenarios.results import AssertionResult, RunResult

__all__ = ["junit_xml", "write_junit"]

_INVALID_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def failure_text(a: AssertionResult) -> str:
    """The checks and the evidence of one assertion, as plain text."""
    lines = [f"{a.assertion_id} — {a.title}" if a.title else a.assertion_id, f"at {a.location}"]
    if a.message:
        lines.append(a.message)
    for c in a.checks:
        mark = "ok  " if c.passed else "FAIL"
        lines.append(f"  {mark} {c.subject}: expected {c.expected}; actual {c.actual}")
    for e in a.evidence:
        lines.append(f"--- {e.label} ({e.elapsed_ms:.1f} ms){' — ' + e.note if e.note else ''}")
        lines.append(">>> request")
        lines.append(e.request)
        if e.request_hex:
            lines.append(f"(hex) {e.request_hex}")
        lines.append("<<< response")
        lines.append(e.response if e.response is not None else "(none)")
        if e.response_hex:
            lines.append(f"(hex) {e.response_hex}")
    return _clean("\n".join(lines))


def junit_xml(result: RunResult) -> ET.Element:
    """The ``<testsuites>`` element."""
    summary = result.summary()
    root = ET.Element(
        "testsuites",
        name="rhin run",
        tests=str(summary["assertions"]),
        failures=str(summary["failed"]),
        errors=str(summary["error"]),
        skipped=str(summary["skipped"]),
        time=f"{sum(s.duration_ms for s in result.scenarios) / 1000:.3f}",
    )
    by_suite: dict[str, list[AssertionResult]] = {}
    for a in result.assertions():
        by_suite.setdefault(a.suite, []).append(a)
    for suite, assertions in by_suite.items():
        counts = result.suites()[suite]
        node = ET.SubElement(
            root,
            "testsuite",
            name=suite,
            tests=str(counts["assertions"]),
            failures=str(counts["failed"]),
            errors=str(counts["error"]),
            skipped=str(counts["skipped"]),
            time=f"{sum(a.duration_ms for a in assertions) / 1000:.3f}",
            timestamp=result.started,
        )
        props = ET.SubElement(node, "properties")
        for key, value in (("target", result.target.get("name")), ("world", result.world.get("dir"))):
            ET.SubElement(props, "property", name=key, value=_clean(str(value)))
        for a in assertions:
            case = ET.SubElement(
                node,
                "testcase",
                classname=f"{suite}.{a.scenario}",
                name=f"{a.assertion_id} · step {a.step} {a.step_name}",
                time=f"{a.duration_ms / 1000:.4f}",
                file=a.location.rsplit(":", 1)[0],
            )
            if a.status == "failed":
                ET.SubElement(
                    case, "failure", message=_clean(a.message), type="assertion"
                ).text = failure_text(a)
            elif a.status == "error":
                ET.SubElement(case, "error", message=_clean(a.message), type="error").text = failure_text(a)
            elif a.status == "skipped":
                ET.SubElement(case, "skipped", message=_clean(a.message))
    ET.indent(root)
    return root


def write_junit(result: RunResult, path: Path) -> Path:
    ET.ElementTree(junit_xml(result)).write(path, encoding="utf-8", xml_declaration=True)
    return path
