"""The live network on one machine: the hub and every disclosing facility's gateway, as processes.

:class:`Network` starts gateway shards (``python -m simulator.gateway``, one per core by default) and the hub
(``python -m simulator.hub``), each printing one ``ready: {json}`` line with its real ports, waits until
every one answers its health check, and writes the network file (default ``WORLD/network.json``) that
clients read: the hub's MLLP and HTTP addresses, every gateway's URL and shard, each shard's admin URL.
:mod:`.bootstrap` then feeds the hub through those interfaces. MLLP is over TLS: the network's PKI
(:mod:`simulator.pki`: CA, hub certificate, one client certificate per facility) is made in ``DATA/pki``
before the hub starts (kept across restarts), and ``hub.mllp.tls`` in the network file says where the CA and
the facilities' certificates are (:attr:`NetworkInfo.mllp_tls`).

No orphans: children get ``PR_SET_PDEATHSIG`` (Linux, :mod:`simulator.lifeline`), so they die with the
launcher even if it is killed with SIGKILL, and each runs in its own process group with whatever it starts
(the hub's password worker and multiprocessing's resource tracker); :meth:`Network.stop` sends SIGTERM,
waits, SIGKILLs what is left, then SIGKILLs each child's process group, so a grandchild that outlived its
parent (and would hold the parent's output pipe open) goes too; :meth:`Network.crashed` names a child that
died, and the launcher then stops the rest. Each child's stderr goes to
``DATA/logs/<name>.log``, so a crash leaves its reason behind.

An external gateway (a vendor's) replaces a synthetic one through an override file (YAML or JSON):
``gateways: {<facility code>: {url: http://host:port, secret: <optional; default the world's>}}``; that
facility's synthetic gateway is then not started, and the hub fetches from the given URL.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from simulator import ready as ready_line
from simulator.gateway.faults import ADMIN_TOKEN_ENV
from simulator.lifeline import die_with_parent
from simulator.netplan import (
    NetworkError,
    check_health,
    hub_section,
    load_overrides,
    plan_network,
    write_network_file,
)
from simulator.pki import ClientTls, PkiError, ensure_pki, world_facility_codes

__all__ = ["Network", "NetworkError", "NetworkInfo", "load_network_file", "load_overrides"]

READY_TIMEOUT = 60.0


@dataclass
class Child:
    """One started process, its ``ready`` document, and where its stderr goes."""

    name: str
    proc: subprocess.Popen[str]
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)
    pump: threading.Thread | None = None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            self.ready, self.pump = ready_line.wait_for(self.proc.stdout, timeout, self.name)
        except TimeoutError:
            problem = f"{self.name} was not ready within {timeout:.0f} s (see {self.log_path})"
            raise NetworkError(problem) from None
        except EOFError:
            code = self.proc.wait(5)
            raise NetworkError(f"{self.name} exited ({code}) before it was ready: {self._tail()}") from None
        return self.ready

    def _tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"


@dataclass(frozen=True)
class NetworkInfo:
    """What the network file says (and ``rhin fault``, scenarios and load tests read)."""

    document: dict[str, Any]

    @property
    def mllp(self) -> tuple[str, int]:
        m = self.document["hub"]["mllp"]
        return str(m["host"]), int(m["port"])

    @property
    def mllp_tls(self) -> ClientTls | None:
        """The CA and facility certificates for MLLP over TLS; None when the hub speaks plain MLLP."""
        tls = self.document["hub"]["mllp"].get("tls")
        return ClientTls(Path(tls["ca"]), Path(tls["certs"])) if tls else None

    @property
    def base_url(self) -> str:
        return str(self.document["hub"]["http"]["base_url"])

    @property
    def admin_token(self) -> str:
        return Path(self.document["hub"]["admin_token_file"]).read_text(encoding="ascii").strip()

    @property
    def gateways(self) -> dict[str, dict[str, Any]]:
        return dict(self.document["gateways"])

    def shard_of(self, facility: str) -> dict[str, Any]:
        gateway = self.document["gateways"].get(facility)
        if gateway is None or gateway.get("external"):
            raise NetworkError(f"{facility} has no synthetic gateway in this network")
        return dict(self.document["shards"][int(gateway["shard"])])


def load_network_file(path: Path) -> NetworkInfo:
    try:
        return NetworkInfo(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise NetworkError(f"cannot read the network file {path}: {exc}") from exc


class Network:
    """The hub and the gateways of one world, started as processes on loopback."""

    def __init__(
        self,
        world: Path,
        *,
        data: Path | None = None,
        network_file: Path | None = None,
        links: bool = True,
        shards: int | None = None,
        overrides: Path | None = None,
        scrypt_cost: int = 14,
        host: str = "127.0.0.1",
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.world = world.resolve()
        self.data = (data or world / "hub").resolve()
        self.network_file = (network_file or world / "network.json").resolve()
        self.links = links
        self.shards = shards or os.cpu_count() or 1
        self.overrides_path = overrides
        self.scrypt_cost = scrypt_cost
        self.host = host
        self.ready_timeout = ready_timeout
        self.children: list[Child] = []
        self.info: NetworkInfo | None = None

    # ----------------------------------------------------------------------------------------- start

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> Child:
        logs = self.data / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        with log_path.open("w", encoding="utf-8") as err:
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                text=True,
                # runs in the child between fork and exec
                preexec_fn=partial(die_with_parent, signal.SIGTERM, os.getpid())
                if sys.platform.startswith("linux")
                else None,
                process_group=0,  # its own group, with its own children: stop() can end them all
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def start(self) -> NetworkInfo:
        """Start every process, wait for each ``ready`` line and health check, write the network file."""
        plan = plan_network(self.world, self.shards, self.overrides_path)
        self.data.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            shard_docs, gateways = self._start_shards(plan.groups)
            for code, entry in plan.overrides.items():
                gateways[code] = {**entry, "external": True}
            self.network_file.parent.mkdir(parents=True, exist_ok=True)
            document: dict[str, Any] = {
                "format": "rhin-network",
                "world": str(self.world),
                "links": self.links,
                "gateways": gateways,
                "shards": shard_docs,
            }
            write_network_file(self.network_file, document)  # the hub reads its gateways section
            try:
                ensure_pki(self.data / "pki", world_facility_codes(plan.world), [self.host])
            except (OSError, PkiError) as exc:
                raise NetworkError(
                    f"cannot make the network's TLS files in {self.data / 'pki'}: {exc}"
                ) from exc
            hub = self._spawn(
                "hub",
                [
                    "-m", "simulator.hub",
                    "--world", str(self.world),
                    "--data", str(self.data),
                    "--host", self.host,
                    "--gateways", str(self.network_file),
                    "--scrypt-cost", str(self.scrypt_cost),
                    "--pki", str(self.data / "pki"),
                ],
            )  # fmt: skip
            ready = hub.wait_ready(self.ready_timeout)
            document["hub"] = hub_section(
                ready,
                self.data,
                mllp=ready["mllp"],
                http=ready["http"],
                soap=ready.get("soap"),
                pid=ready["pid"],
            )
            document["launcher_pid"] = os.getpid()
            check_health(document, self.ready_timeout)
            document["ready_seconds"] = round(time.monotonic() - started, 3)
            write_network_file(self.network_file, document)
        except BaseException:
            self.stop()
            raise
        self.info = NetworkInfo(document)
        return self.info

    def _start_shards(
        self, groups: list[list[str]]
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        token = secrets.token_urlsafe(24)
        pending = []
        for i, group in enumerate(groups):
            args = ["-m", "simulator.gateway", "--world", str(self.world), "--facilities", ",".join(group)]
            args += ["--host", self.host]
            if not self.links:
                args.append("--no-links")
            # The admin token goes by environment, not argv: argv is visible to every user in ps.
            pending.append((i, group, self._spawn(f"gateways-{i}", args, {ADMIN_TOKEN_ENV: token})))
        shards: list[dict[str, Any]] = []
        gateways: dict[str, dict[str, Any]] = {}
        for i, group, child in pending:
            ready = child.wait_ready(self.ready_timeout)
            admin = ready["admin"]
            shards.append(
                {
                    "pid": ready["pid"],
                    "facilities": group,
                    "admin_url": f"http://{admin['host']}:{admin['port']}",
                    "admin_token": token,
                }
            )
            for code, address in ready["gateways"].items():
                gateways[code] = {"url": f"http://{address['host']}:{address['port']}", "shard": i}
        return shards, gateways

    # ----------------------------------------------------------------------------------------- run / stop

    def crashed(self) -> str | None:
        """The first child that has exited (a crash while the network should be up), with its log tail."""
        for child in self.children:
            code = child.proc.poll()
            if code is not None:
                return f"{child.name} exited with {code}: {child._tail()}"
        return None

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.children]

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every child, wait up to ``grace`` seconds, SIGKILL the rest; reap them all."""
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)
        for child in self.children:
            # The child is gone; anything left in its group (a grandchild whose parent was SIGKILLed) goes
            # now. Its group ID is its PID, and the group exists only while a member does: no stranger's.
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
        for child in self.children:
            # Closing the pipe while the pump thread reads it would wait for that read (the file's lock):
            # let the pump see EOF first, and never wait long for it.
            if child.pump is not None:
                child.pump.join(2.0)
            if child.proc.stdout is not None and (child.pump is None or not child.pump.is_alive()):
                child.proc.stdout.close()
        self.children.clear()

    def __enter__(self) -> Network:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
