"""The compose file: valid for the compose tool that works here (podman-compose, through podman's socket:
``CONTAINER_HOST`` puts podman in remote mode), and its services reach each other by name."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import httpx
import pytest
import yaml

from tests.test_network import patients_with_data

from .conftest import REPO, rhin


def _compose(
    docker_host: str, folder: Path, *args: str, world: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which(
        "podman-compose"
    )
    if tool is None:
        pytest.fail("podman-compose is not installed (it is in the dev extra: `make .venv/.installed`)")
    env = {**os.environ, "CONTAINER_HOST": docker_host, **({"RHIN_WORLD": str(world)} if world else {})}
    return subprocess.run(
        [tool, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_committed_compose_file_is_valid(docker_host: str, mini_world: Path) -> None:
    profiles = ("--profile", "run", "--profile", "load")
    done = _compose(docker_host, REPO, "-f", "compose.yaml", *profiles, "config", world=mini_world)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"hub", "bootstrap", "gateways-0", "run", "load-master", "load-worker"} <= set(services)
    assert services["bootstrap"]["network_mode"] == "service:hub"
    assert "RHIN_GATEWAY_ADMIN_TOKEN" not in (REPO / "compose.yaml").read_text(encoding="utf-8")  # no secret
    unset = _compose(docker_host, REPO, "-f", "compose.yaml", "config")
    assert unset.returncode != 0  # without RHIN_WORLD the file says what is missing
    assert "RHIN_WORLD" in unset.stderr + unset.stdout


def test_compose_services_reach_each_other_by_name(
    docker_host: str, client: docker.DockerClient, mini_world: Path, tmp_path: Path
) -> None:
    out = subprocess.run(
        rhin("compose", "--world", str(mini_world), "--out", str(tmp_path), "--shards", "2", "--no-links"),
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "compose.yaml" in out.stdout
    project = f"rhintest{secrets.token_hex(3)}"
    up = _compose(docker_host, tmp_path, "-p", project, "up", "-d")
    try:
        assert up.returncode == 0, up.stderr
        # the bootstrap waited for every gateway by service name, then fed the hub at 127.0.0.1 (its netns)
        bootstrap = client.containers.get(f"{project}_bootstrap_1")
        assert bootstrap.wait(timeout=240)["StatusCode"] == 0, bootstrap.logs().decode()
        assert "bootstrapped: 300 patients" in bootstrap.logs().decode()
        hub = client.containers.get(f"{project}_hub_1")
        code, reply = hub.exec_run(
            [
                "python",
                "-c",
                "import urllib.request as u; print(u.urlopen('http://gateways-1:9000/health').read())",
            ]
        )
        assert code == 0, reply
        # from the host, through the hub's published port: a timeline the hub gathers from both shards
        regional = json.loads(hub.exec_run(["cat", "/data/bootstrap.json"])[1])["regional_ids"]
        hub.reload()
        port = hub.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        world = json.loads((mini_world / "world.json").read_text(encoding="utf-8"))
        network = json.loads((tmp_path / "rhin-compose" / "network.json").read_text(encoding="utf-8"))
        shard_of = {c: g["shard"] for c, g in network["gateways"].items()}
        pid, sources = next(
            (p, [c for c in codes if c in shard_of])
            for _, p, codes in patients_with_data(mini_world, world, 300)
            if len({shard_of[c] for c in codes if c in shard_of}) == 2
        )
        viewer = next(f for f in world["facilities"] if f["code"] == sources[0])
        user = next(u for u in viewer["users"] if u["viewer_kind"] == "physician")
        base = f"http://127.0.0.1:{port}"
        login = {"facility": viewer["code"], "user_id": user["user_id"], "password": user["password"]}
        token = httpx.post(f"{base}/auth/login", json=login, timeout=30).json()["token"]
        body = httpx.get(
            f"{base}/patients/{regional[pid]}/timeline",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        statuses = {s["facility"]: s["status"] for s in body["sources"]}
        assert all(statuses[c] == "ok" for c in sources), statuses
        # the `run` profile: rhin run in the hub's namespace, through rhin-compose/target.yaml (a selection)
        run = ["--profile", "run", "run", "--rm", "run", "run", "--target", "/etc/rhin/target.yaml"]
        run += ["--world", "/world", "--report", "/app/reports/run", "-k", "iti9"]
        ran = _compose(docker_host, tmp_path, "-p", project, *run)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert re.search(
            r"assertions in \d+ scenarios: \d+ passed, 0 failed, 0 errors, 0 skipped", ran.stdout
        )
    finally:
        down = _compose(docker_host, tmp_path, "-p", project, "down", "-v")
        assert down.returncode == 0, down.stderr
    left = client.containers.list(all=True, filters={"label": f"io.podman.compose.project={project}"})
    assert left == []
