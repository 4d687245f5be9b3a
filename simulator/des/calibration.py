"""The calibration file: the service times the SimPy model needs, measured on a live network.

``rhin calibrate`` writes it (YAML, validated by :class:`Calibration`: unknown keys are errors, every
problem names ``file:line: key.path``). Each service time is a :class:`Dist`: a lognormal given by its
median and 95th percentile (the same two-number fit as :mod:`simulator.links`), or empirical quantiles
(piecewise-linear between them). Times are the *hub's own work* per operation (its CPU, with the waits on
gateways and on the audit commit taken out), the audit commit, and per gateway shard a list time that grows
linearly with the entries listed and a fetch time that grows linearly with the bytes sent. A calibration of
the reference network (``hub_measure: cpu``) gives the hub's *CPU* per operation, the password worker's per
login, the gateways' CPU, and per operation the rest of what the client waited (``client``): what queues
for the machine's cores is then CPU, and what does not is the rest.

:func:`nominal_calibration` is a stated guess of the same shape (figures of the order the load branch
measured on the 2-core VM), so the model runs before anyone calibrates; a report says which was used.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from itertools import pairwise
from pathlib import Path
from statistics import NormalDist
from typing import Annotated, Any, Final, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthetic.errors import ProfileError
from synthetic.yamlio import load_model

__all__ = [
    "FALLBACKS",
    "HUB_OPERATIONS",
    "OPTIONAL_OPERATIONS",
    "Background",
    "Calibration",
    "CalibrationError",
    "Dist",
    "GatewayFit",
    "Speed",
    "load_calibration",
    "nominal_calibration",
    "write_calibration",
]

Z95: Final = NormalDist().inv_cdf(0.95)
BATCH: Final = 1024  # draws a sampler makes at a time (see _Sampler)
HUB_OPERATIONS: Final = (
    "login",
    "logout",
    "pix",
    "pdq",
    "pdq_next",
    "timeline",
    "fetch",
    "emergency",
    "feed",
    "refused",
    "feed_fresh",
)
"""Operations whose hub-side work the file times (``emergency_*`` reuse their plain counterparts).
``refused`` is a timeline that asks no gateway — an outside viewer's, refused or empty. ``feed_fresh`` is
an ITI-8 feed on a new TLS connection, as Locust's feeder sends each register and update (its handshake
inside; ``feed`` is one on an open connection, as the "facility joins" burst sends them). Both may be
missing from older files (:data:`FALLBACKS`)."""
OPTIONAL_OPERATIONS: Final = frozenset({"refused", "feed_fresh"})
FALLBACKS: Final = {"refused": "timeline", "feed_fresh": "feed"}
"""What the model uses for an optional operation a file lacks: a refused timeline as dear as a timeline; a
feed on a new connection as one on an open connection (the handshake then missing: such files predicted
Locust's ``feed_register``/``feed_update`` 82–88 % short)."""


class CalibrationError(ValueError):
    """A calibration file is missing or invalid; ``str()`` names file, line and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dist(_Strict):
    """A service time in milliseconds. ``lognormal``: ``median_ms`` and ``p95_ms`` (p95 ≥ median; equal
    means constant). ``empirical``: ``quantiles`` as ``[q, ms]`` pairs, q rising from 0 to 1.
    ``exponential``: ``mean_ms`` (queueing what-ifs and the M/M/1 check)."""

    kind: Literal["lognormal", "empirical", "exponential"] = "lognormal"
    mean: Annotated[float, Field(ge=0)] = 0.0
    median_ms: Annotated[float, Field(ge=0)] = 0.0
    p95_ms: Annotated[float, Field(ge=0)] = 0.0
    quantiles: list[tuple[float, float]] = Field(default_factory=list)
    samples: Annotated[int, Field(ge=0)] = 0  # how many measurements the fit rests on (0: a guess)

    @model_validator(mode="after")
    def _shape(self) -> Dist:
        if self.kind == "exponential":
            if self.mean <= 0:
                raise ValueError("an exponential needs mean > 0 (ms)")
        elif self.kind == "lognormal":
            if self.p95_ms < self.median_ms:
                raise ValueError("p95_ms must be ≥ median_ms")
            if self.median_ms == 0 and self.p95_ms > 0:
                raise ValueError("a zero median needs a zero p95")
        else:
            qs = self.quantiles
            if len(qs) < 2 or qs[0][0] != 0 or qs[-1][0] != 1:
                raise ValueError("empirical quantiles need at least [0, ms] and [1, ms]")
            if any(b[0] <= a[0] or b[1] < a[1] for a, b in pairwise(qs)):
                raise ValueError("quantiles must rise in q and not fall in ms")
        return self

    @classmethod
    def constant(cls, ms: float) -> Dist:
        return cls(median_ms=ms, p95_ms=ms)

    @classmethod
    def fit(cls, values_ms: list[float]) -> Dist:
        """The lognormal through the samples' median and p95 (nearest rank); constant for one sample."""
        if not values_ms:
            raise CalibrationError("no samples to fit")
        ordered = sorted(values_ms)
        median = ordered[(len(ordered) - 1) // 2]
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        median = max(median, 1e-3)
        return cls(median_ms=round(median, 4), p95_ms=round(max(p95, median), 4), samples=len(ordered))

    @property
    def sigma(self) -> float:
        if self.median_ms <= 0:
            return 0.0
        return math.log(self.p95_ms / self.median_ms) / Z95

    @property
    def mean_ms(self) -> float:
        if self.kind == "exponential":
            return self.mean
        if self.kind == "lognormal":
            return self.median_ms * math.exp(self.sigma**2 / 2)
        qs = self.quantiles
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in pairwise(qs))

    def quantile_ms(self, q: float) -> float:
        """The time below which a share ``q`` of draws falls (reports; ``0 < q < 1``)."""
        if self.kind == "exponential":
            return -self.mean * math.log(1 - q)
        if self.kind == "lognormal":
            return self.median_ms * math.exp(self.sigma * NormalDist().inv_cdf(q)) if self.median_ms else 0.0
        qs = self.quantiles
        i = max(1, bisect_left(qs, (q, -1.0)))
        (q0, v0), (q1, v1) = qs[i - 1], qs[i]
        return v0 + (v1 - v0) * (q - q0) / (q1 - q0)

    def scaled(self, factor: float) -> Dist:
        """The same shape with every time × ``factor`` (a machine ``factor`` times slower)."""
        if self.kind == "exponential":
            return self.model_copy(update={"mean": self.mean * factor})
        if self.kind == "empirical":
            return self.model_copy(update={"quantiles": [(q, ms * factor) for q, ms in self.quantiles]})
        return self.model_copy(update={"median_ms": self.median_ms * factor, "p95_ms": self.p95_ms * factor})

    def sampler(self, scale: float = 1.0) -> _Sampler:
        """A fast draw in *seconds* (× ``scale``) from a :class:`random.Random`."""
        return _Sampler(self, scale)


class _Sampler:
    """Draws of one distribution in seconds, made by NumPy a batch at a time (:data:`BATCH`): a draw is a
    list pop, where a lognormal through :meth:`random.Random.gauss` cost about a microsecond — a dozen per
    session, ~6 % of a warm session's time. The batches come from the sampler's own generator, seeded
    from the model's :class:`random.Random` at the first draw, so a run stays a function of its seed."""

    __slots__ = ("_const", "_exp_mean", "_gen", "_left", "_mu", "_qs", "_sigma")

    def __init__(self, dist: Dist, scale: float) -> None:
        self._const: float | None = None
        self._qs: tuple[list[float], list[float]] | None = None
        self._mu = 0.0
        self._sigma = dist.sigma
        self._exp_mean = 0.0
        self._gen: np.random.Generator | None = None
        self._left: list[float] = []
        if dist.kind == "exponential":
            self._exp_mean = dist.mean * scale / 1000
        elif dist.kind == "empirical":
            self._qs = ([q for q, _ in dist.quantiles], [ms * scale / 1000 for _, ms in dist.quantiles])
        elif self._sigma == 0 or dist.median_ms == 0:
            self._const = dist.median_ms * scale / 1000
        else:
            self._mu = math.log(dist.median_ms * scale / 1000)

    def __call__(self, rng: random.Random) -> float:
        if self._const is not None:
            return self._const
        left = self._left
        if not left:
            left = self._left = self._batch(rng)
        return left.pop()

    def _batch(self, rng: random.Random) -> list[float]:
        if self._gen is None:
            self._gen = np.random.default_rng(rng.getrandbits(64))
        gen = self._gen
        if self._exp_mean:
            out = gen.exponential(self._exp_mean, BATCH)
        elif self._qs is not None:  # the quantiles' inverse, linear between them
            out = np.interp(gen.random(BATCH), *self._qs)
        else:
            out = np.exp(self._mu + self._sigma * gen.standard_normal(BATCH))
        values: list[float] = out.tolist()
        return values


class GatewayFit(_Strict):
    """One gateway shard: ``list = list_base + list_per_entry_ms × entries``, ``fetch = fetch_base +
    fetch_per_kb_ms × kB``; the base is a distribution, the slope a least-squares fit."""

    list_base: Dist = Dist.constant(2.0)
    list_per_entry_ms: Annotated[float, Field(ge=0)] = 0.05
    fetch_base: Dist = Dist.constant(1.5)
    fetch_per_kb_ms: Annotated[float, Field(ge=0)] = 0.01


class Speed(_Strict):
    """A reading of how fast the machine computed when measured (``harness.load.speed``): thread-CPU ms of
    a fixed piece of Python work and of one scrypt hash, the median of ``readings``."""

    python_ms: Annotated[float, Field(gt=0)]
    hash_ms: Annotated[float, Field(gt=0)]
    readings: Annotated[int, Field(ge=1)] = 1


class Background(_Strict):
    """Other work on the machine while ``rhin calibrate``'s probe measured, per second of it: ``cores``,
    every core's busy time less the network's and the probe's own CPU (the kernel's work included);
    ``read_mb_per_s``, what the machine read from disk less what those processes read."""

    cores: Annotated[float, Field(ge=0)]
    read_mb_per_s: Annotated[float, Field(ge=0)]
    seconds: Annotated[float, Field(ge=0)] = 0.0


class Machine(_Strict):
    cores: Annotated[int, Field(ge=1)]
    hub_processes: Annotated[int, Field(ge=1)] = 1
    hash_workers: Annotated[int, Field(ge=1)] = Field(
        1, description="the hub's password-hashing worker processes (each runs one scrypt at a time)"
    )
    gateway_shards: Annotated[int, Field(ge=1)] = 1
    platform: str = ""
    python: str = ""
    background: Background | None = Field(
        None, description="other work on the machine while the probe measured (files from before: none)"
    )
    speed: Speed | None = Field(
        None,
        description="the machine's speed during the calibration (files from before it have none: a "
        "validation then cannot correct for the machine's drift)",
    )


class Calibration(_Strict):
    """A calibration file (``schema_version: 1``)."""

    schema_version: Literal[1]
    date: str  # ISO date-time of the measurement
    source: str = ""  # what was measured: "reference network for worlds/mini, links off", or "nominal"
    distribution: str = "lognormal through median and p95"
    machine: Machine
    hub: dict[str, Dist]
    audit_commit: Dist
    gateways: list[GatewayFit]
    entry_bytes: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="mean size in bytes of a fetched entry, by item category"
    )
    list_bytes_per_entry: Annotated[float, Field(ge=0)] = 400.0
    hub_measure: Literal["wall", "cpu"] = Field(
        "wall",
        description="what the hub times are: `cpu`, the hub process's own CPU per request (its threads' "
        "scheduler run time, the password worker's in `login_hash`); `wall`, a client's whole wait",
    )
    login_hash: Dist = Field(
        Dist.constant(0.0), description="the password worker's CPU per login (`cpu` calibrations)"
    )
    client: dict[str, Dist] = Field(
        default_factory=dict,
        description="per operation, what a client waited beyond the hub's and the gateways' CPU: its own "
        "work, the connection and TLS handshake a session's first MLLP exchange opens, the loopback, the "
        "audit commit's disk wait (`pix`/`pdq` as a session's first exchange, on a new connection)",
    )
    includes_audit: list[str] = Field(
        default_factory=list,
        description="operations whose hub time was measured with their audit commit inside it (the model "
        "then holds the audit writer only for what a slower disk adds)",
    )

    @model_validator(mode="after")
    def _complete(self) -> Calibration:
        missing = [op for op in HUB_OPERATIONS if op not in self.hub and op not in OPTIONAL_OPERATIONS]
        if missing:
            raise ValueError(f"hub: missing operations {missing}")
        unknown = sorted(set(self.hub) - set(HUB_OPERATIONS))
        if unknown:
            raise ValueError(f"hub: unknown operations {unknown} (known: {', '.join(HUB_OPERATIONS)})")
        if not self.gateways:
            raise ValueError("gateways: at least one shard")
        stray = sorted(set(self.includes_audit) - set(HUB_OPERATIONS))
        if stray:
            raise ValueError(f"includes_audit: unknown operations {stray}")
        stray = sorted(set(self.client) - set(HUB_OPERATIONS))
        if stray:
            raise ValueError(f"client: unknown operations {stray} (known: {', '.join(HUB_OPERATIONS)})")
        return self

    def at_speed(self, python: float, hashing: float, gateways: float | None = None) -> Calibration:
        """The calibration on a machine ``python`` times slower for the hub's work (``hashing`` for the
        password hash, ``gateways`` — default ``python`` — for the shards'): the CPU the file times — the
        hub's per operation (``cpu`` files only: a ``wall`` file's times are mostly waits), the gateways'
        list and fetch times, the password hash — × its factor. Not scaled: the audit commit (a disk's
        fsync) and ``client`` (the rest of what a client waited beyond the CPU the replay computes from
        the load run's own figures)."""
        shards = python if gateways is None else gateways
        if min(python, hashing, shards) <= 0:
            raise ValueError(f"factors must be > 0 (hub {python}, hashing {hashing}, gateways {shards})")
        hub = {op: d.scaled(python) for op, d in self.hub.items()} if self.hub_measure == "cpu" else self.hub
        fits = [
            g.model_copy(
                update={
                    "list_base": g.list_base.scaled(shards),
                    "list_per_entry_ms": g.list_per_entry_ms * shards,
                    "fetch_base": g.fetch_base.scaled(shards),
                    "fetch_per_kb_ms": g.fetch_per_kb_ms * shards,
                }
            )
            for g in self.gateways
        ]
        return self.model_copy(
            update={
                "hub": hub,
                "gateways": fits,
                "login_hash": self.login_hash.scaled(hashing),
                "source": f"{self.source}; the hub's CPU times × {python:.3f}, the hash × {hashing:.3f}, "
                f"the gateways' × {shards:.3f}",
            }
        )

    def shard(self, index: int) -> GatewayFit:
        return self.gateways[index % len(self.gateways)]

    def bytes_of(self, category: str) -> float:
        if category in self.entry_bytes:
            return self.entry_bytes[category]
        return sum(self.entry_bytes.values()) / len(self.entry_bytes) if self.entry_bytes else 4000.0


