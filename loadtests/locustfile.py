"""The locustfile ``rhin load`` runs (``locust -f loadtests/locustfile.py``; configured by the JSON file
named in ``RHIN_LOAD_CONFIG``): the viewer and feeder users, the run's shape, and the raw-timing recorder."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment

from loadtests.mllp import close_client_trace
from loadtests.recorder import RawRecorder
from loadtests.users import concrete_users, context

_ctx = context()
_users = concrete_users(_ctx.cfg)
RhinViewer = _users[0]
if len(_users) > 1:
    RhinFeeder = _users[1]
if _ctx.cfg.mode == "sessions":  # benchmark loops run with -u/-t instead of the workload's shape
    from loadtests.shapes import RhinShape  # noqa: F401

__all__ = ["RhinViewer"]


def _install(environment: Environment, **_: Any) -> None:
    environment.rhin_recorder = RawRecorder(environment, Path(_ctx.cfg.raw_log))  # type: ignore[attr-defined]


def _started(environment: Environment, **_: Any) -> None:
    _ctx.worker_index = int(getattr(environment.runner, "worker_index", 0) or 0)
    _ctx.started = time.monotonic()
    _ctx.cpu_started = time.process_time()


def _stopped(environment: Environment, **_: Any) -> None:
    """This process's CPU seconds over the test (start-up excluded), beside the raw log: the generator's
    own cost per request, which bench_load.py prints."""
    used = time.process_time() - _ctx.cpu_started
    Path(f"{_ctx.cfg.raw_log}.cpu-{os.getpid()}").write_text(f"{used:.6f}\n", encoding="ascii")
    close_client_trace()


_events: Any = events  # locust's event hooks are untyped
_events.init.add_listener(_install)
_events.test_start.add_listener(_started)
_events.test_stop.add_listener(_stopped)
