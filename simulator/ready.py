"""The ``ready: {json}`` line a simulator process prints once listening, and its reader (simulator.network).

One place for the contract, so the writers (``python -m simulator.hub``, ``python -m simulator.gateway``)
and the reader cannot drift apart: exactly one line, the prefix, then compact JSON with the real ports.
"""

from __future__ import annotations

import gc
import json
import queue
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["PREFIX", "announce", "parse", "settle_heap", "wait_for"]

PREFIX: Final = "ready: "


def announce(info: Mapping[str, Any]) -> None:
    """Print the ready line on stdout and flush it (the parent waits for it)."""
    sys.stdout.write(PREFIX + json.dumps(info, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def settle_heap() -> None:
    """For a process that serves from now on: collect the start's garbage, then put every object alive —
    the world's indexes, loaded once — beyond the cyclic collector's reach (:func:`gc.freeze`).

    Without it the hub's full collections walked the whole index every second or so under load: at ×400
    (ishikawa, 2-core VM) 77 of them in 100 s, 32 ms each (max 62), each a stall of the event loop that
    every request in flight waited out (found chasing the SimPy model's small-request tails; the fix
    shortened the timeline's p95 at ×400 but left PIX and PDQ's as they were).
    Objects made later are collected as before; only garbage *cycles* among the frozen ones would be
    kept, and the indexes are not garbage. Only for a process of its own (``python -m simulator.hub``,
    ``python -m simulator.gateway``, ``rhin hub``), never for a library caller's process."""
    gc.collect()
    gc.freeze()


def parse(line: str) -> dict[str, Any] | None:
    """The document of a ready line, or None for any other line (children may log before it)."""
    if not line.startswith(PREFIX):
        return None
    info: dict[str, Any] = json.loads(line[len(PREFIX) :])
    return info


def wait_for(lines: Iterable[str], timeout: float, name: str) -> tuple[dict[str, Any], threading.Thread]:
    """The ready document among ``lines`` (a child's stdout, a container's log stream), read on a daemon
    thread so the wait keeps its deadline; also that thread (it goes on draining ``lines``). Raises
    :class:`TimeoutError` when no ready line came within ``timeout`` s, :class:`EOFError` when ``lines``
    ended first — the callers word both for their kind of child."""
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        try:
            for text in lines:
                found.put(text)
        finally:
            found.put(None)

    thread = threading.Thread(target=pump, daemon=True, name=f"{name}-out")
    thread.start()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            text = found.get(timeout=left)
        except queue.Empty:
            break
        if text is None:
            raise EOFError(name)
        info = parse(text)
        if info is not None:
            return info, thread
    raise TimeoutError(name)
