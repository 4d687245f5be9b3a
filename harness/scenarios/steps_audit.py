"""``audit_tamper``: what the owner of the hub's audit database could do to it, done to a copy, and what the
hub's own verification says about the result.

Scenarios run beside each other against one hub and read its audit, so the live log is never touched: the
step takes a consistent copy (the checkpoint file as far as the database's own checkpoint count says, then
the database through SQLite's backup API), changes the copy as an attacker without the key would, and runs
:func:`simulator.hub.audit.verify_data` on it — the code behind ``rhin audit verify`` and ``/audit/verify``
— with the hub's key. Only the reference target's data folder is on this machine; the engine skips the
step, with that reason, for other targets.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from simulator.hub.audit import CHECKPOINT_FILE, KEY_FILE, AuditKeyError, verify_data

from .actions import AuditTamper
from .context import Context
from .errors import StepError
from .results import Exchange
from .runners import runs
from .subjects import HttpObservation

__all__ = ["copy_audit", "run_audit_tamper", "tamper"]

AUDIT_DB = "audit.sqlite"


def data_folder(ctx: Context) -> Path:
    """The reference hub's data folder, from its network file (``hub.data``)."""
    network = ctx.target.network
    found = network.hub.get("data") if network is not None and ctx.target.kind == "reference" else None
    if not found:
        raise StepError(f"target {ctx.target.name}: its hub's data folder is not known on this machine")
    return Path(str(found))


def copy_audit(data: Path, dest: Path) -> None:
    """A consistent copy of ``data``'s audit database and checkpoint file into ``dest``.

    The hub appends a checkpoint line, then counts it in the database; so the database is copied first and
    the file's lines are kept up to the count that copy holds: no line signs a record the copy lacks.
    """
    dest.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{data / AUDIT_DB}?mode=ro", uri=True)
    target = sqlite3.connect(dest / AUDIT_DB)
    try:
        source.backup(target)
        row = target.execute("SELECT value FROM audit_meta WHERE name = 'checkpoints'").fetchone()
    finally:
        source.close()
        target.close()
    written = int(row[0]) if row else 0
    try:
        lines = (data / CHECKPOINT_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        lines = []
    kept = [line for line in lines if line.strip()][:written]
    (dest / CHECKPOINT_FILE).write_text("".join(kept), encoding="utf-8")


def _last_checkpoint(folder: Path) -> dict[str, Any]:
    lines = [t for t in (folder / CHECKPOINT_FILE).read_text(encoding="utf-8").splitlines() if t.strip()]
    if not lines:
        raise StepError(
            "the hub's audit log has no checkpoint yet (one is written every 1000 records by default):"
            " nothing anchors its end, so this tampering has nothing to be caught by"
        )
    found: dict[str, Any] = json.loads(lines[-1])
    return found


def _plain_hash(values: tuple[Any, ...]) -> str:
    """SHA-256 of the record's fields: a chain recomputed by someone who does not hold the key."""
    text = json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tamper(folder: Path, kind: str, rows: int = 1, record: str = "checkpointed") -> str:
    """Change the copy in ``folder`` as :class:`~.model.AuditTamper` says; what was done, for people."""
    if kind == "none":
        return "nothing changed"
    if kind == "drop_checkpoint":
        path = folder / CHECKPOINT_FILE
        lines = [t for t in path.read_text(encoding="utf-8").splitlines(keepends=True) if t.strip()]
        if not lines:
            raise StepError("the checkpoint file is empty: there is no line to delete")
        path.write_text("".join(lines[:-1]), encoding="utf-8")
        return f"deleted the checkpoint file's last line (checkpoint {len(lines)})"
    db = sqlite3.connect(folder / AUDIT_DB)
    try:
        head = db.execute("SELECT MAX(seq) FROM audit").fetchone()[0] or 0
        if kind == "truncate":
            covered = int(_last_checkpoint(folder)["seq"])
            first = max(1, covered - rows + 1)
            db.execute("DELETE FROM audit WHERE seq >= ?", (first,))
            db.commit()
            return (
                f"deleted records {first}..{head} ({head - first + 1}; the last checkpoint covers {covered})"
            )
        seq = int(_last_checkpoint(folder)["seq"]) - 1 if record == "checkpointed" else head
        if seq < 1:
            raise StepError(f"no {record} record to edit")
        db.execute(
            "UPDATE audit SET outcome = CASE outcome WHEN 'tampered' THEN 'tampered!' ELSE 'tampered' END"
            " WHERE seq = ?",
            (seq,),
        )
        if kind == "edit":
            db.commit()
            return f"changed the outcome of record {seq}"
        prev = db.execute("SELECT prev_hash FROM audit WHERE seq = ?", (seq,)).fetchone()[0]
        later = db.execute(
            "SELECT seq, time, actor_facility, actor_user, action, patient, target, outcome, reason, details"
            " FROM audit WHERE seq >= ? ORDER BY seq",
            (seq,),
        ).fetchall()
        for fields in later:
            digest = _plain_hash((*fields, prev))
            db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, fields[0]))
            prev = digest
        db.commit()
        return f"changed the outcome of record {seq} and recomputed the {len(later)} hashes from it on"
    finally:
        db.close()


@runs(AuditTamper)
def run_audit_tamper(ctx: Context, a: AuditTamper) -> tuple[HttpObservation, list[Exchange]]:
    started = time.perf_counter()
    data = data_folder(ctx)
    key = data / KEY_FILE
    with tempfile.TemporaryDirectory(prefix="rhin-audit-copy-") as tmp:
        copy = Path(tmp)
        try:
            copy_audit(data, copy)
        except (OSError, sqlite3.Error) as exc:
            raise StepError(f"cannot copy the audit log in {data}: {exc}") from exc
        done = tamper(copy, a.tamper, a.rows, a.record)
        try:
            found = verify_data(copy / AUDIT_DB, key_file=key if key.is_file() else None)
        except (AuditKeyError, OSError, sqlite3.Error) as exc:
            raise StepError(f"cannot verify the copy: {exc}") from exc
    body = {**found.as_json(), "tampered": done}
    body["checkpoints"]["file"] = f"(copy of) {data / CHECKPOINT_FILE}"
    elapsed = (time.perf_counter() - started) * 1000
    text = json.dumps(body, ensure_ascii=False, indent=2)
    obs = HttpObservation(200, {"content-type": "application/json"}, text.encode(), elapsed, body)
    request = f"copy {data / AUDIT_DB} and its checkpoints; tamper: {a.tamper} ({done}); verify the copy"
    return obs, [Exchange("note", f"audit tamper {a.tamper}", request, text, elapsed)]
