"""``rhin load``: Locust against a target, exact percentiles from raw timings, SLO verdict, report.

:mod:`.run` orchestrates (the target, Locust as a subprocess, the resource monitor), :mod:`.stats` computes
from the raw log, :mod:`.report` writes JSON and HTML, :mod:`.config` is what the Locust processes read,
:mod:`.command` the typer command. Only ``loadtests`` imports locust. Nothing is imported here, so that
registering the command costs the CLI nothing at start-up (:mod:`.run` pulls in matplotlib and the hub's
modules)."""

__all__: list[str] = []
