"""The audit log against its database's owner (issue 11): a keyed chain, signed checkpoints outside the
database, one verification for ``/audit/verify``, ``rhin audit verify`` and the ``audit_tamper`` step.

* the store: every attack of docs/security.md on real files — an edited row, a recomputed chain, deleted
  last rows, a deleted, edited or forged checkpoint line — is reported by name; what is documented as
  undetectable (truncation after the last checkpoint) indeed is; keys: created 0600, others' refused, the
  wrong key or an unkeyed (old) log refused with a clear message;
* ``rhin audit verify``: exit 0, 1 with a report, 2 when it cannot check;
* the hub: checkpoints every N records and at shutdown; a hub refuses to start on a log cut behind its back;
* the ``scenarios/security/audit-*.yaml`` scenarios pass against a live hub (in-process, real sockets and
  files), are skipped with the reason for external targets, and each assertion fails under a mutant hub
  that has the hole: an unkeyed chain, verification that ignores checkpoints or does not recompute hashes,
  a hub that never writes checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import simulator.hub.audit as audit_module
import simulator.hub.auditchain as chain_module
from harness.cli import app
from harness.scenarios import LoadedScenario, RunResult, WorldIndex, discover
from harness.scenarios.engine import run
from harness.scenarios.steps_audit import copy_audit, tamper
from harness.targets import NetworkFile, Target
from simulator.hub.audit import (
    CHECKPOINT_FILE,
    KEY_ENV,
    KEY_FILE,
    AuditEntry,
    AuditKey,
    AuditKeyError,
    AuditLog,
    AuditSettings,
    ChainProblem,
    verify_data,
)
from simulator.hub.auditbatch import AuditBatcher
from simulator.hub.server import HubError
from tests.hubrun import RunningHub, running_hub

REPO = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2026, 4, 1, 9, 0)


def fill(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append(time=T0, actor_facility="F1", actor_user=f"u{i}", action="view", outcome="allowed")


def issues(problems: list[ChainProblem]) -> set[str]:
    return {p.issue for p in problems}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A closed log of 25 records, a checkpoint every 10 (at 10, 20 and 25 at shutdown)."""
    with AuditLog(tmp_path / "audit.sqlite", AuditSettings(every=10)) as log:
        fill(log, 25)
    return tmp_path


def verify(folder: Path) -> set[str]:
    return issues(verify_data(folder / "audit.sqlite", every=10).problems)


# ------------------------------------------------------------------------------------------- the store


def test_checkpoints_every_n_records_and_at_shutdown(folder: Path) -> None:
    lines = [json.loads(t) for t in (folder / CHECKPOINT_FILE).read_text().splitlines()]
    assert [(c["n"], c["seq"], c["count"]) for c in lines] == [(1, 10, 10), (2, 20, 20), (3, 25, 25)]
    assert lines[1]["prev"] == lines[0]["mac"]
    assert (folder / CHECKPOINT_FILE).stat().st_mode & 0o777 == 0o600
    assert (folder / KEY_FILE).stat().st_mode & 0o777 == 0o600
    found = verify_data(folder / "audit.sqlite", every=10)
    assert found.ok, found.problems
    assert (found.records, found.head[0], len(found.checkpoints)) == (25, 25, 3)
    # A reader (another instance that appends nothing) writes no checkpoint when it closes.
    with AuditLog(folder / "audit.sqlite", AuditSettings(every=10)) as log:
        assert log.verify() == []
    assert len((folder / CHECKPOINT_FILE).read_text().splitlines()) == 3


def test_a_recomputed_chain_is_caught_by_the_key_and_by_the_checkpoint(folder: Path) -> None:
    tamper(folder, "recompute", record="checkpointed")  # record 24, under checkpoint 3 (seq 25)
    assert {"hash-mismatch", "checkpoint-mismatch"} <= verify(folder)
    problems = verify_data(folder / "audit.sqlite", every=10).problems
    assert [p.seq for p in problems if p.issue == "hash-mismatch"] == [24, 25]


def test_an_edited_row_is_named(folder: Path) -> None:
    tamper(folder, "edit", record="checkpointed")
    assert verify_data(folder / "audit.sqlite", every=10).problems == [ChainProblem(24, "hash-mismatch")]


def test_deleted_last_rows_are_caught_by_the_checkpoint(folder: Path) -> None:
    tamper(folder, "truncate", rows=3)
    problems = verify_data(folder / "audit.sqlite", every=10).problems
    assert problems == [ChainProblem(23, "truncated")]
    assert "covers records up to 25; the log ends at 22" in problems[0].detail


