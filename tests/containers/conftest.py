"""The container tests: on podman through the Docker Engine API, for real (never mocked, never skipped).

They run only when named (``make test-containers`` runs ``pytest tests/containers``): the default run
(``pytest`` with ``testpaths = tests``) leaves this folder out, because it needs podman, an image and minutes.
When they do run, a missing podman or image fails loudly, with what to do.

``docker_host`` starts its own ``podman system service`` on a socket in a temporary folder (with the
project's ``containers/containers.conf``) and stops it at the end; ``RHIN_DOCKER_HOST`` points the tests at
an engine already running instead (e.g. a real Docker).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
IMAGE = os.environ.get("RHIN_IMAGE", "localhost/rhin:latest")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect this folder's tests only when a command-line argument names this folder (or a file in it)."""
    if collection_path.parent != HERE or collection_path.name == "conftest.py":
        return None
    for arg in config.args:
        named = Path(arg.split("::")[0]).resolve()
        if named == HERE or HERE in named.parents:
            return None
    return True


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("RHIN_DOCKER_HOST"):
        yield os.environ["RHIN_DOCKER_HOST"]
        return
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is not installed: `make container-deps` (apt-get install podman runc debootstrap)"
        )
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    env = {
        **os.environ,
        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "containers/containers.conf")),
    }
    service = subprocess.Popen(
        ["podman", "system", "service", "--time", "0", f"unix://{sock}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 30
    while not sock.exists():
        if service.poll() is not None or time.monotonic() > deadline:
            service.kill()
            pytest.fail(f"podman system service did not start: {service.communicate()[1]!r}")
        time.sleep(0.1)
    try:
        yield url
    finally:
        service.terminate()
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(5)


@pytest.fixture(scope="session")
def client(docker_host: str) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=docker_host)
    c.ping()
    try:
        c.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"no image {IMAGE}: build it with `make image` (or run `make test-containers`)")
    yield c
    c.close()


def labelled(client: docker.DockerClient, network_id: str) -> list[str]:
    """Every container and network still carrying ``rhin.network=network_id``."""
    selector: dict[str, Any] = {"label": f"rhin.network={network_id}"}
    # sparse: no per-container inspection, which fails for a container removed meanwhile (podman: 500)
    found = client.containers.list(all=True, filters=selector, sparse=True)
    networks = client.networks.list(filters=selector)
    return [f"container {c.attrs['Names'][0]}" for c in found] + [f"network {n.name}" for n in networks]


def rhin(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]
