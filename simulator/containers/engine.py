"""The Docker Engine API as rhin uses it (Docker, or podman's ``system service``): the client, the labels
every container and network carries, the ``ready:`` line read from a container's output, the published
ports, the logs kept on the host, and the teardown by label that ``stop``, the reaper and ``rhin down`` share.

Labels, not names, decide what belongs to a network: ``rhin.network=<id>`` on everything it made, so a
teardown finds it all even when the launcher that knew the names is gone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import docker
import docker.errors
from docker import DockerClient
from docker.models.containers import Container

from simulator import ready as ready_line
from simulator.netplan import NetworkError

__all__ = [
    "LABEL",
    "ROLE_LABEL",
    "connect",
    "labels",
    "published",
    "save_logs",
    "status",
    "teardown",
    "wait_ready",
]

LABEL: Final = "rhin.network"
ROLE_LABEL: Final = "rhin.role"


def connect(host: str | None) -> DockerClient:
    """A client for ``host`` (e.g. ``unix:///run/podman/podman.sock``), else the environment's
    (``DOCKER_HOST``, else Docker's default socket); a clear error when nothing answers."""
    try:
        client = docker.DockerClient(base_url=host) if host else docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        where = host or os.environ.get("DOCKER_HOST") or "the default Docker socket"
        raise NetworkError(
            f"no Docker Engine API at {where} ({exc}); start one (e.g. `podman system service --time 0 "
            "unix:///tmp/podman.sock`) and pass --docker-host"
        ) from exc
    return client


def labels(network_id: str, role: str) -> dict[str, str]:
    return {LABEL: network_id, ROLE_LABEL: role}


def wait_ready(container: Container, name: str, timeout: float) -> dict[str, Any]:
    """The ``ready: {json}`` document ``container`` prints on stdout (read from its log stream; chunks are
    joined into lines), or :class:`NetworkError` when it exits first or says nothing within ``timeout``."""
    try:
        return ready_line.wait_for(_log_lines(container), timeout, name)[0]
    except TimeoutError:
        problem = f"container {name} was not ready within {timeout:.0f} s: {_tail(container)}"
        raise NetworkError(problem) from None
    except EOFError:
        raise NetworkError(f"container {name} stopped before it was ready: {_tail(container)}") from None


def _log_lines(container: Container) -> Iterator[str]:
    """``container``'s stdout as lines, until the stream ends or the engine connection fails."""
    buffer = ""
    with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=False):
            buffer += chunk.decode("utf-8", "replace")
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                yield line


def published(container: Container, port: int) -> tuple[str, int]:
    """The host address Docker published ``port``/tcp of ``container`` on."""
    container.reload()
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            host = binding.get("HostIp") or "127.0.0.1"
            return ("127.0.0.1" if host in ("", "0.0.0.0") else host), int(binding["HostPort"])
    raise NetworkError(f"container {container.name}: port {port}/tcp is not published")


def status(container: Container) -> str | None:
    """None while running; else how it ended (exit code and the last lines of its stderr)."""
    try:
        container.reload()
    except docker.errors.NotFound:
        return f"container {container.name} is gone"
    if container.status == "running":
        return None
    code = container.attrs.get("State", {}).get("ExitCode")
    return f"container {container.name} exited with {code}: {_tail(container)}"


def _tail(container: Container) -> str:
    try:
        text = container.logs(stdout=False, stderr=True, tail=3).decode("utf-8", "replace").strip()
    except docker.errors.DockerException:
        return "(no log)"
    return " | ".join(text.splitlines()) or "(empty log)"


def _sparse_name(container: Container) -> str:
    names = container.attrs.get("Names") or [container.id or "?"]
    return str(names[0]).lstrip("/")


def save_logs(container: Container, path: Path) -> None:
    """The container's stderr into ``path`` (as the process backend's ``DATA/logs/<name>.log``)."""
    with contextlib.suppress(docker.errors.DockerException, OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(container.logs(stdout=False, stderr=True))


def teardown(client: DockerClient, network_id: str, grace: float = 5.0) -> list[str]:
    """Stop and remove every container, then every network, labelled ``rhin.network=network_id``; returns
    what it removed. Safe to repeat, and to run beside another teardown of the same id."""
    selector: dict[str, Any] = {"label": f"{LABEL}={network_id}"}
    # sparse: no inspection per container, which fails (podman: 500) for one removed meanwhile
    containers = client.containers.list(all=True, filters=selector, sparse=True)

    def remove(container: Container) -> str | None:
        with contextlib.suppress(docker.errors.DockerException):
            container.kill(signal="SIGTERM")
        # a wait that times out raises requests' ReadTimeout, an OSError; remove(force=True) then kills it
        with contextlib.suppress(docker.errors.DockerException, OSError):
            container.wait(timeout=grace)
        try:
            container.remove(force=True, v=True)  # with any anonymous volume it made
        except docker.errors.NotFound:
            return None
        return f"container {_sparse_name(container)}"

    # In parallel: each stop waits for its container; one after the other the waits would add up.
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(containers)))) as pool:
        removed = [r for r in pool.map(remove, containers) if r is not None]
    for network in client.networks.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
            removed.append(f"network {network.name}")
    return removed
