"""The SimPy model on tiny cases with known answers, its determinism, what-ifs, consent, calibration files
and the simulate report (mini world; no live network: tests/test_des_validate.py has the live part)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import simulator.hub.policy as policy_module
import simulator.hub.records as records_module
from harness.cli import app
from harness.des.report import write_report
from simulator.des import (
    Calibration,
    CalibrationError,
    DesModel,
    DesWorld,
    Dist,
    Histogram,
    WhatIf,
    WhatIfError,
    apply_pairs,
    load_calibration,
    load_overlay,
    nominal_calibration,
    parse_sweep,
)
from simulator.des.calibration import write_calibration
from simulator.des.figures import add_totals, totals_json
from simulator.des.results import Results
from simulator.des.run import SimulationOptions, knee_of, parse_span, replica_seed, simulate
from simulator.des.scheduler import WAKE_DELAYS, Scheduler, Task, WakeDelays
from simulator.des.sessions import COMMIT_PAUSE_S
from simulator.des.stations import Station
from simulator.hub.policy import AccessRules
from simulator.links import LinkModel
from simulator.workload import STEP_SETTLING, default_workload
from simulator.workload.model import ShapeSpec


@pytest.fixture(scope="module")
def world(mini_world: Path) -> DesWorld:
    return DesWorld.load(mini_world, default_workload(), 42)


def _run(
    world: DesWorld, whatif: WhatIf, *, seed: int = 1, hours: float = 2.0, cal: Calibration | None = None
):
    model = DesModel(world, cal or nominal_calibration(), whatif, seed=seed)
    return model, model.run(hours * 3600)


# ------------------------------------------------------------------------------------ known answers


def test_mm1_hub_resource_matches_closed_form_mean_wait(world: DesWorld) -> None:
    """Poisson arrivals (λ) at the hub's worker resource with exponential service (μ): the model's mean
    wait in queue must be Wq = ρ / (μ − λ) (M/M/1), within 5 % over 200k customers."""
    cal = nominal_calibration().model_copy(
        update={"hub": {**nominal_calibration().hub, "pix": Dist(kind="exponential", mean=10.0)}}
    )
    model = DesModel(world, cal, WhatIf(hub_cores=1), seed=7)
    lam, mu = 60.0, 100.0  # per second: ρ = 0.6
    n = 200_000

    def arrivals():
        for _ in range(n):
            yield model.env.timeout(model.rng.expovariate(lam))
            model.env.process(model._hold(model.cores, model.hub_time["pix"](model.rng)))

    model.env.process(arrivals())
    model.env.run()
    rho = lam / mu
    expected_wq = rho / (mu - lam)
    measured = model.cores.wait_s / model.cores.requests
    assert model.cores.requests == n
    assert measured == pytest.approx(expected_wq, rel=0.05)
    assert model.cores.busy_s / model.env.now == pytest.approx(rho, rel=0.02)


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 3),
    jobs=st.lists(
        st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 3.0)),  # (gap since the previous arrival, service)
        min_size=1,
        max_size=40,
    ),
)
def test_booked_holds_are_simpys_fifo_queue(capacity: int, jobs: list[tuple[float, float]]) -> None:
    """A booked :class:`Station` hold (service drawn at arrival, one timeout) ends when the same requests
    end in a :class:`simpy.Resource` of as many slots — the FIFO queue it replaces — with its waits."""

    def ends(booked: bool) -> tuple[list[float], float]:
        env = simpy.Environment()
        station, resource = Station(env, "s", capacity), simpy.Resource(env, capacity)
        done = [0.0] * len(jobs)

        def one(i: int, service: float) -> Any:
            if booked:
                yield station.after(service)
            else:
                with resource.request() as turn:
                    yield turn
                    yield env.timeout(service)
            done[i] = env.now

        def arrive() -> Any:
            for i, (gap, service) in enumerate(jobs):
                yield env.timeout(gap)
                env.process(one(i, service))

        env.process(arrive())
        env.run()
        return done, station.wait_s

    booked, waits = ends(True)
    reference, _ = ends(False)
    assert booked == pytest.approx(reference, abs=1e-9)
    arrivals = list(itertools.accumulate(gap for gap, _ in jobs))
    services = sum(service for _, service in jobs)
    assert waits == pytest.approx(sum(reference) - sum(arrivals) - services, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 4),
    calls=st.lists(
        st.tuples(st.floats(0.0, 2.0), st.floats(0.01, 3.0)),  # (gap since the previous caller, commit)
        min_size=1,
        max_size=30,
    ),
)
def test_booked_audit_groups_are_the_writers(limit: int, calls: list[tuple[float, float]]) -> None:
    """:class:`GroupCommit` books each caller at arrival; a plain writer process — commit whatever
    queued (at most ``limit``) when the last commit ends, its time drawn by the group's first caller —
    answers every caller at the same moment."""
    from simulator.des.stations import GroupCommit

    draws = iter(seconds for _, seconds in calls)
    env = simpy.Environment()
    writer = GroupCommit(env, "audit", limit=limit)
    booked: list[float] = [0.0] * len(calls)

    def caller(i: int) -> Any:
        yield writer.after(lambda: next(draws))
        booked[i] = env.now

    def arrive() -> Any:
        for i, (gap, _) in enumerate(calls):
            yield env.timeout(gap)
            env.process(caller(i))

    env.process(arrive())
    env.run()
    # the reference: callers in arrival order; a group starts when the writer is free, takes up to
    # ``limit`` who arrived before then (at least the first waiting), and commits for the next draw
    arrivals = list(itertools.accumulate(gap for gap, _ in calls))
    expected = [0.0] * len(calls)
    free, i, groups = 0.0, 0, 0
    while i < len(calls):
        start = max(free, arrivals[i])
        group = [i]
        while len(group) < limit and group[-1] + 1 < len(calls) and arrivals[group[-1] + 1] < start:
            group.append(group[-1] + 1)
        free = start + calls[groups][1]
        groups += 1
        for j in group:
            expected[j] = free
        i = group[-1] + 1
    assert booked == pytest.approx(expected, abs=1e-9)
    assert (writer.requests, writer.groups) == (len(calls), groups)


def test_a_core_shared_by_one_process_is_processor_sharing_with_closed_form_response_times() -> None:
    """One core, one process whose work items interleave (Locust's greenlets) — :class:`Scheduler` as
    M/G/1-PS: Poisson arrivals (λ = 60/s) of two job sizes (2 ms and 30 ms, as queries beside password
    hashes). Under processor sharing a job of size x takes x / (1 − ρ) on average whatever the size mix, so
    the 2-ms jobs are *not* stuck behind the 30-ms ones as in a FIFO queue (whose mean wait, the same for
    both, is λ·E[S²] / 2(1 − ρ) ≈ 22 ms here)."""
    env = simpy.Environment()
    cores = Scheduler(env, "machine", 1)
    task = cores.task("generator")
    rng = random.Random(11)
    lam, small, large, share_large = 60.0, 0.002, 0.030, 0.3
    rho = lam * (share_large * large + (1 - share_large) * small)  # 0.624
    took: dict[float, list[float]] = {small: [], large: []}

    def job(size: float):
        t0 = env.now
        yield from cores.run(task, size)
        took[size].append(env.now - t0)

    def arrivals():
        for _ in range(150_000):
            yield env.timeout(rng.expovariate(lam))
            env.process(job(large if rng.random() < share_large else small))

    env.process(arrivals())
    env.run()
    for size in (small, large):
        assert sum(took[size]) / len(took[size]) == pytest.approx(size / (1 - rho), rel=0.05)
    assert cores.busy_s / env.now == pytest.approx(rho, rel=0.02)
    assert cores.pulls == 0


def _ends(cores: int, jobs: list[tuple[str, float, float]]) -> dict[str, float]:
    """Run (process name, start, CPU seconds) on a fresh machine; when each ended."""
    env = simpy.Environment()
    machine = Scheduler(env, "machine", cores)
    tasks = {name: machine.task(name) for name, _, _ in jobs}  # created in order: spread over the cores
    ends: dict[str, float] = {}

    def one(name: str, start: float, seconds: float):
        yield env.timeout(start)
        yield from machine.run(tasks[name], seconds)
        ends[name] = env.now

    for job in jobs:
        env.process(one(*job))
    env.run()
    return ends


def test_a_waking_process_waits_as_the_wake_up_rule_says() -> None:
    """The wake-up delay (:class:`WakeDelays`): a task waking onto a core with k others runnable first waits
    what the rule draws for k, then shares the core; on an idle core, or without the rule, it starts at
    once. A hold with pauses (the hub loop's commits) sleeps between equal pieces of its work and wakes
    again after each."""
    env = simpy.Environment()
    machine = Scheduler(env, "machine", 1, wake=lambda others: 0.001 * others)
    hog, late, alone = machine.task("hog"), machine.task("late"), machine.task("alone")
    ends: dict[str, float] = {}

    def one(name: str, task: Task, start: float, seconds: float):
        yield env.timeout(start)
        yield from machine.run(task, seconds)
        ends[name] = env.now

    env.process(one("hog", hog, 0.0, 0.010))
    env.process(one("late", late, 0.001, 0.001))  # one other runnable: waits 1 ms, then half a core
    env.process(one("alone", alone, 0.050, 0.001))  # the core idle by then: no wait
    env.run()
    assert ends["late"] == pytest.approx(0.004)  # 1 ms asleep, then 1 ms of work at half a core
    assert ends["hog"] == pytest.approx(0.011)  # 10 ms of work, 2 ms of it at half a core
    assert ends["alone"] == pytest.approx(0.051)
    # a hold of 2 ms with one 0.5-ms pause beside a hog: 1 ms at half a core, asleep 0.5 ms, then a wake-up
    # (1 ms: one other runnable) and 1 ms at half a core
    env2 = simpy.Environment()
    machine2 = Scheduler(env2, "machine", 1, wake=lambda others: 0.001 * others)
    loop = Station(env2, "hub", 1, machine2)
    done: list[float] = []

    def hogging():
        yield from machine2.run(machine2.task("hog"), 1.0)

    def request():
        yield from loop.hold(0.002, (0.0005,))
        done.append(env2.now)

    env2.process(hogging())
    env2.process(request())
    env2.run(until=0.1)
    # the first piece wakes beside the hog too (1 ms): 1 + 2 (1 ms at half) + 0.5 + 1 + 2
    assert done == pytest.approx([0.0065])
    assert (loop.requests, loop.pauses) == (1, 1)
    assert loop.busy_s == pytest.approx(0.002)
    # the drawn rule: none with no one else runnable; the last row for that many others or more
    rule, rng = WakeDelays(((1.0, 0.002), (0.0, 0.5))), random.Random(5)
    assert rule.draw(0, rng) == 0.0
    assert all(rule.draw(k, rng) == 0.0 for k in (2, 3, 9))
    draws = [rule.draw(1, rng) for _ in range(20_000)]
    assert min(draws) > 0
    assert sum(draws) / len(draws) == pytest.approx(0.002, rel=0.03)
    half = [WAKE_DELAYS.draw(1, rng) for _ in range(20_000)]
    chance, mean_s = WAKE_DELAYS.table[0]
    assert sum(d > 0 for d in half) / len(half) == pytest.approx(chance, abs=0.01)
    assert sum(half) / len(half) == pytest.approx(chance * mean_s, rel=0.05)


def test_the_machine_places_processes_as_the_kernel_does() -> None:
    """The scheduler's rules with known answers (tasks start on cores 0, 1, 0, 1…): a process wakes on the
    core it last ran on even when the other is busy with one hog (it does not look for a lighter core);
    processes on one core share it equally; when a task's work ends, idle cores pull the most recently woken
    processes from a crowded one."""
    # hog on core 1 (1 s of work); A (core 0) and C (core 0) overlap: they share core 0, the hog is alone
    ends = _ends(2, [("A", 0.0, 0.006), ("hog", 0.0, 1.0), ("C", 0.0, 0.002)])
    assert ends["C"] == pytest.approx(0.004)  # 2 ms at half a core
    assert ends["A"] == pytest.approx(0.008)  # 4 ms at half, 2 ms alone
    assert ends["hog"] == pytest.approx(1.0)
    # three processes that all last ran on core 0, core 1 idle: the first wake-up finds core 0 idle,
    # the others crowd in behind it and core 1 stays idle until core 0 frees (no idle search on wake-up) ...
    env = simpy.Environment()
    machine = Scheduler(env, "machine", 2)
    names = ["P", "Q", "R"]
    tasks = {n: machine.task(n) for n in names}
    for t in tasks.values():
        t.prev = 0
    ends2: dict[str, float] = {}

    def one(name: str, seconds: float):
        yield from machine.run(tasks[name], seconds)
        ends2[name] = env.now

    env.process(one("P", 0.003))
    env.process(one("Q", 0.003))
    env.process(one("R", 0.003))
    env.run()
    # all three share core 0 (1/3 each) until all end at 9 ms: no work ended before, so nothing moved
    assert ends2 == pytest.approx({"P": 0.009, "Q": 0.009, "R": 0.009})
    # when a task's work ends every idle core pulls, not only the one that went idle:
    # 3 cores, P Q R on core 0, T on core 2 (1 ms), core 1 idle throughout
    env5 = simpy.Environment()
    three = Scheduler(env5, "machine", 3)
    tasks5 = {n: three.task(n) for n in ("P", "Q", "R", "T")}
    for n in "PQR":
        tasks5[n].prev = 0
    tasks5["T"].prev = 2
    ends5: dict[str, float] = {}

    def one5(name: str, seconds: float):
        yield from three.run(tasks5[name], seconds)
        ends5[name] = env5.now

    for n, w in (("P", 0.003), ("Q", 0.003), ("R", 0.003), ("T", 0.001)):
        env5.process(one5(n, w))
    env5.run()
    # until 1 ms P Q R do 1/3 ms each; then core 1 pulls Q and core 2 pulls R (the first of the last-woken,
    # all woke at 0), and each ends alone 2 2/3 ms later. Had only core 2 pulled, P and R would share core 0.
    assert ends5 == pytest.approx({"T": 0.001, "P": 0.011 / 3, "Q": 0.011 / 3, "R": 0.011 / 3})
    assert three.pulls == 2
    # and a core that goes idle pulls: D alone on core 1 ends at 1 ms, then core 1 pulls from core 0
    ends3 = _ends(2, [("E", 0.0, 0.004), ("D", 0.0, 0.001), ("F", 0.0, 0.004)])
    # E and F share core 0 at half speed until D ends (1 ms: each has 3.5 ms left); core 1 pulls F
    assert ends3["D"] == pytest.approx(0.001)
    assert ends3["E"] == pytest.approx(0.0045)
    assert ends3["F"] == pytest.approx(0.0045)
    # a station's slots are processes of their own: two holds at once on a 2-slot station, two cores
    env4 = simpy.Environment()
    station = Station(env4, "hub", 2, Scheduler(env4, "machine", 2))
    done: list[float] = []

    def hold():
        yield from station.hold(1.0)
        done.append(env4.now)

    env4.process(hold())
    env4.process(hold())
    env4.run()
    assert done == pytest.approx([1.0, 1.0])


def test_link_rtt_through_the_model_follows_its_lognormal(world: DesWorld) -> None:
    """A gateway with no work behind an IP-VPN link: the delays the model produces have the link's
    lognormal quantiles (median and p95 of world.json, p99 from the fit) within 3 %."""
    cal = nominal_calibration()
    model = DesModel(world, cal, WhatIf(link="IP-VPN"), seed=3)
    link = world.links["IP-VPN"]
    code = sorted(world.shard_of)[0]
    delays: list[float] = []

    def probe():
        for _ in range(20_000):
            t0 = model.env.now
            yield from model._gateway(code, 0, 0.0, 0)
            delays.append((model.env.now - t0) * 1000)

    model.env.process(probe())
    model.env.run()
    values = np.array(delays)
    assert link.loss == 0
    for q in (0.5, 0.95, 0.99):
        assert float(np.quantile(values, q)) == pytest.approx(link.rtt_quantile_ms(q), rel=0.03)
    assert float(values.mean()) == pytest.approx(link.mean_rtt_ms, rel=0.03)


def test_histogram_percentiles_match_exact_nearest_rank() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(-4, 1.2) for _ in range(50_000)]
    h = Histogram()
    for v in values:
        h.add(v)
    ordered = sorted(values)
    for p in (50, 95, 99):
        exact = ordered[math.ceil(p / 100 * len(ordered)) - 1] * 1000
        assert h.percentile_ms(p) == pytest.approx(exact, rel=0.006)
    assert h.count == len(values)
    assert len(h.buckets) < 3000  # bounded, whatever the count


def test_sessions_are_the_plans_and_rates_follow_the_shape(world: DesWorld) -> None:
    """At ×N the session rate is N × the realistic peak (Poisson over 6 h: within 4 σ)."""
    rate = 0.2
    model = DesModel(world, nominal_calibration(), WhatIf(feeds=False), seed=2, rate_override=rate)
    res = model.run(6 * 3600)
    expected = rate * 6 * 3600
    assert abs(res.sessions - expected) < 4 * math.sqrt(expected)
    assert res.ops["login"].count == res.sessions


def test_diurnal_arrivals_follow_the_curve_hour_by_hour(world: DesWorld) -> None:
    """Arrivals thinned from the shape's piecewise bound (:meth:`Rates.bound`) keep the curve's rate: per
    hour of a compressed day, over 200 days, the count is the curve's integral × rate (within 4 σ), and
    at night no candidate is drawn in vain (the bound is exact there)."""
    from simulator.workload import diurnal_factor, peak_factor

    day = default_workload().model_copy(update={"shape": ShapeSpec(kind="diurnal", day_s=240.0)})
    rate = 5.0  # sessions/s at the peak
    cal = nominal_calibration()
    model = DesModel(world, cal, WhatIf(feeds=False), seed=4, workload=day, rate_override=rate)
    days = 200
    times = list(model._poisson(days * 240.0, rate))
    assert times == sorted(times)
    counts = [0] * 24
    for t in times:
        counts[int(24 * (t % 240.0) / 240.0)] += 1
    for hour, n in enumerate(counts):
        factors = [diurnal_factor(hour + (i + 0.5) / 100) for i in range(100)]
        expected = days * 10.0 * rate * sum(factors) / 100 / peak_factor()  # 10 s per compressed hour
        assert abs(n - expected) < 4 * math.sqrt(expected), hour
    draws = random.Random(4)
    night = [draws.expovariate(rate * diurnal_factor(3.0) / peak_factor()) for _ in range(3)]
    assert times[:3] == pytest.approx(list(itertools.accumulate(night)))  # no rejected draw between them


# ------------------------------------------------------------------------------------ determinism


def _options(world_dir: Path, whatifs, seed=42, duration=7200.0, key=None) -> SimulationOptions:
    return SimulationOptions(
        world=world_dir,
        calibration=nominal_calibration(),
        workload=default_workload(),
        whatifs=whatifs,
        duration_s=duration,
        seed=seed,
        sweep_key=key,
    )


def _strip(report: dict) -> dict:
    for run in report["runs"]:
        run.pop("wall_s")
        run.pop("events_per_s")
    return report


@pytest.mark.parametrize(
    "whatif",
    [
        WhatIf(multiplier=300),
        WhatIf(multiplier=2000, feeds=False),  # queues at the hub, the password worker and the shards
        WhatIf(multiplier=300, mtbf_days=0.01, mttr_hours=0.5),  # gateways going down and up
        WhatIf(multiplier=300, audit_factor=3, gateway_timeout_ms=40),  # slow commits, timeouts
    ],
)
def test_going_on_past_a_hold_is_exactly_waiting_for_it(world: DesWorld, whatif: WhatIf) -> None:
    """The lookahead (a step goes on past a booked hold's end when nothing else happens before it) changes
    the number of events, not one figure: the same model with it off waits every hold out."""
    figures = []
    for lookahead in (True, False):
        model = DesModel(world, nominal_calibration(), whatif, seed=3)
        model.lookahead = lookahead
        results = model.run(2 * 3600)
        figures.append((results.operations(), model.resources(), results.sources, results.partial_timelines,
                        results.refused, results.leaks, results.sessions, model.events()))  # fmt: skip
    on, off = figures
    assert on[:-1] == off[:-1]
    assert on[0]["timeline"]["count"] > 100
    assert on[-1] < 0.8 * off[-1]  # fewer events


def test_same_seed_same_report_other_seed_other(mini_world: Path) -> None:
    w = [WhatIf(multiplier=200)]
    a = _strip(simulate(_options(mini_world, w)))
    b = _strip(simulate(_options(mini_world, w)))
    c = _strip(simulate(_options(mini_world, w, seed=43)))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["runs"][0]["sessions"] > 20
    assert json.dumps(a["runs"], sort_keys=True) != json.dumps(c["runs"], sort_keys=True)


# ------------------------------------------------------------------------------------ what-ifs


def test_whatif_pairs_overlay_and_sweep(tmp_path: Path) -> None:
    w = apply_pairs(["hub_cores=4", "link=Internet VPN", "feeds=false", "audit_factor=2.5"])
    assert (w.hub_cores, w.link, w.feeds, w.audit_factor) == (4, "Internet VPN", False, 2.5)
    overlay = tmp_path / "o.yaml"
    overlay.write_text("patients: 10\ndown: '1710110072'\ndown_hours: 2\n", encoding="utf-8")
    o = apply_pairs(["multiplier=3"], load_overlay(overlay))
    assert (o.patients, o.down, o.down_hours, o.multiplier) == (10.0, "1710110072", 2.0, 3.0)
    key, runs = parse_sweep("multiplier=1,10,100", o)
    assert key == "multiplier"
    assert [r.multiplier for r in runs] == [1.0, 10.0, 100.0]
    assert all(r.patients == 10 for r in runs)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["hub_core=4"], "unknown what-if key(s) hub_core"),
        (["hub_cores=0"], "hub_cores"),
        (["link=Carrier pigeon"], "link"),
        (["multiplier"], "write key=value"),
    ],
)
def test_whatif_refused(pairs: list[str], message: str) -> None:
    with pytest.raises(WhatIfError, match=re.escape(message)) as info:
        apply_pairs(pairs)
    if "unknown" in message:
        assert "known: multiplier, patients" in str(info.value)


def test_whatif_overlay_unknown_key_refused(tmp_path: Path) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("cores: 4\n", encoding="utf-8")
    with pytest.raises(WhatIfError, match=r"bad.yaml: unknown what-if key\(s\) cores"):
        load_overlay(overlay)


def test_whatifs_change_the_prediction(world: DesWorld) -> None:
    """Each knob moves what it should: more cores, slower links, a gateway down, a slower disk."""
    base_model, base = _run(world, WhatIf(multiplier=300))
    assert base_model.cores.capacity == 1
    cores_model, _ = _run(world, WhatIf(multiplier=300, hub_cores=4))
    assert cores_model.cores.capacity == 4
    _, slow = _run(world, WhatIf(multiplier=300, link="Internet"))
    assert slow.ops["timeline"].percentile_ms(50) > base.ops["timeline"].percentile_ms(50) + 5
    _, nolinks = _run(world, WhatIf(multiplier=300, links=False))
    assert nolinks.ops["timeline"].percentile_ms(50) < base.ops["timeline"].percentile_ms(50)
    assert base.partial_timelines == 0
    busiest = max(world.shard_of, key=lambda c: sum(1 for e in world.entries.values() if c in e))
    _, down = _run(world, WhatIf(multiplier=300, down=busiest, down_hours=2, gateway_timeout_ms=800))
    assert down.partial_timelines > 0
    assert down.sources.get("timeout", 0) == down.partial_timelines or down.sources["timeout"] > 0
    assert down.ops["timeline"].percentile_ms(95) >= 800
    disk_model, _ = _run(world, WhatIf(multiplier=300, audit_factor=50))
    assert disk_model.audit.busy_s > 20 * base_model.audit.busy_s


def test_outage_rate_grows_partial_timelines(world: DesWorld) -> None:
    """Partial results grow with the outage rate (the qualitative check of the issue)."""
    shares = []
    for mtbf in (0.0, 2.0, 0.2):
        _, r = _run(world, WhatIf(multiplier=300, mtbf_days=mtbf, mttr_hours=6), hours=24)
        shares.append(r.partial_timelines / r.timelines)
    assert shares[0] == 0
    assert shares[0] < shares[1] < shares[2]


def test_named_facility_must_exist(world: DesWorld) -> None:
    with pytest.raises(ValueError, match="no facility 0000000000"):
        _run(world, WhatIf(down="0000000000"))


# ------------------------------------------------------------------------------------ consent


def test_outside_viewers_are_refused_by_the_hubs_decision(world: DesWorld) -> None:
    _, r = _run(world, WhatIf(multiplier=2000), hours=1)
    assert r.refused.get("outside_timeline", 0) > 0
    assert r.leaks == 0
    assert r.sources.get("denied", 0) > 0


def test_changing_the_policy_changes_the_refusals(world: DesWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy that allows everything (the hub's may_view / may_know replaced) turns the model's outside
    viewers into leaks: the decision is the hub's, not a copy."""
    _, before = _run(world, WhatIf(multiplier=2000), hours=1)
    allow = policy_module.Decision(True, "ok")
    monkeypatch.setattr(policy_module, "may_view", lambda **_: allow)
    monkeypatch.setattr(records_module, "may_view", lambda **_: allow)
    monkeypatch.setattr(records_module, "may_view_each", lambda **kw: dict.fromkeys(kw["categories"], allow))
    monkeypatch.setattr(policy_module, "may_know", lambda *a, **k: True)
    _, after = _run(world, WhatIf(multiplier=2000), hours=1)
    assert before.leaks == 0
    assert after.leaks > 0
    assert after.sources.get("denied", 0) == 0
    assert after.refused.get("outside_timeline", 0) == 0


def test_viewer_rules_change_the_refusals(world: DesWorld) -> None:
    """The world's viewer rules are the policy's input: clinics that may see nothing get only denials."""
    rules = world.facilities.rules
    shut = AccessRules({**rules.facility_kinds, "clinic": frozenset()}, rules.user_kinds)
    closed = dataclasses.replace(world, facilities=_with_rules(world, shut))
    _, open_r = _run(world, WhatIf(multiplier=2000, feeds=False), hours=1)
    _, shut_r = _run(closed, WhatIf(multiplier=2000, feeds=False), hours=1)
    assert shut_r.sources.get("denied", 0) > open_r.sources.get("denied", 0)
    assert shut_r.ops["fetch"].count < open_r.ops["fetch"].count


def _with_rules(world: DesWorld, rules: AccessRules):
    import copy

    facilities = copy.copy(world.facilities)
    facilities.rules = rules
    return facilities


# ------------------------------------------------------------------------------------ calibration file


def test_calibration_round_trip(tmp_path: Path) -> None:
    cal = nominal_calibration(cores=8)
    path = write_calibration(cal, tmp_path / "c.yaml")
    assert load_calibration(path) == cal
    assert "median_ms" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(surprise=1), r"c.yaml:\d+: surprise"),
        (lambda d: d["hub"].pop("login"), "missing operations"),
        (lambda d: d["hub"]["pix"].update(median_ms=5.0, p95_ms=1.0), r"hub.pix"),
        (lambda d: d["machine"].update(cores=0), r"machine.cores"),
        (lambda d: d.update(schema_version=2), "schema_version"),
    ],
)
def test_calibration_errors_name_file_line_and_key(tmp_path: Path, edit, message: str) -> None:
    import yaml

    data = nominal_calibration().model_dump(mode="json")
    edit(data)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(CalibrationError, match=message):
        load_calibration(path)


