"""The record routes: a patient's timeline across facilities, and the fetch of one entry, through gateways.

ID-Link's data-link design: records stay at each disclosing facility, behind its gateway; the hub decides
and fetches at view time. For a timeline the hub asks :func:`.policy.may_view` for every (source facility,
item category) pair, fans out in parallel only to gateways of facilities that may contribute, asking each
only for the categories allowed, with a per-source timeout, and merges what comes back in time order.
Entries a gateway returns outside the allowed categories, or for another patient, are dropped (the hub
trusts its own decision, not the gateway's filtering). Every source gets a labelled status — ``ok``,
``timeout``, ``error``, ``not-disclosed`` (nothing requested is disclosed there, or no gateway) or
``denied`` (with the first rule that refused) — so a partial answer is never silent.

A fetch names the source facility and the gateway's entry ID. The ID alone gives the item category and the
local patient ID (:func:`simulator.gateway.entries.parse_entry_id`), so the decision is made again at fetch
time without trusting a client: consent may have been withdrawn since the timeline. The bytes are streamed
from the gateway unchanged.

Neither admits that a patient exists to a facility that may not know it (:func:`.policy.may_know`: not
linked, outside the consent in force, no live grant under it): it gets the 404 of an unknown regional ID,
audited as ``not-related``, rather than a timeline whose source list would say where the patient is seen.

Both are audited before the answer is sent: ``timeline`` (or ``emergency-view``) with the sources, their
statuses and the entry IDs returned; ``fetch`` with the entry; refusals with their reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import aiohttp
from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from simulator.gateway.entries import parse_entry_id
from simulator.gateway.errors import EntryIdError

from .accounts import Session
from .deps import User
from .facilities import FacilityInfo
from .policy import ALL, Decision, PatientState, Purpose, Viewer, may_know, may_view
from .service import HubServices, Refused, unknown_patient

__all__ = ["GatewayAddress", "Gateways", "install_record_routes"]

DEFAULT_TIMEOUT_MS = 5000
RegionalID = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._\-]*$")]
SourceStatus = Literal["ok", "timeout", "error", "not-disclosed", "denied"]


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    url: str  # base URL, e.g. http://127.0.0.1:40123
    secret: str  # the credential the hub presents (Bearer)


class Gateways:
    """Where each disclosing facility's gateway answers, and one pooled HTTP client (aiohttp) to reach them.

    aiohttp rather than httpx on this path: profiled under 20 concurrent viewers, httpx's client took ~40 %
    of the hub's CPU (per-request pool scans and async-library detection); aiohttp's connector costs a
    fraction of that. Connections are kept alive per gateway (``per_gateway`` at most).
    """

    def __init__(self, addresses: Mapping[str, GatewayAddress], *, per_gateway: int = 64) -> None:
        self.addresses = dict(addresses)
        self._session: aiohttp.ClientSession | None = None
        self._per_gateway = per_gateway

    @classmethod
    def from_file(cls, path: Path, facilities: Mapping[str, FacilityInfo]) -> Gateways:
        """From a network file's ``gateways`` section: ``{code: {"url": ..., "secret"?: ...}}``.

        The secret defaults to the facility's ``gateway_secret`` in the world (an external gateway may be
        given its own in the override file).
        """
        data = json.loads(path.read_text(encoding="utf-8"))
        section = data.get("gateways", data)
        out: dict[str, GatewayAddress] = {}
        for code, entry in section.items():
            info = facilities.get(code)
            secret = entry.get("secret") or (info.gateway_secret if info else "")
            out[str(code)] = GatewayAddress(str(entry["url"]).rstrip("/"), str(secret))
        return cls(out)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on the serving loop, at first use
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=self._per_gateway, ttl_dns_cache=None),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    def get(self, code: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        """A GET to one gateway with its credential (use as ``async with``)."""
        address = self.addresses[code]
        return self.session.get(
            address.url + path, params=params, headers={"Authorization": f"Bearer {address.secret}"}
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SourceView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facility: str
    status: SourceStatus
    reason: str
    entries: int
    elapsed_ms: float


class TimelineEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    id: str
    kind: str
    data_type: str
    category: str
    time: str
    care_date: str
    flag: str
    size: int
    content_type: str
    title: str


class Timeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regional_id: str
    purpose: str
    entries: list[TimelineEntry]
    sources: list[SourceView]


@dataclass
class _Plan:
    facility: FacilityInfo
    local_id: str
    allowed: frozenset[str]
    status: SourceStatus | None  # None: to be fetched
    reason: str


def _decide(
    hub: HubServices,
    viewer: Viewer,
    state: PatientState,
    source: FacilityInfo,
    category: str,
    now: dt.datetime,
    purpose: Purpose,
) -> Decision:
    """:func:`.policy.may_view` for one item of ``source``, with the network's viewer rules: the one
    decision both the timeline and the fetch take."""
    return may_view(
        viewer=viewer,
        patient=state,
        source_facility=source.code,
        source_disclosure=source.disclosure,
        category=category,
        now=now,
        purpose=purpose,
        rules=hub.facilities.rules,
    )


def _plan_source(
    hub: HubServices,
    viewer: Viewer,
    state: PatientState,
    source: FacilityInfo,
    local_id: str,
    wanted: frozenset[str],
    now: dt.datetime,
    purpose: Purpose,
) -> _Plan:
    decisions: dict[str, Decision] = {
        c: _decide(hub, viewer, state, source, c, now, purpose) for c in sorted(wanted)
    }
    allowed = frozenset(c for c, d in decisions.items() if d.allowed)
    if allowed:
        return _Plan(source, local_id, allowed, None, "ok")
    reasons = [d.reason for d in decisions.values()]
    other = next((r for r in reasons if r != "not-disclosed"), None)
    if other is None:
        return _Plan(source, local_id, allowed, "not-disclosed", "not-disclosed")
    return _Plan(source, local_id, allowed, "denied", other)


async def _list_source(
    gateways: Gateways, plan: _Plan, params: dict[str, str], timeout: float
) -> tuple[SourceStatus, str, list[dict[str, Any]]]:
    if plan.facility.code not in gateways.addresses:
        return "error", "no-gateway", []
    query = {**params, "categories": ",".join(sorted(plan.allowed))}

    async def listing() -> tuple[int, bytes]:
        async with gateways.get(plan.facility.code, f"/patients/{plan.local_id}/entries", query) as reply:
            return reply.status, await reply.read()

    try:
        status, raw = await asyncio.wait_for(listing(), timeout)
    except TimeoutError:
        return "timeout", f"no answer in {timeout * 1000:.0f} ms", []
    except aiohttp.ClientError as exc:
        return "error", f"{type(exc).__name__}: {exc}"[:200], []
    if status != 200:
        return "error", f"gateway answered {status}", []
    try:
        entries = json.loads(raw)["entries"]
        if not isinstance(entries, list):
            raise TypeError("entries is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        return "error", f"unreadable gateway answer: {exc}"[:200], []
    return "ok", "ok", entries


def _keep(entry: Mapping[str, Any], plan: _Plan) -> bool:
    """Only this patient's entries in an allowed category (the ID says both; the gateway's label agrees)."""
    try:
        ref = parse_entry_id(str(entry["id"]))
    except (EntryIdError, KeyError):
        return False
    return (
        ref.patient == plan.local_id
        and ref.category in plan.allowed
        and entry.get("category") == ref.category
    )


def _entry(source: str, e: Mapping[str, Any]) -> dict[str, Any]:
    """One merged entry, shaped as :class:`TimelineEntry` (plain dicts: a timeline can hold hundreds)."""
    return {
        "source": source,
        "id": str(e["id"]),
        "kind": str(e.get("kind", "")),
        "data_type": str(e.get("data_type", "")),
        "category": str(e.get("category", "")),
        "time": str(e.get("time", "")),
        "care_date": str(e.get("care_date", "")),
        "flag": str(e.get("flag", "")),
        "size": int(e.get("size", 0)),
        "content_type": str(e.get("content_type", "")),
        "title": str(e.get("title", "")),
    }


def _parse_categories(text: str | None) -> frozenset[str]:
    if not text:
        return ALL
    wanted = frozenset(c.strip() for c in text.split(",") if c.strip())
    unknown = sorted(wanted - ALL)
    if unknown:
        raise Refused(422, "unknown-category", f"unknown item categories: {', '.join(unknown[:5])}")
    return wanted


def install_record_routes(
    app: FastAPI,
    hub: HubServices,
    gateways: Gateways | None = None,
) -> None:
    """Add ``/patients/{id}/timeline`` and ``/patients/{id}/entries/{source}/{entry}`` to ``app``."""
    gw = gateways or Gateways({})
    app.state.gateways = gw

    def viewer_of(user: Session) -> Viewer:
        return Viewer(user.facility, hub.facility(user.facility).kind, user.viewer_kind)

    @app.get(
        "/patients/{regional_id}/timeline",
        tags=["records"],
        response_model=Timeline,
        responses={404: {}, 422: {}},
    )
    async def timeline(
        regional_id: RegionalID,
        user: User,
        purpose: Purpose = "care",
        categories: Annotated[str | None, Query(max_length=1000)] = None,
        from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{8}$")] = None,
        to: Annotated[str | None, Query(pattern=r"^\d{8}$")] = None,
        timeout_ms: Annotated[int, Query(ge=50, le=60_000)] = DEFAULT_TIMEOUT_MS,
    ) -> Response:
        entered = time.perf_counter()
        wanted = _parse_categories(categories)
        now = hub.local_now()
        state, local_ids = hub.patient(regional_id, now.date())  # 404 for an unknown patient
        action = "emergency-view" if purpose == "emergency" else "timeline"
        if not may_know(state, user.facility, now):
            await hub.record(user, action, "failure", patient=regional_id, reason="not-related")
            raise unknown_patient(regional_id, "not-related")
        viewer = viewer_of(user)
        plans: list[_Plan] = []
        for code, local_id in sorted(local_ids.items()):
            info = hub.facilities.get(code)
            if info is None:
                continue
            if not info.disclosing:
                plans.append(_Plan(info, local_id, frozenset(), "not-disclosed", "viewing-only facility"))
                continue
            plans.append(_plan_source(hub, viewer, state, info, local_id, wanted, now, purpose))
        params = {k: v for k, v in (("from", from_), ("to", to)) if v}

        async def run(plan: _Plan) -> tuple[SourceStatus, str, list[dict[str, Any]], float]:
            if plan.status is not None:
                return plan.status, plan.reason, [], 0.0
            started = time.perf_counter()
            status, reason, entries = await _list_source(gw, plan, params, timeout_ms / 1000)
            return (
                status,
                reason,
                [e for e in entries if _keep(e, plan)],
                (time.perf_counter() - started) * 1000,
            )

        planned = time.perf_counter()
        results = await asyncio.gather(*(run(p) for p in plans))
        fanned = time.perf_counter()
        merged = sorted(
            (
                _entry(p.facility.code, e)
                for p, (_, _, entries, _) in zip(plans, results, strict=True)
                for e in entries
            ),
            key=lambda e: (e["time"], e["source"], e["id"]),
        )
        sources = [
            {
                "facility": p.facility.code,
                "status": s,
                "reason": r,
                "entries": len(es),
                "elapsed_ms": round(ms, 3),
            }
            for p, (s, r, es, ms) in zip(plans, results, strict=True)
        ]
        statuses = {str(s["facility"]): str(s["status"]) for s in sources}
        outcome = "success" if all(v in ("ok", "not-disclosed") for v in statuses.values()) else "partial"
        if "ok" not in statuses.values() and "denied" in statuses.values():
            outcome = "denied"
        await hub.record(
            user,
            "emergency-view" if purpose == "emergency" else "timeline",
            outcome,
            patient=regional_id,
            target=",".join(code for code, v in statuses.items() if v == "ok"),
            reason=purpose,
            details={"sources": statuses, "entries": [f"{e['source']}/{e['id']}" for e in merged]},
        )
        audited = time.perf_counter()
        body = {"regional_id": regional_id, "purpose": purpose, "entries": merged, "sources": sources}
        # Serialised here, not validated again: the shapes above are Timeline's (a test checks it).
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        done = time.perf_counter()
        # Server-Timing (W3C): where the hub's time went, so a client can tell the hub from the gateways.
        timing = ", ".join(
            f"{name};dur={ms * 1000:.2f}"
            for name, ms in (
                ("plan", planned - entered),
                ("sources", fanned - planned),
                ("audit", audited - fanned),
                ("encode", done - audited),
                ("total", done - entered),
            )
        )
        return Response(payload, media_type="application/json", headers={"Server-Timing": timing})

    @app.get(
        "/patients/{regional_id}/entries/{source}/{entry_id}",
        tags=["records"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            400: {},
            403: {},
            404: {},
            502: {},
            504: {},
        },
    )
    async def fetch(
        regional_id: RegionalID,
        source: Annotated[str, PathParam(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z]+$")],
        entry_id: Annotated[str, PathParam(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9._~\-]+$")],
        user: User,
        purpose: Purpose = "care",
        timeout_ms: Annotated[int, Query(ge=50, le=60_000)] = DEFAULT_TIMEOUT_MS,
    ) -> StreamingResponse:
        action = "emergency-view" if purpose == "emergency" else "fetch"
        target = f"{source}/{entry_id}"
        try:
            try:
                ref = parse_entry_id(entry_id)
            except EntryIdError as exc:
                raise Refused(400, "bad-entry-id", str(exc)) from exc
            now = hub.local_now()
            state, local_ids = hub.patient(regional_id, now.date())  # 404 for an unknown patient
            if not may_know(state, user.facility, now):
                raise unknown_patient(regional_id, "not-related")
            info = hub.facility(source)
            local_id = local_ids.get(source)
            if local_id is None or ref.patient != local_id:
                raise Refused(404, "unknown-entry", "no such entry for this patient at that facility")
            decision = _decide(hub, viewer_of(user), state, info, ref.category, now, purpose)
            if not decision.allowed:
                raise Refused(403, decision.reason, f"not allowed: {decision.reason}")
            if source not in gw.addresses:
                raise Refused(502, "no-gateway", f"no gateway is known for {source}")
            try:
                reply = await asyncio.wait_for(gw.get(source, f"/entries/{entry_id}"), timeout_ms / 1000)
            except TimeoutError as exc:
                raise Refused(504, "gateway-timeout", f"{source} did not answer in {timeout_ms} ms") from exc
            except aiohttp.ClientError as exc:
                raise Refused(502, "gateway-error", f"{source}: {type(exc).__name__}") from exc
            if reply.status != 200:
                reply.release()
                status = 404 if reply.status == 404 else 502
                raise Refused(status, f"gateway-{reply.status}", f"{source} answered {reply.status}")
        except Refused as exc:
            await hub.record(
                user, action, "failure", patient=regional_id, target=target, reason=exc.audit_reason
            )
            raise
        await hub.record(
            user,
            action,
            "success",
            patient=regional_id,
            target=target,
            reason=purpose,
            details={"category": ref.category, "kind": ref.kind},
        )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in reply.content.iter_chunked(64 * 1024):
                    yield chunk
            finally:
                reply.release()

        headers = {k: v for k, v in reply.headers.items() if k.lower() in ("content-length", "content-type")}
        return StreamingResponse(
            body(),
            status_code=200,
            headers=headers,
            media_type=reply.headers.get("content-type", "application/octet-stream"),
        )
