"""The client's part of each request as the load generator itself sees it: a short, light ``rhin load`` run.

The one-request-at-a-time probe (:mod:`.calibrate`) measures what each *process* of the network spends on a
request; what a Locust user waits beyond that is not the probe's to measure: Locust's own client
(geventhttpclient, one gevent loop per process for all its users), its recorder, and the background of a
machine running Locust, the hub and the gateways at once. Its distribution has a tail the probe never sees
(PIX in a ×100 run: p50 5.9 ms, p95 10.6, p99 17.5 — at every phase of the pacing interval, so not a
queue). So calibration ends with a run of Locust itself against the same network, as a load run makes it —
think times on, paced users, two processes — but links off and at a light rate (about one session a
second: the machine mostly idle, as in a load run below the knee, its processes waking for each request),
and per operation the client's part is the run's latencies less the median CPU the probe measured for that
operation across the network's processes, kept as empirical quantiles (:data:`QUANTILES`; a lognormal for
an operation the run had only a few of, :data:`FEW_SAMPLES`). Logins are left
to the probe: paced users log in together, so a light run's logins queue for the password worker — the
model's to predict, not a client's part.

The run also says what the hub's CPU per request is in a load run: its CPU over the run (less what it
spends idle) against what the probe's per-operation medians predict for the requests the run made; the
calibration scales the hub's times by that factor when it is above 1 (on ``ishikawa`` 1.05–1.38 over
stops 30–32, moving by ±10 % between calibrations an hour apart; the live runs' CPU per request then falls
with load, 18 % lower at ×400 than at ×100, which a fixed cost per request does not follow).

The run uses another seed than a validation run's, so its sessions are not the ones later compared.

How long: the client parts' tails are quantiles of the run's own requests, so their precision is the run's
length. Resampling a ×100 run's logouts, a p95 from 288 of them (a 300-s light run) moves ±16 % (90 % of
resamples), from 900 ±7 %; an outside viewer's median from 21 of them ±11 %. The goal the model is judged
by is ±15 %: ``benchmarks/bench_des.py`` calibrates with 900 s.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Final

import yaml

from harness.load.run import LoadOptions, run_load
from harness.load.stats import read_raw
from harness.scenarios.results import percentile
from harness.targets import Target
from simulator.des.calibration import Dist

__all__ = ["FEW_SAMPLES", "HUB_WORK", "MIN_SAMPLES", "OPERATIONS", "QUANTILES", "client_parts", "light_run"]

OPERATIONS: Final = {
    "logout": "logout",
    "pix": "pix",
    "pdq": "pdq",
    "pdq_next": "pdq_next",
    "timeline": "timeline",
    "fetch": "fetch",
    "emergency": "emergency",
    "feed_join": "feed",  # on one open connection, as the probe's `feed`
    "feed_register": "feed_fresh",  # each on a new connection, as the probe's `feed_fresh`
    "feed_update": "feed_fresh",
    "outside_timeline": "refused",
}
"""Locust's request names → the calibration's operations (an outside viewer's timeline is ``refused``; the
emergency variants and outside fetches are left out: too rare in a light run)."""

HUB_WORK: Final = {
    **OPERATIONS,
    "login": "login",
    "emergency_timeline": "timeline",
    "emergency_fetch": "fetch",
    "outside_fetch": "refused",
}
"""Every request name → the hub operation whose CPU it costs (for the load factor)."""

QUANTILES: Final = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 1.0)
MIN_SAMPLES: Final = 30
"""At least this many requests of an operation in the run: its client part is their empirical quantiles."""

FEW_SAMPLES: Final = 10
"""At least this many (and fewer than :data:`MIN_SAMPLES`): a lognormal through their median and p95 — an
outside viewer's timeline is ~5 % of the sessions, ~15 in a 300-s run (50 in 900 s), and with the probe's
own client part for it (timed right after a login, not after a think time's idle as Locust's) the model's
were ~0.8 ms short of the 3.2 ms they took at ×100–×400 on ``ishikawa``. Fewer: the probe's own client part
stays."""


def _target_file(target: Target, folder: Path) -> Path:
    """A target file for the running network (its address file and nothing else)."""
    if target.network is None:
        raise ValueError("the light run needs the network's address file")
    network = folder / "network.json"
    network.write_text(target.network.model_dump_json(), encoding="utf-8")
    path = folder / "target.yaml"
    spec = {"schema_version": 1, "name": f"{target.name} (calibration)", "network": str(network)}
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def light_run(
    world_dir: Path,
    target: Target,
    folder: Path,
    *,
    seconds: float,
    rate: float = 1.0,
    seed: int = 42,
    processes: int = 2,
) -> tuple[dict[str, list[float]], Counter[str]]:
    """Run Locust at ``rate`` sessions/s (think times on) for ``seconds`` against ``target``: the successful
    requests' latencies (ms) per calibration operation, and every request counted by the hub operation it
    costs (:data:`HUB_WORK`)."""
    folder.mkdir(parents=True, exist_ok=True)
    options = LoadOptions(
        world=world_dir,
        report=folder / "report",
        target_file=_target_file(target, folder),
        shape="peak",
        multiplier=1.0,
        rate=rate,
        duration_s=seconds,
        processes=processes,
        seed=seed + 1000,
        quiet=True,
    )
    run_load(options)
    out: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for row in read_raw(folder / "report" / "raw.csv"):
        op = OPERATIONS.get(row.name)
        if op is not None and row.ok:
            out[op].append(row.ms)
        if row.name in HUB_WORK:
            counts[HUB_WORK[row.name]] += 1
    return dict(out), counts


def client_parts(latencies: dict[str, list[float]], server_ms: dict[str, list[float]]) -> dict[str, Dist]:
    """Per operation with enough requests: the run's latencies less the median of the network's CPU for
    it (``server_ms``, the probe's), floored at 10 µs — as empirical quantiles, or with only a few of them
    (:data:`FEW_SAMPLES`) a lognormal through their median and nearest-rank p95."""
    out: dict[str, Dist] = {}
    for op, values in sorted(latencies.items()):
        if len(values) < FEW_SAMPLES or not server_ms.get(op):
            continue
        shift = statistics.median(server_ms[op])
        rest = sorted(max(0.01, v - shift) for v in values)
        if len(rest) < MIN_SAMPLES:
            median = round(statistics.median(rest), 4)
            out[op] = Dist(median_ms=median, p95_ms=percentile(rest, 95), samples=len(rest))
            continue
        points = [(q, round(rest[round(q * (len(rest) - 1))], 4)) for q in QUANTILES]
        out[op] = Dist(kind="empirical", quantiles=points, samples=len(rest))
    return out
