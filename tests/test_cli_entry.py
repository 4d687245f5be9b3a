"""The CLI package's seams: one scrypt-cost default, the console script and ``python -m``, ``rhin fault``
through :func:`harness.hubclient.set_fault` against a real shard admin API, ``rhin up``'s errors."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from harness.cli import app, main
from harness.cli.options import SCRYPT_COST
from simulator.gateway.faults import FaultRequest, FaultState, create_admin_app

REPO = Path(__file__).resolve().parents[1]
TOKEN = "shard-admin-token"
runner = CliRunner()


def test_one_scrypt_cost_default_everywhere() -> None:
    from harness.targets import DEFAULT_SCRYPT_COST, ReferenceOptions
    from simulator.hub.accounts import ScryptParams
    from simulator.network import Network

    assert SCRYPT_COST == DEFAULT_SCRYPT_COST == ReferenceOptions().scrypt_cost
    assert math.log2(ScryptParams().n) == SCRYPT_COST
    assert inspect.signature(Network).parameters["scrypt_cost"].default == SCRYPT_COST
    for command in ("hub", "up", "run", "load", "calibrate"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0
        assert f"[default: {SCRYPT_COST}]" in shown.stdout, command


def test_the_console_script_and_python_m_are_the_same_app() -> None:
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "rhin"]
    assert script.value == "harness.cli:main"
    assert script.load() is main
    shown = subprocess.run(
        [sys.executable, "-m", "harness.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    commands = ("generate", "validate-storage", "world", "hub", "audit", "up", "fault", "run", "scenarios")
    assert all(command in shown.stdout for command in commands), shown.stdout


class RecordingShard:
    """A real shard admin API (the gateway's own) on a loopback port, recording the faults it was sent."""

    def __init__(self) -> None:
        self.states = {"1710000001": FaultState()}
        self.sent: list[tuple[str, FaultRequest]] = []

        async def set_fault(code: str, request: FaultRequest) -> FaultState:
            self.sent.append((code, request))
            state = self.states[code]
            state.down, state.error = request.mode == "down", request.mode == "error"
            state.slow_ms = request.ms if request.mode == "slow" else 0
            await asyncio.sleep(0)
            return state

        config = uvicorn.Config(
            create_admin_app(TOKEN, self.states, set_fault), host="127.0.0.1", port=0, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RecordingShard:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the shard admin API did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"


def network_file(tmp_path: Path, admin_url: str, token: str = TOKEN) -> Path:
    doc = {
        "gateways": {"1710000001": {"url": "http://127.0.0.1:1", "shard": 0}},
        "shards": [{"admin_url": admin_url, "admin_token": token, "facilities": ["1710000001"]}],
    }
    path = tmp_path / "network.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def shard() -> Iterator[RecordingShard]:
    with RecordingShard() as running:
        yield running


def test_fault_reaches_the_shard(shard: RecordingShard, tmp_path: Path) -> None:
    net = network_file(tmp_path, shard.url)
    base = ["fault", "--network", str(net), "gateway", "1710000001"]
    slow = runner.invoke(app, [*base, "slow", "2500"])
    assert slow.exit_code == 0, slow.output
    assert slow.stdout.strip() == "1710000001: slow 2500 ms"
    assert shard.states["1710000001"].slow_ms == 2500
    assert runner.invoke(app, [*base, "down"]).exit_code == 0
    assert shard.states["1710000001"].down
    assert runner.invoke(app, [*base, "up"]).exit_code == 0
    assert shard.states["1710000001"] == FaultState()
    assert [(c, r.mode, r.ms) for c, r in shard.sent[-3:]] == [
        ("1710000001", "slow", 2500),
        ("1710000001", "down", 0),
        ("1710000001", "up", 0),
    ]


def test_fault_refusals_are_exit_2_with_the_reason(shard: RecordingShard, tmp_path: Path) -> None:
    wrong_token = network_file(tmp_path, shard.url, token="not-the-token")
    refused = runner.invoke(app, ["fault", "--network", str(wrong_token), "gateway", "1710000001", "down"])
    assert refused.exit_code == 2
    assert "the shard refused: 401" in refused.output
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = network_file(tmp_path, f"http://127.0.0.1:{s.getsockname()[1]}")
    silent = runner.invoke(app, ["fault", "--network", str(closed), "gateway", "1710000001", "error"])
    assert silent.exit_code == 2
    assert "does not answer" in silent.output
    net = network_file(tmp_path, shard.url)
    for args, message in (
        (["gateway", "1710000001", "sideways"], "unknown mode 'sideways'"),
        (["gateway", "1710000001", "slow"], "slow needs a delay"),
        (["hub", "1710000001", "down"], "only `gateway` can be faulted"),
        (["gateway", "9999999999", "down"], "9999999999 has no synthetic gateway"),
    ):
        bad = runner.invoke(app, ["fault", "--network", str(net), *args])
        assert bad.exit_code == 2, args
        assert message in bad.output, (args, bad.output)


def test_up_on_a_folder_that_is_not_a_world_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["up", "--world", str(tmp_path), "--scrypt-cost", "4"])
    assert result.exit_code == 2
    assert "the reference network did not start" in result.output
    assert "is not a world directory" in result.output
