"""``rhin compose --world DIR``: a compose file for a world, with the files its services read.

The world decides the shards (:func:`simulator.netplan.plan_network`, as ``rhin up`` would), so the compose
file is written for one world: one ``gateways-<i>`` service per shard, told its facilities by list. Beside
``compose.yaml`` go ``rhin-compose/network.json`` (the network as the services see it: the hub's gateways
file, and the network file for the bootstrap, ``rhin run`` and ``rhin load``) and
``rhin-compose/target.yaml`` (the ``--target`` of the run and load services).

Choices, each for a reason:

* The harness-side services (bootstrap, run, load master and workers) share the hub's network namespace
  (``network_mode: service:hub``): they reach the hub at 127.0.0.1, the name its TLS certificate carries
  (the hub makes its PKI for 127.0.0.1 and localhost), and the gateways by service name.
* Named volumes: ``world`` (a bind of the world directory, read-only in every service), ``hub-data`` (the
  hub's stores, PKI, token and the bootstrap's regional IDs) and ``reports``.
* Only the hub publishes ports, on the host's 127.0.0.1 at ports the engine picks (no fixed host port,
  so two projects can run side by side); the shards publish nothing (scale them by re-running with
  ``--shards``), the load workers are ``deploy.replicas``.
* The shards' admin token is generated here, kept out of ``compose.yaml`` (which can be shared or committed):
  it goes to ``rhin-compose/gateways.env`` (0600, read by the compose tool) and ``network.json``, which the
  image's user (uid 10001) must read: 0644, so keep the folder private; regenerate rather than share.
* ``world_path`` is what the ``world`` volume binds (default: the world's absolute path); e.g.
  ``${RHIN_WORLD:?...}`` for a file that names no machine's folders.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Final

import yaml

from simulator.containers import GATEWAY_BASE_PORT, HUB_PORTS
from simulator.netplan import NetworkError, plan_network, write_network_file

__all__ = ["COMPOSE_DIR", "compose_files", "write_compose"]

COMPOSE_DIR: Final = "rhin-compose"
HEALTH: Final = {
    "test": ["CMD", "python", "-m", "simulator.containers.health"],
    "interval": "5s",
    "timeout": "3s",
    "retries": 12,
    "start_period": "60s",
}
IMAGE: Final = "${RHIN_IMAGE:-localhost/rhin:latest}"
CONF: Final = f"./{COMPOSE_DIR}:/etc/rhin:ro"
ENV_FILE: Final = f"./{COMPOSE_DIR}/gateways.env"


def _service(command: list[str], volumes: list[str], **more: Any) -> dict[str, Any]:
    return {"image": IMAGE, "command": command, "volumes": volumes, **more}


def _harness(command: list[str], **more: Any) -> dict[str, Any]:
    """A harness-side service: in the hub's network namespace, after the bootstrap."""
    volumes = ["world:/world:ro", "hub-data:/data", "reports:/app/reports", CONF]
    after = {"bootstrap": {"condition": "service_completed_successfully"}}
    return _service(command, volumes, network_mode="service:hub", depends_on=after, **more)


TLS: Final = {"ca": "/data/pki/ca.pem", "certs": "/data/pki/facilities"}
MLLP: Final = {"host": "127.0.0.1", "port": HUB_PORTS["mllp"], "tls": TLS}


