"""Locust users: viewers (HTTP on ``FastHttpUser`` + ITI-9/ITI-21 over MLLP) and the ITI-8 feeder.

A viewer runs one planned session (:meth:`simulator.workload.WorldPlan.session`) per pacing interval: log in
as a user of its facility, find the patient by PIX (its local ID) or PDQ (kana family name + birth date,
paged with continuation), open the timeline, fetch k entries, log out, with the session's think times in
between. The token is kept for the session. MLLP goes over TLS with the facility's own client certificate,
as a real facility's system connects.

Expected answers decide success:
* ``care`` and ``emergency`` steps must succeed (AA, 200/201; a fetched entry's bytes must be as long as
  the timeline said).
* ``outside`` sessions (a viewer outside the patient's consent): ``outside_timeline`` succeeds when the
  hub refuses (403/404) or answers with no entry and no ``ok`` source; ``outside_fetch`` (an entry another
  session saw) succeeds only on 403/404. Anything else is a failure whose reason starts ``consent-leak``,
  which fails the run whatever the SLOs say.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Final

from locust import User, constant, constant_pacing, task
from locust.contrib.fasthttp import FastHttpUser

from harness.load.config import HTTP_TIMEOUT_S, LoadConfig
from harness.load.stats import LEAK, http_failure
from harness.scenarios.hl7build import CHARSETS, Header, feed_message, pdq_message, pix_message, plan_person
from simulator.pki import ClientTls
from simulator.workload import (
    FeedMessage,
    PlannedSession,
    Rates,
    WorldPlan,
    default_workload,
    load_workload,
)
from synthetic.clock import jst_now

from .mllp import Message, MllpError, MllpSession

__all__ = ["LEAK", "Feeder", "LoadContext", "ViewerUser", "context"]

MAX_PDQ_PAGES: Final = 20


class SessionAbortedError(Exception):
    """A step failed (already reported to Locust): the rest of the session is skipped."""


class LoadContext:
    """Per process: the config, the world plan, TLS material and the session counter."""

    def __init__(self, cfg: LoadConfig) -> None:
        self.cfg = cfg
        workload = load_workload(Path(cfg.workload)) if cfg.workload else default_workload()
        spec = workload.shape.model_copy(update={"kind": cfg.shape, "multiplier": cfg.multiplier})
        self.workload = workload.model_copy(update={"shape": spec})
        self.plan = WorldPlan(Path(cfg.world), self.workload, cfg.seed)
        self.rates = Rates(self.workload, len(self.plan.patients), cfg.rate_override)
        self.tls = ClientTls(Path(cfg.tls_ca), Path(cfg.tls_certs)) if cfg.tls_ca and cfg.tls_certs else None
        self.regional_hd = f"^^^{cfg.regional_namespace}&{cfg.regional_oid}&ISO"  # QPD-4: a CX with only CX.4
        self.worker_index = 0
        self._sessions: itertools.count[int] | None = None
        self.seen_entries: dict[str, tuple[str, str]] = {}  # regional ID → an entry a viewer was shown
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        self._control = itertools.count(1)

    def next_session(self) -> PlannedSession:
        if self._sessions is None:
            self._sessions = itertools.count(self.worker_index, max(1, self.cfg.processes))
        return self.plan.session(next(self._sessions))

    def control_id(self) -> str:
        return f"L{self.worker_index}-{next(self._control)}"

    def mllp(self, facility: str, fire: Callable[..., Any]) -> MllpSession:
        tls = self.tls.context(facility) if self.tls is not None else None
        return MllpSession(
            self.cfg.mllp_host,
            self.cfg.mllp_port,
            tls=tls,
            timeout=self.cfg.timeout_s,
            fire=fire,
            facility=facility,
        )

    def header(self, sender: str, charset: str) -> Header:
        return Header(
            sender=sender,
            control_id=self.control_id(),
            timestamp=jst_now().strftime("%Y%m%d%H%M%S%z"),
            charset=charset,
            receiving_application=self.cfg.receiving_application,
            receiving_facility=self.cfg.receiving_facility,
        )


_context: LoadContext | None = None


def context() -> LoadContext:
    """This process's :class:`LoadContext` (built on first use from ``RHIN_LOAD_CONFIG``)."""
    global _context
    if _context is None:
        _context = LoadContext(LoadConfig.from_env())
    return _context


# ------------------------------------------------------------------------------------------- HL7 answers


def _ids(msg: Message) -> list[list[tuple[str, str]]]:
    """Every PID's PID-3 as (ID, namespace) pairs."""
    out = []
    for seg in msg.segments("PID"):
        d = seg.delimiters
        pairs = []
        for rep in seg.field(3).split(d.repetition):
            comps = rep.split(d.component)
            if comps and comps[0]:
                ns = comps[3].split(d.subcomponent)[0] if len(comps) > 3 else ""
                pairs.append((comps[0], ns))
        out.append(pairs)
    return out