def nominal_calibration(cores: int = 2) -> Calibration:
    """A guess of the right order (hub CPU of a few ms per request, sub-ms audit commits): for tests and
    for a model run before ``rhin calibrate``; ``source: nominal`` says so in every report."""
    return Calibration(
        schema_version=1,
        date="1970-01-01T00:00:00",
        source="nominal (not measured)",
        machine=Machine(cores=cores),
        hub={
            "login": Dist(median_ms=40.0, p95_ms=48.0),
            "logout": Dist(median_ms=0.8, p95_ms=1.5),
            "pix": Dist(median_ms=1.0, p95_ms=2.0),
            "pdq": Dist(median_ms=2.0, p95_ms=4.0),
            "pdq_next": Dist(median_ms=1.5, p95_ms=3.0),
            "timeline": Dist(median_ms=3.0, p95_ms=6.0),
            "fetch": Dist(median_ms=1.5, p95_ms=3.0),
            "emergency": Dist(median_ms=1.5, p95_ms=3.0),
            "feed": Dist(median_ms=1.5, p95_ms=3.0),
            "refused": Dist(median_ms=1.0, p95_ms=2.0),
            "feed_fresh": Dist(median_ms=4.0, p95_ms=6.0),
        },
        audit_commit=Dist(median_ms=0.3, p95_ms=1.0),
        gateways=[GatewayFit()],
        entry_bytes={"images": 530_000.0, "discharge_summaries": 6000.0, "progress_notes": 3000.0},
    )


