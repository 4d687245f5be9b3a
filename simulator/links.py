"""Network links between a facility and the hub: latency, jitter, bandwidth, loss and outage.

One :class:`LinkModel` per link type of ``world.json`` (``IP-VPN``, ``Internet VPN``, ``Internet``). The live
gateways apply it to every response (delay before the first byte, then pacing of the body) and the SimPy
model will call the very same pure methods, so both see one behaviour. Nothing here keeps state: every
random draw comes from the :class:`random.Random` the caller passes in.

Choices where the world is silent (each is an assumption, not a measurement):

* **Round trip.** Lognormal, fitted so that its median and 95th percentile are ``rtt_ms_median`` and
  ``rtt_ms_p95`` (``sigma = ln(p95 / median) / z95``). Network RTTs are right-skewed and strictly positive,
  which a lognormal captures with two numbers. **Jitter** is that spread: successive samples are
  independent, and :attr:`LinkModel.jitter_ms` reports the fitted standard deviation.
* **Delay before the first byte** is one round trip (request out, first response segment back) on an open
  connection; TCP and TLS handshakes are not modelled (clients are expected to keep connections alive).
* **Loss.** With probability ``loss`` the first response segment is lost and waits for a retransmission
  timeout: ``rto_ms`` = 200 ms, Linux's ``TCP_RTO_MIN`` (RTT + 4·RTTVAR stays below it on these links;
  RFC 6298's 1 s minimum is not what Linux uses). A segment lost later in the body is recovered by fast
  retransmit after about one median RTT. Segments are ``mss_bytes`` = 1460 (Ethernet MTU minus headers).
* **Bandwidth** is the link's ``bandwidth_mbps`` (10⁶ bit/s), the bottleneck for the whole body; there is
  no slow start and no sharing between concurrent transfers (the SimPy model adds queueing on top).
* **Outage** is a flag: the link delivers nothing, :meth:`LinkModel.sample_delay` returns ``math.inf``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

__all__ = ["DEFAULT_MSS_BYTES", "DEFAULT_RTO_MS", "LinkError", "LinkModel"]

DEFAULT_RTO_MS = 200.0
"""Retransmission timeout after a lost first segment: Linux TCP_RTO_MIN."""
DEFAULT_MSS_BYTES = 1460
"""TCP maximum segment size on a 1500-byte Ethernet MTU."""
Z95 = NormalDist().inv_cdf(0.95)


class LinkError(ValueError):
    """A link model's parameters are impossible (negative latency, p95 below the median, loss ≥ 1…)."""


