"""Benchmark: ITI-45 (PIXv3 over SOAP/HTTPS) against ITI-9 (PIX over MLLP/TLS) on the same hub, same run.

A mini world is generated into a temporary directory (or ``--world``); the hub runs as a real subprocess
(``python -m simulator.hub``, TLS with the facility certificates on both MLLP and SOAP, audit on as in
production). ``--patients`` patients are fed (ITI-8 A04) at two of their facilities, the hub is stopped,
each patient's two records are linked to one regional ID offline (:meth:`PatientIndex.link`, as bench_pix
does) and the hub restarted on the same data, so every query below is answered AA/OK with two other IDs.

Then ``--clients`` concurrent clients (asyncio, persistent connections: MLLP framing for ITI-9, HTTP/1.1
keep-alive for ITI-45, each with one facility's client certificate) query as fast as replies come back for
``--seconds``: queries/s, p50/p99 for each, and **ITI-45/ITI-9** (goal ≥ 0.5). The request bytes are built
before timing and replies are only checked for their AA/OK codes, so the driver's share is small and alike.
Each round also prints the hub's CPU time per request (``/proc/<pid>/stat`` before and after the measure)
and this process's own (the load driver): a side near one CPU-second per second is the bottleneck, and
with the hub saturated for both protocols the rate ratio is the ratio of its CPU per request.
Then ITI-45 is paced at half its measured maximum for ``--seconds`` and its p99 printed (goal < 20 ms).
``--rounds N`` alternates the two N times (the machine's load drifts: compare within a round).

    .venv/bin/python benchmarks/bench_pixv3.py [--patients 200] [--clients 8] [--seconds 3] [--rounds 1]

Absolute rates depend on the machine (2 shared cores here); the ratios are what to track. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree

from harness.hl7v3client import V3Client, pix_query
from hl7wire import MLLPClient
from simulator.hub.index import DomainDirectory, PatientIndex
from simulator.pki import ClientTls
from simulator.ready import parse as parse_ready
from synthetic import load_profile, write_world

ROOT = Path(__file__).resolve().parents[1]


def start_hub(world: Path, data: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    cmd = [
        sys.executable,
        "-m",
        "simulator.hub",
        "--world",
        str(world),
        "--data",
        str(data),
        "--scrypt-cost",
        "4",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        info = parse_ready(line.strip())
        if info is not None:
            return proc, info
    raise SystemExit(f"the hub did not start (exit {proc.wait()})")


def stop_hub(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def pairs(world: Path, n: int) -> list[tuple[str, str, str, str]]:
    """(facility A, local ID at A, facility B, local ID at B) for n patients seen at two facilities."""
    con = sqlite3.connect(f"file:{world / 'world.sqlite'}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT a.facility_code, a.local_id, b.facility_code, b.local_id FROM local_ids a JOIN local_ids b"
        " ON a.patient_index = b.patient_index AND a.facility_code < b.facility_code"
        " GROUP BY a.patient_index ORDER BY a.patient_index LIMIT ?",
        (n,),
    ).fetchall()
    con.close()
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def frame(text: str) -> bytes:
    return text.encode()  # MLLPClient.send frames it


async def feed(
    addr: tuple[str, int], tls: ClientTls, ns: dict[str, str], records: list[tuple[str, str]]
) -> None:
    for n, (code, local) in enumerate(records):
        client = MLLPClient(*addr, tls=tls.context(code))
        await client.connect()
        msg = (
            f"MSH|^~\\&|HIS|{code}|RHIN_HUB|RHIN|20261120090000+0900||ADT^A04^ADT_A01|F{n}|P|2.5\r"
            f"EVN|A04|20261120090000\rPID|1||{local}^^^{ns[code]}^PI||HOKURIKU^TARO||19500101|M\r"
        )
        reply = await client.send(frame(msg))
        assert b"MSA|AA" in reply, reply
        await client.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, run: Callable[[], list[float]]) -> tuple[list[float], float, float]:
    """``run()``'s latencies, and the hub's and this process's CPU seconds while it ran: which side is
    the bottleneck (a side near 1 CPU-second per second is saturated)."""
    hub0, own0 = cpu_seconds(pid), time.process_time()
    lat = run()
    return lat, cpu_seconds(pid) - hub0, time.process_time() - own0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] if ordered else 0.0


Jobs = list[tuple[str, list[bytes]]]
"""Per client: the asking facility (whose certificate it presents) and the requests it sends in turn."""


async def drive_mllp(addr: tuple[str, int], tls: ClientTls, jobs: Jobs, seconds: float) -> list[float]:
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one(code: str, payloads: list[bytes]) -> None:
        client = MLLPClient(*addr, tls=tls.context(code))
        await client.connect()
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            reply = await client.send(payloads[i % len(payloads)])
            lat.append((time.perf_counter() - started) * 1000)
            assert b"QAK|" in reply, reply[:300]
            assert b"|OK|" in reply, reply[:300]
            i += 1
        await client.close()

    await asyncio.gather(*(one(code, payloads) for code, payloads in jobs))
    return lat


async def drive_v3(
    addr: tuple[str, int], tls: ClientTls, jobs: Jobs, seconds: float, rate: float | None = None
) -> list[float]:
    """As fast as replies come, or (``rate``) paced so that all clients together send ``rate`` per second.

    HTTP/1.1 keep-alive on raw asyncio TLS streams with pre-built requests (httpx's own per-request CPU in
    this process would be measured instead of the hub's: ~1 ms, more than the hub spends)."""
    lat: list[float] = []
    deadline = time.perf_counter() + seconds
    head = (
        "POST /pixv3/query HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/soap+xml; charset=UTF-8\r\n"
        "Content-Length: {}\r\n\r\n"
    )

    async def one(code: str, bodies: list[bytes]) -> None:
        requests = [head.format(addr[0], addr[1], len(b)).encode() + b for b in bodies]
        reader, writer = await asyncio.open_connection(*addr, ssl=tls.context(code), server_hostname=addr[0])
        i = 0
        next_at = time.perf_counter()
        while time.perf_counter() < deadline:
            if rate is not None:
                next_at += len(jobs) / rate
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            lat.append((time.perf_counter() - started) * 1000)
            assert b" 200 " in status, status
            assert b'queryResponseCode code="OK"' in body, body[:300]
            i += 1
        writer.close()

    await asyncio.gather(*(one(code, bodies) for code, bodies in jobs))
    return lat


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", type=Path, default=None)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pixv3-") as tmp:
        world = args.world
        if world is None:
            world = Path(tmp) / "world"
            world.mkdir()
            write_world(load_profile("mini"), 42, world, storage=None)
        doc = json.loads((world / "world.json").read_text(encoding="utf-8"))
        ns = {str(f["code"]): f["assigning_authority"]["namespace"] for f in doc["facilities"]}
        oid = {str(f["code"]): f["assigning_authority"]["oid"] for f in doc["facilities"]}
        data = Path(tmp) / "data"
        chosen = pairs(world, args.patients)
        proc, info = start_hub(world, data)
        tls = ClientTls(data / "pki" / "ca.pem", data / "pki" / "facilities")
        mllp = tuple(info["mllp"])  # type: ignore[arg-type]
        try:
            records = [(a, la) for a, la, _, _ in chosen] + [(b, lb) for _, _, b, lb in chosen]
            asyncio.run(feed(mllp, tls, ns, records))  # type: ignore[arg-type]
        finally:
            stop_hub(proc)
        with PatientIndex(data / "hub.sqlite", DomainDirectory.load(world / "world.json")) as index:
            for a, la, b, lb in chosen:
                rid = index.link(ns[a], la)
                index.link(ns[b], lb, rid)
        proc, info = start_hub(world, data)
        try:
            mllp = tuple(info["mllp"])  # type: ignore[arg-type]
            soap_addr = tuple(info["soap"])  # type: ignore[arg-type]
            soap = "https://{}:{}".format(*soap_addr)
            askers = sorted(ns)[: args.clients]  # each client asks as one facility, with its certificate
            probe = V3Client(soap, tls.context(askers[0]))
            v2_jobs: Jobs = []
            v3_jobs: Jobs = []
            for asker in askers:
                v2 = [
                    frame(
                        f"MSH|^~\\&|HIS|{asker}|RHIN_HUB|RHIN|20261120090000+0900||QBP^Q23^QBP_Q21|Q{n}|P|2.5\r"
                        f"QPD|IHE PIX Query|T{n}|{la}^^^{ns[a]}\rRCP|I\r"
                    )
                    for n, (a, la, _, _) in enumerate(chosen)
                ]
                v3 = [
                    probe.envelope(
                        "urn:hl7-org:v3:PRPA_IN201309UV02",
                        pix_query((oid[asker], asker), (oid[a], la), query_id=f"Q{n}"),
                        f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
                    )
                    for n, (a, la, _, _) in enumerate(chosen)
                ]
                v2_jobs.append((asker, v2))
                v3_jobs.append((asker, v3))
            probe.close()
            etree.fromstring(v3_jobs[0][1][0])  # well-formed
            print(
                f"hub pid {info['pid']}; {len(chosen)} linked patients;"
                f" {len(askers)} clients; {args.seconds} s"
            )
            columns = ("ITI-9 q/s", "p50", "p99", "ITI-45 q/s", "p50", "p99", "45/9")
            columns += ("hub µs 9", "45", "client µs 9", "45")
            print(f"{'round':>5} " + " ".join(f"{c:>{len(c) + 1}}" for c in columns))
            rates = []
            pid = int(info["pid"])  # type: ignore[call-overload]
            for r in range(args.rounds):
                v2, hub2, own2 = measured(
                    pid,
                    lambda: asyncio.run(drive_mllp(mllp, tls, v2_jobs, args.seconds)),  # type: ignore[arg-type]
                )
                v3, hub3, own3 = measured(
                    pid, lambda: asyncio.run(drive_v3(soap_addr, tls, v3_jobs, args.seconds))
                )
                q2, q3 = len(v2) / args.seconds, len(v3) / args.seconds
                rates.append(q3)
                us = [1e6 * t / max(1, len(n)) for t, n in ((hub2, v2), (hub3, v3), (own2, v2), (own3, v3))]
                print(
                    f"{r + 1:>5} {q2:>10.0f} {percentile(v2, 50):>4.2f} {percentile(v2, 99):>4.2f}"
                    f" {q3:>11.0f} {percentile(v3, 50):>4.2f} {percentile(v3, 99):>4.2f} {q3 / q2:>5.2f}"
                    f" {us[0]:>9.0f} {us[1]:>4.0f} {us[2]:>12.0f} {us[3]:>4.0f}"
                )
            half = max(rates) / 2
            paced = asyncio.run(drive_v3(soap_addr, tls, v3_jobs, args.seconds, rate=half))
            print(
                f"ITI-45 paced at {half:.0f} q/s (half the maximum): {len(paced) / args.seconds:.0f} q/s,"
                f" p50 {percentile(paced, 50):.2f} ms, p99 {percentile(paced, 99):.2f} ms (goal < 20 ms)"
            )
        finally:
            stop_hub(proc)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
