"""`rhin hub` as a real process: ports on stdout, PIX/PDQ over MLLP, clean stop on SIGTERM, data kept.

The hub is what scenarios and load tests will start as a subprocess, so this is tested the same way: the
console script (or ``python -m harness.cli`` when no script is installed), port 0, the address read from its
stdout. Every wait has a timeout and the child is always killed, so a hung hub fails the test, not the run.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hl7wire import UTF8, BlockingClient, ConnectionClosedError, Message, decode
from simulator.hub.index import DomainDirectory
from simulator.pki import ClientTls

REPO = Path(__file__).resolve().parents[1]
WAIT = 15.0  # seconds for any one step; the whole file takes a few


def rhin_command() -> list[str]:
    script = shutil.which("rhin", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "harness.cli"]


@dataclass
class Hub:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def line(self) -> str:
        try:
            got = self.lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no output from rhin hub within {WAIT} s") from None
        assert got is not None, f"rhin hub closed stdout (exit {self.proc.poll()})"
        return got

    def addresses(self) -> dict[str, str]:
        found = {}
        while (text := self.line()) != "ready":
            name, _, address = text.partition(": ")
            found[name] = address
        return found


@contextmanager
def running(*args: str) -> Iterator[Hub]:
    proc = subprocess.Popen(
        [*rhin_command(), "hub", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    hub = Hub(proc)

    def pump() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            hub.lines.put(text.rstrip("\n"))
        hub.lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield hub
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def exchange(client: BlockingClient, text: str) -> Message:
    reply, _ = decode(client.send(text.encode(UTF8)))
    assert reply.get("MSA", 2) == text.split("\r", 1)[0].split("|")[9]
    return reply


def msh(sender: str, mtype: str, control: str) -> str:
    return (
        f"MSH|^~\\&|HIS|{sender}|RHIN_HUB|RHIN|20250401093000+0900||{mtype}|{control}|P|2.5"
        "||||||UNICODE UTF-8\r"
    )


def a04(control: str, sender: str, local_id: str) -> str:
    return (
        msh(sender, "ADT^A04^ADT_A01", control)
        + "EVN|A04|20250401093000\r"
        + f"PID|1||{local_id}^^^JP{sender}||北陸^一郎^^^^^L^I~ホクリク^イチロウ^^^^^L^P||19500505|M|||"
        "^^金沢市^石川県^9200833^JPN^H||076-000-0000\r"
    )


def pdq(control: str, sender: str) -> str:
    return (
        msh(sender, "QBP^Q22^QBP_Q21", control)
        + f"QPD|IHE PDQ Query|T{control}|@PID.5.1.1^北陸~@PID.5.2^一郎~@PID.7^19500505\rRCP|I\r"
    )


def test_hub_serves_stops_cleanly_and_keeps_its_data(bare_world: Path, tmp_path: Path) -> None:
    directory = DomainDirectory.load(bare_world / "world.json")
    sender = next(d.facility for d in directory if d.facility)
    assert sender is not None
    data = tmp_path / "data"
    with socket.socket() as probe:  # a free port to ask for by number (0 would not show --soap-port works)
        probe.bind(("127.0.0.1", 0))
        soap_port = probe.getsockname()[1]
    with running(
        "--world", str(bare_world), "--data", str(data), "--mllp-port", "0", "--http-port", "0",
        "--soap-port", str(soap_port),
    ) as hub:  # fmt: skip
        addresses = hub.addresses()
        assert set(addresses) == {"mllp", "http", "soap", "admin-token", "mllp-tls"}  # soap: PIXv3/PDQv3
        assert addresses["soap"] == f"127.0.0.1:{soap_port}"
        assert Path(addresses["admin-token"]) == data / "admin.token"
        ca, certs = addresses["mllp-tls"].split(" ")
        assert (Path(ca), Path(certs)) == (data / "pki" / "ca.pem", data / "pki" / "facilities")
        assert (Path(certs) / f"{sender}.key").stat().st_mode & 0o777 == 0o600
        tls = ClientTls(Path(ca), Path(certs))
        health = httpx.get(f"http://{addresses['http']}/health", timeout=WAIT)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        host, port = addresses["mllp"].rpartition(":")[0], _port(addresses["mllp"])
        assert host == "127.0.0.1"
        assert port > 0
        with BlockingClient(host, port, timeout=WAIT, tls=tls.context(sender)) as client:
            ack = exchange(client, a04("F1", sender, "HUB0001"))
            assert ack.get("MSA", 1) == "AA", ack
            reply = exchange(client, pdq("Q1", sender))
            assert (reply.get("MSA", 1), reply.get("QAK", 2)) == ("AA", "OK"), reply
            assert [p.get(3, comp=1) for p in reply.segments("PID")] == ["HUB0001"]
        with BlockingClient(host, port, timeout=WAIT) as plain, pytest.raises(ConnectionClosedError):
            exchange(plain, pdq("Q1", sender))  # plain MLLP to a TLS hub: the handshake fails, closed
        hub.proc.send_signal(signal.SIGTERM)
        assert hub.proc.wait(WAIT) == 0
    assert (data / "hub.sqlite").is_file()

    with running("--world", str(bare_world), "--data", str(data), "--plain-mllp") as hub:
        addresses = hub.addresses()
        assert set(addresses) == {"mllp", "http", "soap", "admin-token", "mllp-tls"}  # soap: PIXv3/PDQv3
        assert addresses["mllp-tls"] == "none (plain MLLP)"
        with BlockingClient("127.0.0.1", _port(addresses["mllp"]), timeout=WAIT) as client:
            reply = exchange(client, pdq("Q2", sender))
            assert (reply.get("MSA", 1), reply.get("QAK", 2)) == ("AA", "OK"), reply
            assert [p.get(3, comp=1) for p in reply.segments("PID")] == ["HUB0001"]
        hub.proc.send_signal(signal.SIGINT)
        assert hub.proc.wait(WAIT) == 0


def test_default_data_dir_is_inside_the_world(bare_world: Path, tmp_path: Path) -> None:
    copy = tmp_path / "world"
    copy.mkdir()
    shutil.copy(bare_world / "world.json", copy / "world.json")
    with running("--world", str(copy)) as hub:
        assert "mllp" in hub.addresses()
        hub.proc.send_signal(signal.SIGTERM)
        assert hub.proc.wait(WAIT) == 0
    assert (copy / "hub" / "hub.sqlite").is_file()


@pytest.mark.parametrize("kind", ["missing", "no-world-json", "not-json"])
def test_bad_world_dir_is_exit_2_with_a_message(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "w"
    if kind != "missing":
        target.mkdir()
    if kind == "not-json":
        (target / "world.json").write_text("{not json", encoding="utf-8")
    with running("--world", str(target)) as hub:
        assert hub.proc.wait(WAIT) == 2
        assert hub.proc.stderr is not None
        message = hub.proc.stderr.read()
    assert "error:" in message, message
    assert str(target.name) in message, message
    assert not (target / "hub").exists()  # nothing created for a bad world
