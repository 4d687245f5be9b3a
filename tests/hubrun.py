"""Run the reference hub in-process (its own thread and event loop) on free ports, for tests.

The hub under test is the real :func:`simulator.hub.server.run_hub`: real sockets, real stores on disk. A
:class:`MovableClock` lets a test step the network's time (token expiry, lockout, emergency grants).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from simulator.hub.accounts import ScryptParams
from simulator.hub.server import ADMIN_TOKEN_FILE, PKI_DIR, run_hub
from simulator.pki import ClientTls
from synthetic.clock import JST

FAST_SCRYPT = ScryptParams(n=2**4, r=1, p=1)  # tests only: hashing is still real, just cheap


class MovableClock:
    """Aware JST time that only moves when a test says so."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 11, 20, 10, 0, tzinfo=JST)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += dt.timedelta(**delta)


@dataclass
class RunningHub:
    mllp: tuple[str, int]
    http: tuple[str, int]
    data: Path
    clock: MovableClock
    tls: ClientTls | None = None  # None: the hub runs plain MLLP (``plain_mllp=True``)
    soap: tuple[str, int] | None = None  # the PIXv3/PDQv3 listener (HTTPS unless plain)

    def mllp_tls(self, facility: str | None) -> ssl.SSLContext | None:
        """The client context presenting ``facility``'s certificate (None on a plain-MLLP hub)."""
        return self.tls.context(facility) if self.tls is not None else None

    @property
    def base_url(self) -> str:
        return f"http://{self.http[0]}:{self.http[1]}"

    @property
    def admin_token(self) -> str:
        return (self.data / ADMIN_TOKEN_FILE).read_text(encoding="ascii").strip()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=15)

    def login(self, facility: str, user_id: str, password: str) -> str:
        with self.client() as c:
            reply = c.post(
                "/auth/login", json={"facility": facility, "user_id": user_id, "password": password}
            )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["token"])


@contextmanager
def running_hub(
    world: Path, data: Path, *, clock: MovableClock | None = None, **options: Any
) -> Iterator[RunningHub]:
    """The hub for ``world`` with its stores in ``data``, stopped (cleanly) when the block ends (``scrypt``
    among ``options`` replaces the tests' cheap hashing)."""
    clock = clock or MovableClock()
    options.setdefault("scrypt", FAST_SCRYPT)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    addresses: dict[str, tuple[str, int]] = {}
    failure: list[BaseException] = []

    def on_ready(found: Any) -> None:
        addresses.update(found)
        ready.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(run_hub(world, data, ready=on_ready, stop=stop, clock=clock, **options))
        except BaseException as exc:
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=serve, name="hub", daemon=True)
    thread.start()
    assert ready.wait(20), "the hub did not start within 20 s"
    if failure:
        raise failure[0]
    try:
        pki = Path(options.get("pki") or data / PKI_DIR)
        tls = None if options.get("plain_mllp") else ClientTls(pki / "ca.pem", pki / "facilities")
        yield RunningHub(addresses["mllp"], addresses["http"], data, clock, tls, addresses.get("soap"))
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        assert not thread.is_alive(), "the hub did not stop within 20 s"
        if failure:
            raise failure[0]
