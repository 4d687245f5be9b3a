"""Nothing left behind: `rhin up --backend docker` interrupted (while bootstrapping, while serving) or
killed outright, and `rhin down --network FILE` for what a lost reaper left. Listed through the SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from simulator.containers.network import DockerNetwork

from .conftest import REPO, labelled, rhin


def _up(world: Path, tmp_path: Path, docker_host: str) -> subprocess.Popen[str]:
    args = ["up", "--world", str(world), "--no-links", "--scrypt-cost", "4", "--shards", "2"]
    args += ["--data", str(tmp_path / "hub"), "--network-file", str(tmp_path / "network.json")]
    args += ["--backend", "docker", "--docker-host", docker_host]
    errors = (tmp_path / "up.stderr").open("w", encoding="utf-8")  # read back when the exit code is wrong
    return subprocess.Popen(rhin(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=errors, text=True)


def _network_id(tmp_path: Path, timeout: float = 120) -> str:
    """The id, once the network file has it (written when every container is up, before the bootstrap)."""
    deadline = time.monotonic() + timeout
    path = tmp_path / "network.json"
    while time.monotonic() < deadline:
        if path.is_file():
            return str(json.loads(path.read_text(encoding="utf-8"))["docker"]["network"])
        time.sleep(0.05)
    raise AssertionError("no network file")


def _gone(client: docker.DockerClient, network_id: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := labelled(client, network_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.parametrize("when", ["bootstrapping", "serving"])
def test_an_interrupted_up_leaves_no_container_or_network(
    when: str, docker_host: str, client: docker.DockerClient, mini_world: Path, tmp_path: Path
) -> None:
    proc = _up(mini_world, tmp_path, docker_host)
    try:
        network_id = _network_id(tmp_path)
        assert labelled(client, network_id)  # it made something
        if when == "serving":
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("ready:")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        # 130 from `rhin up`'s own handler; -SIGINT when the interrupt ended it by the signal (Python's way
        # of passing Ctrl-C on to the parent: seen once in three CI runs, not reproduced since); 0 once it
        # was serving. What the test is about is the next line: nothing is left, whichever way it ended.
        assert code in (0, 130, -signal.SIGINT), (tmp_path / "up.stderr").read_text(encoding="utf-8")[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert labelled(client, network_id) == []  # gone when `rhin up` returns, not later


def test_a_killed_up_is_cleaned_by_its_reaper(
    docker_host: str, client: docker.DockerClient, mini_world: Path, tmp_path: Path
) -> None:
    proc = _up(mini_world, tmp_path, docker_host)
    try:
        network_id = _network_id(tmp_path)
        proc.kill()  # SIGKILL: no cleanup of its own
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _gone(client, network_id, 60) == []


def test_rhin_down_removes_what_a_lost_launcher_left(
    docker_host: str, client: docker.DockerClient, mini_world: Path, tmp_path: Path
) -> None:
    net = DockerNetwork(
        mini_world, data=tmp_path / "hub", network_file=tmp_path / "network.json", links=False,
        shards=1, scrypt_cost=4, docker_host=docker_host,
    )  # fmt: skip
    net.start()
    try:
        assert net.reaper is not None
        os.kill(net.reaper.pid, signal.SIGKILL)  # the reaper lost too: only `rhin down` can help now
        net.reaper.wait(10)
        assert len(labelled(client, net.id)) == 3  # hub, one shard, the network
        out = subprocess.run(
            rhin("down", "--network", str(net.network_file)), cwd=REPO, capture_output=True, text=True,
            timeout=120, check=True,
        )  # fmt: skip
        assert "removed container" in out.stdout
        assert labelled(client, net.id) == []
    finally:
        net.stop()


def test_rhin_down_on_a_process_network_file_says_there_is_nothing_to_do(tmp_path: Path) -> None:
    (tmp_path / "network.json").write_text(json.dumps({"format": "rhin-network", "gateways": {}}))
    out = subprocess.run(
        rhin("down", "--network", str(tmp_path / "network.json")), cwd=REPO, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert "nothing to do" in out.stderr
