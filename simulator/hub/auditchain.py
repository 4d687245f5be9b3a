"""The audit log's keyed chain: the key, a record's hash, the checkpoints and the one verification.

Split from :mod:`.audit` (the store and the group commit) because this is what an auditor needs and
nothing else: :func:`verify_chain` runs over records and checkpoint lines wherever they come from — the
live log (``/audit/verify``), a copy of a data folder (``rhin audit verify``, the ``audit_tamper`` scenario
step). The design, what is detected and what is not, is in :mod:`.audit`'s docstring and
``docs/security.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _string
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CHAIN",
    "CHECKPOINT_FILE",
    "DEFAULT_CHECKPOINT_EVERY",
    "GENESIS",
    "KEY_ENV",
    "KEY_FILE",
    "AuditKey",
    "AuditKeyError",
    "AuditRecord",
    "AuditSettings",
    "ChainProblem",
    "Checkpoint",
    "Verification",
    "canonical_details",
    "fields_json",
    "key_from_file",
    "load_key",
    "read_checkpoints",
    "record_hmac",
    "record_mac",
    "verify_chain",
]

GENESIS: Final = "0" * 64
KEY_ENV: Final = "RHIN_AUDIT_KEY"
"""Environment variable with the audit key (hex, at least 32 bytes); wins over the default key file."""
KEY_FILE: Final = "audit.key"
"""The key file's default name, in the data folder (in production: elsewhere, see docs/security.md)."""
CHECKPOINT_FILE: Final = "audit.checkpoints"
"""The checkpoint file's default name, beside the database."""
DEFAULT_CHECKPOINT_EVERY: Final = 1000
CHAIN: Final = "hmac-sha256-v1"
"""What ``audit_meta.chain`` says for a keyed log; a log without it predates keying."""
_KEY_BYTES: Final = 32


class AuditKeyError(Exception):
    """The audit log cannot be opened as it is: no usable key, the wrong key, or an unkeyed (old) log."""


@dataclass(frozen=True)
class AuditKey:
    """The audit secret, as the two keys derived from it, and an ID that names it without revealing it."""

    records: bytes
    checkpoints: bytes
    key_id: str
    source: str  # for messages: "file /path" or "environment RHIN_AUDIT_KEY"

    @classmethod
    def from_secret(cls, secret: bytes, source: str = "given") -> AuditKey:
        if len(secret) < _KEY_BYTES:
            raise AuditKeyError(f"the audit key from {source} has {len(secret)} bytes; at least {_KEY_BYTES}")

        def derive(label: str) -> bytes:
            return hmac.new(secret, f"rhin audit {label}".encode(), hashlib.sha256).digest()

        key_id = hmac.new(secret, b"rhin audit key id", hashlib.sha256).hexdigest()[:16]
        return cls(derive("records v1"), derive("checkpoints v1"), key_id, source)

    def __repr__(self) -> str:  # never print the secret
        return f"AuditKey(id={self.key_id}, from {self.source})"


def _parse_hex(text: str, source: str) -> bytes:
    text = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]+", text) or len(text) % 2:
        raise AuditKeyError(f"the audit key from {source} is not hex (expected {2 * _KEY_BYTES} hex digits)")
    return bytes.fromhex(text)


def load_key(key_file: Path, *, create: bool = False, env: Mapping[str, str] | None = None) -> AuditKey:
    """The audit key: ``RHIN_AUDIT_KEY`` if set (and ``key_file`` was not given explicitly, see
    :class:`AuditSettings`), else ``key_file`` — created (random, mode 0600) when missing and ``create``.

    A key file readable by group or others is refused, as ssh refuses such private keys: whoever can read
    it can rewrite the log undetectably.
    """
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        return AuditKey.from_secret(
            _parse_hex(env[KEY_ENV], f"environment {KEY_ENV}"), f"environment {KEY_ENV}"
        )
    return key_from_file(key_file, create=create)


