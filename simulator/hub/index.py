"""The hub's patient identity index: facility records, regional links and demographic search, in SQLite.

Independent of the wire: PIX/PDQ over HL7 v2 (:mod:`.pixpdq`) and later PIXv3/PDQv3 call the same operations,
so every decision about identity (what a merge does, what counts as a match) lives here once.

Durability (the ACK rule): each operation is one transaction, committed with ``synchronous=FULL`` in WAL mode
before the method returns, so a hub killed with SIGKILL right after an ACK loses nothing it acknowledged.
Concurrency: one connection per index. The MLLP server is single-threaded asyncio and these writes are local
and short (well under a millisecond with WAL), so the handler calls SQLite directly rather than through a
thread pool; a lock still serialises calls so a test or an HTTP thread may share the object safely.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from simulator.hub.sqlstore import SQLiteStore
from synthetic.clock import jst_now

__all__ = [
    "REGIONAL_NAMESPACE",
    "REGIONAL_OID",
    "Domain",
    "DomainDirectory",
    "IdentityError",
    "IndexDemographics",
    "IndexName",
    "IndexRecord",
    "LinkConflictError",
    "PatientIndex",
    "SearchCriteria",
    "UnknownDomainError",
    "UnknownPatientError",
    "normalize_kana",
]

REGIONAL_NAMESPACE: Final = "RHIN"
# Ours and synthetic: an arc made up for the test-bed's regional domain, not a registered OID.
REGIONAL_OID: Final = "1.2.392.200250.9.1"


class IdentityError(Exception):
    """Root of the index's refusals; the wire layers map each to an error answer."""


class UnknownDomainError(IdentityError):
    """No assigning authority with this namespace (or OID) is configured."""


class UnknownPatientError(IdentityError):
    """No active record for this ID in this domain (never fed, or retired by a merge)."""


class LinkConflictError(IdentityError):
    """The local ID is already linked to another regional patient."""


# ------------------------------------------------------------------------------------------- directory


@dataclass(frozen=True)
class Domain:
    """An assigning authority (HD ``namespace&oid&ISO``); ``facility`` is the owning facility's code."""

    namespace: str
    oid: str
    facility: str | None = None
    name: str = ""

    @property
    def regional(self) -> bool:
        return self.namespace == REGIONAL_NAMESPACE


class DomainDirectory:
    """The network's assigning authorities: one per facility (from world.json) plus the hub's regional one."""

    def __init__(self, domains: Iterable[Domain]) -> None:
        self._by_ns: dict[str, Domain] = {}
        self._by_oid: dict[str, Domain] = {}
        self._by_facility: dict[str, Domain] = {}
        for d in domains:
            self._by_ns[d.namespace] = d
            self._by_oid[d.oid] = d
            if d.facility:
                self._by_facility[d.facility] = d
        regional = Domain(REGIONAL_NAMESPACE, REGIONAL_OID, None, "RHIN regional patient ID (synthetic)")
        self._by_ns.setdefault(REGIONAL_NAMESPACE, regional)
        self._by_oid.setdefault(REGIONAL_OID, regional)

    @classmethod
    def from_world(cls, world: Mapping[str, Any]) -> DomainDirectory:
        """From a world.json document (its ``facilities[].assigning_authority``)."""
        return cls(
            Domain(
                f["assigning_authority"]["namespace"],
                f["assigning_authority"]["oid"],
                str(f["code"]),
                str(f.get("name", "")),
            )
            for f in world["facilities"]
        )

    @classmethod
    def load(cls, world_json: Path) -> DomainDirectory:
        return cls.from_world(json.loads(world_json.read_text(encoding="utf-8")))

    @property
    def regional(self) -> Domain:
        return self._by_ns[REGIONAL_NAMESPACE]

    def __iter__(self) -> Iterator[Domain]:
        return iter(self._by_ns.values())

    def get(self, namespace: str) -> Domain | None:
        return self._by_ns.get(namespace)

    def resolve(self, namespace: str = "", oid: str = "") -> Domain | None:
        """The domain named by an HD's namespace and/or universal ID; None if unknown or if they disagree."""
        by_ns = self._by_ns.get(namespace) if namespace else None
        by_oid = self._by_oid.get(oid) if oid else None
        if namespace and oid:
            return by_ns if by_ns is not None and by_ns is by_oid else None
        return by_ns or by_oid

    def facility(self, sender: str) -> Domain | None:
        """The domain of a sending facility given by its code or by its namespace (MSH-4 carries either)."""
        found = self._by_facility.get(sender)
        if found is None:
            d = self._by_ns.get(sender)
            found = d if d is not None and d.facility else None
        return found