def _regional(pairs: list[tuple[str, str]], namespace: str) -> str | None:
    return next((i for i, ns in pairs if ns == namespace), None)


# ------------------------------------------------------------------------------------------- viewer


class ViewerUser(FastHttpUser):
    """One clinician after another at the facilities the workload draws; one session per pacing interval."""

    abstract = True  # the locustfile makes the concrete class with the run's host and pacing
    connection_timeout = 10.0
    network_timeout = HTTP_TIMEOUT_S

    @task
    def session(self) -> None:
        ctx = context()
        s = ctx.next_session()
        mllp = ctx.mllp(s.facility, self.environment.events.request.fire)
        try:
            self._run(ctx, s, mllp)
        except SessionAbortedError:
            pass
        finally:
            mllp.close()

    def _think(self, ctx: LoadContext, s: PlannedSession, step: int) -> None:
        if step < len(s.think_s) and ctx.cfg.think_scale > 0:
            time.sleep(s.think_s[step] * ctx.cfg.think_scale)

    def _run(self, ctx: LoadContext, s: PlannedSession, mllp: MllpSession) -> None:
        facility = s.facility
        token = self._login(s)
        headers = {"Authorization": f"Bearer {token}"}
        self._think(ctx, s, 0)
        rid = self._find(ctx, s, mllp)
        self._think(ctx, s, 1)
        tag = {"care": "", "emergency": "emergency_", "outside": "outside_"}[s.intent]
        purpose = "emergency" if s.intent == "emergency" else "care"
        if s.intent == "emergency":
            body = {"reason": "救急搬送 (load test)", "minutes": ctx.workload.session.emergency_minutes}
            with self.client.post(
                f"/patients/{rid}/emergency", json=body, headers=headers, name="emergency",
                catch_response=True, context={"facility": facility},
            ) as r:  # fmt: skip
                if r.status_code != 201:
                    r.failure(http_failure(r))
                    raise SessionAbortedError
        with self.client.get(
            f"/patients/{rid}/timeline", params={"purpose": purpose}, headers=headers,
            name=f"{tag}timeline", catch_response=True, context={"facility": facility},
        ) as r:  # fmt: skip
            entries = self._timeline_outcome(ctx, s, rid, r)
        if s.intent == "outside":
            seen = ctx.seen_entries.get(rid)
            if seen is not None:
                self._outside_fetch(rid, seen, headers, facility)
        else:
            for n, entry in enumerate(_pick(entries, s.categories)):
                self._think(ctx, s, 2 + n)
                self._fetch(rid, entry, purpose, tag, headers, facility)
        self.client.post("/auth/logout", headers=headers, name="logout", context={"facility": facility})

    def _login(self, s: PlannedSession) -> str:
        body = {"facility": s.facility, "user_id": s.user.user_id, "password": s.user.password}
        with self.client.post(
            "/auth/login", json=body, name="login", catch_response=True, context={"facility": s.facility}
        ) as r:
            token = (r.json() or {}).get("token") if r.status_code == 200 else None
            if not isinstance(token, str):
                r.failure(http_failure(r))
                raise SessionAbortedError
            return token

    def _find(self, ctx: LoadContext, s: PlannedSession, mllp: MllpSession) -> str:
        """The patient's regional ID, from the hub's PIX or PDQ answer (as a viewer's system finds it)."""
        codec = CHARSETS[s.charset][0]
        fac = ctx.plan.facilities[s.facility]
        wanted = {
            (lid, ctx.plan.facilities[c].namespace)
            for c, lid in s.patient.local_ids.items()
            if c in ctx.plan.facilities
        }
        namespace = ctx.cfg.regional_namespace
        found_rid: list[str] = []

        def pix_names_patient(reply: Message) -> str | None:
            rid = next((r for ids in _ids(reply) if (r := _regional(ids, namespace))), None)
            found_rid[:] = [rid] if rid else []
            return None if rid else "PIX answer without the regional ID"

        def pdq_page_ok(reply: Message) -> str | None:
            for ids in _ids(reply):
                rid = _regional(ids, namespace)
                if rid is not None and wanted & set(ids):
                    found_rid[:] = [rid]
                    return None
            return None if reply.get("DSC", 1) else "PDQ answers do not list the patient"

        try:
            if s.find == "pix":
                qpd3 = f"{s.local_id}^^^{fac.namespace}&{fac.oid}&ISO"
                text = pix_message(ctx.header(s.facility, s.charset), f"Q{s.index}", qpd3, [ctx.regional_hd])
                mllp.exchange("pix", text, codec, check=pix_names_patient)
                return found_rid[0]
            fields = {"@PID.5.1.1": s.patient.family_kana, "@PID.7": s.patient.birth_date.replace("-", "")}
            tag = f"Q{s.index}"
            pointer: str | None = None
            page_size = ctx.workload.session.pdq_page
            for page in range(MAX_PDQ_PAGES):
                text = pdq_message(
                    ctx.header(s.facility, s.charset), tag, fields, [], quantity=page_size, pointer=pointer,
                )  # fmt: skip
                found = mllp.exchange("pdq" if page == 0 else "pdq_next", text, codec, check=pdq_page_ok)
                if found_rid:
                    return found_rid[0]
                pointer = found.reply.get("DSC", 1) or None
            raise SessionAbortedError(f"PDQ: more than {MAX_PDQ_PAGES} pages")
        except MllpError as exc:  # reported to Locust by the exchange, with its reason
            raise SessionAbortedError from exc

    def _timeline_outcome(
        self, ctx: LoadContext, s: PlannedSession, rid: str, r: Any
    ) -> list[dict[str, Any]]:
        body = r.json() if r.status_code == 200 else None
        entries = body.get("entries", []) if isinstance(body, dict) else []
        if s.intent == "outside":
            opened = [x for x in (body or {}).get("sources", []) if x.get("status") == "ok"] if body else []
            if r.status_code in (403, 404) or (r.status_code == 200 and not entries and not opened):
                r.success()
            else:
                r.failure(
                    f"{LEAK}: HTTP {r.status_code}, {len(entries)} entries for a viewer outside the consent"
                )
            return []
        if r.status_code != 200 or not isinstance(body, dict):
            r.failure(http_failure(r))
            raise SessionAbortedError
        if entries:
            first = entries[-1]
            ctx.seen_entries[rid] = (str(first["source"]), str(first["id"]))
        return list(entries)

    def _fetch(
        self, rid: str, entry: dict[str, Any], purpose: str, tag: str, headers: dict[str, str], facility: str
    ) -> None:
        path = f"/patients/{rid}/entries/{entry['source']}/{entry['id']}"
        with self.client.get(
            path, params={"purpose": purpose}, headers=headers, name=f"{tag}fetch", catch_response=True,
            context={"facility": facility},
        ) as r:  # fmt: skip
            if r.status_code != 200:
                r.failure(http_failure(r))
            elif entry.get("size") and len(r.content or b"") != int(entry["size"]):
                r.failure(f"size: {len(r.content or b'')} bytes, the timeline said {entry['size']}")

    def _outside_fetch(self, rid: str, seen: tuple[str, str], headers: dict[str, str], facility: str) -> None:
        with self.client.get(
            f"/patients/{rid}/entries/{seen[0]}/{seen[1]}", params={"purpose": "care"}, headers=headers,
            name="outside_fetch", catch_response=True, context={"facility": facility},
        ) as r:  # fmt: skip
            if r.status_code in (403, 404):
                r.success()
            else:
                r.failure(f"{LEAK}: HTTP {r.status_code} fetching an entry for a viewer outside the consent")


