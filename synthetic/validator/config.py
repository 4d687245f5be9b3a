"""Run options of the validator: ``--strict``, ``--skip RULE``, ``--rules`` (the CLI only passes them on)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from synthetic.validator.model import Finding, ValidationReport
from synthetic.validator.rules import RULES


@dataclass(frozen=True, slots=True)
class ValidatorConfig:
    """``skip``: rule IDs disabled for a known local deviation; ``strict``: warnings count as errors."""

    skip: frozenset[str] = frozenset()
    strict: bool = False

    @classmethod
    def from_options(cls, skip: Iterable[str] = (), strict: bool = False) -> ValidatorConfig:
        """Checked options; an unknown rule ID is a ValueError naming it (a typo must not pass silently)."""
        rules = frozenset(r.strip() for item in skip for r in item.split(",") if r.strip())
        unknown = sorted(rules - RULES.keys())
        if unknown:
            raise ValueError(
                f"unknown rule ID(s) for --skip: {', '.join(unknown)} "
                "(rhin validate-storage --rules lists them)"
            )
        return cls(rules, strict)

    def apply(self, report: ValidationReport) -> ValidationReport:
        """The report without the skipped rules' findings, warnings raised to errors under ``strict``.

        The report records both (``skipped``, ``strict``), so nobody reads a filtered run as a full one.
        """
        findings = [
            Finding(f.rule, "error", f.path, f.message) if self.strict and f.severity == "warning" else f
            for f in report.findings
            if f.rule not in self.skip
        ]
        return replace(report, findings=findings, skipped=tuple(sorted(self.skip)), strict=self.strict)

    def describe(self) -> list[str]:
        """What the text report says about the options (nothing when none is set)."""
        out = []
        if self.skip:
            out.append(f"rules skipped (--skip): {', '.join(sorted(self.skip))}")
        if self.strict:
            out.append("--strict: warnings counted as errors")
        return out


def rules_listing() -> list[tuple[str, str, str, str]]:
    """``(rule, severity, title, source)`` for every rule, in ID order (``--rules``)."""
    return [(r, RULES[r].severity, RULES[r].title, RULES[r].reference) for r in sorted(RULES)]
