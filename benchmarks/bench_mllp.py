"""Benchmark: MLLP round trips against the echo server (the floor of any HL7 server) and optionally a target.

The echo server (:class:`simulator.hub.mllp.EchoHandler`: decode by MSH-18, basic checks, AA ACK) runs in its
own process; K clients on persistent connections send as fast as replies come back for N seconds after a
short warm-up. Point ``--target`` at the hub (or any MLLP server) to get the same load there and the ratios
target/echo; the ratios are the numbers to track, absolute rates depend on the machine.

    .venv/bin/python benchmarks/bench_mllp.py [--clients 8] [--seconds 5] [--message q23|adt-jis|adt-utf8]
                                              [--target HOST:PORT [--no-echo]] [--driver-procs 1]

Prints messages/s, p50/p99/max latency, replies that were not AA for the right control id, and the echo
server's CPU per message; first, in process and without sockets, what :mod:`hl7wire` costs per message
(decode by MSH-18, basic checks, AA, encode: the echo server's work), to compare across changes of the wire
library (before/after figures go in the commit message). No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import timeit
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hl7wire import ControlIds, MLLPClient, ack, basic_checks, decode
from simulator.hub.mllp import EchoHandler, MLLPServer

MESSAGES = {
    "q23": (
        "MSH|^~\\&|CLINIC_A|FAC_A|RHIN_HUB|RHIN|20250401093000+0900||QBP^Q23^QBP_Q21|{cid}|P|2.5\r"
        "QPD|IHE PIX Query|Q{cid}|P123456^^^FAC_A&1.2.392.200119.6.102.11234567&ISO|^^^FAC_B\r"
        "RCP|I\r",
        "ascii",
    ),
    "adt-jis": (
        "MSH|^~\\&|CLINIC_A|FAC_A|RHIN_HUB|RHIN|20250401093000+0900||ADT^A01^ADT_A01|{cid}|P|2.3.1"
        "||||||~ISO IR87\r"
        "EVN|A01|20250401093000\r"
        "PID|1||P123456^^^FAC_A&1.2.392.200119.6.102.11234567&ISO||五十嵐^京子^^^^^L^I~イガラシ^キョウコ^^^^^L^P"
        "||19700101|F|||石川県金沢市広坂１丁目１番１号^^^^9208577^JPN^H||^PRN^PH^^^^^^^^^076-123-4567\r"
        "PV1|1|O\r",
        "iso2022_jp",
    ),
}
MESSAGES["adt-utf8"] = (MESSAGES["adt-jis"][0].replace("~ISO IR87", "UNICODE UTF-8"), "utf-8")


def template(kind: str) -> tuple[bytes, bytes]:
    """The message's bytes before and after its control id (MSH-10 is ASCII in every charset)."""
    text, codec = MESSAGES[kind]
    before, after = text.split("{cid}", 1)
    return before.encode(codec), after.replace("{cid}", "0").encode(codec)


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0  # warm-up included, for CPU per message
    seconds: float = 0.0
    driver_cpu: float = 0.0  # CPU seconds the load generator itself spent (it shares the machine)

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.sent += other.sent
        self.seconds = max(self.seconds, other.seconds)
        self.driver_cpu += other.driver_cpu

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _answered(reply: bytes, cid: bytes) -> bool:
    start = reply.find(b"\rMSA|")
    parts = reply[start + 1 :].split(b"\r", 1)[0].split(b"|") if start >= 0 else []
    return len(parts) > 2 and parts[1] == b"AA" and parts[2] == cid


async def _drive(host: str, port: int, clients: range, kind: str, begin: float, seconds: float) -> Result:
    before, after = template(kind)
    result = Result(seconds=seconds)
    end = begin + seconds

    async def client(number: int) -> None:
        async with MLLPClient(host, port, timeout=60) as conn:
            n = 0
            while True:
                started = time.time()
                if started >= end:
                    return
                n += 1
                cid = f"B{number}-{n}".encode()
                t0 = time.perf_counter()
                reply = await conn.send(before + cid + after)
                elapsed = time.perf_counter() - t0
                result.sent += 1
                if started >= begin:
                    result.latencies.append(elapsed)
                    result.errors += not _answered(reply, cid)

    await asyncio.gather(*(client(i) for i in clients))
    return result


def _drive_in_process(
    host: str, port: int, clients: range, kind: str, begin: float, seconds: float
) -> Result:
    started = time.process_time()
    result = asyncio.run(_drive(host, port, clients, kind, begin, seconds))
    result.driver_cpu = time.process_time() - started
    return result


