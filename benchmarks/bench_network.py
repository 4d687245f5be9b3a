"""Benchmark: `rhin up` on a whole world, then timeline and fetch under concurrent viewers.

(a) Start. ``rhin up --world DIR`` runs as a real process on a fresh hub data directory, its process tree's
    resident memory sampled throughout. Printed: seconds until the network is healthy (budget 60 s), seconds
    until the bootstrap is done (budget 600 s), peak RSS of all its processes (budget 4 GiB), with ratios.
(b) Viewers. With the network up (links on unless ``--no-links``), ``--viewers`` concurrent viewers (default
    20) each log in as a physician of a facility a patient attends and, for ``--seconds``, open a sharing
    patient's timeline and fetch one of its entries, again and again. Printed: timeline and fetch p50 / p95 /
    p99 and throughput, and the hub's own overhead on a timeline — its latency minus the slowest contributing
    source's time as the hub measured it (link + gateway): p50, p95 and the ratio to its budget (p95 ≤ 20 ms).

    "Concurrent viewers" is read two ways, both worth printing: ``--think 0`` (default) is a closed loop
    with no pause — every viewer fires its next request the moment the last one returns, the hub's
    saturation figure on this machine, where the hub, the gateways and this load generator share 2 cores;
    ``--think S`` gives each viewer a mean S seconds (exponential) of reading between patients, as a
    clinician has — 20 people at work at once.

    .venv/bin/python benchmarks/bench_network.py [--world worlds/ishikawa] [--viewers 20] [--seconds 30]
                                                 [--think 0,1] [--no-links] [--keep]

The world must exist (``rhin generate --profile ishikawa --seed 42 --out worlds/ishikawa``: ~8 min with its
storage). Absolute figures depend on the machine; the ratios are what to track. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from procmem import TreeSampler  # noqa: E402

READY_BUDGET, BOOTSTRAP_BUDGET, RSS_BUDGET, OVERHEAD_BUDGET_MS = 60.0, 600.0, 4 * 2**30, 20.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def start(
    world: Path, data: Path, links: bool
) -> tuple[subprocess.Popen[str], TreeSampler, dict[str, float]]:
    cmd = [sys.executable, "-m", "harness.cli", "up", "--world", str(world), "--data", str(data)]
    cmd += ["--network-file", str(data / "network.json")] + ([] if links else ["--no-links"])
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid, interval=0.5)
    sampler.__enter__()
    figures: dict[str, float] = {}
    assert proc.stdout is not None
    assert proc.stderr is not None
    line = proc.stdout.readline()
    figures["wall_to_ready"] = time.monotonic() - started
    if not line.startswith("ready:"):
        proc.kill()
        sys.exit(f"rhin up failed: {line}{proc.stderr.read()[-2000:]}")
    match = re.search(r"network ([\d.]+) s, total ([\d.]+) s", line)
    assert match, line
    figures["network_seconds"], figures["total_seconds"] = float(match[1]), float(match[2])
    print(line.strip())
    return proc, sampler, figures


def pairs(world: Path, data: Path, facilities: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(viewer facility, regional ID) for patients whose consent is current and who attend ≥ 2 facilities."""
    regional = json.loads((data / "bootstrap.json").read_text(encoding="utf-8"))["regional_ids"]
    db = sqlite3.connect(f"file:{world / 'world.sqlite'}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT p.patient_id, group_concat(l.facility_code)"
        " FROM patients p JOIN local_ids l USING (patient_index)"
        " WHERE p.patient_index NOT IN (SELECT patient_index FROM consent_withdrawals)"
        " GROUP BY p.patient_index HAVING count(*) >= 2"
    ).fetchall()
    db.close()
    out = []
    for pid, codes in rows:
        attended = codes.split(",")
        if not any(facilities[c]["network_role"] == "disclosing" for c in attended):
            continue
        viewers = [c for c in attended if facilities[c]["kind"] in ("hospital", "clinic")]
        if viewers and pid in regional:
            out.append((viewers[0], regional[pid]))
    random.Random(7).shuffle(out)
    return out


