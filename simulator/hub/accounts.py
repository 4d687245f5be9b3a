"""Hub logins: users from world.json, scrypt password hashes, throttling, lockout and sessions, in SQLite.

Only salted scrypt hashes are stored (cost parameters per user, so they can be raised later without
breaking old hashes); session tokens are stored as SHA-256 digests, so a copy of the database file gives
neither passwords nor live sessions. Guessing is slowed per account: each failure makes the next attempt
wait longer (``retry_after`` doubles), and ``max_failures`` failures lock the account for ``lock_for`` —
even the right password is refused meanwhile. A success resets the count.

Not telling who exists (each choice is tested):

* **Throttling is counted per (facility, user ID) whether or not that user exists** (table ``throttle``), so
  an unknown user's second attempt gets the same 429 as a real user's, and per source address (at most
  ``address_limit`` failures per ``address_window``, then 429 until the window ends: a spray of one
  password over many user IDs). The address limit is generous (a hospital's users may share one NAT
  address); the per-account throttle is what stops guessing one password.
* **Exactly one scrypt per attempt that reaches the password check**: a stored user's hash; for an unknown
  user a dummy hash at the same cost; for a user the world enrols but who never logged in (lazy enrolment,
  see ``facilities.py``), the password is compared with the enrolment in constant time and hashed once, to
  be stored if it was right or against the dummy salt if not. (Enrolling first and then checking took two
  hashes: a real user's first failure was twice as slow as an unknown user's.)
* **A lockout does not end sessions already open.** Failures prove nothing about a session opened with the
  right password, and since anyone can lock any account (counting does not need the user to exist),
  ending sessions on lockout would let an outsider log a doctor out mid-shift by typing five wrong
  passwords. A stolen session ends by logout or expiry (``session_ttl``).
* **Malformed tokens** (anything but the URL-safe Base64 this module issues, at most 128 characters: e.g.
  a non-ASCII byte) are simply unknown: :meth:`Accounts.session` answers None, never an exception.

Every attempt returns a :class:`Session` or a :class:`Refusal`, both carrying facility, user, outcome and
reason, so the caller can write the audit record. Time is always passed in (``now``), never read here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from simulator.hub.sqlstore import SQLiteStore

__all__ = ["Accounts", "Enrolled", "LoginResult", "Refusal", "ScryptParams", "Session", "plausible_token"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    facility TEXT NOT NULL,
    user_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    viewer_kind TEXT NOT NULL,
    salt BLOB NOT NULL,
    pw_hash BLOB NOT NULL,
    n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL,
    PRIMARY KEY (facility, user_id)
);
-- Failures by key: "account\x1f<facility>\x1f<user ID>" (known or not) and "address\x1f<address>".
-- (Stores made before it also keep unused failures/next_try/locked_until columns in users.)
CREATE TABLE IF NOT EXISTS throttle (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    next_try TEXT NOT NULL DEFAULT '',
    locked_until TEXT NOT NULL DEFAULT '',
    window_start TEXT NOT NULL DEFAULT ''
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


_TOKEN = re.compile(r"[A-Za-z0-9_\-]{1,128}")
"""What :func:`secrets.token_urlsafe` issues (43 characters for 32 bytes); anything else is no token."""


def plausible_token(token: str) -> bool:
    """Could ``token`` be one this hub issued? (Malformed ones are refused before any lookup.)"""
    return _TOKEN.fullmatch(token) is not None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Enrolled(Protocol):
    """A user as the world enrols them (:class:`~.facilities.Enrolment`): only hashed at first login."""

    @property
    def password(self) -> str: ...
    @property
    def staff_id(self) -> str: ...
    @property
    def viewer_kind(self) -> str: ...


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
        address_limit: int = 1000,
        address_window: dt.timedelta = dt.timedelta(minutes=15),
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
        self.address_limit = address_limit
        self.address_window = address_window
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

    def _throttled(
        self, db: Any, account: str, address: str, now: dt.datetime
    ) -> tuple[Literal["retry-later", "locked"], dt.timedelta] | None:
        """Why an attempt may not even be checked now (account locked or backing off, address over its
        limit), or None. Reads only: the counts change after the check."""
        row = db.execute("SELECT next_try, locked_until FROM throttle WHERE key=?", (account,)).fetchone()
        if row is not None:
            next_try, locked_until = row
            if locked_until and now < (until := dt.datetime.fromisoformat(locked_until)):
                return "locked", until - now
            if not locked_until and next_try and now < (when := dt.datetime.fromisoformat(next_try)):
                return "retry-later", when - now
        if address:
            row = db.execute("SELECT failures, window_start FROM throttle WHERE key=?", (address,)).fetchone()
            if row is not None and row[1]:
                ends = dt.datetime.fromisoformat(row[1]) + self.address_window
                if now < ends and row[0] >= self.address_limit:
                    return "retry-later", ends - now
        return None

    def _count_failure(
        self, db: Any, account: str, address: str, now: dt.datetime
    ) -> tuple[Literal["locked"] | None, dt.timedelta]:
        """Count one failure for the account and the address; ("locked", lock_for) or (None, backoff)."""
        row = db.execute("SELECT failures, locked_until FROM throttle WHERE key=?", (account,)).fetchone()
        failures = 0 if row is None or row[1] else row[0]  # a lock that has run out: a fresh start
        failures += 1
        if failures >= self.max_failures:
            outcome: tuple[Literal["locked"] | None, dt.timedelta] = ("locked", self.lock_for)
            next_try, locked = "", _ts(now + self.lock_for)
        else:
            wait = self._delay(failures)
            outcome = (None, wait)
            next_try, locked = _ts(now + wait), ""
        db.execute(
            "INSERT INTO throttle (key, failures, next_try, locked_until) VALUES (?,?,?,?)"
            " ON CONFLICT (key) DO UPDATE SET failures=excluded.failures, next_try=excluded.next_try,"
            " locked_until=excluded.locked_until",
            (account, failures, next_try, locked),
        )
        if address:
            row = db.execute("SELECT failures, window_start FROM throttle WHERE key=?", (address,)).fetchone()
            if row is None or not row[1] or now >= dt.datetime.fromisoformat(row[1]) + self.address_window:
                count, start = 1, _ts(now)
            else:
                count, start = row[0] + 1, row[1]
            db.execute(
                "INSERT INTO throttle (key, failures, window_start) VALUES (?,?,?)"
                " ON CONFLICT (key) DO UPDATE SET failures=excluded.failures,"
                " window_start=excluded.window_start",
                (address, count, start),
            )
        return outcome

    def login(
        self,
        facility: str,
        user_id: str,
        password: str,
        now: dt.datetime,
        *,
        address: str = "",
        enrolment: Enrolled | None = None,
    ) -> LoginResult:
        """Check a password and open a session, or say why not (see the module docstring).

        ``address`` is the client's (per-address throttling; "" for none); ``enrolment`` the world's
        enrolment of this user, used (and hashed) only if the user has never logged in.
        """
        account = f"account\x1f{facility}\x1f{user_id}"
        source = f"address\x1f{address}" if address else ""
        with self._lock:
            throttled = self._throttled(self._db, account, source, now)
            row = self._db.execute(
                "SELECT staff_id, viewer_kind, salt, pw_hash, n, r, p FROM users"
                " WHERE facility=? AND user_id=?",
                (facility, user_id),
            ).fetchone()
        if throttled is not None:
            return Refusal(facility, user_id, throttled[0], throttled[1])
        new_user: tuple[bytes, bytes] | None = None
        if row is not None:
            staff_id, kind, salt, digest, n, r, p = row
            ok = hmac.compare_digest(self._hash(password, salt, ScryptParams(n, r, p)), digest)
        elif enrolment is not None:
            staff_id, kind = enrolment.staff_id, enrolment.viewer_kind
            ok = hmac.compare_digest(password.encode("utf-8"), enrolment.password.encode("utf-8"))
            salt = secrets.token_bytes(16) if ok else self._dummy_salt
            digest = self._hash(password, salt, self.params)  # the one hash, right password or not
            new_user = (salt, digest)
        else:
            self._hash(password, self._dummy_salt, self.params)
            ok = False
        with self._tx() as db:
            if not ok:
                locked, wait = self._count_failure(db, account, source, now)
                if locked:
                    return Refusal(facility, user_id, "locked", wait)
                why: RefusalReason = "unknown-user" if row is None and enrolment is None else "bad-password"
                return Refusal(facility, user_id, why, wait)
            if new_user is not None:
                pr = self.params
                db.execute(
                    "INSERT OR IGNORE INTO users"
                    " (facility, user_id, staff_id, viewer_kind, salt, pw_hash, n, r, p)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (facility, user_id, staff_id, kind, *new_user, pr.n, pr.r, pr.p),
                )
            db.execute("DELETE FROM throttle WHERE key=?", (account,))
            token = secrets.token_urlsafe(32)
            expires = now + self.session_ttl
            db.execute(
                "INSERT INTO sessions (token_hash, facility, user_id, issued, expires) VALUES (?,?,?,?,?)",
                (_token_hash(token), facility, user_id, _ts(now), _ts(expires)),
            )
        return Session(token, facility, user_id, staff_id, kind, now, expires)

    def session(self, token: str, now: dt.datetime) -> Session | None:
        """The live session for this token, or None (unknown, malformed, logged out or expired)."""
        if not plausible_token(token):
            return None
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