def load(host: str, port: int, args: argparse.Namespace) -> Result:
    """K clients for warm-up + N seconds; every driver process measures over the same wall-clock window."""
    procs = max(1, min(args.driver_procs, args.clients))
    begin = time.time() + args.warmup + (0.5 if procs > 1 else 0.0)
    shares = [range(i, args.clients, procs) for i in range(procs)]
    if procs == 1:
        return _drive_in_process(host, port, shares[0], args.message, begin, args.seconds)
    total = Result(seconds=args.seconds)
    with ProcessPoolExecutor(procs) as pool:
        futures = [
            pool.submit(_drive_in_process, host, port, share, args.message, begin, args.seconds)
            for share in shares
        ]
        for future in futures:
            total.merge(future.result())
    return total


def wire_cost(kind: str, number: int = 20_000, repeat: int = 5) -> float:
    """µs per message of the echo server's HL7 work, in process (best of ``repeat``: the least disturbed)."""
    before, after = template(kind)
    raw = before + b"C1" + after
    ids = ControlIds("B")
    now = datetime.now(timezone(timedelta(hours=9)))

    def one() -> bytes:
        message, codec = decode(raw)
        assert not basic_checks(message)
        return ack(message, "AA", control_id=ids.next(), now=now).encode(codec)

    return min(timeit.repeat(one, number=number, repeat=repeat)) / number * 1e6


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(label: str, result: Result, cpu: float | None = None) -> None:
    ms = 1000.0
    line = (
        f"{label:<8} {len(result.latencies):>8,} msgs {result.rate:>9,.0f} msg/s   "
        f"p50 {result.percentile(0.5) * ms:6.2f} ms  p99 {result.percentile(0.99) * ms:6.2f} ms  "
        f"max {max(result.latencies, default=float('nan')) * ms:7.2f} ms   not-AA {result.errors}"
    )
    if cpu is not None and result.sent:
        line += f"   server CPU {cpu / result.sent * 1e6:5.0f} µs/msg"
    if result.driver_cpu and result.sent:
        line += f"   driver {result.driver_cpu / result.sent * 1e6:3.0f} µs/msg"
    print(line, flush=True)


async def serve_until_stopped(server: MLLPServer) -> None:
    """Start ``server``, print ``PORT n``, serve until SIGTERM/SIGINT, stop it."""
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {server.port}", flush=True)
    await stop.wait()
    await server.stop()


def serve(port: int) -> int:
    """The echo server process: prints ``PORT n`` once listening, stops on SIGTERM/SIGINT."""
    asyncio.run(serve_until_stopped(MLLPServer(EchoHandler(), "127.0.0.1", port)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--message", choices=sorted(MESSAGES), default="q23")
    parser.add_argument("--target", metavar="HOST:PORT", help="also load this MLLP server, report ratios")
    parser.add_argument("--no-echo", action="store_true", help="only the target")
    parser.add_argument("--driver-procs", type=int, default=1, help="client processes (the driver's GIL)")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        return serve(args.port)
    if args.no_echo and not args.target:
        parser.error("--no-echo needs --target")
    print(
        f"{args.clients} clients × {args.seconds:g} s (+{args.warmup:g} s warm-up), message {args.message}, "
        f"{args.driver_procs} driver process(es), {os.cpu_count()} CPUs",
        flush=True,
    )
    print(
        f"wire     {wire_cost(args.message):6.2f} µs/msg in process (decode, checks, AA, encode)", flush=True
    )
    echo: Result | None = None
    if not args.no_echo:
        proc = subprocess.Popen([sys.executable, __file__, "--serve-echo"], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline().split()[1])
            cpu_before = cpu_seconds(proc.pid)
            echo = load("127.0.0.1", port, args)
            cpu = cpu_seconds(proc.pid) - cpu_before
            report("echo", echo, cpu)
        finally:
            proc.terminate()
            proc.wait(10)
    if args.target:
        host, _, port_text = args.target.rpartition(":")
        target = load(host or "127.0.0.1", int(port_text), args)
        report("target", target)
        if echo is not None and echo.latencies and target.latencies:
            print(
                f"target/echo: throughput {target.rate / echo.rate:5.2f}×   "
                f"p50 {target.percentile(0.5) / echo.percentile(0.5):5.2f}×   "
                f"p99 {target.percentile(0.99) / echo.percentile(0.99):5.2f}×"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