def key_from_file(path: Path, *, create: bool) -> AuditKey:
    source = f"file {path}"
    if not path.exists():
        if not create:
            raise AuditKeyError(
                f"no audit key: {path} does not exist and {KEY_ENV} is not set (the log was written"
                " with a key; give its file with --audit-key / --key, or set the variable)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(os.urandom(_KEY_BYTES).hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AuditKeyError(f"the audit key {path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditKeyError(f"cannot read the audit key {path}: {exc}") from exc
    return AuditKey.from_secret(_parse_hex(text, source), source)


@dataclass(frozen=True)
class AuditSettings:
    """Where the key and the checkpoints are, and how often a checkpoint is written.

    ``key_file`` given: that file is the key (``RHIN_AUDIT_KEY`` is ignored). Not given: the environment
    variable if set, else ``audit.key`` beside the database (created on first start). ``checkpoints``
    defaults to ``audit.checkpoints`` beside the database. ``key`` (tests, embedding programs) overrides both
    key sources.
    """

    key_file: Path | None = None
    checkpoints: Path | None = None
    every: int = DEFAULT_CHECKPOINT_EVERY
    key: AuditKey | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"a checkpoint every {self.every} records: it must be at least 1")

    def resolve_key(self, folder: Path, *, create: bool) -> AuditKey:
        if self.key is not None:
            return self.key
        if self.key_file is not None:
            return key_from_file(self.key_file, create=create)
        return load_key(folder / KEY_FILE, create=create)

    def checkpoint_path(self, folder: Path) -> Path:
        return self.checkpoints if self.checkpoints is not None else folder / CHECKPOINT_FILE


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event. ``patient`` is the regional ID ("" when none); ``details`` is canonical JSON."""

    seq: int
    time: str
    actor_facility: str
    actor_user: str
    action: str
    patient: str
    target: str
    outcome: str
    reason: str
    details: str
    prev_hash: str
    hash: str

    def hashed_fields(self) -> tuple[int | str, ...]:
        """What the record's hash covers, in order: every column but the hash itself."""
        return (
            self.seq,
            self.time,
            self.actor_facility,
            self.actor_user,
            self.action,
            self.patient,
            self.target,
            self.outcome,
            self.reason,
            self.details,
            self.prev_hash,
        )


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One finding of :func:`verify_chain`: the ``seq`` it concerns (0: the checkpoint file as a whole) and
    a stable ``issue`` code; ``detail`` says more for people (not compared, so tests can name problems)."""

    seq: int
    issue: str  # hash-mismatch, broken-link, missing, truncated, checkpoint-… (see the module docstring)
    detail: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One line of the checkpoint file: the chain's head (``seq``, ``hash``) and ``count`` at ``time``."""

    n: int
    seq: int
    hash: str
    count: int
    time: str
    every: int
    key_id: str
    prev: str
    mac: str

    def body(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "seq": self.seq,
            "hash": self.hash,
            "count": self.count,
            "time": self.time,
            "every": self.every,
            "key_id": self.key_id,
            "prev": self.prev,
        }

    def expected_mac(self, key: AuditKey) -> str:
        text = json.dumps(self.body(), sort_keys=True, separators=(",", ":"))
        return hmac.new(key.checkpoints, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def line(self) -> str:
        return json.dumps({**self.body(), "mac": self.mac}, sort_keys=True, separators=(",", ":")) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """One line; ValueError if it is not a checkpoint."""
        doc = json.loads(text)
        if not isinstance(doc, dict) or set(doc) != {f.name for f in dataclasses.fields(cls)}:
            raise ValueError("not a checkpoint line")
        ints = ("n", "seq", "count", "every")
        if not all(type(doc[k]) is int for k in ints) or not all(
            isinstance(doc[k], str) for k in doc if k not in ints
        ):
            raise ValueError("a checkpoint field has the wrong type")
        return cls(**doc)


# Encoders made once: json.dumps with options builds a new encoder per call, which is most of its cost here.
_CANONICAL: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
_COMPACT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """Sorted, compact JSON. Flat str/int details (the usual kind) are written directly: the same text as
    the encoder's (json's own C string escaper), at a third of the cost; anything else goes to the encoder."""
    if not details:
        return "{}"
    parts = []
    for key in sorted(details):
        value = details[key]
        if type(key) is not str:
            break
        if type(value) is str:
            parts.append(f"{_string(key)}:{_string(value)}")
        elif type(value) is int:
            parts.append(f"{_string(key)}:{int.__repr__(value)}")
        else:
            break
    else:
        return "{" + ",".join(parts) + "}"
    return _CANONICAL.encode(details if isinstance(details, dict) else dict(details))


def fields_json(*fields: object) -> str:
    """The fields as a JSON array: unambiguous (no separator games) and stable.

    Written directly when every field is a str, an int or None (always, for records), with exactly the
    text ``json.dumps(fields, ensure_ascii=False, separators=(",", ":"))`` gives.
    """
    parts = []
    for value in fields:
        if type(value) is str:
            parts.append(_string(value))
        elif type(value) is int:
            parts.append(int.__repr__(value))
        elif value is None:
            parts.append("null")
        else:
            return _COMPACT.encode(fields)
    return "[" + ",".join(parts) + "]"


def record_hmac(key: AuditKey) -> Any:
    """An HMAC object keyed for records; :func:`_mac` copies it (cheaper than keying one per record)."""
    return hmac.new(key.records, digestmod=hashlib.sha256)


def record_mac(keyed: Any, *fields: object) -> str:
    """A record's hash: HMAC-SHA256 (under the records key) of its fields as a JSON array."""
    mac = keyed.copy()
    mac.update(fields_json(*fields).encode("utf-8"))
    return str(mac.hexdigest())


@dataclass
class Verification:
    """What :func:`verify_chain` found: every problem, and what the log and its checkpoints hold."""

    problems: list[ChainProblem]
    head: tuple[int, str]
    records: int
    checkpoints: list[Checkpoint]
    checkpoint_file: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self, limit: int = 100) -> dict[str, Any]:
        """For ``/audit/verify`` and ``rhin audit verify --json``: the first ``limit`` problems and counts."""
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.issue] = counts.get(p.issue, 0) + 1
        last = self.checkpoints[-1] if self.checkpoints else None
        return {
            "ok": self.ok,
            "problems": [
                {"seq": p.seq, "issue": p.issue, **({"detail": p.detail} if p.detail else {})}
                for p in self.problems[:limit]
            ],
            "problem_count": len(self.problems),
            "problem_counts": counts,
            "issues": sorted(counts),  # every kind found, however many problems were left out
            "head": {"seq": self.head[0], "hash": self.head[1]},
            "records": self.records,
            "checkpoints": {
                "count": len(self.checkpoints),
                "file": self.checkpoint_file,
                "last": None if last is None else {"n": last.n, "seq": last.seq, "time": last.time},
            },
        }