# ------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class IndexName:
    """One PID-5 repetition: ``representation`` is XPN.8, ``I`` (kanji) or ``P`` (kana)."""

    family: str
    given: str = ""
    representation: str = ""


@dataclass(frozen=True)
class IndexDemographics:
    names: tuple[IndexName, ...] = ()
    birth_date: str = ""
    sex: str = ""
    address: str = ""
    postcode: str = ""
    phones: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> IndexDemographics:
        data = json.loads(text)
        names = tuple(IndexName(**n) for n in data.pop("names"))
        return cls(names=names, phones=tuple(data.pop("phones")), **data)


@dataclass(frozen=True)
class IndexRecord:
    """A facility's (or the feed's) record for one local ID, with its regional link if any."""

    domain: str
    local_id: str
    demographics: IndexDemographics
    updated: str
    regional_id: str | None = None


@dataclass(frozen=True)
class SearchCriteria:
    """PDQ criteria; empty fields are not constrained. A trailing ``*`` makes a name or postcode a prefix."""

    family: str = ""
    given: str = ""
    birth_date: str = ""
    sex: str = ""
    postcode: str = ""
    identifier: str = ""
    identifier_domain: str = ""

    def empty(self) -> bool:
        return not any(asdict(self).values())


_HIRAGANA_TO_KATAKANA: Final = {c: c + 0x60 for c in range(0x3041, 0x3097)}


def normalize_kana(text: str) -> str:
    """For comparison only: NFKC (half-width kana → full, full-width ASCII → ASCII), hiragana → katakana,
    no spaces, upper case. ``やまだ``, ``ﾔﾏﾀﾞ`` and ``ヤマダ`` all give ``ヤマダ``."""
    folded = unicodedata.normalize("NFKC", text).translate(_HIRAGANA_TO_KATAKANA)
    return "".join(folded.split()).upper()


def _postcode(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c.isdigit() or c == "*")