def _pick(entries: list[dict[str, Any]], categories: tuple[str, ...]) -> list[dict[str, Any]]:
    """The session's k entries: for each wanted category the newest not yet taken of it, else the newest
    entry left (a viewer opens something)."""
    left = list(entries)
    chosen = []
    for category in categories:
        if not left:
            break
        match = next((e for e in reversed(left) if e.get("category") == category), left[-1])
        left.remove(match)
        chosen.append(match)
    return chosen


# ------------------------------------------------------------------------------------------- feeder


class Feeder(User):
    """ITI-8 at the workload's rates × the shape's multiplier (Poisson arrivals, seeded), and once the
    "facility joins" burst: every patient of one facility registered back to back. Updates and the burst
    resend the world's own demographics, so a long-lived hub's patients stay as the world has them."""

    abstract = True
    fixed_count = 1
    wait_time = constant(0)
    _burst_done: ClassVar[bool] = False

    def on_start(self) -> None:
        ctx = context()
        self._rng = random.Random(f"{ctx.cfg.seed}|feeder|{ctx.worker_index}")
        self._counts = {"register": 0, "update": 0}

    @task
    def feed(self) -> None:
        ctx = context()
        elapsed = time.monotonic() - ctx.started
        join_at = ctx.workload.feeds.join_at_s
        if not Feeder._burst_done and elapsed >= join_at and ctx.plan.join_facility is not None:
            Feeder._burst_done = True
            self._burst(ctx)
            return
        reg, upd = ctx.plan.feed_rate_per_s()
        multiplier = ctx.rates.multiplier_at(elapsed) or 0.0
        total = (reg + upd) * multiplier
        wait = self._rng.expovariate(total) if total > 0 else math.inf
        wait = min(wait, 1.0, max(0.0, join_at - elapsed) if not Feeder._burst_done else 1.0)
        if wait < 1.0 and (Feeder._burst_done or elapsed + wait < join_at):
            time.sleep(wait)
            kind = "register" if self._rng.random() < reg / (reg + upd) else "update"
            index = self._counts[kind] * max(1, ctx.cfg.processes) + ctx.worker_index
            self._counts[kind] += 1
            self._send(ctx, ctx.plan.feed(index, kind))  # type: ignore[arg-type]
        else:
            time.sleep(max(0.0, wait if math.isfinite(wait) else 1.0))

    def _send(self, ctx: LoadContext, m: FeedMessage, session: MllpSession | None = None) -> None:
        own = session is None
        mllp = session or ctx.mllp(m.facility, self.environment.events.request.fire)
        event = "A08" if m.kind == "update" else "A04"
        fac = ctx.plan.facilities[m.facility]
        pid3 = f"{m.local_id}^^^{fac.namespace}&{fac.oid}&ISO^PI"
        person = plan_person(m.patient, m.phone)
        text = feed_message(ctx.header(m.facility, "iso-2022-jp"), event, pid3, person)
        try:
            mllp.exchange(f"feed_{m.kind}", text, CHARSETS["iso-2022-jp"][0])
        except MllpError:
            pass  # reported to Locust as a failure already
        finally:
            if own:
                mllp.close()

    def _burst(self, ctx: LoadContext) -> None:
        burst = ctx.plan.join_burst()
        if not burst:
            return
        mllp = ctx.mllp(burst[0].facility, self.environment.events.request.fire)
        try:
            for m in burst:
                self._send(ctx, m, mllp)
        finally:
            mllp.close()


