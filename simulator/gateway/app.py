"""One facility's gateway as an ASGI app: the HTTP contract the hub codes against, behind its link.

Endpoints (all but ``GET /health`` want ``Authorization: Bearer <gateway_secret>``; 401 otherwise):

* ``GET /health`` → ``{"facility": code, "status": "ok"}``
* ``GET /patients/{local_id}/entries?types=&categories=&from=&to=&history=`` → ``{"facility", "patient",
  "entries": [...]}``; comma-separated ``types``/``categories``, inclusive ``YYYYMMDD`` care dates. Unknown
  patient → empty list; malformed local ID or unknown category name → 400; a date that is not
  ``YYYYMMDD`` or a ``history`` that is not a boolean → 422 (FastAPI's validation).
* ``GET /entries/{entry_id}`` → the stored bytes (Content-Length set). Malformed → 400, category not
  disclosed → 403 (decided from the ID, before touching the disk), absent → 404.
* ``GET /studies/{study_uid}/instances`` → the study's instance entries; 403 when images are not disclosed,
  404 for an unknown study, 400 for a malformed UID.

In ``error`` fault mode the authenticated endpoints answer 503 before looking at credentials (a failing
gateway behind its front end). :class:`LinkShaper` wraps everything, ``/health`` included: the link and the
``slow`` fault delay the first byte, the link's bandwidth paces the body.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import random
import stat
import weakref
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synthetic.model import ITEM_CATEGORIES

from ..links import LinkModel
from .catalog import Catalog, content_type
from .entries import PATIENT_ID, STUDY_UID, EntryRef, parse_entry_id
from .errors import EntryIdError
from .faults import FaultState, bearer_matches, unauthorized

__all__ = ["CHUNK_BYTES", "LISTING_THREADS", "LinkShaper", "create_gateway_app"]

CHUNK_BYTES = 64 * 1024
"""Files up to this size are read in one go; larger ones stream in chunks of this size."""
LISTING_THREADS = 2
"""How many listings run at once in worker threads, per :class:`anyio.CapacityLimiter` (a shard shares one
among its gateways: they share one interpreter lock). A listing is a hundred or more folder reads: in
threads, reads that wait for the disk overlap and the event loop keeps serving; but many threads doing
them at once mostly fight over the interpreter lock. Measured (2 cores; 20 clients): on cached storage
(mini world) 2 threads ≈ 270 listings/s, unbounded (anyio's 40) ≈ 150 with 2-3× the CPU per listing,
on the event loop ≈ 400; on mostly uncached storage (ishikawa, patients not listed before) 2 threads ≈
160-180/s with p99 ≈ 165 ms, unbounded ≈ 90-140/s with p99 ≈ 475-660 ms, on the event loop ≈ 130-175/s
and blocking every gateway of the shard while the disk is read."""
DATE_PARAM = r"^[0-9]{8}$"


class LinkShaper:
    """ASGI middleware: delay before the first byte (link RTT sample + ``slow`` fault), then the body paced
    so each chunk leaves when the link would have delivered it; black hole during a link outage (the
    request waits until the client gives up). Draws from ``rng`` on the event loop only."""

    def __init__(self, app: ASGIApp, link: LinkModel, rng: random.Random, faults: FaultState) -> None:
        self.app = app
        self.link = link
        self.rng = rng
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        link = self.link
        if link.outage:
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        loop = asyncio.get_running_loop()
        due = 0.0

        async def shaped(message: Message) -> None:
            nonlocal due
            if message["type"] == "http.response.start":
                delay = self.faults.slow_ms / 1000.0 + link.sample_delay(self.rng)
                if delay > 0 and math.isfinite(delay):
                    await asyncio.sleep(delay)
                due = loop.time()
            elif message["type"] == "http.response.body" and link.enabled:
                size = len(message.get("body", b""))
                if size:
                    due += link.sample_transfer_seconds(self.rng, size)
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
            await send(message)

        await self.app(scope, receive, shaped)


def create_gateway_app(
    catalog: Catalog,
    faults: FaultState,
    link: LinkModel | None = None,
    rng: random.Random | None = None,
    listings: anyio.CapacityLimiter | None = None,
) -> ASGIApp:
    """The gateway of ``catalog``'s facility, wrapped in its link (default: disabled link). ``listings``
    bounds the listings running at once (default: a limiter of :data:`LISTING_THREADS` of its own; a
    shard passes one for all its gateways)."""
    code = catalog.code
    secret = catalog.config.secret
    limiter = listings or anyio.CapacityLimiter(LISTING_THREADS)

    async def guard(authorization: Annotated[str | None, Header()] = None) -> None:
        if faults.error:
            raise HTTPException(503, f"gateway {code} is failing (fault injected)")
        if not bearer_matches(authorization, secret):
            raise unauthorized("gateway credential missing or wrong")

    app = FastAPI(title=f"rhin gateway {code}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"facility": code, "status": "ok"}

    router = APIRouter(dependencies=[Depends(guard)])
    _listing_routes(router, catalog, limiter)
    _fetch_routes(router, catalog)
    app.include_router(router)
    return LinkShaper(app, link or LinkModel.disabled(), rng or random.Random(0), faults)


def _listing_routes(router: APIRouter, catalog: Catalog, limiter: anyio.CapacityLimiter) -> None:
    """GET /patients/{local_id}/entries: a patient's entries, listed in a worker thread (bounded)."""
    code = catalog.code

    @router.get("/patients/{local_id}/entries")
    async def patient_entries(
        local_id: str,
        types: str | None = None,
        categories: str | None = None,
        since: Annotated[str | None, Query(alias="from", pattern=DATE_PARAM)] = None,
        until: Annotated[str | None, Query(alias="to", pattern=DATE_PARAM)] = None,
        history: bool = False,
    ) -> JSONResponse:
        if not PATIENT_ID.fullmatch(local_id):
            raise HTTPException(400, "local patient ID must be 6-15 letters and digits")
        wanted_categories = _split(categories)
        if wanted_categories is not None:
            unknown = sorted(set(wanted_categories) - set(ITEM_CATEGORIES))
            if unknown:
                raise HTTPException(400, f"unknown item categories: {', '.join(unknown)}")
        listing = functools.partial(
            catalog.entries,
            local_id,
            types=_split(types),
            categories=wanted_categories,
            since=since,
            until=until,
            history=history,
        )
        entries = await anyio.to_thread.run_sync(listing, limiter=limiter)  # see LISTING_THREADS
        return JSONResponse({"facility": code, "patient": local_id, "entries": entries})


def _fetch_routes(router: APIRouter, catalog: Catalog) -> None:
    """GET /entries/{id} (one entry's bytes) and /studies/{uid}/instances, each as the facility discloses."""
    code = catalog.code

    def respond(ref: EntryRef) -> Response:
        path = catalog.locate(ref)
        if path is None:
            raise HTTPException(404, "no such entry")
        return _file_response(path, content_type(ref))

    @router.get("/entries/{entry_id:path}")
    async def fetch(entry_id: str) -> Response:
        # On the event loop: a few lstat calls and, for files up to CHUNK_BYTES, one read — cheaper than a
        # worker-thread round trip for the small files SS-MIX2 is made of. Only an image fetch that would
        # wait for the PACS index still being built goes to a worker thread.
        try:
            ref = parse_entry_id(entry_id)
        except EntryIdError as exc:
            raise HTTPException(400, exc.reason) from None
        if not catalog.discloses(ref.category):
            raise HTTPException(403, f"facility {code} does not disclose {ref.category}")
        if ref.kind == "image" and not catalog.studies.ready:
            return await anyio.to_thread.run_sync(respond, ref)
        return respond(ref)

    @router.get("/studies/{study_uid}/instances")
    def study_instances(study_uid: str) -> JSONResponse:
        if not STUDY_UID.fullmatch(study_uid):
            raise HTTPException(400, "not a DICOM UID")
        if not catalog.discloses("images"):
            raise HTTPException(403, f"facility {code} does not disclose images")
        instances = catalog.study_instances(study_uid)
        if instances is None:
            raise HTTPException(404, "no such study")
        return JSONResponse(instances)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item for item in (part.strip() for part in value.split(",")) if item]


def _file_response(path: str, media_type: str) -> Response:
    """The file's bytes as stored. Opened without following a final symlink and checked to be a regular
    file on the open descriptor, so what was located is what is sent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise HTTPException(404, "no such entry") from None
    owned = False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HTTPException(404, "no such entry")
        if info.st_size <= CHUNK_BYTES:
            return Response(_read(fd, info.st_size), media_type=media_type)
        owned = True
        return _FileStream(fd, info.st_size, media_type)
    finally:
        if not owned:
            os.close(fd)


def _read(fd: int, size: int) -> bytes:
    parts = []
    while size > 0 and (chunk := os.read(fd, size)):
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


class _FileStream(Response):
    """Streams an open descriptor in :data:`CHUNK_BYTES` pieces (each read in a worker thread); the
    descriptor is closed when the response ends or, if it is never sent, when it is collected."""

    def __init__(self, fd: int, size: int, media_type: str) -> None:
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({"content-length": str(size)})
        self.fd, self.size = fd, size
        self._close = weakref.finalize(self, os.close, fd)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            remaining = self.size
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(os.read, self.fd, min(CHUNK_BYTES, remaining))
                remaining = remaining - len(chunk) if chunk else 0
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        finally:
            self._close()
