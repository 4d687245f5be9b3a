"""``rhin load``: Locust against a target, exact percentiles from raw timings, SLO verdict, report.

:mod:`.run` orchestrates (the target, Locust as a subprocess, the resource monitor), :mod:`.stats` computes
from the raw log, :mod:`.report` writes JSON and HTML, :mod:`.config` is what the Locust processes read.
Only ``loadtests`` imports locust. Import :mod:`.run` where needed (it pulls in matplotlib)."""

from .config import CONFIG_ENV, LoadConfig

__all__ = ["CONFIG_ENV", "LoadConfig"]
