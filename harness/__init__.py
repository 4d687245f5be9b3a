"""The CLI, targets, protocol clients, scenario engine and reports.

Imports ``simulator`` and ``synthetic``; nothing imports ``harness`` except ``loadtests``.
"""

__all__: list[str] = []