async def viewers(
    base: str,
    facilities: dict[str, dict[str, Any]],
    work: list[tuple[str, str]],
    n: int,
    seconds: float,
    think: float = 0.0,
) -> dict[str, list[float]]:
    timeline_ms: list[float] = []
    overhead_ms: list[float] = []
    inside_ms: list[float] = []
    phases: dict[str, list[float]] = {}
    fetch_ms: list[float] = []
    errors: list[str] = []
    # aiohttp: the measuring instrument should cost the shared CPU as little as possible.
    connector = aiohttp.TCPConnector(limit=n * 2)
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(60)) as client:
        tokens: dict[str, str] = {}

        async def token(code: str) -> str:
            if code not in tokens:
                user = next(u for u in facilities[code]["users"] if u["viewer_kind"] == "physician")
                body = {"facility": code, "user_id": user["user_id"], "password": user["password"]}
                async with client.post("/auth/login", json=body) as reply:
                    tokens[code] = (await reply.json())["token"]
            return tokens[code]

        deadline = time.monotonic() + seconds
        cursor = 0
        rng = random.Random(11)

        async def viewer() -> None:
            nonlocal cursor
            while time.monotonic() < deadline:
                code, rid = work[cursor % len(work)]
                cursor += 1
                headers = {"Authorization": f"Bearer {await token(code)}"}
                t0 = time.perf_counter()
                async with client.get(f"/patients/{rid}/timeline", headers=headers) as reply:
                    raw = await reply.read()
                took = (time.perf_counter() - t0) * 1000
                if reply.status != 200:
                    errors.append(f"timeline {reply.status}")
                    continue
                body = json.loads(raw)
                ok = [s for s in body["sources"] if s["status"] == "ok"]
                timeline_ms.append(took)
                if ok:
                    slowest = max(s["elapsed_ms"] for s in ok)
                    overhead_ms.append(took - slowest)
                    timing = server_timing(reply.headers.get("server-timing", ""))
                    if "total" in timing:
                        inside_ms.append(timing["total"] - slowest)
                        for name, value in timing.items():
                            phases.setdefault(name, []).append(value)
                if body["entries"]:
                    e = body["entries"][len(body["entries"]) // 2]
                    t0 = time.perf_counter()
                    async with client.get(
                        f"/patients/{rid}/entries/{e['source']}/{e['id']}", headers=headers
                    ) as got:
                        await got.read()
                    if got.status == 200:
                        fetch_ms.append((time.perf_counter() - t0) * 1000)
                    else:
                        errors.append(f"fetch {got.status}")
                if think:
                    await asyncio.sleep(rng.expovariate(1 / think))

        await asyncio.gather(*(viewer() for _ in range(n)))
    if errors:
        print(f"errors: {len(errors)} (first: {errors[:3]})")
    for name, values in sorted(phases.items()):
        print(f"  server-timing {name:8s} p50 {pct(values, 50):7.2f} ms  p95 {pct(values, 95):7.2f} ms")
    return {"timeline": timeline_ms, "overhead": overhead_ms, "fetch": fetch_ms, "inside": inside_ms}


def server_timing(header: str) -> dict[str, float]:
    """``name;dur=ms, ...`` → {name: ms}."""
    out = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if rest:
            out[name] = float(rest)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, default=ROOT / "worlds" / "ishikawa")
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--no-links", action="store_true")
    parser.add_argument(
        "--think",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[0.0],
        help="comma-separated: mean seconds a viewer reads between patients (exponential), one run each",
    )
    parser.add_argument("--keep", action="store_true", help="keep the hub data directory")
    args = parser.parse_args()
    world = args.world.resolve()
    if not (world / "world.json").is_file():
        sys.exit(f"no world at {world}: rhin generate --profile ishikawa --seed 42 --out {args.world}")
    facilities = {f["code"]: f for f in json.loads((world / "world.json").read_text("utf-8"))["facilities"]}
    data = Path(tempfile.mkdtemp(prefix="bench-network-"))
    proc, sampler, fig = start(world, data, links=not args.no_links)
    try:
        info = json.loads((data / "network.json").read_text(encoding="utf-8"))
        work = pairs(world, data, facilities)
        runs = []
        for think in args.think:
            print(
                f"(b) {args.viewers} viewers for {args.seconds:.0f} s over {len(work)} patients,"
                f" think {think:g} s, links {'off' if args.no_links else 'on'}"
            )
            started = time.monotonic()
            base = info["hub"]["http"]["base_url"]
            got = asyncio.run(viewers(base, facilities, work, args.viewers, args.seconds, think))
            runs.append((think, got, time.monotonic() - started))
    finally:
        proc.send_signal(2)
        proc.wait(60)
        sampler.__exit__(None, None, None)
        if not args.keep:
            subprocess.run(["rm", "-rf", str(data)], check=False)
    bootstrap_s = fig["total_seconds"] - fig["network_seconds"]
    print("(a) rhin up")
    row("network healthy", fig["network_seconds"], "s", fig["network_seconds"] / READY_BUDGET, "60 s")
    row("bootstrap", bootstrap_s, "s", None, "")
    row("ready (total)", fig["total_seconds"], "s", fig["total_seconds"] / BOOTSTRAP_BUDGET, "600 s")
    row("peak RSS (tree)", sampler.peak / 2**20, "MiB", sampler.peak / RSS_BUDGET, "4 GiB")
    for think, got, elapsed in runs:
        print(f"(b) {args.viewers} viewers, think {think:g} s")
        for name in ("timeline", "fetch"):
            values = got[name]
            print(
                f"  {name:9s} n={len(values):6d}  p50 {pct(values, 50):7.1f} ms"
                f"  p95 {pct(values, 95):7.1f} ms  p99 {pct(values, 99):7.1f} ms"
                f"  {len(values) / elapsed:7.1f}/s"
            )
        o = got["overhead"]
        mean = statistics.fmean(o) if o else float("nan")
        print(f"  hub overhead on a timeline: p50 {pct(o, 50):.1f} ms, mean {mean:.1f} ms")
        row("hub overhead p95", pct(o, 95), "ms", pct(o, 95) / OVERHEAD_BUDGET_MS, "20 ms")
        inside = got["inside"]
        print("  the same, measured inside the hub (Server-Timing total − slowest source; excludes HTTP")
        print("  parsing and the load generator's own queueing):")
        row("hub-side p95", pct(inside, 95), "ms", pct(inside, 95) / OVERHEAD_BUDGET_MS, "20 ms")


def row(name: str, value: float, unit: str, ratio: float | None, budget: str) -> None:
    tail = f"ratio to the {budget} budget {ratio:.2f}" if ratio is not None else ""
    print(f"  {name:18s}{value:9.1f} {unit:4s} {tail}")


if __name__ == "__main__":
    main()
