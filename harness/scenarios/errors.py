"""The scenario engine's exceptions: one root, subclasses carrying what a user needs to act on them."""

from __future__ import annotations

__all__ = ["FormatError", "ScenarioError", "SelectionError", "StepError", "TargetError"]


class ScenarioError(Exception):
    """Root of every error raised by :mod:`harness.scenarios`, :mod:`harness.targets` and the reports."""


class FormatError(ScenarioError):
    """A scenario or target file failed validation; every problem names the file, the line and the key path.

    ``problems`` holds ``(line or None, dotted key path, message)`` triples, as
    :class:`synthetic.errors.ProfileError` does, so both print the same way.
    """

    def __init__(self, source: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.source = source
        self.problems = problems
        self.errors: list[FormatError] = [self]
        lines = []
        for line, path, message in problems:
            where = f"{source}:{line}" if line is not None else source
            lines.append(f"{where}: {path or '<root>'}: {message}" if path or source else message)
        super().__init__("\n".join(lines))

    @classmethod
    def combine(cls, errors: list[FormatError]) -> FormatError:
        """One error for several files (every line keeps its own file name)."""
        combined = cls("", [(None, "", line) for e in errors for line in str(e).splitlines()])
        combined.errors = list(errors)
        return combined


class SelectionError(ScenarioError):
    """A scenario's ``given`` cannot be satisfied by the world (no patient or facility matches)."""


class StepError(ScenarioError):
    """A step could not be carried out (unresolved variable, unreachable target, unsupported step)."""


class TargetError(ScenarioError):
    """A target cannot be described, started or reached."""
