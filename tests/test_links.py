"""Link models: the lognormal fit, bandwidth, loss, outage, the disabled link and seeded determinism."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from simulator.links import DEFAULT_RTO_MS, LinkError, LinkModel
from synthetic.profile import load_profile

N = 40_000


def world_links() -> dict[str, LinkModel]:
    profile = load_profile("ishikawa")
    return LinkModel.from_world({name: link.model_dump() for name, link in profile.links.items()})


def test_from_world_reads_every_link_type_of_the_profile() -> None:
    links = world_links()
    assert set(links) == {"IP-VPN", "Internet VPN", "Internet"}
    vpn = links["IP-VPN"]
    assert (vpn.rtt_ms_median, vpn.rtt_ms_p95, vpn.bandwidth_mbps, vpn.loss) == (8.0, 20.0, 50.0, 0.0)
    assert vpn.enabled
    assert not vpn.outage


@pytest.mark.parametrize("name", ["IP-VPN", "Internet VPN", "Internet"])
def test_samples_have_the_median_and_p95_they_were_fitted_to(name: str) -> None:
    link = world_links()[name]
    rng = random.Random(11)
    samples = sorted(link.sample_rtt(rng) * 1000 for _ in range(N))
    median, p95 = samples[N // 2], samples[int(N * 0.95)]
    assert median == pytest.approx(link.rtt_ms_median, rel=0.03)
    assert p95 == pytest.approx(link.rtt_ms_p95, rel=0.05)
    assert min(samples) > 0
    assert statistics.pstdev(samples) == pytest.approx(link.jitter_ms, rel=0.1)
    assert statistics.fmean(samples) == pytest.approx(link.mean_rtt_ms, rel=0.03)
    assert link.rtt_quantile_ms(0.95) == pytest.approx(link.rtt_ms_p95)


def test_loss_adds_one_rto_to_about_a_share_loss_of_first_bytes() -> None:
    link = LinkModel("lossy", rtt_ms_median=10, rtt_ms_p95=10, bandwidth_mbps=10, loss=0.05)
    rng = random.Random(5)
    delays = [link.sample_delay(rng) for _ in range(N)]
    slow = [d for d in delays if d > 0.1]
    assert len(slow) / N == pytest.approx(0.05, abs=0.006)
    assert all(d == pytest.approx(0.010 + DEFAULT_RTO_MS / 1000) for d in slow)
    assert all(d == pytest.approx(0.010) for d in delays if d <= 0.1)


def test_lost_segments_are_binomial_and_cost_a_median_rtt_each() -> None:
    link = LinkModel("lossy", rtt_ms_median=20, rtt_ms_p95=30, bandwidth_mbps=8, loss=0.01)
    rng = random.Random(9)
    nbytes = 1460 * 500
    lost = [link.sample_lost_segments(rng, nbytes) for _ in range(4000)]
    assert statistics.fmean(lost) == pytest.approx(500 * 0.01, rel=0.05)
    assert statistics.pvariance(lost) == pytest.approx(500 * 0.01 * 0.99, rel=0.1)
    assert link.transfer_seconds(nbytes) == pytest.approx(nbytes * 8 / 8e6)
    rng = random.Random(3)
    total = link.sample_transfer_seconds(rng, nbytes)
    again = link.sample_lost_segments(random.Random(3), nbytes)
    assert total == pytest.approx(link.transfer_seconds(nbytes) + again * 0.020)
    assert LinkModel("clean", 20, 30, 8).sample_lost_segments(rng, nbytes) == 0


def test_transfer_time_is_proportional_to_bytes() -> None:
    link = world_links()["Internet"]
    assert link.transfer_seconds(0) == 0
    assert link.transfer_seconds(2_500_000) == pytest.approx(1.0)  # 20 Mbit/s
    assert link.transfer_seconds(5_000_000) == pytest.approx(2 * link.transfer_seconds(2_500_000))
    assert link.segments(1461) == 2


def test_the_disabled_link_costs_nothing() -> None:
    off = LinkModel.disabled()
    rng = random.Random(1)
    assert not off.enabled
    assert off.sample_delay(rng) == 0
    assert off.transfer_seconds(10**9) == 0
    assert off.sample_transfer_seconds(rng, 10**9) == 0
    assert off.jitter_ms == 0


def test_an_outage_delivers_nothing() -> None:
    down = world_links()["IP-VPN"].with_outage()
    assert down.enabled
    assert math.isinf(down.sample_delay(random.Random(1)))
    assert not down.with_outage(False).outage


def test_seeded_samples_replay_and_use_no_global_state() -> None:
    link = world_links()["Internet VPN"]
    first = [link.sample_delay(random.Random(42)) for _ in range(3)]
    random.seed(0)
    a = random.Random(42)
    seq_a = [link.sample_delay(a) for _ in range(200)]
    random.random()
    b = random.Random(42)
    seq_b = [link.sample_delay(b) for _ in range(200)]
    assert seq_a == seq_b
    assert first == [seq_a[0]] * 3
    other = random.Random(43)
    assert [link.sample_delay(other) for _ in range(200)] != seq_a


@pytest.mark.parametrize(
    "spec",
    [
        {"rtt_ms_median": -1, "rtt_ms_p95": 5, "bandwidth_mbps": 1},
        {"rtt_ms_median": 10, "rtt_ms_p95": 5, "bandwidth_mbps": 1},
        {"rtt_ms_median": 0, "rtt_ms_p95": 5, "bandwidth_mbps": 1},
        {"rtt_ms_median": 10, "rtt_ms_p95": 20, "bandwidth_mbps": 0},
        {"rtt_ms_median": 10, "rtt_ms_p95": 20, "bandwidth_mbps": 1, "loss": 1.0},
        {"rtt_ms_median": 10, "rtt_ms_p95": 20},
        {"rtt_ms_median": "fast", "rtt_ms_p95": 20, "bandwidth_mbps": 1},
    ],
)
def test_impossible_links_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(LinkError):
        LinkModel.from_spec("bad", spec)
