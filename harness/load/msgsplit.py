"""Where a load run's MLLP requests spent their time: ``raw.csv`` against the hub's message trace.

The hub writes one line per message when ``RHIN_HUB_MESSAGE_TRACE`` is set (:mod:`simulator.hub.msgtrace`):
when it began and ended handling it, and what its event loop's thread did meanwhile (on a core, runnable
without one). Matched to the requests Locust timed, each request's latency splits into

* **before** — from the client's start to the hub's handling: connecting (a TLS handshake for a session's
  first exchange), sending, the loop picking the block up;
* **handling** — the hub's, itself split into the loop's CPU (this message's work and whatever else the
  loop ran while it awaited), the loop's wait for a core, and the rest, when the loop slept (commits,
  timers, idle);
* **after** — from the encoded reply to the client's end: writing it, the client's wake-up and parsing.

With the load generator's own trace too (``RHIN_LOAD_MESSAGE_TRACE``, :func:`loadtests.mllp.client_trace`:
``--client PREFIX``), requests are the client's lines instead of ``raw.csv``'s, and *before* splits into the
client's **send** (connecting, writing the block) and the rest (*to hub*; below zero when the hub took the
block before the client's write call returned to it); and what the client's process did while the
request's greenlet waited for its answer is added: its thread's CPU (the other users' work, which a reply
that came in waits behind: gevent runs one greenlet until it blocks) and its wait for a core.

Matching: a request of operation *op* is paired with the one trace line of *op*'s message kind that began
and ended inside it; a request with none or several (concurrent same-kind requests overlapping it) is left
out, and the counts say how many were matched. Bands are by the request's whole latency (its slowest
twentieth, …), so the table answers "what made the slow ones slow".
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from simulator.hub.msgtrace import CLIENT_ENV, ENV

from .stats import RawRow

T = TypeVar("T")

__all__ = [
    "KINDS",
    "ClientLine",
    "Split",
    "TraceLine",
    "bands",
    "match",
    "match_client",
    "read_client_trace",
    "read_trace",
    "render",
    "render_client",
]

KINDS: Mapping[str, str] = {
    "feed_join": "ADT^",
    "feed_register": "ADT^",
    "feed_update": "ADT^",
    "pix": "QBP^Q23",
    "pdq": "QBP^Q22",
}
"""``raw.csv`` operation → the message kind (prefix) the hub handled for it."""

BANDS: Sequence[tuple[float, float]] = ((0.0, 0.5), (0.5, 0.9), (0.9, 0.95), (0.95, 1.0))


@dataclass(frozen=True, slots=True)
class TraceLine:
    start: float
    end: float
    kind: str
    cpu_s: float | None  # None: the trace could not read the thread's schedstat
    runq_s: float | None


@dataclass(frozen=True, slots=True)
class ClientLine:
    """One exchange in the load generator's trace (epoch seconds; the process's usage while it waited)."""

    start: float
    sent: float
    end: float
    name: str
    cpu_s: float | None
    runq_s: float | None


@dataclass(frozen=True, slots=True)
class Split:
    """One matched request (seconds); the last three are known only from a client trace."""

    total: float
    before: float
    handling: float
    after: float
    cpu: float | None
    runq: float | None
    send: float | None = None
    client_cpu: float | None = None
    client_runq: float | None = None

    @property
    def asleep(self) -> float | None:
        if self.cpu is None or self.runq is None:
            return None
        return max(0.0, self.handling - self.cpu - self.runq)


def _read(path: Path, what: str, make: Callable[[list[str], float | None, float | None], T]) -> list[T]:
    """Each non-empty line of a trace file made into a ``T`` by ``make`` (given its cells but the last two,
    and those two — CPU and run-queue nanoseconds, −1 for unknown — in seconds). A line that ``make`` or
    the reading refuses raises ``ValueError`` naming the file, the line and ``what`` it should have been."""
    out: list[T] = []
    with path.open(encoding="ascii", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                *cells, cpu, runq = text.rstrip("\n").split(",")
                c, r = int(cpu), int(runq)
                out.append(make(cells, None if c < 0 else c / 1e9, None if r < 0 else r / 1e9))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a {what} line ({exc})") from exc
    return out


def _trace_line(cells: list[str], cpu: float | None, runq: float | None) -> TraceLine:
    start, end, kind = cells
    return TraceLine(float(start), float(end), kind, cpu, runq)


def _client_line(cells: list[str], cpu: float | None, runq: float | None) -> ClientLine:
    start, sent, end, name = cells
    return ClientLine(float(start), float(sent), float(end), name, cpu, runq)


def read_trace(path: Path) -> list[TraceLine]:
    """The hub's trace, sorted by start. Raises ``ValueError`` naming the file and line of a bad line."""
    return sorted(_read(path, "message trace", _trace_line), key=lambda x: x.start)


