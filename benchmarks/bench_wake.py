"""Benchmark: a request's CPU cost against how long its server idled before it.

Why: replays of load runs over-predict the hub's CPU by 10–20 % at ×100–×400, and its CPU per request was
seen to fall with load. The capacity model gives each request a fixed CPU cost, calibrated by ``rhin
calibrate`` at low load — where the hub idles between requests. If a request that wakes an idle process
costs more CPU than one that finds it busy (cold caches and branch predictors, a vCPU leaving its idle
state, the event loop's own wake-up), a low-load calibration over-states every request at load.

This measures that on this machine: a server process (asyncio, loopback TCP) does the same fixed Python
work per request, and a client sends requests one at a time with a chosen idle gap between the answer and
the next request (0 = back to back). The server reports its own CPU time (``time.process_time``, exact to
the nanosecond, not the kernel's 10-ms ticks), so the cost per request is exact. With ``--world`` the
reference hub's ``GET /health`` on that world is measured too, from ``/proc`` (tick resolution: more
requests per gap). And the disk's side: the wall time of a one-row commit through the hub's own
:class:`simulator.hub.sqlstore.SQLiteStore` (WAL, ``synchronous=FULL``, as the audit writer and the index
commit) against the idle gap before it, in the system's temporary directory (where the reference network
the load runs start keeps its stores).

Printed per gap: CPU per request (wall time per commit) and its ratio to back to back; then the fit
``extra(gap) = W × (1 − exp(−gap / τ))``. No assertions; the ratios are the numbers to track.

    .venv/bin/python benchmarks/bench_wake.py [--requests 300] [--work 3000] [--world worlds/mini]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GAPS_MS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
CPU_QUERY = b"?"


def _work(n: int) -> int:
    """Fixed Python work (a dict and string workload, as request handling is), not CPU-clock-bound."""
    seen: dict[str, int] = {}
    for i in range(n):
        key = f"k{i % 97}"
        seen[key] = seen.get(key, 0) + i
    return len(seen)


def _serve(port_out: mp.connection.Connection, work: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(64):
            if data == CPU_QUERY:
                writer.write(struct.pack("!d", time.process_time()))
            else:
                _work(work)
                writer.write(b"x")
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _cpu(sock: socket.socket) -> float:
    sock.sendall(CPU_QUERY)
    return float(struct.unpack("!d", _read(sock, 8))[0])


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("server went away")
        out += chunk
    return out


def _gap(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def echo_costs(requests: int, work: int) -> dict[float, float]:
    """CPU ms per request of the echo server at each gap."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, work), daemon=True)
    proc.start()
    try:
        port = parent.recv()
        out: dict[float, float] = {}
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(200):  # warm up
                sock.sendall(b"r")
                _read(sock, 1)
            for gap_ms in GAPS_MS:
                before = _cpu(sock)
                overhead = _cpu(sock) - before  # one query's own cost, taken off below
                before = _cpu(sock)
                for _ in range(requests):
                    _gap(gap_ms / 1000)
                    sock.sendall(b"r")
                    _read(sock, 1)
                spent = _cpu(sock) - before - overhead
                out[gap_ms] = spent / requests * 1000
        return out
    finally:
        proc.terminate()
        proc.join(5)


