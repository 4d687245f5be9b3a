"""The records behind the record routes (:mod:`.routes.records`): the gateways, and a patient's timeline
planned, fanned out and merged across facilities.

ID-Link's data-link design: records stay at each disclosing facility, behind its gateway; the hub decides
and fetches at view time. For a timeline the hub asks :func:`.policy.may_view_each` (``may_view``'s
answers) for every (source facility, item category) pair, fans out in parallel only to gateways of
facilities that may contribute, asking each only for the categories allowed, with a per-source timeout,
and merges what comes back in time order. Entries a gateway returns outside the allowed categories, or for
another patient, are dropped (the hub trusts its own decision, not the gateway's filtering). Every source
gets a labelled status — ``ok``, ``timeout``, ``error``, ``not-disclosed`` (nothing requested is disclosed
there, or no gateway) or ``denied`` (with the first rule that refused) — so a partial answer is never
silent.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from simulator.gateway.entries import parse_entry_id
from simulator.gateway.errors import EntryIdError

from .accounts import Session
from .facilities import FacilityInfo
from .policy import ALL, Decision, PatientState, Purpose, Viewer, may_view, may_view_each
from .service import HubServices, Refused

__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "GatewayAddress",
    "Gateways",
    "Plan",
    "SourceResult",
    "SourceStatus",
    "decide",
    "fan_out",
    "merge",
    "outcome_of",
    "parse_categories",
    "plan_sources",
    "viewer_of",
]

DEFAULT_TIMEOUT_MS = 5000
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


@dataclass
class Plan:
    """What the hub asks one source for (``allowed`` categories), or why it asks nothing (``status``)."""

    facility: FacilityInfo
    local_id: str
    allowed: frozenset[str]
    status: SourceStatus | None  # None: to be fetched
    reason: str


def decide(
    hub: HubServices,
    viewer: Viewer,
    state: PatientState,
    source: FacilityInfo,
    category: str,
    now: dt.datetime,
    purpose: Purpose,
) -> Decision:
    """:func:`.policy.may_view` for one item of ``source``, with the network's viewer rules: the fetch's
    decision (a timeline asks the same rules for every category at once: :func:`_plan_source`)."""
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
) -> Plan:
    decisions = may_view_each(
        viewer=viewer,
        patient=state,
        source_facility=source.code,
        source_disclosure=source.disclosure,
        categories=sorted(wanted),
        now=now,
        purpose=purpose,
        rules=hub.facilities.rules,
    )
    allowed = frozenset(c for c, d in decisions.items() if d.allowed)
    if allowed:
        return Plan(source, local_id, allowed, None, "ok")
    reasons = [d.reason for d in decisions.values()]
    other = next((r for r in reasons if r != "not-disclosed"), None)
    if other is None:
        return Plan(source, local_id, allowed, "not-disclosed", "not-disclosed")
    return Plan(source, local_id, allowed, "denied", other)


async def _list_source(
    gateways: Gateways, plan: Plan, params: dict[str, str], timeout: float
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


def _keep(entry: Mapping[str, Any], plan: Plan) -> bool:
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


def parse_categories(text: str | None) -> frozenset[str]:
    if not text:
        return ALL
    wanted = frozenset(c.strip() for c in text.split(",") if c.strip())
    unknown = sorted(wanted - ALL)
    if unknown:
        raise Refused(422, "unknown-category", f"unknown item categories: {', '.join(unknown[:5])}")
    return wanted


def viewer_of(hub: HubServices, user: Session) -> Viewer:
    """The logged-in user as the policy sees a viewer: facility, its kind, the user's viewer kind."""
    return Viewer(user.facility, hub.facility(user.facility).kind, user.viewer_kind)


def plan_sources(
    hub: HubServices,
    viewer: Viewer,
    state: PatientState,
    local_ids: Mapping[str, str],
    wanted: frozenset[str],
    now: dt.datetime,
    purpose: Purpose,
) -> list[Plan]:
    """One plan per facility holding a local ID of the patient: what to ask its gateway for, or why not."""
    plans: list[Plan] = []
    for code, local_id in sorted(local_ids.items()):
        info = hub.facilities.get(code)
        if info is None:
            continue
        if not info.disclosing:
            plans.append(Plan(info, local_id, frozenset(), "not-disclosed", "viewing-only facility"))
            continue
        plans.append(_plan_source(hub, viewer, state, info, local_id, wanted, now, purpose))
    return plans


SourceResult = tuple[SourceStatus, str, list[dict[str, Any]], float]
"""(status, reason, the entries kept, milliseconds spent) for one planned source."""


async def fan_out(
    gateways: Gateways, plans: list[Plan], params: dict[str, str], timeout: float
) -> list[SourceResult]:
    """Ask every source that may contribute, in parallel, each within ``timeout`` seconds."""

    async def run(plan: Plan) -> SourceResult:
        if plan.status is not None:
            return plan.status, plan.reason, [], 0.0
        started = time.perf_counter()
        status, reason, entries = await _list_source(gateways, plan, params, timeout)
        kept = [e for e in entries if _keep(e, plan)]
        return status, reason, kept, (time.perf_counter() - started) * 1000

    return list(await asyncio.gather(*(run(p) for p in plans)))


def merge(
    plans: list[Plan], results: list[SourceResult]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The entries in time order (shaped as the API's entry view) and one labelled status per source."""
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
    return merged, sources


def outcome_of(statuses: Mapping[str, str]) -> str:
    """The audit outcome of a timeline: success (every source answered or discloses nothing), partial, or
    denied (nothing answered and something refused)."""
    outcome = "success" if all(v in ("ok", "not-disclosed") for v in statuses.values()) else "partial"
    if "ok" not in statuses.values() and "denied" in statuses.values():
        outcome = "denied"
    return outcome
