"""Hub logins: users from world.json, scrypt password hashes, throttling, lockout and sessions, in SQLite.

Only salted scrypt hashes are stored (cost parameters per user, so they can be raised later without
breaking old hashes); session tokens are stored as SHA-256 digests, so a copy of the database file gives
neither passwords nor live sessions. Guessing is slowed per account: each failure makes the next attempt
wait longer (``retry_after`` doubles), and ``max_failures`` failures lock the account for ``lock_for`` —
even the right password is refused meanwhile. A success resets the count.

Every attempt returns a :class:`Session` or a :class:`Refusal`, both carrying facility, user, outcome and
reason, so the caller can write the audit record. Time is always passed in (``now``), never read here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from simulator.hub.sqlstore import SQLiteStore

__all__ = ["Accounts", "LoginResult", "Refusal", "ScryptParams", "Session"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    facility TEXT NOT NULL,
    user_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    viewer_kind TEXT NOT NULL,
    salt BLOB NOT NULL,
    pw_hash BLOB NOT NULL,
    n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    next_try TEXT NOT NULL DEFAULT '',
    locked_until TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (facility, user_id)
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    facility TEXT NOT NULL,
    user_id TEXT NOT NULL,
    issued TEXT NOT NULL,
    expires TEXT NOT NULL
);
"""

RefusalReason = Literal["unknown-user", "bad-password", "retry-later", "locked"]


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost; the default (n=2**14, r=8, p=1, ~16 MiB) is OWASP's minimum. Tests use far less."""

    n: int = 2**14
    r: int = 8
    p: int = 1


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    facility: str
    user_id: str
    staff_id: str
    viewer_kind: str
    issued: dt.datetime
    expires: dt.datetime
    outcome: Literal["success"] = "success"
    reason: str = "ok"


@dataclass(frozen=True, slots=True)
class Refusal:
    facility: str
    user_id: str
    reason: RefusalReason
    retry_after: dt.timedelta | None = None  # how long until another attempt may succeed, if known
    outcome: Literal["refused"] = "refused"


LoginResult = Session | Refusal


def _scrypt(password: str, salt: bytes, params: ScryptParams) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=params.n, r=params.r, p=params.p, maxmem=2**26, dklen=32
    )


Hasher = Callable[[str, bytes, ScryptParams], bytes]
"""How a password is hashed: :func:`scrypt_hash` inline, or the same function in a worker process."""


def scrypt_hash(password: str, salt: bytes, params: ScryptParams) -> bytes:
    """The password hash (module-level, so a process pool can run it)."""
    return _scrypt(password, salt, params)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="microseconds")