# ------------------------------------------------------------------------------------------- benchmark loops


def _bench_items() -> list[list[str]]:
    cfg = context().cfg
    if cfg.bench_items is None:
        raise RuntimeError(f"mode {cfg.mode!r} needs bench_items")
    with open(cfg.bench_items, encoding="utf-8") as f:
        items: list[list[str]] = json.load(f)
    return items


class PixLoop(User):
    """Benchmark: ITI-9 back to back on one persistent connection per user, over ``bench_items``
    ``[facility, local ID, namespace, oid]`` (what bench_pix.py's bare asyncio driver sends)."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self._items = _bench_items()
        self._n = random.Random(id(self)).randrange(len(self._items))
        self._conns: dict[str, MllpSession] = {}

    def on_stop(self) -> None:
        for conn in self._conns.values():
            conn.close()

    @task
    def query(self) -> None:
        ctx = context()
        facility, local_id, namespace, oid = self._items[self._n % len(self._items)]
        self._n += 1
        conn = self._conns.get(facility)
        if conn is None:
            conn = self._conns[facility] = ctx.mllp(facility, self.environment.events.request.fire)
        text = pix_message(ctx.header(facility, "utf-8"), "QB", f"{local_id}^^^{namespace}&{oid}&ISO", [])
        with contextlib.suppress(MllpError):
            conn.exchange("pix", text, "utf-8")


class TimelineLoop(FastHttpUser):
    """Benchmark: log in once, then timelines back to back over ``bench_items``
    ``[facility, user ID, password, regional ID]`` (the bare aiohttp driver's requests)."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        items = _bench_items()
        self._item = items[random.Random(id(self)).randrange(len(items))]
        facility, user_id, password, _ = self._item
        reply = self.client.post(
            "/auth/login", json={"facility": facility, "user_id": user_id, "password": password}, name="login"
        )
        self._headers = {"Authorization": f"Bearer {reply.json()['token']}"}

    @task
    def timeline(self) -> None:
        with self.client.get(
            f"/patients/{self._item[3]}/timeline", headers=self._headers, name="timeline", catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(http_failure(r))


def concrete_users(cfg: LoadConfig) -> list[type[User]]:
    """The run's user classes: the viewer with its host and pacing, and the feeder when feeds are on (or
    one benchmark loop, ``mode`` pix / timeline)."""
    if cfg.mode == "pix":
        return [type("RhinPixLoop", (PixLoop,), {"abstract": False})]
    if cfg.mode == "timeline":
        return [type("RhinTimelineLoop", (TimelineLoop,), {"abstract": False, "host": cfg.http})]
    viewer = type(
        "RhinViewer",
        (ViewerUser,),
        {"abstract": False, "host": cfg.http, "wait_time": constant_pacing(cfg.pacing_s)},
    )
    classes: list[type[User]] = [viewer]
    if cfg.feeds:
        classes.append(type("RhinFeeder", (Feeder,), {"abstract": False}))
    return classes
