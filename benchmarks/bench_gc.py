"""Benchmark: the hub's full garbage collection, before and after :func:`simulator.ready.settle_heap`.

Why: under load the hub's allocation rate triggers a full (generation 2) collection every second or so, and
a full collection walks every object alive, the world's indexes included: the event loop stops for all of
it, and every request in flight waits. Seen at ×400 on ishikawa (2-core VM, a gc callback in the hub): 77
full collections in 100 s, 32 ms each (max 62); with the heap settled 84 of 1.1 ms (the load run's timeline
and feed p95 shrank with it; PIX and PDQ's did not). ``python -m simulator.hub``, ``python -m
simulator.gateway`` and ``rhin hub`` settle their heap once ready.

This loads the hub's stores for ``--world`` in a fresh process exactly as ``run_hub`` opens them (index,
accounts, consents, audit log, on a copy of nothing: a temporary data folder), then times ``gc.collect()``
(median of ``--repeat``) before and after ``settle_heap``. Printed: objects tracked, full-collection ms
before and after, and their ratio.

    .venv/bin/python benchmarks/bench_gc.py [--world worlds/mini] [--repeat 5]

No assertions; the ratio is the number to track.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.hub.server import _open_stores, _prepare
from simulator.ready import settle_heap
from synthetic.clock import jst_now


def _full_ms(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _measure(world: Path, repeat: int) -> tuple[int, float, float]:
    data = Path(tempfile.mkdtemp(prefix="rhin-bench-gc-"))
    try:
        setup = _prepare(world, data, "127.0.0.1", None, True, None)
        async with AsyncExitStack() as stack:
            stores = _open_stores(stack, setup.data, setup.directory, jst_now, None, None)
            objects = len(gc.get_objects())
            before = _full_ms(repeat)
            settle_heap()
            after = _full_ms(repeat)
            del stores
        return objects, before, after
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", type=Path, default=Path("worlds/mini"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not (args.world / "world.json").is_file():
        print(f"no world at {args.world} (make run generates worlds/mini)", file=sys.stderr)
        return 2
    objects, before, after = asyncio.run(_measure(args.world, args.repeat))
    print(f"world {args.world}: {objects:,} objects tracked with the hub's stores open")
    print(f"full collection: {before:.3f} ms before settle_heap, {after:.3f} ms after")
    print(f"ratio after/before: {after / before:.3f}" if before > 0 else "ratio: n/a")
    return 0


if __name__ == "__main__":
    sys.exit(main())