def read_client_trace(paths: Iterable[Path]) -> list[ClientLine]:
    """The load generator's trace files (one per process), together. Raises ``ValueError`` naming the file
    and line of a bad line."""
    return [line for path in paths for line in _read(path, "client trace", _client_line)]


class _Kind:
    """The hub's lines of one message kind, for finding the one inside a request."""

    def __init__(self, trace: Sequence[TraceLine], kind: str) -> None:
        self.lines = [x for x in trace if x.kind.startswith(kind)]
        self.starts = [x.start for x in self.lines]

    def inside(self, begin: float, end: float) -> TraceLine | None:
        """The one line that began and ended within ``[begin, end]``; None for none or several."""
        i = bisect.bisect_left(self.starts, begin)
        found: TraceLine | None = None
        while i < len(self.lines) and self.lines[i].start <= end:
            if self.lines[i].end <= end:
                if found is not None:
                    return None
                found = self.lines[i]
            i += 1
        return found


def match(rows: Iterable[RawRow], trace: Sequence[TraceLine], op: str, kind: str) -> tuple[int, list[Split]]:
    """(requests of ``op``, the splits of those matched to exactly one ``kind`` line inside them)."""
    lines = _Kind(trace, kind)
    asked = 0
    out: list[Split] = []
    for row in rows:
        if row.name != op or not row.ok:
            continue
        asked += 1
        end = row.t
        begin = end - row.ms / 1000
        x = lines.inside(begin, end)
        if x is not None:
            out.append(Split(end - begin, x.start - begin, x.end - x.start, end - x.end, x.cpu_s, x.runq_s))
    return asked, out


def match_client(
    client: Iterable[ClientLine], trace: Sequence[TraceLine], op: str, kind: str
) -> tuple[int, list[Split]]:
    """:func:`match` with the client trace's exchanges as the requests (each from its start to its end)."""
    lines = _Kind(trace, kind)
    asked = 0
    out: list[Split] = []
    for c in client:
        if c.name != op:
            continue
        asked += 1
        x = lines.inside(c.start, c.end)
        if x is None:
            continue
        out.append(
            Split(
                c.end - c.start,
                x.start - c.start,
                x.end - x.start,
                c.end - x.end,
                x.cpu_s,
                x.runq_s,
                send=c.sent - c.start,
                client_cpu=c.cpu_s,
                client_runq=c.runq_s,
            )
        )
    return asked, out


def bands(splits: Sequence[Split]) -> list[tuple[tuple[float, float], dict[str, float | None]]]:
    """Per band of total latency, its requests' count (``n``) and the mean of each part (ms)."""
    ordered = sorted(splits, key=lambda s: s.total)
    n = len(ordered)
    out: list[tuple[tuple[float, float], dict[str, float | None]]] = []

    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return 1000 * sum(known) / len(known) if len(known) == len(values) else None

    for lo, hi in BANDS:
        chosen = ordered[int(lo * n) : int(hi * n)]
        if not chosen:
            continue
        out.append(
            (
                (lo, hi),
                {
                    "n": float(len(chosen)),
                    "total": mean([s.total for s in chosen]),
                    "before": mean([s.before for s in chosen]),
                    "handling": mean([s.handling for s in chosen]),
                    "cpu": mean([s.cpu for s in chosen]),
                    "runq": mean([s.runq for s in chosen]),
                    "asleep": mean([s.asleep for s in chosen]),
                    "after": mean([s.after for s in chosen]),
                    "send": mean([s.send for s in chosen]),
                    "client_cpu": mean([s.client_cpu for s in chosen]),
                    "client_runq": mean([s.client_runq for s in chosen]),
                },
            )
        )
    return out


