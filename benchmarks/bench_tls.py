"""Benchmark: what MLLP over TLS (mutual authentication, simulator.pki) costs the hub, per query and per
handshake.

A mini world is generated into a temporary directory and fed to a `rhin hub` process (ITI-8 A04 over plain
MLLP, for speed), then the hub is restarted on the same data twice — ``--plain-mllp`` and TLS (the default)
— alternately for ``--rounds`` rounds (the machine's load drifts; compare within a round):

(a) PIX queries: K clients on persistent connections, each a facility sending QBP^Q23 for its own local IDs
    (over TLS each presents that facility's certificate) back to back for N seconds. Printed per transport:
    queries/s, p50/p99, and TLS/plain (the throughput ratio) — TLS's cost per query once connected.
(b) Handshakes: K clients each opening a connection, sending one PIX query, closing, again and again —
    connection set-up included, which is what TLS adds most to. Printed: connections/s and ms per
    connection for each transport, the ratio, and the handshake's own cost (TLS ms − plain ms).

    .venv/bin/python benchmarks/bench_tls.py [--clients 8] [--seconds 3] [--rounds 2]

Absolute rates depend on the machine; the ratios are the numbers to track. No assertions.

Measured on the 2-core machine, quiet (8 clients, two rounds, `.venv/bin/python benchmarks/bench_tls.py`):
per query on a persistent connection TLS/plain 0.93× and 0.87× (10,629 → 9,859 and 11,240 → 9,821 PIX
queries/s; p50 0.70 → 0.78 ms); per new connection (handshake + one query) TLS/plain 0.15× and 0.13×
(712 and 696 TLS connections/s), the handshake itself ≈ 9.5 and 9.9 ms. An earlier run beside other jobs
(rates drifting 6× between rounds) saw no measurable per-query cost and 12–30 ms handshakes. Facilities keep
their MLLP connections open, so the handshake is paid once per connection, not per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from bench_mllp import Result, _answered, report  # noqa: E402
from bench_pix import Record, feed, hub_process, q23, read_records  # noqa: E402

from hl7wire import MLLPClient  # noqa: E402
from simulator.pki import ClientTls  # noqa: E402
from synthetic import load_profile, write_world  # noqa: E402


def _shares(records: Sequence[Record], clients: int) -> list[tuple[str, list[Record]]]:
    """One facility per client (the busiest first): over TLS a connection speaks for one facility."""
    by_facility: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_facility[r.facility].append(r)
    busiest = sorted(by_facility.items(), key=lambda kv: -len(kv[1]))
    return [busiest[i % len(busiest)] for i in range(clients)]


async def _queries(
    port: int, shares: Sequence[tuple[str, list[Record]]], tls: ClientTls | None, seconds: float, fresh: bool
) -> Result:
    """Each client queries its facility's IDs for ``seconds``: on one connection, or a new one each time."""
    result = Result(seconds=seconds)
    end = time.perf_counter() + seconds

    async def client(number: int, facility: str, mine: list[Record]) -> None:
        context = tls.context(facility) if tls is not None else None
        conn: MLLPClient | None = None
        n = 0
        try:
            while time.perf_counter() < end:
                n += 1
                cid = f"T{number}-{n}"
                t0 = time.perf_counter()
                if conn is None:
                    conn = MLLPClient("127.0.0.1", port, timeout=60, tls=context)
                    await conn.connect()
                reply = await conn.send(q23(mine[n % len(mine)], cid))
                if fresh:
                    await conn.close()
                    conn = None
                result.latencies.append(time.perf_counter() - t0)
                result.sent += 1
                result.errors += not _answered(reply, cid.encode())
        finally:
            if conn is not None:
                await conn.close()

    await asyncio.gather(*(client(i, f, mine) for i, (f, mine) in enumerate(shares)))
    return result


def measure(
    world: Path, data: Path, shares: Sequence[tuple[str, list[Record]]], args: argparse.Namespace
) -> None:
    rates: dict[tuple[str, bool], float] = {}
    p50: dict[tuple[str, bool], float] = {}
    for fresh in (False, True):
        for transport in ("plain", "tls"):
            with hub_process(world, data, tls=transport == "tls") as (_, port):
                tls = (
                    ClientTls(data / "pki" / "ca.pem", data / "pki" / "facilities")
                    if transport == "tls"
                    else None
                )
                asyncio.run(_queries(port, shares, tls, args.warmup, fresh))  # warm-up
                result = asyncio.run(_queries(port, shares, tls, args.seconds, fresh))
            label = f"{transport}-{'connect-per-query' if fresh else 'persistent'}"
            report(label, result)
            rates[transport, fresh] = result.rate
            p50[transport, fresh] = result.percentile(0.5) * 1000
        kind = "connection (TLS handshake + 1 query)" if fresh else "query on a persistent connection"
        ratio = rates["tls", fresh] / rates["plain", fresh]
        print(
            f"per {kind}: plain {rates['plain', fresh]:,.0f}/s, TLS {rates['tls', fresh]:,.0f}/s, "
            f"TLS/plain {ratio:.2f}×; p50 {p50['plain', fresh]:.2f} → {p50['tls', fresh]:.2f} ms",
            flush=True,
        )
    clients = len(shares)
    per_conn = {t: 1000 * clients / rates[t, True] for t in ("plain", "tls")}
    per_query = {t: 1000 * clients / rates[t, False] for t in ("plain", "tls")}
    handshake = (per_conn["tls"] - per_query["tls"]) - (per_conn["plain"] - per_query["plain"])
    print(
        f"handshakes: {rates['tls', True]:,.0f}/s with {clients} clients; a TLS connection costs "
        f"{per_conn['tls']:.2f} ms of a client's time against {per_conn['plain']:.2f} ms plain; "
        f"the handshake itself ≈ {handshake:.2f} ms",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as folder:
        tmp = Path(folder)
        world = tmp / "mini"
        world.mkdir()
        write_world(load_profile("mini"), 7, world, storage=None)
        records = read_records(world)
        data = tmp / "hub"
        with hub_process(world, data) as (_, port):
            seconds, bad = feed(port, records, 4)
        shares = _shares(records, args.clients)
        print(
            f"fed {len(records):,} local IDs ({bad} not AA) in {seconds:.2f} s; {args.clients} clients "
            f"(facilities {', '.join(sorted({f for f, _ in shares}))}), {args.seconds:g} s each, "
            f"{os.cpu_count()} CPUs",
            flush=True,
        )
        for number in range(1, args.rounds + 1):
            print(f"-- round {number} of {args.rounds}", flush=True)
            measure(world, data, shares, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
