"""``rhin up --backend docker``: the live network of :mod:`simulator.network`, one container per part.

The same plan (:func:`simulator.netplan.plan_network`: the same shards, the same external gateways), the same
programs (``python -m simulator.hub`` and ``python -m simulator.gateway`` in the rhin image, each printing its
``ready:`` line), the same network file, bootstrap and faults; what differs is where they run:

* its own bridge network per launch (``rhin-<id>``); the hub reaches each shard by container name, through a
  second gateways file (``DATA/network.containers.json``) with those in-network URLs;
* ports fixed inside (hub: MLLP 2575, HTTP 8080, SOAP 8443; a shard: facility i on 9000+i, admin next) and
  published on the host's 127.0.0.1 at ports Docker picks: the network file names those, so the harness
  on the host reaches everything it did with processes;
* volumes are bind mounts at the same path as on the host (the world read-only, the hub's data read-write),
  so every path the hub announces (token, CA, certificates, stores) is valid on the host too. Choice: the
  containers run as the caller's uid:gid, so what the hub writes on the host belongs to the caller;
* teardown by label (``rhin.network=<id>``, :func:`.engine.teardown`) on stop, on a failed start, by a
  reaper process when the launcher itself dies (:mod:`.reaper`), and by ``rhin down --network FILE``.

All containers start together: the in-network addresses are known before anything runs (fixed ports, names),
so the hub does not wait for the shards' ready lines as the process backend must.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import docker.errors
from docker.models.containers import Container

from simulator.gateway.faults import ADMIN_TOKEN_ENV
from simulator.netplan import (
    NetworkError,
    NetworkPlan,
    check_health,
    hub_section,
    plan_network,
    write_network_file,
)
from simulator.network import Network, NetworkInfo
from simulator.pki import PkiError, ensure_pki, world_facility_codes

from . import GATEWAY_BASE_PORT, HUB_PORTS
from .engine import connect, labels, published, save_logs, status, teardown, wait_ready
from .health import HEALTH_ENV

__all__ = ["DEFAULT_IMAGE", "DockerNetwork"]

DEFAULT_IMAGE: Final = os.environ.get("RHIN_IMAGE", "localhost/rhin:latest")
INTERNAL_FILE: Final = "network.containers.json"


class DockerNetwork(Network):
    """The hub and the gateways of one world, each in a container, through the Docker Engine API."""

    def __init__(
        self, world: Path, *, docker_host: str | None = None, image: str = DEFAULT_IMAGE, **kwargs: Any
    ) -> None:
        super().__init__(world, **kwargs)
        self.docker_host = docker_host
        self.image = image
        self.id = f"rhin-{secrets.token_hex(4)}"
        self.containers: dict[str, Container] = {}
        self.reaper: subprocess.Popen[bytes] | None = None
        self._client: docker.DockerClient | None = None

    def start(self) -> NetworkInfo:
        """Start every container, wait for each ``ready`` line and health check, write the network file."""
        plan = plan_network(self.world, self.shards, self.overrides_path)
        self.data.mkdir(parents=True, exist_ok=True)
        self.network_file.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        client = self._client = connect(self.docker_host)
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise NetworkError(f"no image {self.image}: build it first (`make image`)") from None
        try:
            self._start_reaper()
            client.networks.create(self.id, driver="bridge", labels=labels(self.id, "network"))
            token = secrets.token_urlsafe(24)
            self._write_internal(plan)
            self._prepare_pki(plan)
            for i, group in enumerate(plan.groups):
                self._run_shard(i, group, token)
            self._run_hub()
            document = self._document(plan, token)
            document["ready_seconds"] = round(time.monotonic() - started, 3)
            write_network_file(self.network_file, document)
        except BaseException:
            self.stop()
            raise
        self.info = NetworkInfo(document)
        return self.info

    # ------------------------------------------------------------------------------------------ parts

    def _name(self, role: str) -> str:
        return f"{self.id}-{role}"

    def _write_internal(self, plan: NetworkPlan) -> None:
        """The hub's gateways file: each shard's facilities at ``http://<container>:<port>``."""
        gateways: dict[str, dict[str, Any]] = {}
        for i, group in enumerate(plan.groups):
            for j, code in enumerate(group):
                url = f"http://{self._name(f'gateways-{i}')}:{GATEWAY_BASE_PORT + j}"
                gateways[code] = {"url": url, "shard": i}
        for code, entry in plan.overrides.items():
            gateways[code] = {**entry, "external": True}
        write_network_file(self.data / INTERNAL_FILE, {"format": "rhin-network", "gateways": gateways})

    def _prepare_pki(self, plan: NetworkPlan) -> None:
        hosts = ["127.0.0.1", "localhost", self._name("hub")]
        try:
            ensure_pki(self.data / "pki", world_facility_codes(plan.world), hosts)
        except (OSError, PkiError) as exc:
            raise NetworkError(f"cannot make the network's TLS files in {self.data / 'pki'}: {exc}") from exc

    def _run(
        self,
        role: str,
        argv: list[str],
        ports: list[int],
        volumes: dict[str, dict[str, str]],
        env: Mapping[str, str],
    ) -> Container:
        assert self._client is not None
        name = self._name(role)
        # ("127.0.0.1", None): published on the host's loopback only, at a port Docker picks.
        published_ports: dict[str, Any] = {f"{p}/tcp": ("127.0.0.1", None) for p in ports}
        container: Container = self._client.containers.run(
            self.image,
            argv[1:],
            entrypoint=["python", "-m", argv[0]],
            name=name,
            hostname=name,
            detach=True,
            network=self.id,
            labels=labels(self.id, role),
            environment=dict(env),
            volumes=volumes,
            ports=published_ports,
            user=f"{os.getuid()}:{os.getgid()}",
        )
        self.containers[role] = container
        return container

    def _run_shard(self, i: int, group: list[str], token: str) -> None:
        argv = ["simulator.gateway", "--world", str(self.world), "--facilities", ",".join(group)]
        argv += ["--host", "0.0.0.0", "--base-port", str(GATEWAY_BASE_PORT)]
        argv += [] if self.links else ["--no-links"]
        admin = GATEWAY_BASE_PORT + len(group)
        env = {ADMIN_TOKEN_ENV: token, HEALTH_ENV: f"http://127.0.0.1:{admin}/health"}
        ports = list(range(GATEWAY_BASE_PORT, admin + 1))
        self._run(
            f"gateways-{i}", argv, ports, {str(self.world): {"bind": str(self.world), "mode": "ro"}}, env
        )

    def _run_hub(self) -> None:
        argv = ["simulator.hub", "--world", str(self.world), "--data", str(self.data), "--host", "0.0.0.0"]
        argv += [f"--{kind}-port={port}" for kind, port in HUB_PORTS.items()]
        argv += ["--gateways", str(self.data / INTERNAL_FILE), "--scrypt-cost", str(self.scrypt_cost)]
        argv += ["--pki", str(self.data / "pki")]
        volumes = {
            str(self.world): {"bind": str(self.world), "mode": "ro"},
            str(self.data): {"bind": str(self.data), "mode": "rw"},
        }
        env = {HEALTH_ENV: f"http://127.0.0.1:{HUB_PORTS['http']}/health"}
        self._run("hub", argv, list(HUB_PORTS.values()), volumes, env)

    def _document(self, plan: NetworkPlan, token: str) -> dict[str, Any]:
        """Wait for every ready line, then the network file with the published addresses."""
        shards: list[dict[str, Any]] = []
        gateways: dict[str, dict[str, Any]] = {}
        for i, group in enumerate(plan.groups):
            container = self.containers[f"gateways-{i}"]
            ready = wait_ready(container, container.name or "", self.ready_timeout)
            host, port = published(container, int(ready["admin"]["port"]))
            shards.append(
                {
                    "pid": _host_pid(container),
                    "container": container.name,
                    "facilities": group,
                    "admin_url": f"http://{host}:{port}",
                    "admin_token": token,
                }
            )
            for code, address in ready["gateways"].items():
                host, port = published(container, int(address["port"]))
                gateways[code] = {"url": f"http://{host}:{port}", "shard": i}
        for code, entry in plan.overrides.items():
            gateways[code] = {**entry, "external": True}
        hub = self.containers["hub"]
        ready = wait_ready(hub, hub.name or "", self.ready_timeout)
        soap = published(hub, HUB_PORTS["soap"]) if "soap" in ready else None
        document: dict[str, Any] = {
            "format": "rhin-network",
            "backend": "docker",
            "docker": {"network": self.id, "host": self.docker_host, "image": self.image},
            "world": str(self.world),
            "links": self.links,
            "gateways": gateways,
            "shards": shards,
            "hub": hub_section(
                ready,
                self.data,
                mllp=published(hub, HUB_PORTS["mllp"]),
                http=published(hub, HUB_PORTS["http"]),
                soap=soap,
                pid=_host_pid(hub),
            ),
            "launcher_pid": os.getpid(),
        }
        check_health(document, self.ready_timeout)
        return document

    def _start_reaper(self) -> None:
        """A detached watcher that removes this network's containers if this process dies uncleanly."""
        argv = [sys.executable, "-m", "simulator.containers.reaper", "--pid", str(os.getpid()), self.id]
        argv += ["--docker-host", self.docker_host] if self.docker_host else []
        self.reaper = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )

    # ------------------------------------------------------------------------------------- run / stop

    def crashed(self) -> str | None:
        """The first container that stopped while the network should be up, with its stderr tail."""
        for container in self.containers.values():
            try:
                problem = status(container)
            except docker.errors.DockerException as exc:
                return f"the Docker Engine API does not answer: {exc}"
            if problem is not None:
                return problem
        return None

    def pids(self) -> list[int]:
        return [p for p in (_host_pid(c) for c in self.containers.values()) if p is not None]

    def stop(self, grace: float = 10.0) -> None:
        """Keep each container's stderr in ``DATA/logs/``, then remove every container and the network
        (by label: also what a half-finished start left); the reaper is no longer needed."""
        if self._client is not None:
            for role, container in self.containers.items():
                save_logs(container, self.data / "logs" / f"{role}.log")
            teardown(self._client, self.id, grace)
            self._client.close()
            self._client = None
        self.containers.clear()
        if self.reaper is not None and self.reaper.poll() is None:
            self.reaper.send_signal(signal.SIGTERM)
            self.reaper.wait(10)
        self.reaper = None


def _host_pid(container: Container) -> int | None:
    """The container's main process as the host sees it (rootful podman or Docker on this machine)."""
    pid = container.attrs.get("State", {}).get("Pid")
    return int(pid) if pid else None
