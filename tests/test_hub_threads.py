"""The hub's HTTP requests never wait for a thread behind a login burst.

FastAPI runs a plain ``def`` endpoint or dependency in anyio's thread pool (40 tokens); a login holds a
thread while the hub's one password worker hashes. So a burst of logins used to hold every token, and every
other request — even ``/health``, through the ``Hub`` dependency — queued behind the burst (found by the
SimPy model's validation against Locust runs). Now every dependency and endpoint is ``async def`` and logins
run in threads of their own limiter (``routes.auth.LOGIN_THREADS``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from simulator.hub.accounts import ScryptParams
from simulator.hub.api import create_app

from .hubrun import running_hub


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, into included routers (FastAPI ≥ 0.16x keeps them wrapped, ``original_router``)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        elif hasattr(r, "original_router"):
            yield from _api_routes(r.original_router.routes)


def _is_async(call: Any) -> bool:
    """A coroutine function, or an instance whose ``__call__`` is one (``HTTPBearer``)."""
    method = type(call).__call__ if not inspect.isroutine(call) else None
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(method)


def test_every_hub_endpoint_and_dependency_is_async() -> None:
    """No hub route needs a thread token before its own code runs (a ``def`` would)."""
    routes = list(_api_routes(create_app(MagicMock()).routes))
    assert len(routes) > 10
    sync = [
        f"{r.path}: {getattr(c, '__name__', c)}"
        for r in routes
        for c in (r.endpoint, *_calls(r.dependant))
        if not _is_async(c)
    ]
    assert sync == []


def test_a_login_burst_does_not_hold_up_other_requests(bare_world: Path, tmp_path: Path) -> None:
    """100 logins at once at the production hash cost (each ~30 ms on the one password worker, so the
    burst takes seconds); a ``/health`` sent while they queue answers before most of them. With the
    burst holding anyio's 40 thread tokens, it answered only after at least 60 of them."""
    doc = json.loads((bare_world / "world.json").read_text(encoding="utf-8"))
    facility = next(f for f in doc["facilities"] if f["users"])
    user = facility["users"][0]
    body = {"facility": facility["code"], "user_id": user["user_id"], "password": user["password"]}
    burst = 100
    with running_hub(bare_world, tmp_path / "data", scrypt=ScryptParams()) as hub:

        async def main() -> tuple[float, list[float]]:
            done: list[float] = []
            limits = httpx.Limits(max_connections=burst + 10)
            async with httpx.AsyncClient(base_url=hub.base_url, limits=limits, timeout=60) as c:

                async def login() -> None:
                    r = await c.post("/auth/login", json=body)
                    assert r.status_code == 200, r.text
                    done.append(time.monotonic())

                tasks = [asyncio.create_task(login()) for _ in range(burst)]
                await asyncio.sleep(0.2)  # every login sent and waiting
                health = await c.get("/health")
                answered = time.monotonic()
                assert health.status_code == 200
                await asyncio.gather(*tasks)
            return answered, done

        answered, done = asyncio.run(main())
    before = sum(t < answered for t in done)
    assert len(done) == burst
    assert before < 40, f"/health answered after {before} of {burst} logins"


def test_a_login_flood_beyond_the_queue_is_refused_and_audited(bare_world: Path, tmp_path: Path) -> None:
    """40 logins at once at the production hash cost with room for 5 waiting (beside the login threads):
    those that find no room are answered 503 ``busy`` with ``Retry-After: 1`` at once, not after a place in
    the queue; every other one logs in; each refusal is audited; the hub answers a login afterwards."""
    from simulator.hub.audit import AuditLog

    doc = json.loads((bare_world / "world.json").read_text(encoding="utf-8"))
    facility = next(f for f in doc["facilities"] if f["users"])
    user = facility["users"][0]
    body = {"facility": facility["code"], "user_id": user["user_id"], "password": user["password"]}
    burst, room = 40, 5
    data = tmp_path / "data"
    with running_hub(bare_world, data, scrypt=ScryptParams(), login_queue=room) as hub:

        async def main() -> list[tuple[int, str, float]]:
            limits = httpx.Limits(max_connections=burst + 10)
            async with httpx.AsyncClient(base_url=hub.base_url, limits=limits, timeout=60) as c:
                started = time.monotonic()

                async def login() -> tuple[int, str, float]:
                    r = await c.post("/auth/login", json=body)
                    return r.status_code, r.headers.get("retry-after", ""), time.monotonic() - started

                return await asyncio.gather(*(login() for _ in range(burst)))

        answers = asyncio.run(main())
        with httpx.Client(base_url=hub.base_url, timeout=30) as c:
            assert c.post("/auth/login", json=body).status_code == 200
    busy = [a for a in answers if a[0] == 503]
    assert {a[0] for a in answers} == {200, 503}
    assert all(retry == "1" for _, retry, _ in busy)
    ok = [a for a in answers if a[0] == 200]
    # at least those that found room; how many more depends on how fast the hub reads the burst (the
    # event loop parses one request at a time while hashes end): not asserted
    assert len(ok) >= room
    slowest_ok = max(t for _, _, t in ok)
    assert max(t for _, _, t in busy) < slowest_ok / 2  # refused at once, not after a place in the queue
    with AuditLog(data / "audit.sqlite") as log:
        refused = [r for r in log.records() if r.action == "login" and r.reason == "busy"]
    assert len(refused) == len(busy)
    assert all(r.outcome == "failure" for r in refused)
