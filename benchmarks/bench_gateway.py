"""Benchmark: one gateway shard (links off) against a bare FastAPI/uvicorn server returning the same bytes.

A mini world is generated into a temporary directory (or ``--world DIR`` is used). One shard serving every
disclosing facility runs as ``python -m simulator.gateway --no-links`` (a real subprocess); the baseline is
this file's ``--serve-baseline`` mode: a FastAPI app on uvicorn (h11, one process, the same server stack)
whose routes return, from memory, the very bytes the gateway answered for each request. Both are driven by
the same closed-loop load — K clients on keep-alive connections, a minimal HTTP/1.1 client so the driver
stays cheap — for two workloads:

* ``list``: ``GET /patients/{id}/entries`` for the facilities' patients (the listing JSON);
* ``fetch``: ``GET /entries/{id}`` over HL7, CDA and DICOM entries from those listings.

Printed per workload and client count: requests/s, p50/p95/p99 in ms and the server process's CPU time
per request (user + system, from ``/proc``: unlike latency it barely moves when the machine is busy with
other work) for both, and gateway/baseline ratios (throughput ratio: higher is better, 1.0 = no cost of
its own; latency and CPU ratios: lower is better). Absolute numbers depend on the machine; the ratios are
the numbers to track. No assertions.

    .venv/bin/python benchmarks/bench_gateway.py [--world DIR] [--seconds 3] [--clients 1,4,20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Request:
    port: int
    target: bytes
    headers: bytes


@dataclass
class Stats:
    rate: float
    p50: float
    p95: float
    p99: float
    count: int
    cpu_ms: float = float("nan")  # the server's CPU time per request


@dataclass(frozen=True)
class Server:
    pid: int
    ready: str  # the ready line's payload

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (Linux ``/proc``; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the bare baseline server ---------------------------------------------------------------------------
def serve_baseline(payload_file: Path) -> None:
    """Routes /list/{i} and /fetch/{i} answer payloads[kind][i] (body, content type) from memory."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import Response

    payloads: dict[str, list[tuple[bytes, str]]] = pickle.loads(payload_file.read_bytes())
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/{kind}/{index}")
    async def answer(kind: str, index: int) -> Response:
        body, content_type = payloads[kind][index]
        return Response(body, media_type=content_type)

    config = uvicorn.Config(app, host="127.0.0.1", port=0, http="h11", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"ready: {port}", flush=True)
        await task

    asyncio.run(run())