def _ticks(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hub_costs(world_dir: Path, requests: int) -> dict[float, float]:
    """CPU ms per ``GET /health`` of the reference hub at each gap (from /proc: tick resolution)."""
    import httpx

    from harness.scenarios import WorldIndex
    from harness.targets import ReferenceOptions, reference_target

    world = WorldIndex(world_dir)
    out: dict[float, float] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        reference_target(world, Path(tmp), options=ReferenceOptions(scrypt_cost=4, shards=1)) as hub,
    ):
        assert hub.network is not None
        assert hub.http is not None
        pid = int(hub.network.hub["pid"])
        with httpx.Client() as client:
            for _ in range(200):
                client.get(hub.http + "/health")
            for gap_ms in GAPS_MS:
                n = requests if gap_ms < 20 else max(50, requests // 4)
                before = _ticks(pid)
                for _ in range(n):
                    _gap(gap_ms / 1000)
                    client.get(hub.http + "/health")
                out[gap_ms] = (_ticks(pid) - before) / n * 1000
    return out


_ROWS = "CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"
"""The commit benchmark's table: one row per commit, an audit record's size."""


class CommitRows:
    """A one-table :class:`simulator.hub.sqlstore.SQLiteStore` (WAL, ``synchronous=FULL``, as the hub's audit
    log and index) taking one audit-record-sized row per commit: what the commit benchmarks time."""

    BODY = "x" * 300  # an audit record's size

    def __init__(self, path: Path) -> None:
        from simulator.hub.sqlstore import SQLiteStore

        class _Rows(SQLiteStore):
            def add(self, text: str) -> None:
                with self._tx() as db:
                    db.execute("INSERT INTO rows (body) VALUES (?)", (text,))

        self.store = _Rows(path, _ROWS)

    def add(self) -> None:
        self.store.add(self.BODY)

    def close(self) -> None:
        self.store.close()


def commit_costs(requests: int) -> dict[float, float]:
    """Wall ms per one-row commit (WAL, ``synchronous=FULL``) at each gap: the disk's wake-up."""
    out: dict[float, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows = CommitRows(Path(tmp) / "wake.sqlite")
        try:
            for _ in range(100):
                rows.add()
            for gap_ms in GAPS_MS:
                spent = 0.0
                for _ in range(requests):
                    _gap(gap_ms / 1000)
                    started = time.perf_counter()
                    rows.add()
                    spent += time.perf_counter() - started
                out[gap_ms] = spent / requests * 1000
        finally:
            rows.close()
    return out


def fit(costs: dict[float, float]) -> tuple[float, float]:
    """(W ms, τ ms) of ``cost(gap) − cost(0) = W (1 − exp(−gap/τ))`` by least squares over a τ grid."""
    base = costs[0.0]
    points = [(g, c - base) for g, c in costs.items() if g > 0]
    best = (math.inf, 0.0, 1.0)
    for k in range(200):
        tau = 0.2 * 1.04**k
        shape = [1 - math.exp(-g / tau) for g, _ in points]
        denom = sum(s * s for s in shape)
        w = sum(s * y for s, (_, y) in zip(shape, points, strict=True)) / denom
        err = sum((w * s - y) ** 2 for s, (_, y) in zip(shape, points, strict=True))
        if err < best[0]:
            best = (err, w, tau)
    return best[1], best[2]


def show(label: str, costs: dict[float, float], what: str = "ms CPU per request") -> None:
    base = costs[0.0]
    print(label)
    for gap_ms, ms in costs.items():
        print(f"  idle gap {gap_ms:6.1f} ms: {ms:7.3f} {what}  ({ms / base:4.2f}× back to back)")
    w, tau = fit(costs)
    print(f"  fit: extra = {w:.3f} ms × (1 − exp(−gap / {tau:.1f} ms)) — {w / base:.2f}× the busy cost")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="requests per gap")
    ap.add_argument("--work", type=int, default=3000, help="the echo server's work per request (loop steps)")
    ap.add_argument("--world", type=Path, help="also measure the reference hub's GET /health on this world")
    args = ap.parse_args()
    started = time.perf_counter()
    show(f"echo server, {args.work} steps of Python work per request:", echo_costs(args.requests, args.work))
    if args.world is not None:
        hub = hub_costs(args.world, args.requests * 2)
        show("reference hub, GET /health (from /proc, 10-ms ticks):", hub)
    commits = commit_costs(args.requests)
    show("SQLite one-row commit, WAL, synchronous=FULL (the hub's stores):", commits, "ms wall per commit")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