def read_checkpoints(path: Path) -> list[str] | None:
    """The file's lines (None: no file)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None


def verify_chain(
    records: Iterable[AuditRecord],
    key: AuditKey,
    checkpoint_lines: Sequence[str] | None,
    *,
    written: int | None = None,
    every: int = DEFAULT_CHECKPOINT_EVERY,
    expected_head: tuple[int, str] | None = None,
) -> Verification:
    """Recompute the chain under ``key`` and check it against the checkpoint file's lines (None: no file).

    ``written``: how many checkpoints the database says were written (fewer lines: lines cut from the end).
    ``every``: the interval to expect when no checkpoint says its own. ``expected_head``: a ``(seq, hash)``
    the caller kept elsewhere (older API; a checkpoint does the same). Every problem is reported, in order:
    records first, then checkpoints.
    """
    keyed = record_hmac(key)
    checkpoints, problems_cp = _checked_checkpoints(checkpoint_lines, key, written)
    wanted = {cp.seq for cp in checkpoints}
    at_seq: dict[int, tuple[str, int]] = {}  # checkpoint seq → (hash there, records up to it)
    problems: list[ChainProblem] = []
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for rec in records:
        count += 1
        if rec.seq != expected_seq:
            problems.extend(ChainProblem(s, "missing") for s in range(expected_seq, rec.seq))
        if rec.prev_hash != prev_hash:
            problems.append(ChainProblem(rec.seq, "broken-link"))
        if record_mac(keyed, *rec.hashed_fields()) != rec.hash:
            problems.append(ChainProblem(rec.seq, "hash-mismatch"))
        if rec.seq in wanted:
            at_seq[rec.seq] = (rec.hash, count)
        prev_hash, expected_seq = rec.hash, rec.seq + 1
    head = (expected_seq - 1, prev_hash)
    if expected_head is not None and expected_head != head:
        problems.append(ChainProblem(expected_head[0], "truncated", "the log does not end at the head kept"))
    beyond = [cp for cp in checkpoints if cp.seq > head[0]]
    if beyond:
        cp = beyond[-1]
        problems.append(
            ChainProblem(
                head[0] + 1,
                "truncated",
                f"checkpoint {cp.n} ({cp.time}) covers records up to {cp.seq}; the log ends at {head[0]}",
            )
        )
    for cp in checkpoints:
        if cp.seq > head[0]:
            continue
        found = at_seq.get(cp.seq)
        if found is None or found[0] != cp.hash:
            problems.append(
                ChainProblem(
                    cp.seq, "checkpoint-mismatch", f"record {cp.seq} is not the one checkpoint {cp.n} signed"
                )
            )
        elif found[1] != cp.count:
            problems.append(
                ChainProblem(
                    cp.seq, "count-mismatch", f"checkpoint {cp.n}: {cp.count} records, the log {found[1]}"
                )
            )
    last_seq = checkpoints[-1].seq if checkpoints else 0
    interval = checkpoints[-1].every if checkpoints else every
    if head[0] - last_seq >= 2 * interval:
        problems.append(
            ChainProblem(
                last_seq + 1,
                "checkpoint-overdue",
                f"{head[0] - last_seq} records since the last checkpoint; one is written every {interval}",
            )
        )
    return Verification(problems + problems_cp, head, count, checkpoints)


def _checked_checkpoints(
    lines: Sequence[str] | None, key: AuditKey, written: int | None
) -> tuple[list[Checkpoint], list[ChainProblem]]:
    """The checkpoint lines that are genuine and in order, and the problems with the others."""
    good: list[Checkpoint] = []
    problems: list[ChainProblem] = []
    prev, expected_n = GENESIS, 1
    for number, text in enumerate(lines or [], start=1):
        if not text.strip():
            continue
        try:
            cp = Checkpoint.parse(text)
        except (ValueError, TypeError) as exc:
            problems.append(ChainProblem(0, "checkpoint-unreadable", f"line {number}: {exc}"))
            continue
        if cp.key_id != key.key_id or not hmac.compare_digest(cp.mac, cp.expected_mac(key)):
            problems.append(
                ChainProblem(cp.seq, "checkpoint-forged", f"line {number}: the signature does not hold")
            )
            continue
        if cp.n != expected_n:
            problems.append(
                ChainProblem(
                    cp.seq, "checkpoint-missing", f"line {number} is checkpoint {cp.n}; {expected_n} expected"
                )
            )
        elif cp.prev != prev:
            problems.append(ChainProblem(cp.seq, "checkpoint-broken-link", f"line {number}"))
        if good and cp.seq < good[-1].seq:
            problems.append(ChainProblem(cp.seq, "checkpoint-out-of-order", f"line {number}"))
        good.append(cp)
        prev, expected_n = cp.mac, cp.n + 1
    if written is not None and written > len(good):
        problems.append(
            ChainProblem(
                0,
                "checkpoint-missing",
                f"the log says {written} checkpoints were written; the file holds {len(good)} genuine ones",
            )
        )
    return good, problems
