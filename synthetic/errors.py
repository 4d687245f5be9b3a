"""The synthetic part's exceptions: one root, with subclasses that carry what a user needs to act."""

from __future__ import annotations


class SyntheticError(Exception):
    """Root of every error raised by :mod:`synthetic`."""


class ProfileError(SyntheticError):
    """A profile (or another YAML input) failed validation.

    Each problem names the file, the line and the key path, so a person can go straight to it.
    """

    def __init__(self, source: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = []
        for line, path, message in problems:
            where = f"{source}:{line}" if line is not None else source
            lines.append(f"{where}: {path or '<root>'}: {message}")
        super().__init__("\n".join(lines))


class DataTableError(SyntheticError):
    """A bundled data table (CSV) is missing, malformed or inconsistent."""


class WorldFormatError(SyntheticError):
    """A world directory is missing files or holds data of another format version."""
