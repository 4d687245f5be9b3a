"""Raw timings: every request's own response time, kept exactly (Locust's statistics round them into
buckets — whole ms below 100 ms, then two significant digits — which hides a hub's p99).

Each process appends one row per request event; a worker ships its rows to the master with every stats
report (Locust's ``report_to_master`` / ``worker_report`` events, so it works across hosts too), and the
master — or the single local process — writes them all to ``raw_log`` (CSV) when Locust quits.
``harness.load`` computes every percentile from that file.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Final

from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

__all__ = ["FIELDS", "RawRecorder"]

FIELDS: Final = ("t", "name", "ms", "ok", "reason", "facility", "worker", "size")
_KEY: Final = "rhin_raw"


class RawRecorder:
    """Collects ``(t, name, ms, ok, reason, facility, worker, size)`` rows in one process."""

    def __init__(self, env: Environment, path: Path, worker_index: int = 0) -> None:
        self.env = env
        self.path = path
        self.rows: list[list[Any]] = []
        events: Any = env.events  # locust's event hooks are untyped
        self.worker_index = worker_index
        events.request.add_listener(self.on_request)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.worker_report.add_listener(self.on_worker_report)
        events.quitting.add_listener(self.on_quitting)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        reason = "" if exception is None else " ".join(str(exception).split())[:200]
        facility = (context or {}).get("facility", "")
        worker = getattr(self.env.runner, "worker_index", self.worker_index)
        ok = 1 if exception is None else 0
        self.rows.append(
            [round(time.time(), 6), name, response_time, ok, reason, facility, worker, response_length]
        )

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[_KEY], self.rows = self.rows, []

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        self.rows.extend(data.get(_KEY, []))

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(FIELDS)
            ordered: list[list[Any]] = sorted(self.rows, key=_time_of)
            writer.writerows(ordered)

    @property
    def is_master(self) -> bool:
        return isinstance(self.env.runner, MasterRunner)


def _time_of(row: list[Any]) -> float:
    return float(row[0])
