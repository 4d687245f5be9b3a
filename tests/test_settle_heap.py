"""simulator.ready.settle_heap: a serving process's start-up heap leaves the full collections' way, and
what it makes later is still collected. Run in a child process: freezing pytest's own heap would keep its
garbage cycles for the rest of the session."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, time, weakref
from simulator.ready import settle_heap

index = [{"id": i, "names": [str(i)]} for i in range(200_000)]  # a world's index, loaded once
gc.collect()
started = time.perf_counter(); gc.collect(); before = time.perf_counter() - started
settle_heap()
assert gc.get_freeze_count() >= 200_000, gc.get_freeze_count()
started = time.perf_counter(); gc.collect(); after = time.perf_counter() - started
assert after < before / 5, (before, after)

class Node:
    pass

cycle = Node()
cycle.me = cycle
gone = weakref.ref(cycle)
del cycle
gc.collect()
assert gone() is None, "a cycle made after settling is still collected"
print("ok", round(before * 1000, 2), round(after * 1000, 2))
"""


def test_settle_heap_freezes_the_start_and_still_collects_later_cycles() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
