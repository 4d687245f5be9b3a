"""The validator's result types: findings, rule descriptions and the report with its JSON and JUnit forms."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one file (or in the storage as a whole, ``path == "."``)."""

    rule: str
    severity: Severity
    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a rule checks and where the requirement comes from, so a vendor can argue with the source."""

    rule: str
    severity: Severity
    title: str
    reference: str


@dataclass
class ValidationReport:
    """Everything one run found; ``findings`` are sorted by path, then rule, then message."""

    root: str
    files: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    def by_rule(self) -> dict[str, dict[str, int]]:
        """``rule -> {"error": n, "warning": n}`` for every rule that fired, in rule-ID order."""
        counts: dict[str, dict[str, int]] = {}
        for f in self.findings:
            counts.setdefault(f.rule, {"error": 0, "warning": 0})[f.severity] += 1
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "files": self.files,
            "errors": self.errors,
            "warnings": self.warnings,
            "by_rule": self.by_rule(),
            "findings": [f.to_json() for f in self.findings],
        }

    def write_junit(self, path: Path) -> None:
        """JUnit XML with one testcase per known rule (not per file, so CI dashboards stay stable).

        A rule with error findings is a ``<failure>`` whose text lists them, one ``path: message`` per
        line. Warning rules never fail the build: their findings go to the testcase's ``<system-out>``.
        Rules that did not fire are passing testcases, so the report also says what was checked.
        """
        from synthetic.validator.rules import RULES

        grouped: dict[str, list[Finding]] = {}
        for f in self.findings:
            grouped.setdefault(f.rule, []).append(f)
        suite = ET.Element(
            "testsuite",
            name="rhin.validate-storage",
            tests=str(len(RULES)),
            failures=str(sum(1 for r, fs in grouped.items() if RULES[r].severity == "error" and fs)),
            errors="0",
            skipped="0",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="root", value=self.root)
        ET.SubElement(props, "property", name="files", value=str(self.files))
        for rule in sorted(RULES):
            info = RULES[rule]
            case = ET.SubElement(suite, "testcase", classname="ssmix2", name=f"{rule}: {info.title}")
            found = grouped.get(rule, [])
            if not found:
                continue
            text = "\n".join(f"{f.path}: {f.message}" for f in found)
            if info.severity == "error":
                failure = ET.SubElement(case, "failure", type="error", message=f"{len(found)} finding(s)")
                failure.text = text
            else:
                out = ET.SubElement(case, "system-out")
                out.text = f"{len(found)} warning(s)\n{text}"
        ET.indent(suite)
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
