"""``GET /patients/{id}/timeline`` and ``GET /patients/{id}/entries/{source}/{entry}``: a patient's records
across facilities, through their gateways. The decisions and the fan-out are :mod:`..records`' (its
docstring says how a timeline is planned, asked for and merged, and what each source status means); these
routes add the HTTP: parameters, the refusals, the audit before the answer, Server-Timing, streaming.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import aiohttp
from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from simulator.gateway.entries import EntryRef, parse_entry_id
from simulator.gateway.errors import EntryIdError

from ..accounts import Session
from ..deps import Hub, HubGateways, User
from ..policy import Purpose, may_know
from ..records import (
    DEFAULT_TIMEOUT_MS,
    Gateways,
    SourceStatus,
    decide,
    fan_out,
    merge,
    outcome_of,
    parse_categories,
    plan_sources,
    viewer_of,
)
from ..service import HubServices, Refused, unknown_patient
from .fields import CODE_PATTERN, PathID

__all__ = ["EntryView", "SourceView", "TimelineReply", "router"]

router = APIRouter(tags=["records"])
Timeout = Annotated[int, Query(ge=50, le=60_000)]


class SourceView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facility: str
    status: SourceStatus
    reason: str
    entries: int
    elapsed_ms: float


class EntryView(BaseModel):
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


class TimelineReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regional_id: str
    purpose: str
    entries: list[EntryView]
    sources: list[SourceView]


@router.get("/patients/{regional_id}/timeline", response_model=TimelineReply, responses={404: {}, 422: {}})
async def timeline(
    regional_id: PathID,
    user: User,
    hub: Hub,
    gateways: HubGateways,
    purpose: Purpose = "care",
    categories: Annotated[str | None, Query(max_length=1000)] = None,
    from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{8}$")] = None,
    to: Annotated[str | None, Query(pattern=r"^\d{8}$")] = None,
    timeout_ms: Timeout = DEFAULT_TIMEOUT_MS,
) -> Response:
    marks = [("entered", time.perf_counter())]
    wanted = parse_categories(categories)
    now = hub.local_now()
    state, local_ids = hub.patient(regional_id, now.date())  # 404 for an unknown patient
    action = "emergency-view" if purpose == "emergency" else "timeline"
    if not may_know(state, user.facility, now):
        await hub.record(user, action, "failure", patient=regional_id, reason="not-related")
        raise unknown_patient(regional_id, "not-related")
    plans = plan_sources(hub, viewer_of(hub, user), state, local_ids, wanted, now, purpose)
    params = {k: v for k, v in (("from", from_), ("to", to)) if v}
    marks.append(("plan", time.perf_counter()))
    results = await fan_out(gateways, plans, params, timeout_ms / 1000)
    marks.append(("sources", time.perf_counter()))
    merged, sources = merge(plans, results)
    statuses = {str(s["facility"]): str(s["status"]) for s in sources}
    await hub.record(
        user,
        action,
        outcome_of(statuses),
        patient=regional_id,
        target=",".join(code for code, v in statuses.items() if v == "ok"),
        reason=purpose,
        details={"sources": statuses, "entries": [f"{e['source']}/{e['id']}" for e in merged]},
    )
    marks.append(("audit", time.perf_counter()))
    body = {"regional_id": regional_id, "purpose": purpose, "entries": merged, "sources": sources}
    # Serialised here, not validated again: the shapes above are TimelineReply's (a test checks it).
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    marks.append(("encode", time.perf_counter()))
    return Response(payload, media_type="application/json", headers={"Server-Timing": _server_timing(marks)})


def _server_timing(marks: list[tuple[str, float]]) -> str:
    """Server-Timing (W3C): where the hub's time went, so a client can tell the hub from the gateways.
    ``marks`` are (phase, perf_counter at its end), the first the start; a ``total`` closes the list."""
    spans = [(name, end - start) for (_, start), (name, end) in itertools.pairwise(marks)]
    spans.append(("total", marks[-1][1] - marks[0][1]))
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in spans)


async def _open_entry(
    hub: HubServices,
    gateways: Gateways,
    user: Session,
    regional_id: str,
    source: str,
    entry_id: str,
    purpose: Purpose,
    timeout_ms: int,
) -> tuple[EntryRef, aiohttp.ClientResponse]:
    """Decide the fetch again (consent may have changed since the timeline) and open the gateway's answer;
    every refusal is a :class:`Refused`."""
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
    decision = decide(hub, viewer_of(hub, user), state, info, ref.category, now, purpose)
    if not decision.allowed:
        raise Refused(403, decision.reason, f"not allowed: {decision.reason}")
    if source not in gateways.addresses:
        raise Refused(502, "no-gateway", f"no gateway is known for {source}")
    try:
        reply: aiohttp.ClientResponse = await asyncio.wait_for(
            gateways.get(source, f"/entries/{entry_id}"), timeout_ms / 1000
        )
    except TimeoutError as exc:
        raise Refused(504, "gateway-timeout", f"{source} did not answer in {timeout_ms} ms") from exc
    except aiohttp.ClientError as exc:
        raise Refused(502, "gateway-error", f"{source}: {type(exc).__name__}") from exc
    if reply.status != 200:
        reply.release()
        status = 404 if reply.status == 404 else 502
        raise Refused(status, f"gateway-{reply.status}", f"{source} answered {reply.status}")
    return ref, reply


FETCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}},
    400: {},
    403: {},
    404: {},
    502: {},
    504: {},
}


@router.get(
    "/patients/{regional_id}/entries/{source}/{entry_id}",
    response_class=StreamingResponse,
    responses=FETCH_RESPONSES,
)
async def fetch(
    regional_id: PathID,
    source: Annotated[str, PathParam(min_length=1, max_length=16, pattern=CODE_PATTERN)],
    entry_id: Annotated[str, PathParam(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9._~\-]+$")],
    user: User,
    hub: Hub,
    gateways: HubGateways,
    purpose: Purpose = "care",
    timeout_ms: Timeout = DEFAULT_TIMEOUT_MS,
) -> StreamingResponse:
    action = "emergency-view" if purpose == "emergency" else "fetch"
    target = f"{source}/{entry_id}"
    try:
        ref, reply = await _open_entry(
            hub, gateways, user, regional_id, source, entry_id, purpose, timeout_ms
        )
    except Refused as exc:
        await hub.record(user, action, "failure", patient=regional_id, target=target, reason=exc.audit_reason)
        raise
    details = {"category": ref.category, "kind": ref.kind}
    await hub.record(
        user, action, "success", patient=regional_id, target=target, reason=purpose, details=details
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
