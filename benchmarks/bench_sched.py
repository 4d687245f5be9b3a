"""Benchmark: the capacity model's machine (:class:`simulator.des.scheduler.Scheduler`) against this machine's
own scheduler.

Why: when a load run is replayed, the hub, its password worker, the gateway shards and Locust share the
machine's cores, and how the kernel places them decides how much a short request is slowed beside a busy
password worker. This runs the same small experiment live and in the model and prints both:

* a server process answering requests over loopback TCP, each ``--work-ms`` of CPU (burnt against the
  thread's CPU clock, so the work is exact), from one client at Poisson times, ``--rate`` per second (a
  request due while the previous one is out goes when it is answered);
* beside it ``hogs`` processes that never sleep (as a password worker with a queue of logins: scrypt) and
  ``others`` processes busy 2 ms at a time, 25 % of the time (as gateways and Locust).

``--mixes`` picks other mixes than the default (``--mixes 0:0,0:4,0:6,1:3,1:5 --work-ms 0.3 --rate 100``: a
short request, as a feed or a PIX query is, on crowded cores); ``--live-from`` reads the live figures from a
previous run's output instead of measuring them again (to check a change to the model's rules alone).

For each mix: the live p50 / p95 of the server's response time, the model's (the same arrivals, work and
sleeps on a ``Scheduler`` of the machine's cores with the model's wake-up delays, ``WAKE_DELAYS``, drawn
from a seed of its own, plus the live round trip of an idle server), and their ratio. No assertions; the
ratios are the numbers to track (the short mixes above are what ``WAKE_DELAYS`` was fitted to).

    .venv/bin/python benchmarks/bench_sched.py [--requests 1000] [--rate 40] [--work-ms 6]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import random
import socket
import sys
import time
from collections.abc import Generator
from functools import partial
from pathlib import Path
from typing import Any

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.des.scheduler import WAKE_DELAYS, Scheduler
from simulator.des.stations import Station

MIXES = ((0, 0), (1, 0), (0, 2), (1, 1), (1, 2), (1, 3))
OTHER_BURST_S = 0.002
OTHER_BUSY = 0.25


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _server(ports: Any, work_s: float) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    ports.put(s.getsockname()[1])
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while c.recv(16):
        _burn(work_s)
        c.sendall(b"x")


def _hog(stop: Any) -> None:
    while not stop.is_set():
        hashlib.scrypt(b"password", salt=b"salt", n=2**14, r=8, p=1)


def _gap(rng: random.Random) -> float:
    return rng.expovariate(1 / (OTHER_BURST_S / OTHER_BUSY - OTHER_BURST_S))


def _other(stop: Any, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        _burn(OTHER_BURST_S)
        time.sleep(_gap(rng))


def _quantiles(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return ms[len(ms) // 2], ms[int(len(ms) * 0.95)]


def live(hogs: int, others: int, n: int, rate: float, work_s: float) -> list[float]:
    """Response times (ms) of ``n`` requests to a live server beside ``hogs`` and ``others``."""
    ports: Any = mp.Queue()
    server = mp.Process(target=_server, args=(ports, work_s))
    server.start()
    port = ports.get()
    stop = mp.Event()
    side = [mp.Process(target=_hog, args=(stop,)) for _ in range(hogs)]
    side += [mp.Process(target=_other, args=(stop, 100 + i)) for i in range(others)]
    for p in side:
        p.start()
    time.sleep(0.5)
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rng = random.Random(7)
    took: list[float] = []
    due = time.perf_counter()
    for _ in range(n):
        due += rng.expovariate(rate)
        if (pause := due - time.perf_counter()) > 0:
            time.sleep(pause)
        t0 = time.perf_counter()
        c.sendall(b"q")
        c.recv(1)
        took.append((time.perf_counter() - t0) * 1000)
    stop.set()
    c.close()
    for p in [server, *side]:
        p.join()
    return took


def model(hogs: int, others: int, n: int, rate: float, work_s: float, cores: int) -> list[float]:
    """The same mix on the model's machine: response times (ms), CPU and queueing only."""
    env = simpy.Environment()
    machine = Scheduler(env, "machine", cores, partial(WAKE_DELAYS.draw, rng=random.Random(11)))
    server = Station(env, "server", 1, machine)
    took: list[float] = []

    def hog() -> Generator[simpy.Event, Any, None]:
        task = machine.task("hog")
        while True:
            yield from machine.run(task, 1.0)

    def other(seed: int) -> Generator[simpy.Event, Any, None]:
        rng = random.Random(seed)
        task = machine.task("other")
        while True:
            yield from machine.run(task, OTHER_BURST_S)
            yield env.timeout(_gap(rng))

    def client() -> Generator[simpy.Event, Any, None]:  # as the live one: the next request after the reply
        rng = random.Random(7)
        due = 0.0
        for _ in range(n):
            due += rng.expovariate(rate)
            if due > env.now:
                yield env.timeout(due - env.now)
            t0 = env.now
            yield from server.hold(work_s)
            took.append((env.now - t0) * 1000)

    for _ in range(hogs):
        env.process(hog())
    for i in range(others):
        env.process(other(100 + i))
    env.process(client())
    while len(took) < n:
        env.step()
    return took


