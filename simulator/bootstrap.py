"""Bootstrap a running hub from a world, through its real interfaces, exactly as facilities would.

Three phases, each over the hub's sockets (never by calling hub code):

1. **feed** — every patient registration at every facility (world.sqlite ``local_ids``, in first-visit order)
   as ITI-8 ADT^A04 from that facility (MSH-4 = its code, PID-3 in its own domain), HL7 2.5 in
   ISO-2022-JP as JAHIS senders write it (UTF-8 when a name has a character outside JIS X 0208), over
   persistent MLLP connections — over TLS with the facility's own certificate when the network has them
   (one connection per facility, several facilities at a time). Each must be answered AA.
2. **link** — per registered patient, a user of a disclosing facility (the one that took the consent
   where it discloses, else the first disclosing facility the patient attends, else any) links every local ID
   of the patient to one regional ID (``POST /links``): ID-Link's 患者登録し両院のID番号を紐付け.
3. **consent** — each patient's consent documents in date order (form, 連携先追加, 同意撤回), registered
   by a user of the facility that took the paper.

Idempotent: a repeated feed replaces a record with itself, a repeated link answers ``created: false``, a
repeated consent document answers 409 and is counted as already there. A marker in the hub's data directory
(``bootstrap.json``, with the world's identity and the regional IDs issued) records a completed run, and a
second run on the same data sends nothing at all. The marker also maps each world patient to the regional ID
the hub issued, for scenarios and load tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from hl7wire import (
    ISO2022_JP,
    MSH18,
    UTF8,
    Field,
    Message,
    MLLPClient,
    Raw,
    Repeated,
    UnencodableError,
    decode,
)
from simulator.hub.facilities import Facilities
from simulator.network import NetworkInfo
from synthetic.clock import jst_now

__all__ = ["MARKER", "BootstrapError", "BootstrapStats", "bootstrap"]

MARKER = "bootstrap.json"
Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``, called as work completes (phase: feed, link, consent)."""


class BootstrapError(Exception):
    """The hub refused what a facility would send (the message names the record and the answer)."""


@dataclass
class BootstrapStats:
    feeds: int = 0
    links: int = 0
    links_new: int = 0
    consent_documents: int = 0
    consent_already: int = 0
    patients: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


@dataclass(frozen=True)
class _Registration:
    patient_index: int
    patient_id: str
    facility: str
    local_id: str
    family: str
    given: str
    family_kana: str
    given_kana: str
    sex: str
    birth_date: str
    postcode: str
    address: str


def _world_identity(world: dict[str, Any]) -> dict[str, Any]:
    return {k: world.get(k) for k in ("profile", "seed", "registered_patients", "reference_date")}


def _registrations(db: sqlite3.Connection) -> list[_Registration]:
    rows = db.execute(
        "SELECT l.patient_index, p.patient_id, l.facility_code, l.local_id, p.family_name, p.given_name,"
        " p.family_kana, p.given_kana, p.sex, p.birth_date, p.postcode, p.address"
        " FROM local_ids l JOIN patients p USING (patient_index)"
        " ORDER BY l.first_visit, l.facility_code, l.local_id"
    ).fetchall()
    return [_Registration(*r) for r in rows]


# MSH-18 per codec, JIS first; JIS messages also name the ISO 2022 handling scheme in MSH-20 (not MSH-19,
# the message language, where the first version wrote it).
_CHARSETS: Final[tuple[tuple[str, dict[int, Field]], ...]] = (
    (ISO2022_JP, {18: Raw(MSH18[ISO2022_JP]), 20: "ISO 2022-1994"}),
    (UTF8, {18: Raw(MSH18[UTF8])}),
)


def a04(reg: _Registration, namespace: str, control: str, now: dt.datetime) -> bytes:
    """ITI-8 A04 for one registration, in ISO-2022-JP (MSH-18 ``~ISO IR87``) or else UTF-8."""
    stamp = now.strftime("%Y%m%d%H%M%S") + "+0900"
    names = Repeated(
        [reg.family, reg.given, "", "", "", "", "L", "I"],
        [reg.family_kana, reg.given_kana, "", "", "", "", "L", "P"],
    )
    pid: dict[int, Field] = {
        1: "1",
        3: [reg.local_id, "", "", namespace, "PI"],
        5: names,
        7: reg.birth_date.replace("-", "")[:8],
        8: reg.sex,
        11: [reg.address, "", "", "", reg.postcode, "JPN", "H"],
    }
    for codec, charset in _CHARSETS:
        msh: dict[int, Field] = {3: "RHIN_BOOT", 4: reg.facility, 5: "RHIN_HUB", 6: "RHIN", 7: stamp}
        msh |= {9: ["ADT", "A04", "ADT_A01"], 10: control, 11: "P", 12: "2.5", **charset}
        message = Message()
        message.add("MSH", msh)
        message.add("EVN", ["A04", stamp])
        message.add("PID", pid)
        try:
            return message.encode(codec)
        except UnencodableError:
            continue
    raise BootstrapError(f"{reg.facility}/{reg.local_id}: the name cannot be encoded")  # pragma: no cover


