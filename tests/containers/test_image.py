"""The image: metadata a user relies on, the health check's verdicts, and the gateway role by command."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from simulator import ready as ready_line

from .conftest import IMAGE, REPO


def test_image_runs_rhin_as_a_non_root_user_with_labels_and_a_health_check(
    client: docker.DockerClient,
) -> None:
    config = client.images.get(IMAGE).attrs["Config"]
    assert config["Entrypoint"] == ["rhin"]
    assert config["User"] == "rhin"
    assert config["Labels"]["org.opencontainers.image.version"] == "0.1.0"
    assert "org.opencontainers.image.source" in config["Labels"]
    # podman 4.3's Docker API leaves the health check out of an image's Config; its own CLI shows it
    health = config.get("Healthcheck") or _podman_health_check()
    assert health["Test"][-3:] == ["python", "-m", "simulator.containers.health"]
    assert "Usage: rhin gateway" in client.containers.run(IMAGE, ["gateway", "--help"], remove=True).decode()
    # no world baked in: the world is a volume
    assert client.containers.run(IMAGE, ["-c", "ls -A /world"], entrypoint=["sh"], remove=True) == b""


def _podman_health_check() -> dict[str, Any]:
    env = {
        **os.environ,
        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "containers/containers.conf")),
    }
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .HealthCheck}}", IMAGE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, Any] = json.loads(out)
    return found


def test_health_check_fails_on_a_dead_url_and_passes_without_one(client: docker.DockerClient) -> None:
    check = {"entrypoint": ["python", "-m", "simulator.containers.health"], "remove": True}
    assert client.containers.run(IMAGE, **check) == b""  # no URL: a role that serves nothing
    with pytest.raises(docker.errors.ContainerError) as caught:
        client.containers.run(IMAGE, environment={"RHIN_HEALTH_URL": "http://127.0.0.1:9/health"}, **check)
    assert caught.value.exit_status == 1


def test_gateway_role_by_command_serves_on_published_ports(
    client: docker.DockerClient, mini_world: Path
) -> None:
    world = str(mini_world.resolve())
    container = client.containers.run(
        IMAGE,
        ["gateway", "--world", world, "--host", "0.0.0.0", "--base-port", "9000", "--no-links"],
        detach=True,
        volumes={world: {"bind": world, "mode": "ro"}},
        ports={"9000/tcp": ("127.0.0.1", None)},
        environment={"RHIN_GATEWAY_ADMIN_TOKEN": "t"},
        labels={"rhin.network": "test-image"},
    )
    try:
        info = None
        deadline = time.monotonic() + 60
        while info is None and time.monotonic() < deadline:
            for line in container.logs(stdout=True, stderr=False).decode().splitlines():
                info = info or ready_line.parse(line)
            time.sleep(0.2)
        assert info is not None, container.logs().decode()
        first = min(info["gateways"].items(), key=lambda kv: kv[1]["port"])
        assert first[1]["port"] == 9000
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["9000/tcp"][0]["HostPort"]
        reply = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert json.loads(reply.text) == {"facility": first[0], "status": "ok"}
    finally:
        container.remove(force=True)