def test_a_deleted_middle_row_is_named(folder: Path) -> None:
    with contextlib.closing(sqlite3.connect(folder / "audit.sqlite")) as db:
        db.execute("DELETE FROM audit WHERE seq = 5")
        db.commit()
    assert {"missing", "broken-link", "count-mismatch"} <= verify(folder)


def test_checkpoint_lines_deleted_edited_or_forged_are_named(folder: Path, tmp_path: Path) -> None:
    path = folder / CHECKPOINT_FILE
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the last line: the database's count tells
    assert verify(folder) == {"checkpoint-missing"}
    path.write_text(lines[0] + lines[2])  # a middle line: the numbering and the prev link tell
    assert verify(folder) == {"checkpoint-missing"}
    edited = json.loads(lines[1])
    edited["seq"] = 19
    path.write_text(lines[0] + json.dumps(edited) + "\n" + lines[2])
    assert "checkpoint-forged" in verify(folder)
    path.write_text(original + "not json\n")
    assert "checkpoint-unreadable" in verify(folder)
    # Forged under another key: same structure, a valid MAC under the wrong key.
    other = tmp_path / "other"
    other.mkdir()
    with AuditLog(other / "audit.sqlite", AuditSettings(every=10)) as log:
        fill(log, 12)
    path.write_text(original + (other / CHECKPOINT_FILE).read_text().splitlines(keepends=True)[0])
    assert "checkpoint-forged" in verify(folder)


def test_what_stays_undetectable_is_what_the_docs_say(folder: Path) -> None:
    """Records after the last checkpoint can be cut (here the hub was killed: no shutdown checkpoint)."""
    with AuditLog(folder / "audit.sqlite", AuditSettings(every=10)) as log:
        fill(log, 4, start=25)
        log._appended = False  # as if SIGKILLed: close() writes no final checkpoint
    with contextlib.closing(sqlite3.connect(folder / "audit.sqlite")) as db:
        db.execute("DELETE FROM audit WHERE seq > 25")
        db.commit()
    assert verify(folder) == set()
    # …but not so many that a checkpoint is overdue (the hub writes one at most 2N - 1 records after one).
    with AuditLog(folder / "audit.sqlite", AuditSettings(every=10)) as log:
        fill(log, 25, start=25)
        log._appended = False
    lines = (folder / CHECKPOINT_FILE).read_text().splitlines(keepends=True)
    (folder / CHECKPOINT_FILE).write_text("".join(lines[:3]))  # back to seq 25
    with contextlib.closing(sqlite3.connect(folder / "audit.sqlite")) as db:
        db.execute("UPDATE audit_meta SET value = '3' WHERE name = 'checkpoints'")  # both stores colluding
        db.commit()
    assert verify(folder) == {"checkpoint-overdue"}


def test_keys_files_and_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    for name in "abc":
        (tmp_path / name).mkdir()
    with AuditLog(tmp_path / "a" / "audit.sqlite") as log:
        fill(log, 2)
    key = tmp_path / "a" / KEY_FILE
    os.chmod(key, 0o640)
    with pytest.raises(AuditKeyError, match="readable by others"):
        AuditLog(tmp_path / "a" / "audit.sqlite")
    os.chmod(key, 0o600)
    # The wrong key, from the environment or a file, is refused with both IDs, not reported as tampering.
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    with pytest.raises(AuditKeyError, match="was written with audit key"):
        AuditLog(tmp_path / "a" / "audit.sqlite")
    with pytest.raises(AuditKeyError, match="was written with audit key"):
        verify_data(tmp_path / "a" / "audit.sqlite")
    # An explicit key file wins over the environment.
    assert verify_data(tmp_path / "a" / "audit.sqlite", key_file=key).ok
    # A log keyed from the environment creates no key file, and verifies with the same variable.
    with AuditLog(tmp_path / "b" / "audit.sqlite") as log:
        fill(log, 2)
    assert not (tmp_path / "b" / KEY_FILE).exists()
    assert verify_data(tmp_path / "b" / "audit.sqlite").ok
    monkeypatch.setenv(KEY_ENV, "not hex")
    with pytest.raises(AuditKeyError, match="not hex"):
        AuditLog(tmp_path / "b" / "audit.sqlite")
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(AuditKeyError, match="no audit key"):
        AuditLog(tmp_path / "b" / "audit.sqlite")  # never a fresh key for a log that has records
    # A log from before keying (no audit_meta) is refused, not continued.
    legacy = tmp_path / "c" / "audit.sqlite"
    with AuditLog(legacy) as log:
        fill(log, 1)
    with contextlib.closing(sqlite3.connect(legacy)) as db:
        db.execute("DROP TABLE audit_meta")
        db.commit()
    with pytest.raises(AuditKeyError, match="before the chain was keyed"):
        AuditLog(legacy)
    with pytest.raises(AuditKeyError, match="at least"):
        AuditKey.from_secret(b"x" * 16)


