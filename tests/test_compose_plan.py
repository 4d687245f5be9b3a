"""The container pieces that need no container engine (the default run): the compose documents for a world,
the image's health check, the --backend option, and that tests/containers stays out of the default run."""

from __future__ import annotations

import http.server
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from simulator.containers import GATEWAY_BASE_PORT, HUB_PORTS
from simulator.containers.compose import compose_files
from simulator.containers.health import check
from simulator.gateway.shard import partition
from tests.containers import conftest as container_conftest


def test_compose_has_one_service_per_shard_of_the_plan(mini_world: Path) -> None:
    docs = compose_files(mini_world, 2, links=False, token="s3cret-token")
    world = json.loads((mini_world / "world.json").read_text(encoding="utf-8"))
    groups = partition(world, 2)
    services = docs["compose"]["services"]
    for i, group in enumerate(groups):
        command = services[f"gateways-{i}"]["command"]
        assert command[command.index("--facilities") + 1] == ",".join(group)
        assert "--no-links" in command
        assert "ports" not in services[f"gateways-{i}"]  # shards publish nothing
    assert sorted(services["hub"]["depends_on"]) == [f"gateways-{i}" for i in range(len(groups))]
    assert services["hub"]["ports"] == [f"127.0.0.1::{p}" for p in HUB_PORTS.values()]
    assert services["bootstrap"]["network_mode"] == "service:hub"
    assert services["load-worker"]["deploy"] == {"replicas": 2}
    assert services["run"]["profiles"] == ["run"]
    assert "s3cret-token" not in yaml.safe_dump(docs["compose"])  # the secret lives in gateways.env
    network = docs["network"]
    assert network["gateways"][groups[1][1]]["url"] == f"http://gateways-1:{GATEWAY_BASE_PORT + 1}"
    assert {s["admin_token"] for s in network["shards"]} == {"s3cret-token"}
    assert docs["compose"]["volumes"]["world"]["driver_opts"]["device"] == str(mini_world)


def test_rhin_compose_writes_the_files_with_their_modes(mini_world: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["compose", "--world", str(mini_world), "--out", str(tmp_path), "--shards", "2"]
    )
    assert result.exit_code == 0, result.output
    env = tmp_path / "rhin-compose" / "gateways.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    token = env.read_text(encoding="ascii").strip().split("=", 1)[1]
    network = json.loads((tmp_path / "rhin-compose" / "network.json").read_text(encoding="utf-8"))
    assert network["shards"][0]["admin_token"] == token
    assert token not in (tmp_path / "compose.yaml").read_text(encoding="utf-8")
    target = yaml.safe_load((tmp_path / "rhin-compose" / "target.yaml").read_text(encoding="utf-8"))
    assert target["network"] == "/etc/rhin/network.json"


def test_rhin_compose_refuses_a_folder_without_a_world(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compose", "--world", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "not a world directory" in result.output


@pytest.fixture
def health_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_health_check_verdicts(health_server: str) -> None:
    assert check(None) is None  # a role that serves nothing
    assert check(f"{health_server}/health") is None
    assert "503" in (check(f"{health_server}/other") or "")
    dead = check("http://127.0.0.1:9/health", timeout=1)
    assert dead is not None
    assert "127.0.0.1:9" in dead


def test_an_unknown_backend_is_a_usage_error(mini_world: Path) -> None:
    result = CliRunner().invoke(app, ["up", "--world", str(mini_world), "--backend", "vm"])
    assert result.exit_code == 2
    assert "process, docker" in result.output


def test_container_tests_run_only_when_named() -> None:
    here = container_conftest.HERE
    hook = container_conftest.pytest_ignore_collect
    assert hook(here / "test_image.py", SimpleNamespace(args=["tests"])) is True  # type: ignore[arg-type]
    assert hook(here / "test_image.py", SimpleNamespace(args=[str(here)])) is None  # type: ignore[arg-type]
    named = SimpleNamespace(args=[f"{here / 'test_image.py'}::test_x"])
    assert hook(here / "test_image.py", named) is None  # type: ignore[arg-type]
