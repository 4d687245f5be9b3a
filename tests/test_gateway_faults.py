"""Faults through the admin API (down, slow, error, up) and link delays, observed over real sockets.

Link tests use a copy of the mini world's ``world.json`` with exaggerated links (so a delay is
unmistakable on a loaded machine) and its facility roots as symlinks (roots may be symlinks).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_gateway import (
    ADMIN_TOKEN,
    RunningShard,
    disk_entries,
    imaging_code,
    patients,
    richest_patient,
    running_shard,
)

SLOW_MS = 400


def refused(shard: RunningShard, code: str) -> bool:
    g = shard.info["gateways"][code]
    try:
        socket.create_connection((g["host"], g["port"]), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def fault(shard: RunningShard, code: str, mode: str, **extra: Any) -> dict[str, Any]:
    with shard.admin() as admin:
        reply = admin.post(f"/faults/{code}", json={"mode": mode, **extra})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()[code]
    return body


def elapsed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_down_refuses_connections_and_up_listens_on_the_same_port(shard: RunningShard) -> None:
    code, other = sorted(shard.info["gateways"])[:2]
    port = shard.info["gateways"][code]["port"]
    pid = patients(shard.world_dir, code)[0]
    with shard.client(code) as client:
        assert client.get(f"/patients/{pid}/entries").status_code == 200  # a kept-alive connection
        assert fault(shard, code, "down") == {"down": True, "slow_ms": 0, "error": False}
        assert refused(shard, code)
        with pytest.raises(httpx.TransportError):
            client.get(f"/patients/{pid}/entries")
        assert httpx.get(f"{shard.url(other)}/health", timeout=10).status_code == 200
        with shard.admin() as admin:
            assert admin.get("/faults").json()[code]["down"] is True
        assert fault(shard, code, "up") == {"down": False, "slow_ms": 0, "error": False}
        assert shard.info["gateways"][code]["port"] == port
        assert not refused(shard, code)
        assert client.get(f"/patients/{pid}/entries").status_code == 200
    assert fault(shard, code, "up")["down"] is False  # up twice is harmless


def test_slow_delays_the_first_byte_until_up(shard: RunningShard) -> None:
    code = sorted(shard.info["gateways"])[0]
    pid = patients(shard.world_dir, code)[0]
    with shard.client(code) as client:
        client.get("/health")
        assert fault(shard, code, "slow", ms=SLOW_MS)["slow_ms"] == SLOW_MS
        assert elapsed(lambda: client.get("/health")) >= SLOW_MS / 1000
        assert elapsed(lambda: client.get(f"/patients/{pid}/entries")) >= SLOW_MS / 1000
        fault(shard, code, "up")
        assert min(elapsed(lambda: client.get("/health")) for _ in range(3)) < SLOW_MS / 1000 / 2


def test_error_makes_authenticated_endpoints_503_and_combines_with_slow(shard: RunningShard) -> None:
    code = sorted(shard.info["gateways"])[1]
    pid = patients(shard.world_dir, code)[0]
    entry = disk_entries(shard.world_dir, code, pid)[0].entry_id
    with shard.client(code) as client:
        fault(shard, code, "error")
        assert fault(shard, code, "slow", ms=50) == {"down": False, "slow_ms": 50, "error": True}
        for path in (f"/patients/{pid}/entries", f"/entries/{entry}", "/studies/1.2/instances"):
            assert client.get(path).status_code == 503
            assert httpx.get(shard.url(code) + path, timeout=10).status_code == 503
        assert client.get("/health").json() == {"facility": code, "status": "ok"}
        assert fault(shard, code, "up") == {"down": False, "slow_ms": 0, "error": False}
        assert client.get(f"/patients/{pid}/entries").status_code == 200


def test_admin_api_is_protected_and_validates(shard: RunningShard) -> None:
    code = sorted(shard.info["gateways"])[0]
    a = shard.info["admin"]
    base = f"http://{a['host']}:{a['port']}"
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    assert httpx.get(f"{base}/faults", timeout=10).status_code == 401
    assert httpx.post(f"{base}/faults/{code}", json={"mode": "down"}, timeout=10).status_code == 401
    with shard.admin(ADMIN_TOKEN + "x") as wrong:
        assert wrong.post(f"/faults/{code}", json={"mode": "down"}).status_code == 401
    assert not refused(shard, code)
    with shard.admin() as admin:
        assert admin.post("/faults/0000000000", json={"mode": "down"}).status_code == 404
        for body in [
            {"mode": "melt"},
            {"mode": "slow"},
            {"mode": "slow", "ms": -1},
            {"mode": "up", "x": 1},
            {},
        ]:
            assert admin.post(f"/faults/{code}", json=body).status_code == 422, body
        state = admin.get("/faults").json()
        assert set(state) == set(shard.info["gateways"])
        assert all(s == {"down": False, "slow_ms": 0, "error": False} for s in state.values())


# -- links ----------------------------------------------------------------------------------------------
RTT_MS, BANDWIDTH_MBPS = 120.0, 0.5


def link_world(mini_world: Path, out: Path, **link: Any) -> Path:
    data = json.loads((mini_world / "world.json").read_text(encoding="utf-8"))
    spec = {
        "rtt_ms_median": RTT_MS,
        "rtt_ms_p95": RTT_MS * 1.25,
        "bandwidth_mbps": BANDWIDTH_MBPS,
        "loss": 0.0,
    }
    data["links"] = {name: {**spec, **link, "remarks": "test"} for name in data["links"]}
    out.mkdir(parents=True)
    (out / "world.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    for part in ("storage", "extended", "images"):
        os.symlink(mini_world / part, out / part)
    return out


@pytest.fixture(scope="module")
def slow_world(mini_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return link_world(mini_world, tmp_path_factory.mktemp("links") / "world")


def timings(shard: RunningShard, code: str, path: str, n: int = 5) -> list[float]:
    with shard.client(code) as client:
        client.get("/health")  # connect first: the link model is per request, not per connection
        return [elapsed(lambda: client.get(path).raise_for_status()) for _ in range(n)]


def test_link_delay_and_bandwidth_are_observable_and_absent_when_off(slow_world: Path) -> None:
    code = imaging_code(slow_world)
    pid = richest_patient(slow_world, code, "image")
    image = next(e for e in disk_entries(slow_world, code, pid) if e.kind == "image")
    size = image.path.stat().st_size
    pacing = size * 8 / (BANDWIDTH_MBPS * 1e6)
    assert pacing > 0.1
    with running_shard(slow_world, [code], links=True, seed=1) as on:
        health = statistics.median(timings(on, code, "/health"))
        fetch = statistics.median(timings(on, code, f"/entries/{image.entry_id}"))
    with running_shard(slow_world, [code], links=False) as off:
        health_off = statistics.median(timings(off, code, "/health"))
        fetch_off = statistics.median(timings(off, code, f"/entries/{image.entry_id}"))
    assert health >= 0.75 * RTT_MS / 1000, health
    assert fetch >= 0.75 * RTT_MS / 1000 + 0.9 * pacing, (fetch, pacing)
    assert health_off < 0.06, health_off
    assert fetch_off < 0.06, fetch_off


def test_a_link_outage_black_holes_requests_and_still_stops(mini_world: Path, tmp_path: Path) -> None:
    world = link_world(mini_world, tmp_path / "world", outage=True)
    code = imaging_code(world)
    started = time.perf_counter()
    with running_shard(world, [code], links=True, grace=1.0) as running, pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{running.url(code)}/health", timeout=0.5)
    assert time.perf_counter() - started < 10