# ------------------------------------------------------------------------------------------- the command


def test_rhin_audit_verify(folder: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    ok = cli.invoke(app, ["audit", "verify", str(folder), "--every", "10"])
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.output
    assert "25 records" in ok.output
    tamper(folder, "truncate", rows=2)
    bad = cli.invoke(app, ["audit", "verify", str(folder / "audit.sqlite"), "--json", "--every", "10"])
    assert bad.exit_code == 1, bad.output
    assert "FAILED" in bad.output
    assert "truncated" in bad.output
    report = json.loads(bad.stdout[: bad.stdout.rindex("}") + 1])
    assert report["ok"] is False
    assert report["problem_counts"] == {"truncated": 1}
    (tmp_path / "empty").mkdir()
    missing = cli.invoke(app, ["audit", "verify", str(tmp_path / "empty")])
    assert missing.exit_code == 2
    assert "no audit log" in missing.output
    wrong = tmp_path / "wrong.key"
    wrong.write_text("cd" * 32)
    wrong.chmod(0o600)
    refused = cli.invoke(app, ["audit", "verify", str(folder), "--key", str(wrong)])
    assert refused.exit_code == 2
    assert "was written with audit key" in refused.output


# ------------------------------------------------------------------------------------------- the hub


_UNKNOWN = itertools.count()


def make_records(hub: RunningHub, n: int) -> None:
    """n audited failures (unknown users, each a new ID: the hub throttles an unknown user ID's second
    attempt like a real user's, so a reused ID would meet a 429)."""
    with hub.client() as c:
        for _ in range(n):
            user = f"x{next(_UNKNOWN)}"
            reply = c.post("/auth/login", json={"facility": "NOPE", "user_id": user, "password": "p"})
            assert reply.status_code == 401


def test_the_hub_checkpoints_and_refuses_a_log_cut_behind_its_back(mini_world: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = AuditSettings(every=5)
    with running_hub(mini_world, data, audit_settings=settings) as hub:
        make_records(hub, 12)
        with hub.client(hub.admin_token) as op:
            live = op.get("/audit/verify").json()
        assert live["ok"] is True, live
        assert live["records"] >= 12
        assert live["checkpoints"]["count"] >= 2
    lines = (data / CHECKPOINT_FILE).read_text().splitlines()
    assert json.loads(lines[-1])["seq"] == verify_data(data / "audit.sqlite").head[0]  # the shutdown one
    with contextlib.closing(sqlite3.connect(data / "audit.sqlite")) as db:
        db.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
        db.commit()
    with (
        pytest.raises(HubError, match=r"does not match its checkpoints.*truncated"),
        running_hub(mini_world, data, audit_settings=settings),
    ):
        pass


# ------------------------------------------------------------------------------------------- scenarios


def _unkeyed_mac(keyed: Any, *fields: object) -> str:
    return hashlib.sha256(chain_module.fields_json(*fields).encode("utf-8")).hexdigest()


def _no_hash_check(original: Callable[..., Any]) -> Callable[..., Any]:
    def verify_links_only(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        found.problems = [p for p in found.problems if p.issue != "hash-mismatch"]
        return found

    return verify_links_only


MUTANTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    # The chain as it was before issue 11: anyone holding the database can recompute it.
    "unkeyed-chain": lambda mp: [
        mp.setattr(module, "record_mac", _unkeyed_mac) for module in (audit_module, chain_module)
    ],
    # Verification that never reads the checkpoint file (the chain alone).
    "checkpoints-ignored": lambda mp: mp.setattr(
        chain_module, "_checked_checkpoints", lambda lines, key, written: ([], [])
    ),
    # Verification that checks the links and the order but does not recompute hashes.
    "no-hash-check": lambda mp: mp.setattr(
        audit_module, "verify_chain", _no_hash_check(audit_module.verify_chain)
    ),
    # A hub that never writes a checkpoint.
    "no-checkpoints": lambda mp: mp.setattr(audit_module.AuditLog, "_checkpoint", lambda self, s, d: None),
}


@pytest.fixture(scope="module")
def scenarios() -> list[LoadedScenario]:
    found = discover(REPO / "scenarios", [REPO / "scenarios" / "security"])
    return [s for s in found if s.id.startswith("security-audit-")]


@contextlib.contextmanager
def audited_hub(world: WorldIndex, data: Path) -> Iterator[Target]:
    """An in-process hub with a checkpoint every 20 records, 50 records in, as a reference target."""
    with running_hub(world.dir, data, audit_settings=AuditSettings(every=20)) as hub:
        make_records(hub, 50)
        yield Target(
            name="audited",
            kind="reference",
            mllp=hub.mllp,
            http=hub.base_url,
            users=world.users(),
            admin_token=hub.admin_token,
            network=NetworkFile(hub={"data": str(data)}),
            local_files=True,
        )


def failed_ids(result: RunResult) -> set[str]:
    return {a.assertion_id for a in result.assertions() if a.status == "failed"}


def test_the_audit_scenarios_pass_and_each_assertion_fails_under_a_mutant(
    world: WorldIndex, scenarios: list[LoadedScenario], tmp_path: Path
) -> None:
    assert {s.id for s in scenarios} == {"security-audit-truncation", "security-audit-recomputed"}
    with audited_hub(world, tmp_path / "baseline") as target:
        baseline = run(scenarios, target, world, jobs=2)
        external = run(scenarios, replace(target, kind="external"), world, jobs=2)
    ids = {a.assertion_id for a in baseline.assertions()}
    bad = [(a.assertion_id, a.status, a.message) for a in baseline.assertions() if a.status != "passed"]
    assert not bad, bad
    assert len(ids) == 8
    # An external target's data folder is not on this machine: the tampering steps are skipped, saying so.
    skipped = [a for a in external.assertions() if a.assertion_id != "AUDITSEC-live-ok"]
    assert len(skipped) == 7
    assert all(a.status == "skipped" for a in skipped), skipped
    assert any("data folder" in a.message for a in skipped)
    killed: dict[str, set[str]] = {}
    for name, apply in MUTANTS.items():
        with pytest.MonkeyPatch.context() as mp:
            apply(mp)
            with audited_hub(world, tmp_path / name) as target:
                result = run(scenarios, target, world, jobs=2)
        killed[name] = failed_ids(result)
    survivors = ids - set().union(*killed.values())
    assert not survivors, f"no mutant fails {survivors}: {killed}"
    assert {"AUDITSEC-recomputed-chain-keyed", "AUDITSEC-recomputed-after-checkpoint"} <= killed[
        "unkeyed-chain"
    ]
    assert {"AUDITSEC-truncation-detected", "AUDITSEC-recomputed-chain-checkpoint"} <= killed[
        "checkpoints-ignored"
    ]
    assert "AUDITSEC-edited-row-detected" in killed["no-hash-check"]
    assert "AUDITSEC-copy-intact" in killed["no-checkpoints"]


def test_the_copy_is_consistent_while_the_hub_writes(world: WorldIndex, tmp_path: Path) -> None:
    """copy_audit keeps only the checkpoint lines the copied database counted: no false alarm mid-write."""
    data = tmp_path / "data"
    with running_hub(world.dir, data, audit_settings=AuditSettings(every=3)) as hub:
        make_records(hub, 10)
        copy_audit(data, tmp_path / "copy")
        make_records(hub, 10)  # the live file grows; the copy is unaffected
        assert verify_data(tmp_path / "copy" / "audit.sqlite", key_file=data / KEY_FILE, every=3).ok
        shutil.rmtree(tmp_path / "copy")


def test_an_intact_verification_anchors_its_head_and_a_failed_one_does_not(folder: Path) -> None:
    settings = AuditSettings(every=10)
    with AuditLog(folder / "audit.sqlite", settings) as log:
        fill(log, 3, start=25)  # 26..28, past the last checkpoint (25)
        found = log.verification(anchor=True)
        assert found.ok
        assert found.checkpoints[-1].seq == 28
        assert log.verification(anchor=True).checkpoints[-1].n == 4  # nothing new to anchor: no new line
        fill(log, 2, start=28)  # 29, 30
        with contextlib.closing(sqlite3.connect(folder / "audit.sqlite")) as db:
            db.execute("UPDATE audit SET outcome = 'denied' WHERE seq = 29")
            db.commit()
        assert not log.verification(anchor=True).ok
        log._appended = False  # no shutdown checkpoint either: only what verification wrote
    lines = [json.loads(t) for t in (folder / CHECKPOINT_FILE).read_text().splitlines()]
    assert [c["seq"] for c in lines] == [10, 20, 25, 28]


def test_a_group_commit_never_exceeds_the_checkpoint_interval(tmp_path: Path) -> None:
    """What checkpoint-overdue relies on: the batcher takes at most `every` records a group."""

    async def burst() -> int:
        with AuditLog(tmp_path / "audit.sqlite", AuditSettings(every=5)) as log:
            batcher = AuditBatcher(log)
            entry = AuditEntry(T0, "F1", "u", "view", "allowed")
            await asyncio.gather(*(batcher.record(entry) for _ in range(12)))
            await batcher.close()
            return batcher.commits

    assert asyncio.run(burst()) == 3
    lines = [json.loads(t) for t in (tmp_path / CHECKPOINT_FILE).read_text().splitlines()]
    assert [c["seq"] for c in lines] == [5, 10, 12]
