"""``python -m simulator.gateway`` as a real process: one ready line, serving, clean exit on SIGTERM/SIGINT.

Every wait has a timeout and the child is always killed, so a hung shard fails the test, not the run.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
WAIT = 30.0
TOKEN = "process-admin-token"


@contextmanager
def shard_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str | None]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.gateway", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            lines.put(text.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)


def ready_line(lines: queue.Queue[str | None], proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        line = lines.get(timeout=WAIT)
    except queue.Empty:
        raise AssertionError("no ready line within the timeout") from None
    assert line is not None, (
        f"stdout closed (exit {proc.poll()}): {proc.stderr.read() if proc.stderr else ''}"
    )
    assert line.startswith("ready: ")
    info: dict[str, Any] = json.loads(line.removeprefix("ready: "))
    return info


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def disclosing(world_dir: Path) -> list[dict[str, Any]]:
    data = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
    return [f for f in data["facilities"] if f["network_role"] == "disclosing"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shard_prints_one_ready_line_serves_and_exits_cleanly(mini_world: Path, sig: signal.Signals) -> None:
    facilities = disclosing(mini_world)[:2]
    codes = [f["code"] for f in facilities]
    args = ["--world", str(mini_world), "--facilities", ",".join(codes), "--no-links", "--seed", "3"]
    with shard_process(*args, "--admin-token", TOKEN) as (proc, lines):
        info = ready_line(lines, proc)
        assert set(info) == {"pid", "gateways", "admin"}
        assert info["pid"] == proc.pid
        assert sorted(info["gateways"]) == sorted(codes)
        addresses = [(g["host"], g["port"]) for g in info["gateways"].values()]
        addresses.append((info["admin"]["host"], info["admin"]["port"]))
        assert len({port for _, port in addresses}) == 3
        for f in facilities:
            g = info["gateways"][f["code"]]
            base = f"http://{g['host']}:{g['port']}"
            assert g["host"] == "127.0.0.1"
            assert httpx.get(f"{base}/health", timeout=WAIT).json() == {"facility": f["code"], "status": "ok"}
            auth = {"Authorization": f"Bearer {f['gateway_secret']}"}
            assert (
                httpx.get(f"{base}/patients/00000000/entries", headers=auth, timeout=WAIT).status_code == 200
            )
        a = info["admin"]
        faults = httpx.get(
            f"http://{a['host']}:{a['port']}/faults",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=WAIT,
        )
        assert faults.status_code == 200
        assert sorted(faults.json()) == sorted(codes)
        proc.send_signal(sig)
        assert proc.wait(WAIT) == 0
        assert lines.get(timeout=WAIT) is None  # nothing after the ready line
        for host, port in addresses:
            assert refused(host, port)
        with pytest.raises(ProcessLookupError):
            os.kill(info["pid"], 0)


def test_shard_without_facilities_serves_every_disclosing_one(mini_world: Path) -> None:
    with shard_process("--world", str(mini_world), "--no-links") as (proc, lines):
        info = ready_line(lines, proc)
        assert sorted(info["gateways"]) == sorted(f["code"] for f in disclosing(mini_world))
        proc.terminate()
        assert proc.wait(WAIT) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--facilities", "0000000000"],
        ["--facilities", "viewing"],
        ["--world-is-missing"],
        ["--override-free"],  # removed: it never meant anything
    ],
)
def test_bad_arguments_fail_before_listening(mini_world: Path, tmp_path: Path, args: list[str]) -> None:
    data = json.loads((mini_world / "world.json").read_text(encoding="utf-8"))
    viewing = next(f["code"] for f in data["facilities"] if f["network_role"] == "viewing")
    args = [viewing if a == "viewing" else a for a in args]
    world = (
        ["--world", str(tmp_path)] if args == ["--world-is-missing"] else ["--world", str(mini_world), *args]
    )
    with shard_process(*world) as (proc, lines):
        assert proc.wait(WAIT) == 2
        assert lines.get(timeout=WAIT) is None
        assert proc.stderr is not None
        assert "gateway:" in proc.stderr.read()