@dataclass(frozen=True, slots=True)
class LinkModel:
    """One link type's behaviour. The default instance is the *disabled* link: zero delay, no limit."""

    name: str = "disabled"
    rtt_ms_median: float = 0.0
    rtt_ms_p95: float = 0.0
    bandwidth_mbps: float = math.inf
    loss: float = 0.0
    outage: bool = False
    rto_ms: float = DEFAULT_RTO_MS
    mss_bytes: int = DEFAULT_MSS_BYTES
    # Derived once (the SimPy model samples a link per gateway answer): the median RTT in seconds and the
    # lognormal's shape, with the same arithmetic the samplers used inline.
    _median_s: float = field(init=False, repr=False, compare=False, default=0.0)
    _sigma: float = field(init=False, repr=False, compare=False, default=0.0)

    def __post_init__(self) -> None:
        if not self.rtt_ms_median >= 0 or not self.rtt_ms_p95 >= self.rtt_ms_median:
            raise LinkError(
                f"link {self.name!r}: need 0 ≤ rtt_ms_median ≤ rtt_ms_p95 "
                f"(got {self.rtt_ms_median}, {self.rtt_ms_p95})"
            )
        if self.rtt_ms_median == 0 and self.rtt_ms_p95 > 0:
            raise LinkError(f"link {self.name!r}: a zero median RTT needs a zero p95")
        if not self.bandwidth_mbps > 0:
            raise LinkError(f"link {self.name!r}: bandwidth_mbps must be > 0 (got {self.bandwidth_mbps})")
        if not 0 <= self.loss < 1:
            raise LinkError(f"link {self.name!r}: loss must be in [0, 1) (got {self.loss})")
        if not self.rto_ms >= 0 or self.mss_bytes <= 0:
            raise LinkError(f"link {self.name!r}: rto_ms must be ≥ 0 and mss_bytes > 0")
        sigma = math.log(self.rtt_ms_p95 / self.rtt_ms_median) / Z95 if self.rtt_ms_median > 0 else 0.0
        object.__setattr__(self, "_median_s", self.rtt_ms_median / 1000.0)
        object.__setattr__(self, "_sigma", sigma)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def disabled(cls) -> LinkModel:
        """Zero delay, unlimited bandwidth, no loss: what ``--no-links`` uses."""
        return cls()

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> LinkModel:
        """One entry of ``world.json`` ``links`` (``remarks`` and unknown keys are ignored)."""
        try:
            return cls(
                name=name,
                rtt_ms_median=float(spec["rtt_ms_median"]),
                rtt_ms_p95=float(spec["rtt_ms_p95"]),
                bandwidth_mbps=float(spec["bandwidth_mbps"]),
                loss=float(spec.get("loss", 0.0)),
                outage=bool(spec.get("outage", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LinkError):
                raise
            raise LinkError(f"link {name!r}: {exc!r} in {dict(spec)!r}") from exc

    @classmethod
    def from_world(cls, links: Mapping[str, Mapping[str, Any]]) -> dict[str, LinkModel]:
        """Every link type of ``world.json`` ``links``, by name."""
        return {name: cls.from_spec(name, spec) for name, spec in links.items()}

    def with_outage(self, outage: bool = True) -> LinkModel:
        return replace(self, outage=outage)

    # -- derived parameters -------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """False for the disabled link (every delay is zero)."""
        return self.outage or self.rtt_ms_median > 0 or self.loss > 0 or not math.isinf(self.bandwidth_mbps)

    @property
    def sigma(self) -> float:
        """Lognormal shape fitted to the p95 (0 when median and p95 are equal)."""
        return self._sigma

    @property
    def mean_rtt_ms(self) -> float:
        return self.rtt_ms_median * math.exp(self.sigma**2 / 2)

    @property
    def jitter_ms(self) -> float:
        """Standard deviation of the round trip: the fitted lognormal's."""
        s2 = self.sigma**2
        return self.rtt_ms_median * math.exp(s2 / 2) * math.sqrt(math.expm1(s2))

    def rtt_quantile_ms(self, q: float) -> float:
        """The RTT below which a share ``q`` of samples falls (for checks and reports)."""
        if self.rtt_ms_median <= 0:
            return 0.0
        return self.rtt_ms_median * math.exp(self.sigma * NormalDist().inv_cdf(q))

    # -- pure sampling --------------------------------------------------------------------------------
    def sample_rtt(self, rng: random.Random) -> float:
        """One round-trip time in seconds (no loss)."""
        if self.rtt_ms_median <= 0:
            return 0.0
        return self._median_s * math.exp(self._sigma * rng.gauss(0.0, 1.0))

    def sample_delay(self, rng: random.Random) -> float:
        """Seconds before the first response byte: one RTT, plus one RTO when the first segment is lost.

        ``math.inf`` during an outage. Draws exactly two numbers from ``rng`` when the link has loss and
        one otherwise, so a seeded run replays whatever the outcome.
        """
        if self.outage:
            return math.inf
        delay = self.sample_rtt(rng)
        if self.loss > 0 and rng.random() < self.loss:
            delay += self.rto_ms / 1000.0
        return delay

    def transfer_seconds(self, nbytes: int) -> float:
        """Seconds to push ``nbytes`` through the link's bandwidth (deterministic; 0 when disabled)."""
        if nbytes <= 0 or math.isinf(self.bandwidth_mbps):
            return 0.0
        return nbytes * 8 / (self.bandwidth_mbps * 1e6)

    def segments(self, nbytes: int) -> int:
        return max(0, math.ceil(nbytes / self.mss_bytes))

    def sample_lost_segments(self, rng: random.Random, nbytes: int) -> int:
        """How many of the body's segments are lost (binomial, drawn by geometric skips: O(losses))."""
        if self.loss <= 0:
            return 0
        n = self.segments(nbytes)
        if n == 0:
            return 0
        log_q = math.log1p(-self.loss)
        lost, position = 0, 0
        while True:
            position += int(math.log(1.0 - rng.random()) / log_q) + 1
            if position > n:
                return lost
            lost += 1

    def sample_transfer_seconds(self, rng: random.Random, nbytes: int) -> float:
        """Body time: :meth:`transfer_seconds` plus one median RTT per lost segment (fast retransmit)."""
        lost = self.sample_lost_segments(rng, nbytes)
        return self.transfer_seconds(nbytes) + lost * self.rtt_ms_median / 1000.0