def _ms(v: float | None) -> str:
    return "     -" if v is None else f"{v:6.2f}"


Band = dict[str, float | None]


def _table(
    header: str,
    kinds: Mapping[str, str],
    matched: Callable[[str, str], tuple[int, list[Split]]],
    noun: str,
    line: Callable[[Band], str],
) -> str:
    """The table per operation: ``header``, then for each operation with matches its count and a line per
    band (``line`` gets the band's means in ms)."""
    out = [header]
    for op, kind in kinds.items():
        asked, splits = matched(op, kind)
        if not splits:
            continue
        out.append(f"{op} ({kind}): {len(splits)} of {asked} {noun} matched")
        for (lo, hi), m in bands(splits):
            out.append(f"  p{lo * 100:02.0f}-{hi * 100:<3.0f}      {int(m['n'] or 0):5d}  {line(m)}")
    return "\n".join(out)


def _handling(m: Band) -> str:
    return f"{_ms(m['handling'])} ({_ms(m['cpu'])} / {_ms(m['runq'])} / {_ms(m['asleep'])})"


def render(rows: Sequence[RawRow], trace: Sequence[TraceLine], kinds: Mapping[str, str] = KINDS) -> str:
    """The table per operation (ms), as text."""
    return _table(
        "op          band       n   total  before  handling (loop CPU / wait for a core / asleep)  after",
        kinds,
        lambda op, kind: match(rows, trace, op, kind),
        "requests",
        lambda m: f"{_ms(m['total'])}  {_ms(m['before'])}  {_handling(m)}              {_ms(m['after'])}",
    )


def render_client(
    client: Sequence[ClientLine], trace: Sequence[TraceLine], kinds: Mapping[str, str] = KINDS
) -> str:
    """The table per operation (ms) from the client's trace and the hub's, as text."""

    def line(m: Band) -> str:
        send, before = m["send"], m["before"]
        to_hub = None if send is None or before is None else before - send
        return (
            f"{_ms(m['total'])} {_ms(send)}  {_ms(to_hub)}  {_handling(m)}"
            f"    {_ms(m['after'])}  {_ms(m['client_cpu'])} / {_ms(m['client_runq'])}"
        )

    return _table(
        "op          band       n   total   send  to hub  handling (loop CPU / core wait / asleep)"
        "   back  client process while waiting (CPU / core wait)",
        kinds,
        lambda op, kind: match_client(client, trace, op, kind),
        "exchanges",
        line,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.load.msgsplit REPORT_DIR TRACE [--client PREFIX]``: the table for a load run and
    the hub's trace (with the load generator's too: its files ``PREFIX.*``)."""
    import argparse

    from .stats import read_raw

    parser = argparse.ArgumentParser(
        prog="python -m harness.load.msgsplit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("report", type=Path, help="a rhin load report folder (its raw.csv)")
    parser.add_argument("trace", type=Path, help=f"the hub's message trace (the file {ENV} named)")
    parser.add_argument(
        "--client",
        type=Path,
        metavar="PREFIX",
        help=f"the load generator's trace: the files PREFIX.PID ({CLIENT_ENV} named PREFIX)",
    )
    args = parser.parse_args(argv)
    raw = args.report / "raw.csv"
    for path in (raw, args.trace):
        if not path.is_file():
            parser.error(f"{path}: no such file")
    client_files: list[Path] = []
    if args.client is not None:
        client_files = sorted(args.client.parent.glob(f"{args.client.name}.*"))
        if not client_files:
            parser.error(f"{args.client}: no client trace files ({args.client.name}.PID)")
    try:
        trace = read_trace(args.trace)
        client = read_client_trace(client_files)
    except ValueError as exc:
        parser.error(str(exc))
    print(render_client(client, trace) if client_files else render(read_raw(raw), trace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
