"""The validator's result types: findings, rule descriptions and the report with its JSON form.

This module imports no other validator module (rules, junit and config import it), so there is no cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    skipped: tuple[str, ...] = ()  # rules disabled by --skip, said in every form of the report
    strict: bool = False  # warnings were turned into errors

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
            "strict": self.strict,
            "skipped_rules": list(self.skipped),
            "errors": self.errors,
            "warnings": self.warnings,
            "by_rule": self.by_rule(),
            "findings": [f.to_json() for f in self.findings],
        }