class _Api:
    """JSON POSTs to the hub over one pooled aiohttp session (cheaper per request than httpx: on a 2-core
    machine the bootstrap's client shares the CPU with the hub it feeds)."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=120),
            trust_env=False,
        )

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.post(self.base_url + path, json=body, headers=headers) as reply:
            text = await reply.text()
            try:
                return reply.status, json.loads(text)
            except json.JSONDecodeError:
                return reply.status, text

    async def close(self) -> None:
        await self.session.close()


class _Sessions:
    """One logged-in user per facility (the first physician, else the first user of a kind that may
    administer consent there, else the first user), on demand. Which kinds may is the hub's own rule
    (:meth:`simulator.hub.facilities.Facilities.consent_administrators`, with the world's override)."""

    def __init__(self, client: _Api, facilities: dict[str, dict[str, Any]], rules: Facilities) -> None:
        self.client = client
        self.facilities = facilities
        self.rules = rules
        self._tokens: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def may_administer(self, facility: str) -> bool:
        """Has ``facility`` a user who may register consent papers there?"""
        admins = self.rules.consent_administrators(facility)
        return any(u["viewer_kind"] in admins for u in self.facilities[facility].get("users", ()))

    async def headers(self, facility: str) -> dict[str, str]:
        async with self._locks[facility]:
            if facility not in self._tokens:
                users = self.facilities[facility]["users"]
                admins = self.rules.consent_administrators(facility)
                admin = next((u for u in users if u["viewer_kind"] in admins), users[0])
                user = next((u for u in users if u["viewer_kind"] == "physician"), admin)
                status, answer = await self.client.post(
                    "/auth/login",
                    {"facility": facility, "user_id": user["user_id"], "password": user["password"]},
                )
                if status != 200:
                    raise BootstrapError(f"login at {facility} as {user['user_id']}: {status} {answer}")
                self._tokens[facility] = answer["token"]
        return {"Authorization": f"Bearer {self._tokens[facility]}"}


async def _feed(
    info: NetworkInfo,
    regs: Sequence[_Registration],
    namespaces: dict[str, str],
    connections: int,
    progress: Progress,
) -> int:
    host, port = info.mllp
    now = jst_now()
    done = 0
    # Over TLS a connection speaks for the one facility of its certificate: one queue per facility, each
    # facility's registrations in order, and ``connections`` workers at a time taking whole facilities.
    queues: dict[str, asyncio.Queue[tuple[int, _Registration]]] = {}
    for i, reg in enumerate(regs):
        queues.setdefault(reg.facility, asyncio.Queue()).put_nowait((i, reg))

    tls = info.mllp_tls

    async def worker(facility: str) -> None:
        nonlocal done
        context = tls.context(facility) if tls is not None else None
        async with MLLPClient(host, port, timeout=30, tls=context) as client:
            queue_ = queues[facility]
            while True:
                try:
                    i, reg = queue_.get_nowait()
                except asyncio.QueueEmpty:
                    return
                control = f"B{i + 1:09d}"
                raw = await client.send(a04(reg, namespaces[reg.facility], control, now))
                reply, _ = decode(raw)
                if reply.get("MSA", 1) != "AA" or reply.get("MSA", 2) != control:
                    raise BootstrapError(f"feed {reg.facility}/{reg.local_id}: {raw[:300]!r}")
                done += 1
                if done % 200 == 0 or done == len(regs):
                    progress("feed", done, len(regs))

    await _pooled(sorted(queues, key=lambda f: -queues[f].qsize()), worker, max(1, connections))
    return done


async def _pooled(items: Iterable[Any], work: Callable[[Any], Any], concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> None:
        async with semaphore:
            await work(item)

    await asyncio.gather(*(one(i) for i in items))


@dataclass
class _World:
    """What the bootstrap reads from a world: its facilities, every registration and the consent papers."""

    json: dict[str, Any]
    facilities: dict[str, dict[str, Any]]
    namespaces: dict[str, str]
    disclosing: list[str]
    regs: list[_Registration]
    forms: dict[
        int, tuple[Any, ...]
    ]  # patient index → (form_id, patient, pattern, signed_on, taken_at, emergency)
    form_facilities: dict[str, list[str]]
    additions: list[tuple[Any, ...]]
    withdrawals: list[tuple[Any, ...]]
    by_patient: dict[int, list[_Registration]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[int, list[_Registration]] = defaultdict(list)
        for reg in self.regs:
            grouped[reg.patient_index].append(reg)
        self.by_patient = dict(grouped)


def _read_world(world_dir: Path) -> _World:
    world = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
    facilities = {str(f["code"]): f for f in world["facilities"]}
    db = sqlite3.connect(f"file:{world_dir / 'world.sqlite'}?mode=ro", uri=True)
    try:
        forms = {
            r[1]: r
            for r in db.execute(
                "SELECT form_id, patient_index, pattern, signed_on, taken_at, emergency_allowed"
                " FROM consent_forms"
            )
        }
        form_facilities: dict[str, list[str]] = defaultdict(list)
        for form_id, code in db.execute(
            "SELECT form_id, facility_code FROM consent_facilities ORDER BY form_id, facility_code"
        ):
            form_facilities[form_id].append(code)
        return _World(
            json=world,
            facilities=facilities,
            namespaces={code: f["assigning_authority"]["namespace"] for code, f in facilities.items()},
            disclosing=[code for code, f in facilities.items() if f.get("network_role") == "disclosing"],
            regs=_registrations(db),
            forms=forms,
            form_facilities=form_facilities,
            additions=db.execute(
                "SELECT form_id, patient_index, base_form_id, facility_code, signed_on, taken_at"
                " FROM consent_additions"
            ).fetchall(),
            withdrawals=db.execute(
                "SELECT form_id, patient_index, base_form_id, withdrawn_on, taken_at FROM consent_withdrawals"
            ).fetchall(),
        )
    finally:
        db.close()


async def _link(
    w: _World, client: _Api, sessions: _Sessions, stats: BootstrapStats, progress: Progress, concurrency: int
) -> dict[int, str]:
    """Phase 2: each patient's local IDs linked to one regional ID; patient index → that regional ID."""
    regional: dict[int, str] = {}

    def linker(patient: int) -> str:
        form = w.forms.get(patient)
        mine = [r.facility for r in w.by_patient[patient]]
        if form is not None and form[4] in w.disclosing:
            return str(form[4])
        return next((c for c in mine if c in w.disclosing), w.disclosing[0])

    async def link(patient: int) -> None:
        headers = await sessions.headers(linker(patient))
        first, *rest = w.by_patient[patient]
        # One operation links all of the patient's IDs (患者登録し両院のID番号を紐付け).
        body = {
            "facility": first.facility,
            "local_id": first.local_id,
            "others": [{"facility": r.facility, "local_id": r.local_id} for r in rest],
        }
        status, answer = await client.post("/links", body, headers)
        if status != 200:
            raise BootstrapError(f"link {first.facility}/{first.local_id}: {status} {answer}")
        stats.links += 1 + len(rest)
        stats.links_new += bool(answer["created"]) + sum(bool(o["created"]) for o in answer["others"])
        regional[patient] = answer["regional_id"]
        if len(regional) % 100 == 0 or len(regional) == len(w.by_patient):
            progress("link", len(regional), len(w.by_patient))

    await _pooled(sorted(w.by_patient), link, concurrency)
    return regional


_Document = tuple[str, str, str, dict[str, Any]]
"""(date, order within a day, facility that took the paper, request): one consent paper to register."""


def _consent_documents(w: _World) -> dict[int, list[_Document]]:
    """Each patient's consent papers (form, 連携先追加, 同意撤回) as requests to the hub."""
    docs: dict[int, list[_Document]] = defaultdict(list)
    for form_id, patient, pattern, signed_on, taken_at, emergency in w.forms.values():
        body = {
            "form_id": form_id,
            "pattern": pattern,
            "facilities": w.form_facilities.get(form_id, []),
            "signed_on": signed_on,
            "emergency_allowed": bool(emergency),
        }
        docs[patient].append((signed_on, "0", taken_at, {"path": "consents", "json": body}))
    for form_id, patient, base, code, signed_on, taken_at in w.additions:
        body = {"form_id": form_id, "base_form_id": base, "facility": code, "signed_on": signed_on}
        docs[patient].append((signed_on, "1", taken_at, {"path": "consents/additions", "json": body}))
    for form_id, patient, base, withdrawn_on, taken_at in w.withdrawals:
        body = {"form_id": form_id, "base_form_id": base, "withdrawn_on": withdrawn_on}
        docs[patient].append((withdrawn_on, "2", taken_at, {"path": "consents/withdrawals", "json": body}))
    return docs


async def _consent(
    w: _World,
    client: _Api,
    sessions: _Sessions,
    regional: dict[int, str],
    stats: BootstrapStats,
    progress: Progress,
    concurrency: int,
) -> None:
    """Phase 3: each patient's consent documents in date order (patients in parallel: independent)."""
    docs = _consent_documents(w)
    total = sum(len(v) for v in docs.values())
    done = 0

    async def register(patient: int) -> None:
        nonlocal done
        rid = regional.get(patient)
        if rid is None:
            raise BootstrapError(f"patient {patient} has consent documents but no local ID")
        attends = sorted(
            {r.facility for r in w.by_patient[patient]}, key=lambda c: (c not in w.disclosing, c)
        )
        for _, _, taken_at, request in sorted(docs[patient], key=lambda d: (d[0], d[1])):
            # The facility that took the paper registers it: the hub takes papers only from a facility
            # linked to the patient, by a user of a kind that may administer consent. Where the paper's
            # facility has no such user, another of the patient's facilities does, as its agent.
            clerk = next(
                (c for c in [taken_at, *attends] if c in attends and sessions.may_administer(c)),
                taken_at,
            )
            headers = await sessions.headers(clerk)
            status, answer = await client.post(f"/patients/{rid}/{request['path']}", request["json"], headers)
            if status == 409 and answer["detail"]["reason"] == "duplicate-document":
                stats.consent_already += 1
            elif status != 201:
                raise BootstrapError(f"consent {request['json']['form_id']} of {rid}: {status} {answer}")
            stats.consent_documents += 1
            done += 1
            if done % 100 == 0 or done == total:
                progress("consent", done, total)

    await _pooled(sorted(docs), register, concurrency)


async def _bootstrap(
    world_dir: Path, info: NetworkInfo, progress: Progress, connections: int, concurrency: int
) -> tuple[BootstrapStats, dict[str, str]]:
    """The three phases in order, each timed; (stats, world patient ID → regional ID)."""
    w = _read_world(world_dir)
    stats = BootstrapStats(patients=len(w.by_patient))
    started = time.monotonic()
    stats.feeds = await _feed(info, w.regs, w.namespaces, connections, progress)
    stats.seconds["feed"] = round(time.monotonic() - started, 3)
    client = _Api(info.base_url, concurrency)
    try:
        sessions = _Sessions(client, w.facilities, Facilities.from_world(w.json))
        started = time.monotonic()
        regional = await _link(w, client, sessions, stats, progress, concurrency)
        stats.seconds["link"] = round(time.monotonic() - started, 3)
        started = time.monotonic()
        await _consent(w, client, sessions, regional, stats, progress, concurrency)
        stats.seconds["consent"] = round(time.monotonic() - started, 3)
    finally:
        await client.close()
    patients = {r.patient_index: r.patient_id for r in w.regs}
    return stats, {patients[p]: rid for p, rid in sorted(regional.items())}


def bootstrap(
    world_dir: Path,
    info: NetworkInfo,
    data_dir: Path,
    *,
    progress: Progress | None = None,
    connections: int = 8,
    concurrency: int = 16,
) -> BootstrapStats:
    """Bootstrap the hub of ``info`` from ``world_dir`` (see the module docstring); skip if already done."""
    world = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
    identity = _world_identity(world)
    marker = data_dir / MARKER
    if marker.is_file():
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = {}
        if previous.get("world") == identity and previous.get("complete"):
            stats = BootstrapStats(**previous["stats"])
            stats.skipped = True
            return stats
    stats, regional = asyncio.run(
        _bootstrap(world_dir, info, progress or (lambda *_: None), connections, concurrency)
    )
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {"world": identity, "complete": True, "stats": asdict(stats), "regional_ids": regional},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    tmp.replace(marker)
    return stats


def regional_ids(data_dir: Path) -> dict[str, str]:
    """World patient ID → the regional ID the hub issued, from a completed bootstrap's marker."""
    doc = json.loads((data_dir / MARKER).read_text(encoding="utf-8"))
    return dict(doc["regional_ids"])