def _gateways(groups: list[list[str]], links: bool, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One service per shard, and the network file's ``gateways`` and ``shards`` for them."""
    services: dict[str, Any] = {}
    network: dict[str, Any] = {"gateways": {}, "shards": []}
    for i, group in enumerate(groups):
        name, admin = f"gateways-{i}", GATEWAY_BASE_PORT + len(group)
        command = ["gateway", "--world", "/world", "--facilities", ",".join(group), "--host", "0.0.0.0"]
        command += ["--base-port", str(GATEWAY_BASE_PORT), *([] if links else ["--no-links"])]
        env = {"RHIN_HEALTH_URL": f"http://127.0.0.1:{admin}/health"}
        services[name] = _service(
            command, ["world:/world:ro"], environment=env, env_file=[ENV_FILE], healthcheck=HEALTH
        )
        for j, code in enumerate(group):
            network["gateways"][code] = {"url": f"http://{name}:{GATEWAY_BASE_PORT + j}", "shard": i}
        network["shards"].append(
            {"facilities": group, "admin_url": f"http://{name}:{admin}", "admin_token": token}
        )
    return services, network


def _hub_and_harness(shards: list[str]) -> dict[str, Any]:
    """The hub (after every shard is healthy), the one-shot bootstrap and the profiles run and load."""
    command = ["hub", "--world", "/world", "--data", "/data", "--host", "0.0.0.0"]
    command += [a for kind, port in HUB_PORTS.items() for a in (f"--{kind}-port", str(port))]
    command += ["--gateways", "/etc/rhin/network.json"]
    services: dict[str, Any] = {}
    services["hub"] = _service(
        command,
        ["world:/world:ro", "hub-data:/data", CONF],
        environment={"RHIN_HEALTH_URL": f"http://127.0.0.1:{HUB_PORTS['http']}/health"},
        ports=[f"127.0.0.1::{port}" for port in HUB_PORTS.values()],
        healthcheck=HEALTH,
        depends_on={name: {"condition": "service_healthy"} for name in shards},
    )
    services["bootstrap"] = _service(
        ["bootstrap", "--world", "/world", "--network", "/etc/rhin/network.json", "--data", "/data"],
        ["world:/world:ro", "hub-data:/data", CONF],
        network_mode="service:hub",
        depends_on={"hub": {"condition": "service_healthy"}},
        restart="no",
    )
    target = ["--target", "/etc/rhin/target.yaml", "--world", "/world"]
    services["run"] = _harness(["run", *target, "--report", "/app/reports/run"], profiles=["run"])
    load = ["load", *target, "--duration", "${RHIN_LOAD_DURATION:-60s}"]
    services["load-master"] = _harness(
        [*load, "--master", "--expect-workers", "2", "--report", "/app/reports/load"], profiles=["load"]
    )
    services["load-worker"] = _harness(
        [*load, "--worker", "--master-host", "127.0.0.1"], profiles=["load"], deploy={"replicas": 2}
    )
    return services


def compose_files(
    world: Path, shards: int, *, links: bool = True, token: str, world_path: str | None = None
) -> dict[str, Any]:
    """``{"compose": ..., "network": ..., "target": ...}``: the three documents for ``world``."""
    plan = plan_network(world, shards, None)
    if not plan.groups:
        raise NetworkError(f"{world}: no disclosing facility to serve")
    services, network = _gateways(plan.groups, links, token)
    services |= _hub_and_harness(list(services))
    bind = {"type": "none", "o": "bind", "device": world_path or str(world)}
    compose = {
        "name": "rhin",
        "services": services,
        "volumes": {"world": {"driver": "local", "driver_opts": bind}, "hub-data": {}, "reports": {}},
    }
    network |= {
        "format": "rhin-network",
        "backend": "compose",
        "world": "/world",
        "links": links,
        "hub": {
            "mllp": MLLP,
            "http": {"base_url": f"http://127.0.0.1:{HUB_PORTS['http']}"},
            "soap": {"base_url": f"https://127.0.0.1:{HUB_PORTS['soap']}"},
            "admin_token_file": "/data/admin.token",
            "data": "/data",
        },
    }
    target = {
        "schema_version": 1,
        "name": "compose",
        "network": "/etc/rhin/network.json",
        "admin_token_file": "/data/admin.token",
        "mllp": MLLP,
        "regional_ids": "/data/bootstrap.json",
        "local_files": True,
        "state_file": "/app/reports/compose.rhin-state.json",
    }
    return {"compose": compose, "network": network, "target": target}


class _Dumper(yaml.SafeDumper):
    """Every value written out in full: a compose file is read by people, not only by tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_compose(
    world: Path, out: Path, shards: int, *, links: bool = True, world_path: str | None = None
) -> list[Path]:
    """Write ``out/compose.yaml`` and ``out/rhin-compose/{network.json,target.yaml,gateways.env}``; returns
    the paths."""
    token = secrets.token_urlsafe(24)
    docs = compose_files(world.resolve(), shards, links=links, token=token, world_path=world_path)
    conf = out / COMPOSE_DIR
    conf.mkdir(parents=True, exist_ok=True)
    compose_path, network_path, target_path = (
        out / "compose.yaml",
        conf / "network.json",
        conf / "target.yaml",
    )
    header = f"# Written by `rhin compose --world {world}` (README: Containers); regenerate, do not edit.\n"
    compose_path.write_text(
        header + yaml.dump(docs["compose"], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=200)
    )
    env_path = conf / "gateways.env"
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as env:
        env.write(f"RHIN_GATEWAY_ADMIN_TOKEN={token}\n")
    write_network_file(network_path, docs["network"])
    network_path.chmod(0o644)  # read by the containers' user (see the module docstring)
    target_path.write_text(yaml.dump(docs["target"], Dumper=_Dumper, sort_keys=False))
    return [compose_path, network_path, target_path, env_path]
