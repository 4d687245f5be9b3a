"""Process hygiene (issue 11): every process `rhin up` starts — gateway shards, the hub, the hub's scrypt
worker and multiprocessing's resource tracker — dies with its parent, and `rhin up` exits within seconds
when one dies, says which, and leaves nothing behind.

Real processes: `rhin up` runs in a session of its own, so "nothing left" is checked over the whole
session in /proc (process groups change inside it; the session does not), whatever the processes are.
Before the fix, SIGKILL of the hub left its resource tracker and scrypt worker holding `rhin up`'s pipe
and `rhin up` hung for good after "stopping the network".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session) of a process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[3])


def _live(pids: list[int]) -> list[int]:
    return [p for p in pids if (_stat(p) or ("Z", 0, 0))[0] != "Z"]


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[2] == sid and stat[0] != "Z":
                found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and (_stat(int(e)) or ("", 0, 0))[1] == pid]


def scrypt_worker(hub: int, timeout: float = 20) -> int:
    """The hub's password worker (spawned at start): a spawn child that is not the resource tracker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in children(hub):
            line = _cmdline(pid)
            if "multiprocessing" in line and "resource_tracker" not in line:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"the hub {hub} has no scrypt worker: {[_cmdline(p) for p in children(hub)]}")


@pytest.mark.parametrize("victim", ["hub", "gateway", "scrypt-worker"])
def test_sigkill_of_a_child_stops_rhin_up_quickly_and_leaves_nothing(
    mini_world: Path, tmp_path: Path, victim: str
) -> None:
    args = ["up", "--world", str(mini_world), "--no-links", "--scrypt-cost", "4", "--shards", "1"]
    args += ["--data", str(tmp_path / "hub"), "--network-file", str(tmp_path / "network.json")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its session: every process it (and they) start stays in it
    )
    sid = proc.pid
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready:"), line
        doc = json.loads((tmp_path / "network.json").read_text(encoding="utf-8"))
        hub = int(doc["hub"]["pid"])
        worker = scrypt_worker(hub)
        tracker = [p for p in children(hub) if "resource_tracker" in _cmdline(p)]
        members = session_members(sid)
        assert {hub, worker, int(doc["shards"][0]["pid"]), *tracker} <= set(members)
        target = {"hub": hub, "gateway": int(doc["shards"][0]["pid"]), "scrypt-worker": worker}[victim]
        os.kill(target, signal.SIGKILL)
        killed = time.monotonic()
        code = proc.wait(20)
        took = time.monotonic() - killed
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(sid, signal.SIGKILL)
            proc.wait(5)
    assert code != 0
    assert took < 10, f"rhin up took {took:.1f} s to notice and stop"
    expected = {
        "hub": "hub exited",
        "gateway": "gateways-0 exited",
        "scrypt-worker": "password-hashing worker",
    }[victim]
    assert expected in err, err
    deadline = time.monotonic() + 5
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: _cmdline(pid) for pid in session_members(sid)}
    assert not left, f"left behind: {left}"


def test_the_hubs_helpers_die_with_it_without_a_launcher(mini_world: Path, tmp_path: Path) -> None:
    """`python -m simulator.hub` alone, SIGKILLed: its scrypt worker (PR_SET_PDEATHSIG) and then the resource
    tracker (its pipe closes) go by themselves — no process group kill is involved here."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.hub", "--world", str(mini_world), "--data", str(tmp_path / "hub")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready:")
        worker = scrypt_worker(proc.pid)
        helpers = [worker, *(p for p in children(proc.pid) if "resource_tracker" in _cmdline(p))]
        assert len(helpers) == 2, [_cmdline(p) for p in children(proc.pid)]
        proc.kill()
        proc.wait(5)
        deadline = time.monotonic() + 5
        while _live(helpers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _live(helpers), [_cmdline(p) for p in helpers]
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
