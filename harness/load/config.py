"""What ``rhin load`` hands the Locust processes: one JSON file named by ``RHIN_LOAD_CONFIG``.

Locust runs as its own process tree (master and workers, possibly on other hosts), so the run is described
as data, not passed as objects: the world, the workload file, the seed, where the hub listens and with
which TLS material, the user pool and pacing, and where the raw timings go.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from simulator.hub.index import REGIONAL_NAMESPACE, REGIONAL_OID

__all__ = ["CONFIG_ENV", "HTTP_TIMEOUT_S", "LoadConfig"]

HTTP_TIMEOUT_S: Final = 30.0
"""How long a Locust viewer waits for an HTTP answer (``ViewerUser.network_timeout``); MLLP exchanges wait
:attr:`LoadConfig.timeout_s`. The SimPy replay gives up after the same times."""

CONFIG_ENV: Final = "RHIN_LOAD_CONFIG"


class LoadConfig(BaseModel):
    """One load run, as every Locust process reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    world: str
    workload: str | None = None  # None: the bundled default
    seed: int = 42
    shape: str = "peak"
    multiplier: float = 1.0
    duration_s: float = 60.0
    rate_override: float | None = None  # sessions/s at 1× (tiny worlds, tests)
    think_scale: float = 1.0  # think times × this (0: none; CI runs)
    pacing_s: float = 1.0  # each viewer user starts a session every pacing_s seconds
    processes: int = 1  # session index stride: worker w takes w, w + processes, …
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 0
    tls_ca: str | None = None  # None: plain MLLP
    tls_certs: str | None = None
    http: str = ""
    regional_namespace: str = REGIONAL_NAMESPACE
    regional_oid: str = REGIONAL_OID
    receiving_application: str = "RHIN_HUB"
    receiving_facility: str = "RHIN"
    timeout_s: float = 10.0
    raw_log: str = "raw.csv"  # written by the master (or the single local process)
    feeds: bool = True
    stop_on_slo: list[str] = []  # the step shape stops once one of these breaks (rolling window)
    mode: str = "sessions"  # "sessions": the workload; "pix" / "timeline": benchmark loops (bench_load.py)
    bench_items: str | None = None  # benchmark loops: JSON list of what each request names

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def from_env(cls) -> LoadConfig:
        where = os.environ.get(CONFIG_ENV)
        if not where:
            raise RuntimeError(f"{CONFIG_ENV} is not set: run the load through `rhin load`")
        return cls.model_validate(json.loads(Path(where).read_text(encoding="utf-8")))