def test_feeds_on_a_new_connection_cost_feed_fresh_and_older_files_fall_back(
    world: DesWorld, tmp_path: Path
) -> None:
    """Locust's feeder sends each register and update on a new TLS connection, the "facility joins" burst
    on one open connection: the model prices the first as ``feed_fresh``, the burst as ``feed``. A file
    from before ``feed_fresh`` was measured still loads, and its feeds all cost ``feed``."""
    import yaml

    base = nominal_calibration()
    hub = {**base.hub, "feed": Dist.constant(1.0), "feed_fresh": Dist.constant(30.0)}
    path = write_calibration(base.model_copy(update={"hub": hub}), tmp_path / "new.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["hub"]["feed_fresh"]
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    medians = []
    for file in (path, old):
        model = DesModel(world, load_calibration(file), WhatIf(feeds=False), seed=3, rate_override=1e-9)
        model.env.process(model._feeds(600.0, 2.0, 0.5))
        model.env.process(model._burst())
        r = model.run(600)
        assert min(r.ops[op].count for op in ("feed_register", "feed_update", "feed_join")) > 50
        medians.append([r.ops[op].percentile_ms(50) for op in ("feed_register", "feed_update", "feed_join")])
    (reg, upd, join), (old_reg, old_upd, old_join) = medians
    assert 30.0 <= reg < 32.0  # the hub's 30 ms, its audit commit
    assert 30.0 <= upd < 32.0
    assert join < 3.0
    assert old_join == pytest.approx(join)
    assert old_reg < 3.0
    assert old_upd < 3.0


def test_calibration_missing_file() -> None:
    with pytest.raises(CalibrationError, match="cannot read calibration file"):
        load_calibration(Path("/nonexistent/calibration.yaml"))


def test_dist_fit_and_samplers() -> None:
    d = Dist.fit([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (d.median_ms, d.p95_ms, d.samples) == (3.0, 100.0, 5)
    rng = random.Random(1)
    e = Dist(kind="empirical", quantiles=[(0.0, 1.0), (0.5, 2.0), (1.0, 4.0)])
    draws = sorted(e.sampler()(rng) * 1000 for _ in range(20_000))
    assert draws[10_000] == pytest.approx(2.0, rel=0.03)
    assert e.mean_ms == pytest.approx(2.25)
    assert Dist.constant(3.0).sampler()(rng) == pytest.approx(0.003)


# ------------------------------------------------------------------------------------ report and CLI


def test_sweep_knee_and_html_report(mini_world: Path, tmp_path: Path) -> None:
    whatifs = [WhatIf(multiplier=m, feeds=False) for m in (100, 3000)]
    report = simulate(_options(mini_world, whatifs, duration=1800.0, key="multiplier"))
    assert report["sweep"] == {"key": "multiplier", "values": [100.0, 3000.0]}
    assert report["knee"]["slo_ms"] == 800.0
    files = write_report(report, tmp_path / "r")
    page = files["html"].read_text(encoding="utf-8")
    assert f'data-runs="2" data-operations="{sum(len(r["operations"]) for r in report["runs"])}"' in page
    assert page.count("<svg") == 2
    assert not re.search(r"""(src|href)\s*=\s*["']https?:""", page)  # self-contained: nothing fetched
    assert json.loads(files["json"].read_text(encoding="utf-8"))["runs"][1]["whatif"]["multiplier"] == 3000.0


def test_knee_rule() -> None:
    curve = [
        {"multiplier": 1, "p95_ms": 100, "failures": 0},
        {"multiplier": 10, "p95_ms": 500, "failures": 0},
        {"multiplier": 100, "p95_ms": 900, "failures": 0},
    ]
    assert knee_of(curve, 800) == 10
    assert knee_of(curve, 50) is None
    assert knee_of(curve, 1000) == 100


def test_parse_span() -> None:
    assert parse_span("1y") == 365 * 86_400
    assert parse_span("10m") == 600
    assert parse_span("90") == 90
    with pytest.raises(ValueError, match="duration"):
        parse_span("soon")


def test_simulate_cli(mini_world: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        app,
        ["simulate", "--world", str(mini_world), "--duration", "30m", "--what-if", "multiplier=500",
         "--report", str(tmp_path / "r"), "--seed", "3"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "timeline" in ok.output
    assert (tmp_path / "r" / "report.html").is_file()
    bad = runner.invoke(app, ["simulate", "--world", str(mini_world), "--what-if", "cpus=2"])
    assert bad.exit_code == 2
    assert "unknown what-if key(s) cpus" in bad.output


def test_links_are_the_worlds(world: DesWorld) -> None:
    model = DesModel(world, nominal_calibration(), WhatIf(link="Internet"), seed=1)
    code = next(iter(world.shard_of))
    assert model._link(code) == world.links["Internet"]
    off = DesModel(world, nominal_calibration(), WhatIf(links=False), seed=1)
    assert off._link(code) == LinkModel.disabled()
    assert isinstance(model.env, simpy.Environment)


def test_shards_and_facilities_whatifs_use_every_gateway_station(world: DesWorld) -> None:
    """``shards`` re-partitions the gateways as the live network would; ``facilities`` ×2 doubles the load
    and the gateways alike, so each shard carries what it carried at ×1."""
    base_model, _ = _run(world, WhatIf(multiplier=500, feeds=False))
    three, _ = _run(world, WhatIf(multiplier=500, feeds=False, shards=3))
    assert len(three.shards) == 3
    assert all(st.requests > 0 for st in three.shards)
    double, _ = _run(world, WhatIf(multiplier=500, feeds=False, facilities=2))
    assert len(double.shards) == 2 * len(base_model.shards)
    base_total = sum(st.requests for st in base_model.shards)
    double_total = sum(st.requests for st in double.shards)
    assert double_total == pytest.approx(2 * base_total, rel=0.15)
    assert max(st.requests for st in double.shards) < 1.5 * max(st.requests for st in base_model.shards)


def test_jobs_split_the_duration_into_parallel_chunks(mini_world: Path) -> None:
    """Two forked chunks of a long run: deterministic, the same sessions per second as one process
    (within Poisson noise), figures merged (durations, counts, stations)."""
    w = [WhatIf(multiplier=300, feeds=False)]
    one = simulate(_options(mini_world, w, duration=86_400.0))["runs"][0]
    opts = dataclasses.replace(_options(mini_world, w, duration=86_400.0), jobs=2)
    two = simulate(opts)["runs"][0]
    again = simulate(opts)["runs"][0]
    assert two["jobs"] == 2
    assert two["operations"] == again["operations"]
    assert abs(two["sessions"] - one["sessions"]) < 4 * math.sqrt(one["sessions"]) + 1
    assert two["resources"]["hub"]["requests"] == pytest.approx(one["resources"]["hub"]["requests"], rel=0.1)
    assert two["operations"]["timeline"]["p50_ms"] == pytest.approx(
        one["operations"]["timeline"]["p50_ms"], rel=0.1
    )


def test_chunks_add_up_every_counter_of_their_stations(mini_world: Path) -> None:
    """The audit writer's commits and the machine's pulls add up across chunks too (they were dropped)."""
    opts = dataclasses.replace(_options(mini_world, [WhatIf(multiplier=300, feeds=False)]), jobs=2)
    run = simulate(opts)["runs"][0]
    assert 0 < run["resources"]["audit"]["groups"] <= run["resources"]["audit"]["requests"]
    a: dict[str, dict[str, float]] = {}
    add_totals(a, "m", {"capacity": 2, "busy_s": 1.0, "wait_s": 0.5, "requests": 3, "pulls": 4})
    add_totals(a, "m", {"capacity": 2, "busy_s": 2.0, "wait_s": 0.0, "requests": 1, "pulls": 1})
    assert totals_json(a["m"], 10.0) == {
        "capacity": 2,
        "requests": 4,
        "utilisation": 0.15,
        "mean_queue": 0.05,
        "mean_wait_ms": 125.0,
        "pulls": 5,
    }


def test_replications_pool_runs_from_other_seeds(mini_world: Path) -> None:
    """``replications`` runs the same sessions from other model seeds and merges them: replica 0 is the
    plain run, counts add up, rates stay per run, every replica's operations are kept, and it is
    deterministic."""
    w = [WhatIf(multiplier=300, feeds=False)]
    one = simulate(_options(mini_world, w))["runs"][0]
    opts = dataclasses.replace(_options(mini_world, w), replications=3)
    three = simulate(opts)["runs"][0]
    assert three["replications"] == 3
    assert three["replicas"][0] == one["operations"]
    assert three["replicas"][1] != three["replicas"][0]  # another seed, other service times
    for op, o in three["operations"].items():
        assert o["count"] == sum(r[op]["count"] for r in three["replicas"] if op in r)
    n = one["sessions"]
    assert abs(three["sessions"] - 3 * n) < 4 * math.sqrt(3 * n)  # arrivals drawn anew: Poisson noise
    assert three["sessions_per_s"] == pytest.approx(three["sessions"] / 3 / 7200.0, abs=1e-6)
    assert three["resources"]["hub"]["utilisation"] == pytest.approx(
        one["resources"]["hub"]["utilisation"], rel=0.1
    )
    assert replica_seed(42, 0) == 42
    assert replica_seed(42, 1) != replica_seed(42, 2)
    again = simulate(opts)["runs"][0]
    assert again["operations"] == three["operations"]


def test_replica_windows_merge_and_stay_per_run() -> None:
    """A step replay's windows merge across replicas: requests add up, the rate is per run."""
    a, b = Results(window_s=10.0), Results(window_s=10.0)
    for r, n in ((a, 4), (b, 6)):
        r.duration_s = 30.0
        r.clock = lambda: 15.0
        for _ in range(n):
            r.record("timeline", 0.1)
    a.merge(b, replica=True)
    (w,) = a.window_curve()
    assert a.replicas == 2
    assert a.duration_s == 60.0
    assert w["per_s"] == pytest.approx(10 / (10.0 * (1 - STEP_SETTLING)) / 2, abs=1e-3)


def test_cached_decisions_are_the_hubs_answers(world: DesWorld) -> None:
    """The model caches the hub's answers per consent version: over many sessions and days on both sides
    of the consents' dates, every cached answer (asked twice, so the second comes from the cache) is what
    the hub's own functions answer when asked afresh."""
    model = DesModel(world, nominal_calibration(), WhatIf(), seed=1)
    d = model.decisions
    ref = dt.datetime.combine(world.plan.reference_date, dt.time(10))
    days = [ref - dt.timedelta(days=n) for n in (2000, 700, 365, 90, 0)] + [ref + dt.timedelta(days=200)]
    compared = refused = 0
    for i in range(400):
        s = world.plan.session(i)
        for now in days:
            t = (now - model.start).total_seconds()  # the model asks at simulated seconds
            assert d.now(t) == now
            assert d.date(t) == now.date()
            state, cached = d.state(s, ())
            assert cached
            v = d.version(s.patient.index, now.date())
            purpose: Any = "emergency" if s.intent == "emergency" else "care"
            for _ in range(2):
                assert d.knows(s, state, cached, t, v) == policy_module.may_know(state, s.facility, now)
                plans = d.plan(s, state, cached, t, purpose, v)
                fresh = [
                    records_module._plan_source(
                        d.services, d.viewer(s), state, info, lid, policy_module.ALL, now, purpose
                    )
                    for _, lid, info in d._patient_sources(s)
                ]
                assert [p.status for p in plans] == [f.status for f in fresh]
                assert [dict(p.items) for p in plans] == [
                    {c: n for c, n in world.entries.get(s.patient.index, {}).get(f.facility.code, {}).items()
                     if c in f.allowed and n}
                    for f in fresh
                ]  # fmt: skip
                for source, cats in world.entries.get(s.patient.index, {}).items():
                    for cat in cats:
                        info = world.facilities.get(source)
                        assert info is not None
                        direct = policy_module.may_know(state, s.facility, now) and policy_module.may_view(
                            viewer=d.viewer(s), patient=state, source_facility=source,
                            source_disclosure=info.disclosure, category=cat, now=now, purpose=purpose,
                            rules=world.facilities.rules,
                        ).allowed  # fmt: skip
                        assert d.may_fetch(s, state, cached, t, purpose, v, source, cat) == direct
                        compared += 1
                        refused += not direct
    assert compared > 1000
    assert 0 < refused < compared  # both answers occur: the comparison is not of one constant
    # the days cross consent dates (versions differ), so the cache is exercised across versions
    assert any(d.version(p, days[0].date()) != d.version(p, days[-1].date()) for p in d._dates)
    assert d._plans
    assert d._views
    assert d._know


def test_the_collectors_thresholds_are_the_models_only_while_it_runs(world: DesWorld) -> None:
    """DesModel.run raises the cyclic collector's thresholds for its run and puts the caller's back, also
    when the run fails."""
    import gc

    from simulator.des.model import RUN_GC_THRESHOLDS

    before = gc.get_threshold()
    try:
        gc.set_threshold(900, 9, 8)
        model = DesModel(world, nominal_calibration(), WhatIf(multiplier=100), seed=1)
        seen: list[tuple[int, ...]] = []
        model.run(60.0, lambda _: seen.append(gc.get_threshold()))
        assert seen
        assert set(seen) == {RUN_GC_THRESHOLDS}
        assert gc.get_threshold() == (900, 9, 8)

        def fail(_: float) -> None:
            raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):
            DesModel(world, nominal_calibration(), WhatIf(), seed=1).run(60.0, fail)
        assert gc.get_threshold() == (900, 9, 8)
    finally:
        gc.set_threshold(*before)


def test_the_day_of_a_simulated_second_is_its_datetimes(world: DesWorld) -> None:
    """HubDecisions.date reads the day from its bounds in seconds, not from a datetime: around midnight,
    within the microsecond that ``timedelta`` rounds, and back and forth, it is ``now(t).date()``."""
    model = DesModel(world, nominal_calibration(), WhatIf(), seed=1, start=dt.datetime(2026, 3, 1, 9, 30))
    d = model.decisions
    midnight = (dt.datetime(2026, 3, 2) - d.start).total_seconds()
    offsets = [-1.0, -1e-6, -6e-7, -5e-7, -4e-7, -1e-9, 0.0, 1e-9, 4e-7, 6e-7, 1e-6, 1.0, 86_399.9999996]
    for t in [midnight + o for o in offsets] + [0.0, midnight + 3e5, midnight - 1.0, midnight]:
        assert d.date(t) == d.now(t).date(), t


def test_plan_tables_draw_as_the_weights_do() -> None:
    """WorldPlan's cumulative-weight tables (built once, read for a block of sessions at a time) pick for a
    uniform what ``random.choices`` picks from the weights themselves for the same ``random()``."""
    from simulator.workload.plan import _choose, _table

    weights = {"a": 0.1, "b": 2.5, "c": 0.0, 3: 1.25, "d": 0.7}
    table = _table(weights)
    keys = sorted(weights, key=str)
    assert table[0] == keys
    for seed in range(200):
        old, new = random.Random(seed), random.Random(seed)
        expected = old.choices(keys, weights=[weights[k] for k in keys], k=6)
        u = np.asarray([new.random() for _ in range(6)]).reshape(2, 3)  # any shape
        assert [keys[i] for i in _choose(table, u).ravel().tolist()] == expected
    assert keys[_choose(table, np.asarray(1.0 - 2**-53))] == "d"  # never past the last key


# ------------------------------------------------------------------------------------ Locust's arrivals


def test_paced_users_start_sessions_as_locust_does(world: DesWorld) -> None:
    """Locust's pool: ceil(rate × pacing) users, all started at once, each starting a session every pacing
    seconds (sessions here take far less): 3 users × 10 pacing intervals = 30 sessions, in bursts that queue
    at the login pool (3 logins on 2 cores at the same instant), numbered per worker as Locust's are."""
    model = DesModel(
        world, nominal_calibration(), WhatIf(feeds=False, think_scale=0), seed=1, rate_override=0.7,
        arrivals="paced", pacing_s=4.0, processes=2,
    )  # fmt: skip
    seen: list[int] = []
    plan_session = world.plan.session

    class Spy:
        def session(self, i: int):
            seen.append(i)
            return plan_session(i)

        def __getattr__(self, name: str) -> Any:  # the rest of the plan (an emergency grant reads consents)
            return getattr(world.plan, name)

    model.world = dataclasses.replace(world, plan=Spy())  # type: ignore[arg-type]
    res = model.run(40.0, drain_s=0)
    assert res.sessions == 30
    # users 0 and 2 are worker 0 (sessions 0, 2, 4 …), user 1 is worker 1 (1, 3, 5 …)
    assert sorted(seen) == sorted([*range(0, 40, 2), *range(1, 20, 2)])
    assert model.hasher.wait_s > 0  # the burst queues at the password worker
    poisson = DesModel(world, nominal_calibration(), WhatIf(feeds=False, think_scale=0), seed=1,
                       rate_override=0.7)  # fmt: skip
    poisson.run(40.0, drain_s=0)
    assert poisson.hasher.wait_s < model.hasher.wait_s


def test_machine_cores_and_load_generator_are_shared(world: DesWorld) -> None:
    """With the machine modelled, every CPU hold (hub, password worker, gateways, generator) is work on the
    machine's shared cores, and the generator costs its CPU on every request: slower than without."""
    kw: dict[str, Any] = {"seed": 4, "rate_override": 0.3}
    free = DesModel(world, nominal_calibration(), WhatIf(multiplier=40, feeds=False), **kw)
    free_r = free.run(600.0)
    shared = DesModel(
        world, nominal_calibration(), WhatIf(multiplier=40, feeds=False), client_s=0.004, machine=True, **kw
    )
    shared_r = shared.run(600.0)
    assert shared.machine is not None
    assert shared.client is not None
    cpu = [shared.cores, shared.hasher, *shared.shards, shared.client]
    assert shared.machine.busy_s == pytest.approx(sum(s.busy_s for s in cpu))
    # a hold with pauses (the hub loop's commits) is one more piece of work after each
    assert shared.cores.pauses > 0
    pieces = sum(s.requests for s in cpu) + sum(s.pauses for s in cpu if isinstance(s, Station))
    assert shared.machine.requests == pieces
    requests = sum(h.count for h in shared_r.ops.values())
    assert shared.client.requests >= requests  # one generator hold per request (in flight ones too)
    # 4 ms per request, less the hub loop's commit pauses taken out of the audited requests' client parts
    most = 0.004 * shared.client.requests
    assert most - 2 * COMMIT_PAUSE_S * shared.client.requests <= shared.client.busy_s < most
    assert shared_r.ops["timeline"].percentile_ms(50) > free_r.ops["timeline"].percentile_ms(50) + 4
    assert "machine" in shared.resources()
    assert "machine" not in free.resources()


def test_partial_share_grows_with_sources_as_independent_outages_predict(world: DesWorld) -> None:
    """Gateways down a fifth of the time (up 10 min, down 2.5 min on average): a timeline asking n sources
    is partial about 1 − 0.8ⁿ of the time — more sources, more partial results (the issue's outage
    check; benchmarks/bench_des.py --outages compares it with a live run)."""
    from harness.des.outages import expected_share

    whatif = WhatIf(feeds=False, think_scale=0, mtbf_days=600 / 86_400, mttr_hours=150 / 3600)
    # a day (~144 outages per gateway: over 6 h the share of the mini world's 4 gateways still ranged
    # 0.14–0.22 between seeds) at a quarter of a session a second
    model = DesModel(world, nominal_calibration(), whatif, seed=3, rate_override=0.25)
    by = model.run(24 * 3600).partial_by_sources
    shares = {n: p / t for n, (t, p) in by.items() if t >= 500}
    assert set(shares) >= {1, 2}
    assert shares[1] < shares[2]
    for n, share in shares.items():
        assert share == pytest.approx(expected_share(n, 600, 150), rel=0.25), n
    assert expected_share(1, 600, 150) == pytest.approx(0.2)
    assert expected_share(3, 0, 150) == 0


def test_validation_html_parses_and_holds_its_plots(mini_world: Path, tmp_path: Path) -> None:
    """A validation page (a step replay: knee and step curves) parses as HTML, holds one inline SVG per
    plot, the replay's conditions and the knee in words; a sweep whose SLO never broke says the knee is
    beyond it rather than marking one."""
    from html.parser import HTMLParser

    from harness.des.report import knee_text
    from harness.des.validate import compare

    report = simulate(_options(mini_world, [WhatIf(multiplier=100, feeds=False)], duration=600.0))
    ops = report["runs"][0]["operations"]
    curve = [{"multiplier": m, "p95_ms": 100.0 * m} for m in (1, 8)]
    knee = {
        "slo_ms": 800.0,
        "measured": {"held": 8.0, "broke": 16.0, "curve": curve},
        "predicted": {"held": 4.0, "broke": 8.0, "curve": curve[:1]},
        "error": -0.5,
    }
    report["validation"] = {
        "load_report": "x/report.json",
        "rows": compare(ops, ops),
        "judged": 3,
        "within_goal": 3,
        "throughput": {"measured_per_s": 1.0, "predicted_per_s": 1.1, "error": 0.1},
        "replay": {"arrivals": "locust", "pacing_s": 31.5, "processes": 1, "client_cpu_ms_per_request": 0.4,
                   "machine_cores": 2},
        "knee": knee,
    }  # fmt: skip
    page = write_report(report, tmp_path / "v")["html"].read_text(encoding="utf-8")

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.open: list[str] = []
            self.svgs = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag == "svg":
                self.svgs += 1
            if tag in ("table", "tr", "svg", "figure", "p", "body", "html"):
                self.open.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if tag in ("table", "tr", "svg", "figure", "p", "body", "html"):
                assert self.open.pop() == tag

    tags = Tags()
    tags.feed(page)
    assert tags.open == []
    assert tags.svgs == 2  # predicted vs measured, and the step curves
    assert 'id="plot-step"' in page
    assert "locust arrivals, pacing 31.5 s" in page
    assert "measured 8×, predicted 4×" in page
    assert knee_text({"slo_ms": 800.0, "multiplier": 100.0, "broke": None}).endswith(
        "up to 100×, the last value"
    )
    assert "300× broke it" in knee_text({"slo_ms": 800.0, "multiplier": 100.0, "broke": 300.0})


def test_audit_writer_commits_in_groups_as_the_hubs_batcher() -> None:
    """Ten records asked at once, commits of 1 ms: the first commits alone at once, the nine that queued
    meanwhile in one group (2 ms); a lone later record commits alone. Every caller waits for its group."""
    from simulator.des.stations import GroupCommit

    env = simpy.Environment()
    writer = GroupCommit(env, "audit")
    done: list[float] = []

    def caller(at: float):
        yield env.timeout(at)
        yield from writer.commit(lambda: 0.001)
        done.append(round(env.now, 6))

    for _ in range(10):
        env.process(caller(0.0))
    env.process(caller(1.0))
    env.run()
    assert done == [0.001] + [0.002] * 9 + [1.001]
    assert (writer.requests, writer.groups) == (11, 3)
    assert writer.busy_s == pytest.approx(0.003)
    assert writer.wait_s == pytest.approx(9 * 0.001)  # the nine waited for the first commit
    assert writer.to_json(10.0)["groups"] == 3


def test_consent_answer_caches_are_bounded(world: DesWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caches empty themselves when full, so memory stays flat over a long run, and the answers are
    unchanged (the same report as with an unbounded cache)."""
    import simulator.des.consent as consent_module

    def report(limit: int) -> tuple[dict[str, Any], int]:
        monkeypatch.setattr(consent_module, "CACHE_LIMIT", limit)
        model, res = _run(world, WhatIf(multiplier=2000, feeds=False), hours=1)
        d = model.decisions
        return res.operations(), max(len(d._plans), len(d._views), len(d._know))

    small, biggest = report(5)
    assert biggest <= 5
    large, biggest_large = report(10**9)
    assert biggest_large > 5
    assert small == large


def test_paced_pool_follows_a_recorded_user_count(world: DesWorld) -> None:
    """Replaying the pool Locust recorded: 4 users for the first 18 s, then 1 (a run that lost users;
    the others stop at their next turn, t = 20), sessions far shorter than the 5-s pacing: 4 × 4 + 4 = 20
    sessions in 40 s."""
    model = DesModel(
        world, nominal_calibration(), WhatIf(feeds=False, think_scale=0), seed=1, rate_override=0.7,
        arrivals="paced", pacing_s=5.0, users_series=((0.0, 4), (18.0, 1)),
    )  # fmt: skip
    assert model.run(40.0, drain_s=0).sessions == 20


def test_dist_quantiles_of_each_kind() -> None:
    """``Dist.quantile_ms`` (reports): a lognormal's median and p95 are its own two numbers, an
    exponential's median is ln 2 × mean, empirical quantiles interpolate linearly."""
    logn = Dist(median_ms=10.0, p95_ms=30.0)
    assert logn.quantile_ms(0.5) == pytest.approx(10.0)
    assert logn.quantile_ms(0.95) == pytest.approx(30.0)
    assert Dist(kind="exponential", mean=4.0).quantile_ms(0.5) == pytest.approx(4.0 * math.log(2))
    emp = Dist(kind="empirical", quantiles=[(0.0, 1.0), (0.5, 3.0), (1.0, 11.0)])
    assert emp.quantile_ms(0.25) == pytest.approx(2.0)
    assert emp.quantile_ms(0.75) == pytest.approx(7.0)
    rng = random.Random(2)
    draws = sorted(emp.sampler()(rng) * 1000 for _ in range(20_000))
    assert draws[10_000] == pytest.approx(3.0, rel=0.05)


def test_samplers_draw_batches_of_the_distribution_from_the_models_seed() -> None:
    """A sampler draws a batch at a time from its own NumPy generator, seeded from the model's ``Random``
    at its first draw: an empirical draw is the quantiles' linear inverse of the batch's uniforms (the
    formula ``quantile_ms`` reports), two samplers from equal seeds draw alike, and a batch is refilled."""
    from simulator.des.calibration import BATCH

    emp = Dist(kind="empirical", quantiles=[(0.0, 1.0), (0.5, 3.0), (1.0, 11.0)])
    rng = random.Random(7)
    uniforms = np.random.default_rng(random.Random(7).getrandbits(64)).random(BATCH)
    sampler = emp.sampler()
    firsts = [sampler(rng) for _ in range(5)]
    assert firsts == pytest.approx([emp.quantile_ms(u) / 1000 for u in uniforms[::-1][:5]])
    logn = Dist(median_ms=10.0, p95_ms=30.0)
    a, b = logn.sampler(), logn.sampler()
    ra, rb = random.Random(3), random.Random(3)
    first = [a(ra) for _ in range(2 * BATCH + 5)]
    assert first == [b(rb) for _ in range(2 * BATCH + 5)]
    assert len(set(first)) == len(first)  # the refills are new draws, not the first batch again
    assert sorted(first)[len(first) // 2] * 1000 == pytest.approx(10.0, rel=0.08)
    expo = Dist(kind="exponential", mean=4.0).sampler()
    mean = sum(expo(ra) for _ in range(20_000)) / 20_000
    assert mean * 1000 == pytest.approx(4.0, rel=0.05)


def test_the_generators_timeout_fails_a_login_and_ends_its_session(world: DesWorld) -> None:
    """Replaying Locust: a login not answered within the client's timeout is a ``timeout`` failure and its
    session ends there (no PIX/PDQ follows), while the hub still hashes it — the password worker sees every
    login. 12 users logging in at once at 40 ms a hash, a 0.2-s timeout: the later ones give up."""
    kw: dict[str, Any] = {
        "seed": 1, "rate_override": 1.0, "arrivals": "paced", "pacing_s": 12.0, "processes": 1,
        "machine": True,
    }  # fmt: skip
    model = DesModel(
        world, nominal_calibration(), WhatIf(feeds=False, think_scale=0), client_timeouts={"login": 0.2}, **kw
    )
    res = model.run(5.0, drain_s=5.0)
    timeouts = res.failures["login"]["timeout"]
    answered = res.ops["login"].count - timeouts
    assert 0 < timeouts < 12
    assert model.hasher.requests == 12  # every login hashed, given up on or not
    finds = sum(res.ops[op].count for op in ("pix", "pdq") if op in res.ops)
    assert finds == answered  # a session whose login failed goes no further
    free = DesModel(world, nominal_calibration(), WhatIf(feeds=False, think_scale=0), **kw).run(
        5.0, drain_s=5.0
    )
    assert "login" not in free.failures  # without a timeout every login is waited for


@pytest.mark.parametrize("machine", [False, True])
def test_the_hub_refuses_logins_beyond_its_queue_as_busy(world: DesWorld, machine: bool) -> None:
    """The hub answers 503 ``busy`` to a login with no room left to wait for the password worker
    (``login_queue`` beside the login threads): 30 users logging in at once with room for 2 — the first
    2 + LOGIN_THREADS are hashed, the rest refused without a hash and their sessions end; with no bound
    (``login_queue: null``) every one is hashed. Booked (no machine) and on the machine alike."""
    from simulator.hub.routes.auth import LOGIN_THREADS

    kw: dict[str, Any] = {
        "seed": 1, "rate_override": 1.0, "arrivals": "paced", "pacing_s": 30.0, "processes": 1,
        "machine": machine,
    }  # fmt: skip
    model = DesModel(world, nominal_calibration(), WhatIf(feeds=False, think_scale=0, login_queue=2), **kw)
    res = model.run(5.0, drain_s=10.0)
    busy = res.failures["login"]["busy"]
    hashed = 2 + LOGIN_THREADS
    assert (model.hasher.requests, busy) == (hashed, 30 - hashed)
    finds = sum(res.ops[op].count for op in ("pix", "pdq") if op in res.ops)
    assert finds == hashed  # a refused login ends its session
    unbounded = DesModel(
        world, nominal_calibration(), WhatIf(feeds=False, think_scale=0, login_queue=None), **kw
    )
    free = unbounded.run(5.0, drain_s=10.0)
    assert "login" not in free.failures
    assert unbounded.hasher.requests == 30
    assert WhatIf().login_queue == 1024  # the reference hub's bound by default


def test_a_find_the_generator_gave_up_on_aborts_its_session(world: DesWorld) -> None:
    """A PIX/PDQ not answered in time leaves Locust's viewer without the regional ID: it aborts the session,
    no timeline, no logout (``loadtests.users._find``). Every find times out here (a 1-µs limit): nothing
    after it is asked, while every login is."""
    kw: dict[str, Any] = {
        "seed": 3, "rate_override": 1.0, "arrivals": "paced", "pacing_s": 2.0, "processes": 1,
        "machine": True,
    }  # fmt: skip
    limits = {"pix": 1e-6, "pdq": 1e-6}
    model = DesModel(
        world, nominal_calibration(), WhatIf(feeds=False, think_scale=0), client_timeouts=limits, **kw
    )
    res = model.run(5.0, drain_s=5.0)
    finds = sum(res.ops[op].count for op in ("pix", "pdq") if op in res.ops)
    gave_up = sum(res.failures.get(op, {}).get("timeout", 0) for op in ("pix", "pdq"))
    assert res.ops["login"].count > 5
    assert finds == gave_up == res.ops["login"].count
    after = [op for op in res.ops if op not in ("login", "pix", "pdq")]
    assert after == []  # no timeline, grant, fetch or logout
