"""Benchmark: how long the live network takes to be ready, docker backend vs process backend, side by side.

Each round starts the network of ``--world`` (default the ``ishikawa`` world: 32 disclosing facilities behind
the shards) with each backend in turn, on a fresh hub data directory, and times ``start()`` — from nothing
to every part answering its health check, with the network file written: the ``network N s`` figure of
``rhin up``'s ``ready:`` line, where the two backends differ. Then it stops it (the teardown is timed too).
``--bootstrap`` instead runs ``rhin up --exit-when-ready`` per backend (the whole ``ready:`` line, bootstrap
included: minutes on ishikawa) and reads its figures.

Printed: per round and the median, seconds per backend and the ratio docker / process (goal ≤ 2×). The image
must exist (``make image``); the Docker Engine API is ``--docker-host`` (e.g. podman's socket). Heavy: run it
under the project's lock, ``flock /work/heavy.lock .venv/bin/python benchmarks/bench_containers.py ...``.

    .venv/bin/python benchmarks/bench_containers.py --docker-host unix:///tmp/podman.sock
        [--world /work/worlds/ishikawa] [--rounds 3] [--shards 0] [--bootstrap]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulator.containers.network import DockerNetwork  # noqa: E402
from simulator.network import Network  # noqa: E402

READY = re.compile(r"network ([\d.]+) s, total ([\d.]+) s")


def _start(backend: str, world: Path, tmp: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(seconds to ready, seconds to stop) for one start of ``backend``."""
    common = {"data": tmp / "hub", "network_file": tmp / "network.json", "shards": args.shards or None}
    net: Network = (
        DockerNetwork(world, docker_host=args.docker_host, **common)
        if backend == "docker"
        else Network(world, **common)
    )
    started = time.monotonic()
    try:
        net.start()
        ready = time.monotonic() - started
    finally:
        stopping = time.monotonic()
        net.stop()
    return ready, time.monotonic() - stopping


def _rhin_up(backend: str, world: Path, tmp: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(network seconds, total seconds) from ``rhin up --exit-when-ready``'s ready line."""
    argv = [sys.executable, "-m", "harness.cli", "up", "--world", str(world), "--exit-when-ready"]
    argv += ["--data", str(tmp / "hub"), "--network-file", str(tmp / "network.json"), "--backend", backend]
    argv += ["--shards", str(args.shards)] + (["--docker-host", args.docker_host] if args.docker_host else [])
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True).stdout
    found = READY.search(out)
    if found is None:
        raise SystemExit(f"no ready line from rhin up --backend {backend}: {out!r}")
    return float(found[1]), float(found[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, default=Path("/work/worlds/ishikawa"))
    parser.add_argument("--docker-host", default=None, help="Docker Engine API URL (default: environment)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shards", type=int, default=0, help="gateway shards (0: one per core)")
    parser.add_argument("--bootstrap", action="store_true", help="time rhin up --exit-when-ready (long)")
    args = parser.parse_args()
    world = args.world.resolve()
    measure = _rhin_up if args.bootstrap else _start
    labels = ("network s", "total s") if args.bootstrap else ("ready s", "stop s")
    results: dict[str, list[tuple[float, float]]] = {"process": [], "docker": []}
    for i in range(args.rounds):
        for backend in results:  # alternate, so drift on a shared machine hits both alike
            with tempfile.TemporaryDirectory(prefix="bench-containers-") as tmp:
                first, second = measure(backend, world, Path(tmp), args)
            results[backend].append((first, second))
            print(
                f"round {i + 1} {backend:7}: {labels[0]} {first:6.2f}  {labels[1]} {second:6.2f}", flush=True
            )
    med = {
        b: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
        for b, rs in results.items()
    }
    for backend, (first, second) in med.items():
        print(f"median  {backend:7}: {labels[0]} {first:6.2f}  {labels[1]} {second:6.2f}")
    ratio = med["docker"][0] / med["process"][0]
    print(f"docker / process {labels[0]}: {ratio:.2f}x (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    if args.bootstrap:
        print(f"docker / process total s: {med['docker'][1] / med['process'][1]:.2f}x")


if __name__ == "__main__":
    main()