# -- processes ------------------------------------------------------------------------------------------
@contextmanager
def process(args: Sequence[str]) -> Iterator[Server]:
    """Start a server process and yield it with its ready line's payload; terminate it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=STARTUP_TIMEOUT)
        if line is None or not line.startswith("ready: "):
            raise SystemExit(f"{args}: no ready line (got {line!r})")
        yield Server(proc.pid, line.removeprefix("ready: "))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the load -------------------------------------------------------------------------------------------
class Connection:
    """Minimal HTTP/1.1 keep-alive client (responses always carry Content-Length here). A connection the
    server closed while it was idle (uvicorn's keep-alive timeout: a client of many gateways may leave
    one unused for seconds) is opened again and the GET sent again, as HTTP clients do."""

    def __init__(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.port, self.reader, self.writer = port, reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(port, reader, writer)

    async def get(self, request: Request) -> bytes:
        message = b"GET " + request.target + b" HTTP/1.1\r\nHost: bench\r\n" + request.headers + b"\r\n"
        self.writer.write(message)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise  # closed in the middle of a reply: not an idle close
            self.close()
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(message)
            head = await self.reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(f"{request.target!r}: {head[:40]!r}")
        lower = head.lower()
        start = lower.index(b"content-length:") + len(b"content-length:")
        length = int(lower[start : lower.index(b"\r\n", start)])
        return await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def drive(
    requests: list[Request], clients: int, seconds: float, warmup: float = 0.5, server: Server | None = None
) -> Stats:
    """``clients`` closed loops over ``requests`` (each starting at its own offset) for ``seconds``; with
    ``server``, also its CPU time per request over the measured part."""
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    begin = loop.time()
    measure_from, end = begin + warmup, begin + warmup + seconds
    cpu: list[float] = []  # the server's CPU seconds when measuring starts and once the last reply is in

    async def sample_cpu() -> None:
        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        if server is not None:
            cpu.append(server.cpu_seconds())

    async def client(offset: int) -> None:
        connections: dict[int, Connection] = {}
        i = offset
        try:
            while (now := loop.time()) < end:
                request = requests[i % len(requests)]
                i += clients
                if request.port not in connections:
                    connections[request.port] = await Connection.open(request.port)
                start = time.perf_counter()
                await connections[request.port].get(request)
                if now >= measure_from:
                    latencies.append(time.perf_counter() - start)
        finally:
            for connection in connections.values():
                connection.close()

    await asyncio.gather(sample_cpu(), *(client(k) for k in range(clients)))
    if server is not None:
        cpu.append(server.cpu_seconds())
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    cpu_ms = (cpu[1] - cpu[0]) * 1000 / len(latencies) if len(cpu) == 2 and latencies else float("nan")
    return Stats(len(latencies) / seconds, pct(0.50), pct(0.95), pct(0.99), len(latencies), cpu_ms)


# -- requests and the baseline's payloads ---------------------------------------------------------------
def build_requests(
    world: Path, ready: dict[str, Any], patients_per_facility: int, entries: int
) -> tuple[dict[str, list[Request]], dict[str, list[tuple[bytes, str]]]]:
    """The gateway requests per workload and, in the same order, the bytes each one answers."""
    import httpx

    data = json.loads((world / "world.json").read_text(encoding="utf-8"))
    secrets = {f["code"]: f["gateway_secret"] for f in data["facilities"]}
    lists: list[Request] = []
    fetches: list[Request] = []
    payloads: dict[str, list[tuple[bytes, str]]] = {"list": [], "fetch": []}
    kinds: dict[str, int] = {}
    for code, address in sorted(ready["gateways"].items()):
        auth = f"Authorization: Bearer {secrets[code]}\r\n".encode()
        base = f"http://127.0.0.1:{address['port']}"
        storage = world / "storage" / code
        pids = sorted(p.name for p in storage.glob("*/*/*") if p.is_dir())[:patients_per_facility]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secrets[code]}"}) as client:
            for pid in pids:
                target = f"/patients/{pid}/entries"
                reply = client.get(target)
                reply.raise_for_status()
                lists.append(Request(address["port"], target.encode(), auth))
                payloads["list"].append((reply.content, reply.headers["content-type"]))
                for entry in reply.json()["entries"]:
                    kind = entry["kind"]
                    if kinds.get(kind, 0) * 3 > entries:  # keep a mix of HL7, CDA and DICOM
                        continue
                    body = client.get(f"/entries/{entry['id']}")
                    body.raise_for_status()
                    fetches.append(Request(address["port"], f"/entries/{entry['id']}".encode(), auth))
                    payloads["fetch"].append((body.content, body.headers["content-type"]))
                    kinds[kind] = kinds.get(kind, 0) + 1
    print(f"requests: {len(lists)} listings, {len(fetches)} fetches {dict(sorted(kinds.items()))}")
    return {"list": lists, "fetch": fetches}, payloads


def baseline_requests(requests: dict[str, list[Request]], port: int) -> dict[str, list[Request]]:
    return {
        kind: [Request(port, f"/{kind}/{i}".encode(), b"") for i in range(len(items))]
        for kind, items in requests.items()
    }


# -- main -----------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, default=None, help="world directory (default: a fresh mini)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--clients", default="1,4,20", help="comma-separated client counts")
    parser.add_argument("--patients", type=int, default=40, help="patients per facility for listings")
    parser.add_argument("--entries", type=int, default=300, help="about how many entries to fetch")
    parser.add_argument("--serve-baseline", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace, world: Path, tmp: Path) -> None:
    gateway_cmd = ["-m", "simulator.gateway", "--world", str(world), "--no-links", "--admin-token", "bench"]
    with process(gateway_cmd) as gateway:
        ready = json.loads(gateway.ready)
        print(f"shard: {len(ready['gateways'])} gateways in pid {ready['pid']}")
        requests, payloads = build_requests(world, ready, args.patients, args.entries)
        payload_file = tmp / "payloads.pickle"
        payload_file.write_bytes(pickle.dumps(payloads))
        clients = [int(c) for c in args.clients.split(",")]
        results: dict[tuple[str, str, int], Stats] = {}
        for workload, items in requests.items():
            for k in clients:
                results["gateway", workload, k] = asyncio.run(drive(items, k, args.seconds, server=gateway))
    with process([__file__, "--serve-baseline", str(payload_file)]) as baseline:
        base = baseline_requests(requests, int(baseline.ready))
        for workload, items in base.items():
            for k in clients:
                results["baseline", workload, k] = asyncio.run(drive(items, k, args.seconds, server=baseline))
    print()
    header = f"{'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'cpu ms':>7}"
    print(f"{'workload':8} {'clients':>7} | {'server':8} {header}   (cpu: server CPU per request)")
    for workload in requests:
        for k in clients:
            for server in ("gateway", "baseline"):
                s = results[server, workload, k]
                figures = f"{s.rate:8.0f} {s.p50:7.2f} {s.p95:7.2f} {s.p99:7.2f} {s.cpu_ms:7.2f}"
                print(f"{workload:8} {k:7} | {server:8} {figures}")
            g, b = results["gateway", workload, k], results["baseline", workload, k]
            ratios = (
                f"{g.rate / b.rate:8.2f} {g.p50 / b.p50:7.2f} {g.p95 / b.p95:7.2f} {g.p99 / b.p99:7.2f}"
                f" {g.cpu_ms / b.cpu_ms:7.2f}"
            )
            print(f"{workload:8} {k:7} | ratio    {ratios}   (gateway/baseline)")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline)
        return
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        world = args.world
        if world is None:
            from synthetic import load_profile, write_world

            world = tmp / "world"
            world.mkdir()
            started = time.perf_counter()
            write_world(load_profile("mini"), 42, world)
            print(f"world: mini, seed 42, generated in {time.perf_counter() - started:.1f} s")
        run(args, world, tmp)


if __name__ == "__main__":
    main()
