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

Matching: a request of operation *op* is paired with the one trace line of *op*'s message kind that began
and ended inside it; a request with none or several (concurrent same-kind requests overlapping it) is left
out, and the counts say how many were matched. Bands are by the request's whole latency (its slowest
twentieth, …), so the table answers "what made the slow ones slow".
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.hub.msgtrace import ENV

from .stats import RawRow

__all__ = ["KINDS", "Split", "TraceLine", "bands", "match", "read_trace", "render"]

KINDS: Mapping[str, str] = {"feed_join": "ADT^", "feed_register": "ADT^", "pix": "QBP^Q23", "pdq": "QBP^Q22"}
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
class Split:
    """One matched request (seconds)."""

    total: float
    before: float
    handling: float
    after: float
    cpu: float | None
    runq: float | None

    @property
    def asleep(self) -> float | None:
        if self.cpu is None or self.runq is None:
            return None
        return max(0.0, self.handling - self.cpu - self.runq)


def read_trace(path: Path) -> list[TraceLine]:
    """The hub's trace, sorted by start. Raises ``ValueError`` naming the file and line of a bad line."""
    lines: list[TraceLine] = []
    with path.open(encoding="ascii", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                start, end, kind, cpu, runq = text.rstrip("\n").split(",")
                c, r = int(cpu), int(runq)
                lines.append(
                    TraceLine(
                        float(start),
                        float(end),
                        kind,
                        None if c < 0 else c / 1e9,
                        None if r < 0 else r / 1e9,
                    )
                )
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a message trace line ({exc})") from exc
    lines.sort(key=lambda x: x.start)
    return lines


def match(rows: Iterable[RawRow], trace: Sequence[TraceLine], op: str, kind: str) -> tuple[int, list[Split]]:
    """(requests of ``op``, the splits of those matched to exactly one ``kind`` line inside them)."""
    lines = [x for x in trace if x.kind.startswith(kind)]
    starts = [x.start for x in lines]
    asked = 0
    out: list[Split] = []
    for row in rows:
        if row.name != op or not row.ok:
            continue
        asked += 1
        end = row.t
        begin = end - row.ms / 1000
        i = bisect.bisect_left(starts, begin)
        inside = []
        while i < len(lines) and lines[i].start <= end:
            if lines[i].end <= end:
                inside.append(lines[i])
            i += 1
        if len(inside) != 1:
            continue
        x = inside[0]
        out.append(Split(end - begin, x.start - begin, x.end - x.start, end - x.end, x.cpu_s, x.runq_s))
    return asked, out


def bands(splits: Sequence[Split]) -> list[tuple[tuple[float, float], dict[str, float | None]]]:
    """Mean of each part (ms) per band of total latency."""
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
                    "total": mean([s.total for s in chosen]),
                    "before": mean([s.before for s in chosen]),
                    "handling": mean([s.handling for s in chosen]),
                    "cpu": mean([s.cpu for s in chosen]),
                    "runq": mean([s.runq for s in chosen]),
                    "asleep": mean([s.asleep for s in chosen]),
                    "after": mean([s.after for s in chosen]),
                },
            )
        )
    return out


def _ms(v: float | None) -> str:
    return "     -" if v is None else f"{v:6.2f}"


def render(rows: Sequence[RawRow], trace: Sequence[TraceLine], kinds: Mapping[str, str] = KINDS) -> str:
    """The table per operation (ms), as text."""
    out = [
        "op          band       n   total  before  handling (loop CPU / wait for a core / asleep)  after",
    ]
    for op, kind in kinds.items():
        asked, splits = match(rows, trace, op, kind)
        if not splits:
            continue
        out.append(f"{op} ({kind}): {len(splits)} of {asked} requests matched")
        n = len(splits)
        for (lo, hi), m in bands(splits):
            count = int(hi * n) - int(lo * n)
            out.append(
                f"  p{lo * 100:02.0f}-{hi * 100:<3.0f}      {count:5d}  {_ms(m['total'])}  {_ms(m['before'])}"
                f"  {_ms(m['handling'])} ({_ms(m['cpu'])} / {_ms(m['runq'])} / {_ms(m['asleep'])})"
                f"              {_ms(m['after'])}"
            )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.load.msgsplit REPORT_DIR TRACE``: the table for a load run and the hub's trace."""
    import argparse

    from .stats import read_raw

    parser = argparse.ArgumentParser(
        prog="python -m harness.load.msgsplit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("report", type=Path, help="a rhin load report folder (its raw.csv)")
    parser.add_argument("trace", type=Path, help=f"the hub's message trace (the file {ENV} named)")
    args = parser.parse_args(argv)
    raw = args.report / "raw.csv"
    for path in (raw, args.trace):
        if not path.is_file():
            parser.error(f"{path}: no such file")
    try:
        trace = read_trace(args.trace)
    except ValueError as exc:
        parser.error(str(exc))
    print(render(read_raw(raw), trace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
