"""The hub's HTTP requests never wait for a thread behind a login burst.

FastAPI runs a plain ``def`` endpoint or dependency in anyio's thread pool (40 tokens); a login holds a
thread while the hub's one password worker hashes. So a burst of logins used to hold every token, and every
other request — even ``/health``, through the ``Hub`` dependency — queued behind the burst (found by the
SimPy model's validation against Locust runs). Now every dependency and endpoint is ``async def`` and logins
run in threads of their own limiter (``routes.auth.LOGIN_THREADS``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from simulator.hub.accounts import ScryptParams, Session
from simulator.hub.api import create_app
from synthetic.clock import JST

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


class _GatedHub:
    """What the login route reads of the hub, with a password check that waits for the test's gate: the
    login threads fill, then the queue, deterministically (a live burst reached the route as fast as the
    hub's loop read it, which some runs never packed tighter than the hashes drained)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.records: list[tuple[str, str, str, dict[str, Any]]] = []
        self.facilities = MagicMock()
        self.facilities.enrolment.return_value = None

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 12, 6, 9, 0)

    def clock(self) -> dt.datetime:
        return dt.datetime(2026, 12, 6, 9, 0, tzinfo=JST)

    @property
    def accounts(self) -> Any:
        hub = self

        class Accounts:
            def login(self, facility: str, user_id: str, *_: Any, **__: Any) -> Session:
                assert hub.gate.wait(30)
                now = hub.now()
                return Session("t", facility, user_id, "s", "physician", now, now + dt.timedelta(hours=8))

        return Accounts()

    async def record(self, who: Any, action: str, outcome: str, **kw: Any) -> None:
        self.records.append((action, outcome, kw.get("reason", ""), kw.get("details") or {}))


def test_a_login_flood_beyond_the_queue_is_refused_and_audited() -> None:
    """With the login threads busy and room for 5 more, the logins beyond are answered 503 ``busy`` with
    ``Retry-After: 1`` at once (the gate still shut), those that found room log in once the password
    checks end, the refusals are audited as every flood is (the first in full, the rest counted in the
    window's summary), and a login after the flood finds room again."""
    from simulator.hub.routes.auth import LOGIN_THREADS

    hub = _GatedHub()
    room, extra = 5, 7
    app = create_app(hub, login_queue=room)  # type: ignore[arg-type]

    async def main() -> tuple[list[int], list[str], int]:
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            body = {"facility": "1310000001", "user_id": "u1", "password": "pw"}

            async def login() -> httpx.Response:
                return await c.post("/auth/login", json=body)

            admitted = [asyncio.create_task(login()) for _ in range(LOGIN_THREADS + room)]
            while not (
                (limiter := getattr(app.state, "login_threads", None)) is not None
                and limiter.statistics().tasks_waiting == room
            ):
                await asyncio.sleep(0.005)  # the threads taken and the room filled
            # a hub without the bound would hold these behind the gate: fail in 10 s, not hang
            refused = await asyncio.wait_for(asyncio.gather(*(login() for _ in range(extra))), 10)
            hub.gate.set()
            ok = await asyncio.gather(*admitted)
            again = await login()
            await app.state.refusals.flush()
        return (
            [r.status_code for r in ok] + [again.status_code],
            [
                f"{r.status_code} {r.headers.get('retry-after')} {r.json()['detail']['reason']}"
                for r in refused
            ],
            len(refused),
        )

    ok, refused, n = asyncio.run(main())
    assert ok == [200] * (LOGIN_THREADS + room + 1)
    assert refused == ["503 1 busy"] * extra
    audited = [r for r in hub.records if r[2] == "busy"]
    assert [(a, o) for a, o, _, _ in audited] == [("login", "failure"), ("refusals-summary", "failure")]
    assert audited[0][3] == {"address": "10.0.0.9"}
    assert 1 + audited[1][3]["count"] == n