# ------------------------------------------------------------------------------------------- the index

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS patients (
    domain TEXT NOT NULL, local_id TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1, merged_into TEXT,
    demographics TEXT NOT NULL, birth_date TEXT NOT NULL, sex TEXT NOT NULL, postcode TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (domain, local_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS patients_birth ON patients(birth_date);
CREATE TABLE IF NOT EXISTS names (
    domain TEXT NOT NULL, local_id TEXT NOT NULL, seq INTEGER NOT NULL,
    family TEXT NOT NULL, given TEXT NOT NULL,
    PRIMARY KEY (domain, local_id, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS names_family ON names(family);
CREATE TABLE IF NOT EXISTS regional (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, regional_id TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    domain TEXT NOT NULL, local_id TEXT NOT NULL, regional_id TEXT NOT NULL, linked TEXT NOT NULL,
    PRIMARY KEY (domain, local_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_regional ON links(regional_id);
"""


# identifiers(): rows of (regional ID, linked domain, linked local ID, linked record active), ordered.
_BY_LOCAL: Final = (
    "SELECT l.regional_id, k.domain, k.local_id, q.active FROM patients p"
    " LEFT JOIN links l ON l.domain = p.domain AND l.local_id = p.local_id"
    " LEFT JOIN links k ON k.regional_id = l.regional_id"
    " LEFT JOIN patients q ON q.domain = k.domain AND q.local_id = k.local_id"
    " WHERE p.domain = ? AND p.local_id = ? AND p.active = 1 ORDER BY k.domain, k.local_id"
)
_BY_REGIONAL: Final = (
    "SELECT k.regional_id, k.domain, k.local_id, q.active FROM links k"
    " LEFT JOIN patients q ON q.domain = k.domain AND q.local_id = k.local_id"
    " WHERE k.regional_id = ? ORDER BY k.domain, k.local_id"
)


class PatientIndex(SQLiteStore):
    """The identity index on one SQLite file; every public operation is one committed transaction.

    Merge semantics: the merged ID's record is retired (kept, marked inactive, pointing at the survivor), its
    link moves to the survivor, and from then on every query by the merged ID answers as not found.
    """

    def __init__(
        self, path: Path | str, directory: DomainDirectory, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.directory = directory
        self._clock = clock or jst_now
        super().__init__(path, _SCHEMA)

    def _now(self) -> str:
        return self._clock().isoformat(timespec="seconds")

    def _domain(self, namespace: str) -> Domain:
        d = self.directory.get(namespace)
        if d is None:
            raise UnknownDomainError(namespace)
        return d

    # --------------------------------------------------------------------------------------- feed

    def register(self, domain: str, local_id: str, demographics: IndexDemographics) -> bool:
        """ITI-8 A01/A04/A05: create or replace the record; True if created (or revived after a merge)."""
        if self._domain(domain).regional:
            raise UnknownDomainError(f"{domain} IDs are issued by the hub, not fed")
        with self._tx() as db:
            return self._upsert(db, domain, local_id, demographics)

    def update(self, domain: str, local_id: str, demographics: IndexDemographics) -> bool:
        """ITI-8 A08: replace the demographics. An unknown ID is created rather than refused, since feeds
        from several interfaces can arrive out of order; returns True in that case."""
        return self.register(domain, local_id, demographics)

    def _upsert(self, db: sqlite3.Connection, domain: str, local_id: str, demo: IndexDemographics) -> bool:
        row = db.execute(
            "SELECT active FROM patients WHERE domain = ? AND local_id = ?", (domain, local_id)
        ).fetchone()
        db.execute(
            "INSERT INTO patients (domain, local_id, active, merged_into, demographics, birth_date, sex,"
            " postcode, updated) VALUES (?, ?, 1, NULL, ?, ?, ?, ?, ?)"
            " ON CONFLICT (domain, local_id) DO UPDATE SET active = 1, merged_into = NULL,"
            " demographics = excluded.demographics, birth_date = excluded.birth_date, sex = excluded.sex,"
            " postcode = excluded.postcode, updated = excluded.updated",
            (
                domain,
                local_id,
                demo.to_json(),
                demo.birth_date[:8],
                demo.sex.upper(),
                _postcode(demo.postcode),
                self._now(),
            ),
        )
        db.execute("DELETE FROM names WHERE domain = ? AND local_id = ?", (domain, local_id))
        db.executemany(
            "INSERT INTO names (domain, local_id, seq, family, given) VALUES (?, ?, ?, ?, ?)",
            [
                (domain, local_id, n, normalize_kana(name.family), normalize_kana(name.given))
                for n, name in enumerate(demo.names)
            ],
        )
        return row is None or not row[0]

    def merge(
        self, domain: str, surviving_id: str, merged_id: str, demographics: IndexDemographics | None = None
    ) -> None:
        """ITI-8 A40: retire ``merged_id``; its link moves to ``surviving_id``.

        ``demographics`` (the A40's PID) creates or refreshes the survivor in the same transaction. If both
        IDs were linked to different regional patients, the two regional patients become one (the merged
        one's links all move to the survivor's regional ID). Raises :class:`UnknownPatientError` when
        ``merged_id`` has no active record.
        """
        self._domain(domain)
        if surviving_id == merged_id:
            raise UnknownPatientError("an ID cannot be merged into itself")
        with self._tx() as db:
            if not self._active(db, domain, merged_id):
                raise UnknownPatientError(f"{merged_id} in {domain}")
            if demographics is not None:
                self._upsert(db, domain, surviving_id, demographics)
            elif not self._active(db, domain, surviving_id):
                raise UnknownPatientError(f"{surviving_id} in {domain}")
            db.execute(
                "UPDATE patients SET active = 0, merged_into = ?, updated = ?"
                " WHERE domain = ? AND local_id = ?",
                (surviving_id, self._now(), domain, merged_id),
            )
            old = self._regional_of(db, domain, merged_id)
            if old is None:
                return
            db.execute("DELETE FROM links WHERE domain = ? AND local_id = ?", (domain, merged_id))
            survivor = self._regional_of(db, domain, surviving_id)
            if survivor is None:
                db.execute(
                    "INSERT INTO links (domain, local_id, regional_id, linked) VALUES (?, ?, ?, ?)",
                    (domain, surviving_id, old, self._now()),
                )
            elif survivor != old:
                db.execute("UPDATE links SET regional_id = ? WHERE regional_id = ?", (survivor, old))

    @staticmethod
    def _active(db: sqlite3.Connection, domain: str, local_id: str) -> bool:
        row = db.execute(
            "SELECT active FROM patients WHERE domain = ? AND local_id = ?", (domain, local_id)
        ).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _regional_of(db: sqlite3.Connection, domain: str, local_id: str) -> str | None:
        row = db.execute(
            "SELECT regional_id FROM links WHERE domain = ? AND local_id = ?", (domain, local_id)
        ).fetchone()
        return None if row is None else str(row[0])

    # --------------------------------------------------------------------------------------- links

    def link(self, domain: str, local_id: str, regional_id: str | None = None) -> str:
        """Link a fed record to a regional patient (ID-Link does this after consent); returns the regional ID.

        Without ``regional_id`` a new one is issued, unless the record is already linked (then that one is
        returned: linking twice is idempotent). Linking to another regional ID than the current one raises
        :class:`LinkConflictError`; unlink first.
        """
        self._domain(domain)
        with self._tx() as db:
            if not self._active(db, domain, local_id):
                raise UnknownPatientError(f"{local_id} in {domain}")
            current = self._regional_of(db, domain, local_id)
            if current is not None:
                if regional_id is None or regional_id == current:
                    return current
                raise LinkConflictError(f"{local_id} in {domain} is linked to {current}")
            if regional_id is None:
                cur = db.execute("INSERT INTO regional (regional_id, created) VALUES ('', ?)", (self._now(),))
                regional_id = f"R{cur.lastrowid:09d}"
                db.execute("UPDATE regional SET regional_id = ? WHERE seq = ?", (regional_id, cur.lastrowid))
            elif (
                db.execute("SELECT 1 FROM regional WHERE regional_id = ?", (regional_id,)).fetchone() is None
            ):
                raise UnknownPatientError(f"regional ID {regional_id}")
            db.execute(
                "INSERT INTO links (domain, local_id, regional_id, linked) VALUES (?, ?, ?, ?)",
                (domain, local_id, regional_id, self._now()),
            )
            return regional_id

    def link_many(self, records: Sequence[tuple[str, str]], regional_id: str | None = None) -> str:
        """Link several fed records (one patient's IDs at several facilities) to one regional patient, in one
        transaction: all of them or, on any refusal, none (ID-Link's 両院のID番号を紐付け as one act).

        The regional ID is ``regional_id``, else the one a record is already linked to, else a new one. A
        record linked to a different regional ID raises :class:`LinkConflictError`; an unknown record
        :class:`UnknownPatientError`. Records already linked to it are left as they are (idempotent).
        """
        if not records:
            raise UnknownPatientError("nothing to link")
        for domain, _ in records:
            self._domain(domain)
        with self._tx() as db:
            current: dict[tuple[str, str], str | None] = {}
            for domain, local_id in records:
                if not self._active(db, domain, local_id):
                    raise UnknownPatientError(f"{local_id} in {domain}")
                current[(domain, local_id)] = self._regional_of(db, domain, local_id)
            target = regional_id or next((r for r in current.values() if r is not None), None)
            for (domain, local_id), linked in current.items():
                if linked is not None and linked != target:
                    raise LinkConflictError(f"{local_id} in {domain} is linked to {linked}")
            if target is None:
                cur = db.execute("INSERT INTO regional (regional_id, created) VALUES ('', ?)", (self._now(),))
                target = f"R{cur.lastrowid:09d}"
                db.execute("UPDATE regional SET regional_id = ? WHERE seq = ?", (target, cur.lastrowid))
            elif db.execute("SELECT 1 FROM regional WHERE regional_id = ?", (target,)).fetchone() is None:
                raise UnknownPatientError(f"regional ID {target}")
            now = self._now()
            db.executemany(
                "INSERT INTO links (domain, local_id, regional_id, linked) VALUES (?, ?, ?, ?)",
                [(d, i, target, now) for (d, i), linked in current.items() if linked is None],
            )
            return target

    def unlink(self, domain: str, local_id: str) -> bool:
        """Remove the record's link (consent withdrawn for that facility); True if there was one."""
        self._domain(domain)
        with self._tx() as db:
            cur = db.execute("DELETE FROM links WHERE domain = ? AND local_id = ?", (domain, local_id))
            return cur.rowcount > 0

    # --------------------------------------------------------------------------------------- queries

    def get(self, domain: str, local_id: str) -> IndexRecord | None:
        """The active record for this ID, or None (unknown, or retired by a merge)."""
        with self._lock:
            row = self._db.execute(
                "SELECT p.domain, p.local_id, p.demographics, p.updated, l.regional_id FROM patients p"
                " LEFT JOIN links l USING (domain, local_id)"
                " WHERE p.domain = ? AND p.local_id = ? AND p.active = 1",
                (domain, local_id),
            ).fetchone()
        return None if row is None else _record(row)

    def known(self, domain: str, local_id: str) -> bool:
        """Is this ID known: an active record, or (regional domain) an issued regional ID with links."""
        if self._domain(domain).regional:
            with self._lock:
                row = self._db.execute("SELECT 1 FROM links WHERE regional_id = ?", (local_id,)).fetchone()
            return row is not None
        return self.get(domain, local_id) is not None

    def identifiers(self, domain: str, local_id: str) -> list[tuple[str, str]]:
        """Every (domain, ID) of the same regional patient, the regional ID included (first), and the given
        ID itself; only the given ID for an unlinked record. Raises :class:`UnknownPatientError`.

        One statement (the record, its link and its regional patient's other links): this is the PIX query's
        whole cost in the index, run once per ITI-9, so it does not go through :meth:`known` first.
        """
        if self._domain(domain).regional:
            with self._lock:
                rows = self._db.execute(_BY_REGIONAL, (local_id,)).fetchall()
            if not rows:  # known = issued and linked (as in :meth:`known`)
                raise UnknownPatientError(f"{local_id} in {domain}")
            regional: str | None = local_id
        else:
            with self._lock:
                rows = self._db.execute(_BY_LOCAL, (domain, local_id)).fetchall()
            if not rows:
                raise UnknownPatientError(f"{local_id} in {domain}")
            regional = rows[0][0]
            if regional is None:
                return [(domain, local_id)]
        return [(REGIONAL_NAMESPACE, str(regional)), *((str(r[1]), str(r[2])) for r in rows if r[3])]

    def regional_id(self, domain: str, local_id: str) -> str | None:
        """The regional ID this record is linked to, or None (unlinked or never fed)."""
        with self._lock:
            return self._regional_of(self._db, domain, local_id)

    def search(self, criteria: SearchCriteria, limit: int | None = None) -> list[IndexRecord]:
        """PDQ: active records matching every given criterion, ordered by (domain, local ID).

        Names match after :func:`normalize_kana`, family and given name each in any PID-5 repetition (so a
        kanji family name with a kana given name matches too); exact, or a prefix when ending with ``*``.
        """
        where = ["p.active = 1"]
        args: list[object] = []

        def cond(column: str, value: str) -> str:
            if value.endswith("*"):
                args.append(value[:-1])
                return f"substr({column}, 1, {len(value) - 1}) = ?"
            args.append(value)
            return f"{column} = ?"

        family, given = normalize_kana(criteria.family), normalize_kana(criteria.given)
        for column, value in (("family", family), ("given", given)):
            if value:
                where.append(
                    "EXISTS (SELECT 1 FROM names n WHERE n.domain = p.domain AND n.local_id = p.local_id"
                    f" AND {cond('n.' + column, value)})"
                )
        if criteria.birth_date:
            where.append(cond("p.birth_date", criteria.birth_date[:8]))
        if criteria.sex:
            where.append(cond("p.sex", criteria.sex.upper()))
        if criteria.postcode:
            where.append(cond("p.postcode", _postcode(criteria.postcode)))
        if criteria.identifier_domain == REGIONAL_NAMESPACE:
            link_conds = ["k.domain = p.domain", "k.local_id = p.local_id"]
            if criteria.identifier:
                link_conds.append(cond("k.regional_id", criteria.identifier))
            where.append(f"EXISTS (SELECT 1 FROM links k WHERE {' AND '.join(link_conds)})")
        else:
            if criteria.identifier:
                where.append(cond("p.local_id", criteria.identifier))
            if criteria.identifier_domain:
                where.append(cond("p.domain", criteria.identifier_domain))
        sql = (
            "SELECT p.domain, p.local_id, p.demographics, p.updated, l.regional_id FROM patients p"
            f" LEFT JOIN links l USING (domain, local_id) WHERE {' AND '.join(where)}"
            " ORDER BY p.domain, p.local_id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_record(r) for r in rows]

    def count(self) -> int:
        """Active records (for tests and reports)."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM patients WHERE active = 1").fetchone()[0])


def _record(row: tuple[Any, ...]) -> IndexRecord:
    return IndexRecord(str(row[0]), str(row[1]), IndexDemographics.from_json(row[2]), str(row[3]), row[4])
