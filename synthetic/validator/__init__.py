"""Validator for anyone's SS-MIX2 standardized storage (``rhin validate-storage``).

Checks the folder layout, file names, condition flags, ISO-2022-JP bytes and the HL7 v2.5 content of
every file against the facts in the team's SS-MIX2 spec; each finding names a rule of :data:`RULES`
with its severity and source. Where the spec records a deviation seen in published samples, the
tolerated form is a warning, never an error. Field usage per data type (R/N, type, length) comes from
the table ``synthetic/data/ssmix2/usage.csv`` (:mod:`synthetic.validator.usage`); :class:`ValidatorConfig`
disables rules (``--skip``) and turns warnings into errors (``--strict``).
"""

from synthetic.validator.config import ValidatorConfig, rules_listing
from synthetic.validator.junit import write_junit
from synthetic.validator.model import Finding, RuleInfo, Severity, ValidationReport
from synthetic.validator.rules import RULES
from synthetic.validator.storage import validate_storage

__all__ = [
    "RULES",
    "Finding",
    "RuleInfo",
    "Severity",
    "ValidationReport",
    "ValidatorConfig",
    "rules_listing",
    "validate_storage",
    "write_junit",
]