def _mix(text: str) -> tuple[int, int]:
    try:
        hogs, others = (int(x) for x in text.split(":"))
    except ValueError:
        raise SystemExit(f"--mixes: {text!r} is not hogs:others") from None
    return hogs, others


def _earlier(path: Path) -> dict[tuple[int, int], tuple[float, float]]:
    """(hogs, others) → (live p50, live p95) from a previous run's printed table."""
    rows: dict[tuple[int, int], tuple[float, float]] = {}
    for line in path.read_text().splitlines():
        cells = line.split()
        if len(cells) == 8 and cells[0].isdigit() and cells[1].isdigit():
            rows[int(cells[0]), int(cells[1])] = float(cells[2]), float(cells[5])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=40.0, help="requests per second")
    ap.add_argument("--work-ms", type=float, default=6.0, help="CPU per request")
    ap.add_argument(
        "--mixes",
        default=",".join(f"{h}:{o}" for h, o in MIXES),
        help="hogs:others pairs, comma-separated; the first should be 0:0 (it measures the round trip)",
    )
    ap.add_argument("--live-from", type=Path, help="take the live p50 / p95 from this earlier output")
    args = ap.parse_args()
    mixes = [_mix(m) for m in args.mixes.split(",")]
    earlier = _earlier(args.live_from) if args.live_from else {}
    cores = os.cpu_count() or 1
    work_s = args.work_ms / 1000
    print(
        f"{cores} cores; server {args.work_ms} ms CPU per request at {args.rate}/s; others busy "
        f"{OTHER_BUSY:.0%} in {OTHER_BURST_S * 1000:.0f}-ms bursts"
    )
    head = f"{'live p50':>8} {'model':>6} {'ratio':>5}   {'live p95':>8} {'model':>6} {'ratio':>5}"
    print(f"{'hogs':>4} {'others':>6}  {head}")
    trip_ms = 0.0
    for hogs, others in mixes:
        if args.live_from:
            if (hogs, others) not in earlier:
                raise SystemExit(f"{args.live_from}: no row for {hogs} hogs, {others} others")
            lp50, lp95 = earlier[hogs, others]
        else:
            lp50, lp95 = _quantiles(live(hogs, others, args.requests, args.rate, work_s))
        if (hogs, others) == (0, 0):
            trip_ms = lp50 - args.work_ms  # loopback round trip and the client's own work
        mp50, mp95 = _quantiles(model(hogs, others, args.requests, args.rate, work_s, cores))
        mp50, mp95 = mp50 + trip_ms, mp95 + trip_ms
        print(
            f"{hogs:>4} {others:>6}  {lp50:8.2f} {mp50:6.2f} {mp50 / lp50:5.2f}   "
            f"{lp95:8.2f} {mp95:6.2f} {mp95 / lp95:5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
