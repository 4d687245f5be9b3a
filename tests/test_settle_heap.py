"""simulator.ready.settle_heap: a serving process's start-up heap leaves the full collections' way, and
what it makes later is still collected. Run in a child process: freezing pytest's own heap would keep its
garbage cycles for the rest of the session."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, weakref
from simulator.ready import settle_heap

index = [{"id": i, "names": [str(i)]} for i in range(200_000)]  # a world's index, loaded once
gc.collect()
before = len(gc.get_objects(generation=2))  # what every full collection walks
assert before >= 200_000, before
settle_heap()
assert gc.get_freeze_count() >= 200_000, gc.get_freeze_count()
after = len(gc.get_objects(generation=2))  # frozen: out of every generation the collector walks
assert after < 1_000, after

class Node:
    pass

cycle = Node()
cycle.me = cycle
gone = weakref.ref(cycle)
del cycle
gc.collect()
assert gone() is None, "a cycle made after settling is still collected"
print("ok", before, after)
"""


def test_settle_heap_freezes_the_start_and_still_collects_later_cycles() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