class Accounts(SQLiteStore):
    """The hub's user accounts and sessions on one SQLite file; each operation is one transaction."""

    def __init__(
        self,
        path: Path | str,
        *,
        params: ScryptParams | None = None,
        hasher: Hasher = scrypt_hash,
        session_ttl: dt.timedelta = dt.timedelta(hours=8),
        max_failures: int = 5,
        lock_for: dt.timedelta = dt.timedelta(minutes=15),
        backoff: dt.timedelta = dt.timedelta(seconds=1),
    ) -> None:
        self.params = params or ScryptParams()
        # hashlib.scrypt holds the GIL for its ~40 ms: a server passes a hasher that runs it in another
        # process, so one login never stalls every other request of the hub.
        self._hash = hasher
        self._sessions: dict[str, Session] = {}  # token hash → live session (a cache; the table is the truth)
        self.session_ttl = session_ttl
        self.max_failures = max_failures
        self.lock_for = lock_for
        self.backoff = backoff
        super().__init__(path, _SCHEMA)
        # Spent on unknown users too, so timing does not reveal which user IDs exist.
        self._dummy_salt = secrets.token_bytes(16)

    # ------------------------------------------------------------------------------------------ users

    def add_user(self, facility: str, user_id: str, password: str, staff_id: str, viewer_kind: str) -> bool:
        """Store a user's salted hash; False (and nothing changed) if the user already exists."""
        with self._lock:
            exists = self._db.execute(
                "SELECT 1 FROM users WHERE facility=? AND user_id=?", (facility, user_id)
            ).fetchone()
        if exists:
            return False
        salt = secrets.token_bytes(16)
        digest = self._hash(password, salt, self.params)
        p = self.params
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO users"
                " (facility, user_id, staff_id, viewer_kind, salt, pw_hash, n, r, p)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (facility, user_id, staff_id, viewer_kind, salt, digest, p.n, p.r, p.p),
            )
            return cur.rowcount == 1

    def load_world(self, world: Mapping[str, Any]) -> int:
        """Add every ``facilities[].users[]`` of a world.json document; returns how many were new."""
        added = 0
        for f in world["facilities"]:
            for u in f.get("users", []):
                added += self.add_user(
                    str(f["code"]), u["user_id"], u["password"], u["staff_id"], u["viewer_kind"]
                )
        return added

    # ------------------------------------------------------------------------------------------ login

    def _delay(self, failures: int) -> dt.timedelta:
        return self.backoff * (1 << max(failures - 1, 0))

    def login(self, facility: str, user_id: str, password: str, now: dt.datetime) -> LoginResult:
        """Check a password and open a session, or say why not (see the module docstring)."""
        with self._lock:
            row = self._db.execute(
                "SELECT staff_id, viewer_kind, salt, pw_hash, n, r, p, failures, next_try, locked_until"
                " FROM users WHERE facility=? AND user_id=?",
                (facility, user_id),
            ).fetchone()
        if row is None:
            self._hash(password, self._dummy_salt, self.params)
            return Refusal(facility, user_id, "unknown-user")
        staff_id, kind, salt, digest, n, r, p, failures, next_try, locked_until = row
        if locked_until:
            until = dt.datetime.fromisoformat(locked_until)
            if now < until:
                return Refusal(facility, user_id, "locked", until - now)
            failures, next_try = 0, ""  # the lock has run out: a fresh start
        if next_try and now < (when := dt.datetime.fromisoformat(next_try)):
            return Refusal(facility, user_id, "retry-later", when - now)
        ok = hmac.compare_digest(self._hash(password, salt, ScryptParams(n, r, p)), digest)
        with self._tx() as db:
            if not ok:
                failures += 1
                if failures >= self.max_failures:
                    lock = now + self.lock_for
                    db.execute(
                        "UPDATE users SET failures=?, next_try='', locked_until=?"
                        " WHERE facility=? AND user_id=?",
                        (failures, _ts(lock), facility, user_id),
                    )
                    return Refusal(facility, user_id, "locked", self.lock_for)
                wait = self._delay(failures)
                db.execute(
                    "UPDATE users SET failures=?, next_try=?, locked_until='' WHERE facility=? AND user_id=?",
                    (failures, _ts(now + wait), facility, user_id),
                )
                return Refusal(facility, user_id, "bad-password", wait)
            db.execute(
                "UPDATE users SET failures=0, next_try='', locked_until='' WHERE facility=? AND user_id=?",
                (facility, user_id),
            )
            token = secrets.token_urlsafe(32)
            expires = now + self.session_ttl
            db.execute(
                "INSERT INTO sessions (token_hash, facility, user_id, issued, expires) VALUES (?,?,?,?,?)",
                (_token_hash(token), facility, user_id, _ts(now), _ts(expires)),
            )
        return Session(token, facility, user_id, staff_id, kind, now, expires)

    def session(self, token: str, now: dt.datetime) -> Session | None:
        """The live session for this token, or None (unknown, logged out or expired)."""
        key = _token_hash(token)
        cached = self._sessions.get(key)
        if cached is None:
            with self._lock:
                row = self._db.execute(
                    "SELECT s.facility, s.user_id, u.staff_id, u.viewer_kind, s.issued, s.expires"
                    " FROM sessions s JOIN users u USING (facility, user_id) WHERE s.token_hash=?",
                    (key,),
                ).fetchone()
            if row is None:
                return None
            facility, user_id, staff_id, kind, issued, expires = row
            cached = Session(
                token, facility, user_id, staff_id, kind, dt.datetime.fromisoformat(issued),
                dt.datetime.fromisoformat(expires),
            )  # fmt: skip
            self._sessions[key] = cached
        if now >= cached.expires:
            self._sessions.pop(key, None)
            return None
        return cached

    def logout(self, token: str) -> bool:
        """End a session; True if it existed."""
        key = _token_hash(token)
        with self._tx() as db:
            self._sessions.pop(key, None)
            return db.execute("DELETE FROM sessions WHERE token_hash=?", (key,)).rowcount == 1

    def purge_expired(self, now: dt.datetime) -> int:
        """Drop sessions that have expired (housekeeping; expired ones are refused anyway)."""
        with self._tx() as db:
            for key in [k for k, v in self._sessions.items() if v.expires <= now]:
                del self._sessions[key]
            return db.execute("DELETE FROM sessions WHERE expires <= ?", (_ts(now),)).rowcount