def load_calibration(path: Path) -> Calibration:
    """A calibration from YAML; :class:`CalibrationError` names ``file:line: key.path``."""
    try:
        return load_model(Calibration, path)
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc}") from exc
    except ProfileError as exc:
        raise CalibrationError(str(exc)) from None


_DIST_FIELDS: Final = {
    "lognormal": ("median_ms", "p95_ms"),
    "empirical": ("quantiles",),
    "exponential": ("mean",),
}


def _prune(node: Any) -> Any:
    """Each distribution with only its own kind's fields (a reader sees what the numbers are)."""
    if isinstance(node, list):
        return [_prune(v) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("kind")
    if isinstance(kind, str) and kind in _DIST_FIELDS:
        keep = {"kind", "samples", *_DIST_FIELDS[kind]}
        return {k: v for k, v in node.items() if k in keep}
    return {k: _prune(v) for k, v in node.items()}


def write_calibration(calibration: Calibration, path: Path) -> Path:
    """Human-readable YAML (keys in schema order), readable back by :func:`load_calibration`."""
    data = _prune(calibration.model_dump(mode="json"))
    header = (
        "# rhin calibration: service times for the SimPy model (simulator/des). Times in ms;\n"
        "# lognormal dists are given by median and p95; empirical ones by [q, ms] quantiles.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
