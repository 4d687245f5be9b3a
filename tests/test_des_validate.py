"""The model against the live network, end to end and lean: one mini reference network (links off, cheap
scrypt) shared by ``rhin calibrate`` (through a target file) and a seconds-long ``rhin load``; then
``rhin simulate --validate`` on that load report. Checks the machinery, not the accuracy: the accuracy goal
is benchmarks/bench_des.py's (--validate at three load levels)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.des.calibrate import BACKGROUND_WARN, CalibrationRunError, _Background, _linear, _Meter, warnings
from harness.des.validate import (
    GOALS,
    ValidationError,
    check_repeats,
    compare,
    cpu_comparison,
    pooled_measurement,
    read_load_run,
    replay_options,
    spreads,
    validate,
)
from harness.load.stats import op_stats, read_raw
from harness.scenarios.world import WorldIndex
from harness.targets import ReferenceOptions, Target, reference_target
from simulator.des import Calibration, load_calibration

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def net(mini_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    options = ReferenceOptions(scrypt_cost=4, shards=2, links=False)
    with reference_target(WorldIndex(mini_world), tmp_path_factory.mktemp("desnet"), options=options) as t:
        yield t


@pytest.fixture(scope="module")
def target_yaml(net: Target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert net.network is not None
    folder = tmp_path_factory.mktemp("destarget")
    network = folder / "network.json"
    network.write_text(net.network.model_dump_json(), encoding="utf-8")
    path = folder / "target.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "name": "des-mini", "network": str(network)}))
    return path


@pytest.fixture(scope="module")
def calibration(mini_world: Path, target_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("descal") / "calibration.yaml"
    result = RUNNER.invoke(
        app,
        ["calibrate", "--world", str(mini_world), "--target", str(target_yaml), "--out", str(out),
         "--sessions", "4", "--client-seconds", "12", "--client-rate", "6", "--processes", "1"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def load_report(mini_world: Path, target_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("desload") / "report"
    result = RUNNER.invoke(
        app,
        ["load", "--world", str(mini_world), "--target", str(target_yaml), "--duration", "6s", "--rate", "2",
         "--think-scale", "0", "--report", str(out), "--seed", "5", "--no-feeds"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _burn_until(path: str) -> None:
    """A process that keeps a core busy until ``path`` exists."""
    import os
    import time

    while not os.path.exists(path):
        end = time.thread_time() + 0.01
        while time.thread_time() < end:
            pass


def test_background_counts_other_work_not_the_networks_or_the_probes(tmp_path: Path) -> None:
    """Two processes keep a core busy each, one named as the network's hub: only the other is background.
    The probe's own CPU (this process) is not background either."""
    import multiprocessing as mp
    import time

    stop = tmp_path / "stop"
    burners = [mp.Process(target=_burn_until, args=(str(stop),)) for _ in range(2)]
    for b in burners:
        b.start()
    try:
        meter = _Meter({"hub": burners[0].pid or 0})
        background = _Background(meter)
        time.sleep(1.5)
        busy = background.read()
    finally:
        stop.touch()
        for b in burners:
            b.join(10)
    assert busy is not None
    assert 0.5 < busy.cores < 1.4, busy  # the other burner's core (a hub's core is not counted)
    stop.unlink()
    own = _Background(_Meter({"hub": burners[0].pid or 0}))  # a pid that has ended: no CPU of its
    end = time.thread_time() + 0.8
    while time.thread_time() < end:
        pass
    quiet = own.read()
    assert quiet is not None
    assert quiet.cores < 0.4, quiet  # this process's own work is the probe's


def test_calibration_from_the_live_network(calibration: Path) -> None:
    cal: Calibration = load_calibration(calibration)
    assert cal.machine.cores >= 1
    assert cal.machine.gateway_shards == 2
    assert "external target" in cal.source
    # the target file's network runs here: each request's CPU is read per process, the rest is the client's
    assert cal.hub_measure == "cpu"
    assert "CPU per process" in cal.source
    for op in ("login", "pix", "pdq", "pdq_next", "timeline", "fetch", "logout", "feed", "feed_fresh"):
        assert cal.hub[op].samples >= 4, op
        assert 0 < cal.hub[op].median_ms < 5000, op
        assert cal.client[op].samples >= 4, op
    assert cal.login_hash.samples >= 4
    # the same ITI-8 on a new connection: the hub's side of the TLS handshake is in its CPU
    assert cal.hub["feed_fresh"].median_ms > cal.hub["feed"].median_ms
    assert "timeline" in cal.includes_audit
    # the light Locust run (6 sessions/s for 12 s) gave the client parts of the operations it had 30 of;
    # logins stay the probe's (paced users log in together: their queue is the model's to predict)
    assert "light Locust run" in cal.source
    assert "load factor" in cal.source  # the hub's times scaled by its CPU in that run (≥ 1)
    used = re.search(r"its CPU (-?[0-9.]+) s against", cal.source)
    assert used is not None
    assert float(used.group(1)) > 0  # read from stat: threads that ended during the run still count
    assert cal.client["login"].kind == "lognormal"
    for op in ("timeline", "logout"):
        d = cal.client[op]
        assert d.kind == "empirical", op
        assert d.samples >= 30, op
        assert 0 < d.quantile_ms(0.5) <= d.quantile_ms(0.95) < 5000, op
    # the probe's own: a session's first MLLP exchange opens a TLS connection, a next page an open one
    assert cal.client["pdq_next"].kind == "lognormal"
    assert cal.hub["emergency"].samples >= 1
    # outside viewers' refused timelines: looked for beyond the sessions' few (min(sessions, 30) of them)
    assert cal.hub["refused"].samples >= 4
    assert cal.client["refused"].samples >= 4
    assert cal.audit_commit.samples >= 4
    assert len(cal.gateways) == 2
    # the sessions' listings and 100 cold ones per shard straight from its gateways
    assert all(g.list_base.samples >= 100 for g in cal.gateways), [g.list_base.samples for g in cal.gateways]
    assert cal.entry_bytes  # sizes seen in the timelines
    assert "schema_version: 1" in calibration.read_text(encoding="utf-8")
    # the machine's speed over the calibration: readings before the measurements and after
    assert cal.machine.speed is not None
    assert cal.machine.speed.readings == 10
    assert cal.machine.speed.python_ms > 0
    # what else the machine did while the probe measured, in cores (a quiet machine: a few hundredths)
    other = cal.machine.background
    assert other is not None
    assert other.seconds > 1
    limits = BACKGROUND_WARN
    assert bool(warnings(cal)) == (other.cores > limits[0] or other.read_mb_per_s > limits[1])
    for busy in ({"cores": 0.5, "read_mb_per_s": 0.0}, {"cores": 0.0, "read_mb_per_s": 3.5}):
        machine = cal.machine.model_copy(update={"background": other.model_copy(update=busy)})
        (text,) = warnings(cal.model_copy(update={"machine": machine}))
        assert f"{busy['cores']:.2f} cores and read {busy['read_mb_per_s']:.1f} MB/s" in text
    assert cal.machine.speed.hash_ms > 0


def test_validate_end_to_end(load_report: Path, calibration: Path, tmp_path: Path) -> None:
    """Predicted beside measured for every operation the load run measured; errors are relative to the
    measurement and recomputed here from the two columns."""
    result = RUNNER.invoke(
        app,
        ["simulate", "--validate", str(load_report), "--calibration", str(calibration),
         "--report", str(tmp_path / "v")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "predicted vs measured" in result.output
    report = json.loads((tmp_path / "v" / "report.json").read_text(encoding="utf-8"))
    measured = json.loads((load_report / "report.json").read_text(encoding="utf-8"))
    v = report["validation"]
    rows = {r["operation"]: r for r in v["rows"]}
    assert set(measured["operations"]) <= set(rows)
    for op, m in measured["operations"].items():
        row = rows[op]
        assert row["measured_count"] == m["count"]
        assert row["measured_p95_ms"] == m["p95_ms"]
        if row["predicted_p95_ms"] is not None and m["p95_ms"]:
            assert row["p95_error"] == pytest.approx(
                (row["predicted_p95_ms"] - m["p95_ms"]) / m["p95_ms"], abs=1e-4
            )
    judged = [r for r in v["rows"] if r["within_goal"] is not None]
    assert v["beyond_goals"] == pytest.approx(sum(r["beyond_goal"] for r in judged), abs=1e-3)
    assert all((r["beyond_goal"] == 0) == r["within_goal"] for r in judged)
    assert f"errors beyond the goals sum to {v['beyond_goals']:.3f}" in " ".join(result.output.split())
    # the replayed conditions are the load run's: same sessions per second within Poisson noise
    login = rows["login"]
    assert login["predicted_count"] == pytest.approx(login["measured_count"], rel=0.6)
    assert report["runs"][0]["whatif"]["links"] is False  # the load run had links off
    assert report["runs"][0]["consent_leaks"] == 0
    page = (tmp_path / "v" / "report.html").read_text(encoding="utf-8")
    assert page.count('<tr class="val">') == len(v["rows"])
    # CPU per process beside its station, the password worker and the whole machine included, in both
    assert {"hub", "hub-hasher", "machine"} <= set(v["cpu"])
    assert all(v["cpu"][n]["predicted_pct"] is not None for n in ("hub", "hub-hasher", "machine"))
    assert "CPU, measured/predicted (% of one core): hub " in page
    # the load run read the machine's speed as the calibration did: the replay ran at the run's speed
    speed = measured["machine_speed"]
    assert len(speed["readings"]) >= 1
    assert speed["python_ms"] > 0
    cal = load_calibration(calibration)
    assert cal.machine.speed is not None
    python = round(speed["python_ms"] / cal.machine.speed.python_ms, 4)
    assert v["replay"]["service_times"]["factors"] == [
        {"hub": python, "hashing": round(speed["hash_ms"] / cal.machine.speed.hash_ms, 4), "gateways": python}
    ]
    assert "at each load run's machine speed readings" in result.output
    assert "at each load run&#x27;s machine speed readings" in page


def test_the_replay_takes_its_service_times_three_ways(
    load_report: Path, calibration: Path, tmp_path: Path
) -> None:
    """A load run that read the machine three times slower than the calibration did is replayed (``speed``)
    with the hub's CPU three times the calibration's — its busy share follows — and the hash four times;
    ``calibration`` replays the file as measured; ``measured`` scales each part so that the model's CPU is
    the run's own (the hub's, the password worker's, the shards')."""
    cal = load_calibration(calibration)
    assert cal.machine.speed is not None
    slower = {"python_ms": 3 * cal.machine.speed.python_ms, "hash_ms": 4 * cal.machine.speed.hash_ms}
    folder = _repeat(load_report, tmp_path / "slower", 1.0, machine_speed={**slower, "readings": []})
    # the Poisson replay: the same sessions and requests whatever the service times (no paced users)
    at_speed = validate(folder, cal, arrivals="poisson")
    as_calibrated = validate(folder, cal, arrivals="poisson", service_times="calibration")
    assert at_speed["validation"]["replay"]["service_times"] == {
        "asked": "speed",
        "used": "speed",
        "factors": [{"hub": 3.0, "hashing": 4.0, "gateways": 3.0}],
    }
    assert as_calibrated["validation"]["replay"]["service_times"]["used"] == "calibration"
    assert "× 3.000" in at_speed["calibration"]["source"]

    def busy(report: dict[str, Any], name: str) -> float:
        res = report["runs"][0]["resources"][name]
        return float(res["utilisation"] * res["capacity"])

    # every draw × 3 (× 4 for the hash): the same requests keep the stations three (four) times as busy
    assert (
        at_speed["runs"][0]["operations"]["login"]["count"]
        == as_calibrated["runs"][0]["operations"]["login"]["count"]
    )
    assert busy(at_speed, "hub") == pytest.approx(3 * busy(as_calibrated, "hub"), rel=0.01)
    # (utilisations are rounded to 4 decimals, and the cheap test hash keeps the worker nearly idle)
    assert busy(at_speed, "hub-hasher") == pytest.approx(4 * busy(as_calibrated, "hub-hasher"), abs=2.5e-4)
    assert busy(at_speed, "hub-hasher") > 3.2 * busy(as_calibrated, "hub-hasher")
    # the run's own demands: the factors are measured over modelled CPU, and the replay then spends it
    # (the Poisson replay again, where the CPU is linear in the service times: with paced users a
    # seconds-long run's request mix moves with them, and one rescale lands only near the measurement —
    # within 0.5 % on the 300-s ishikawa runs, by up to a third on this 6-s one)
    own = validate(load_report, cal, arrivals="poisson", service_times="measured")
    st = own["validation"]["replay"]["service_times"]
    assert st["used"] == "measured"
    cpu = own["validation"]["cpu"]
    assert cpu["hub"]["predicted_pct"] == pytest.approx(cpu["hub"]["measured_pct"], rel=0.01, abs=0.02)
    # (the cheap test hash reads 0 ticks of CPU here: too little to scale by, so the hash keeps its time)
    hub = as_calibrated["validation"]["cpu"]["hub"]  # the same run's CPU, the same replay, as calibrated
    assert st["factors"][0]["hub"] == pytest.approx(hub["measured_pct"] / hub["predicted_pct"], rel=0.02)
    assert f"× {st['factors'][0]['hub']:.3f}" in own["calibration"]["source"]
    with pytest.raises(ValidationError, match="one of speed, calibration, measured"):
        validate(load_report, cal, service_times="guess")


def test_replay_reads_the_runs_conditions(load_report: Path, calibration: Path) -> None:
    """The Locust replay takes the run's own pacing, processes and generator CPU; the Poisson replay the
    rate Locust achieved."""
    run = read_load_run(load_report)
    cal = load_calibration(calibration)
    options = replay_options(run, cal)
    assert options.seed == 5
    assert options.arrivals == "paced"
    assert options.rate_override == pytest.approx(2.0)  # the load's --rate: the achieved rate is an output
    assert options.pacing_s == pytest.approx(run.report["sizing"]["pacing_s"])
    assert options.processes == run.config["processes"]
    assert options.machine is True
    # the generator's CPU per request, from the CPU files its processes leave: the part of each request's
    # client time that computes on the machine's cores
    cpu_files = list(load_report.glob("raw.csv.cpu-*"))
    assert cpu_files
    total = sum(float(f.read_text(encoding="ascii")) for f in cpu_files)
    assert options.client_s == pytest.approx(total / run.report["totals"]["requests"])
    assert 0 < options.client_s < 0.1
    assert options.client_timeouts["login"] == 30.0  # Locust's HTTP timeout; MLLP the run's own
    assert options.client_timeouts["pix"] == run.config["timeout_s"]
    assert options.drain_s == 0
    assert options.whatifs[0].think_scale == 0
    assert options.whatifs[0].feeds is False
    assert options.duration_s == pytest.approx(run.report["measured_s"])
    poisson = replay_options(run, cal, arrivals="poisson")
    achieved = run.report["sizing"]["achieved_sessions_per_s"]
    assert poisson.rate_override == pytest.approx(achieved)  # peak shape, ×1: the rate Locust achieved
    assert (poisson.arrivals, poisson.client_s, poisson.machine) == ("poisson", 0.0, False)
    with pytest.raises(ValidationError, match="replay arrivals"):
        replay_options(run, cal, arrivals="uniform")


def _repeat(load_report: Path, folder: Path, factor: float, **report_changes: Any) -> Path:
    """A copy of the load run as if run again: every latency × ``factor``, its report's figures recomputed
    from its raw timings by the load report's rules."""
    shutil.copytree(load_report, folder)
    rows = [dataclasses.replace(r, ms=r.ms * factor) for r in read_raw(folder / "raw.csv")]
    with (folder / "raw.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["t", "name", "ms", "ok", "reason", "facility", "worker", "size"])
        for r in rows:
            out.writerow([r.t, r.name, r.ms, int(r.ok), r.reason, r.facility, r.worker, r.size])
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    report["operations"] = {n: st.to_json() for n, st in op_stats(rows, report["measured_s"]).items()}
    report.update(report_changes)
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def _nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def test_repeats_pool_into_one_measurement(load_report: Path, tmp_path: Path) -> None:
    """Two runs of one command are one measurement: every request of both in one nearest-rank percentile,
    rates over both spans; each run's own p50/p95 kept, and the live spread is how far one run misses the
    other (here twice as slow: 100 % one way, 50 % the other → 1.0)."""
    slow = _repeat(load_report, tmp_path / "slow", 2.0)
    runs = [read_load_run(load_report), read_load_run(slow)]
    ops, _ = pooled_measurement(runs)
    rows_a, rows_b = read_raw(load_report / "raw.csv"), read_raw(slow / "raw.csv")
    span = 2 * runs[0].report["measured_s"]
    fetch = [r.ms for r in rows_a + rows_b if r.name == "fetch" and r.ok]
    assert ops["fetch"]["count"] == sum(1 for r in rows_a + rows_b if r.name == "fetch")
    assert ops["fetch"]["p95_ms"] == pytest.approx(_nearest_rank(fetch, 95), abs=1e-3)
    assert ops["fetch"]["p50_ms"] == pytest.approx(_nearest_rank(fetch, 50), abs=1e-3)
    assert ops["fetch"]["per_s"] == pytest.approx(ops["fetch"]["count"] / span, abs=1e-3)
    rows = compare(ops, ops)
    spreads(rows, [r.report["operations"] for r in runs], [])
    row = next(r for r in rows if r["operation"] == "fetch")
    single = runs[0].report["operations"]["fetch"]
    assert row["measured_runs_p50_ms"] == [single["p50_ms"], pytest.approx(2 * single["p50_ms"], abs=2e-3)]
    assert row["live_spread"] == pytest.approx(1.0, abs=1e-3)
    assert "predicted_replicas_p50_ms" not in row  # one replica: nothing to spread
    # one run alone is its report, as before
    assert pooled_measurement(runs[:1])[0] == runs[0].report["operations"]


def test_only_repeats_of_one_command_pool(load_report: Path, tmp_path: Path) -> None:
    other = _repeat(load_report, tmp_path / "other", 1.0, multiplier=3.0)
    runs = [read_load_run(load_report), read_load_run(other)]
    with pytest.raises(ValidationError, match=r"report multiplier is 3\.0, not 1\.0"):
        check_repeats(runs)
    step = _repeat(load_report, tmp_path / "step", 1.0, shape="step")
    with pytest.raises(ValidationError, match="one at a time"):
        check_repeats([read_load_run(step), read_load_run(step)])
    (tmp_path / "bare").mkdir()
    shutil.copy(load_report / "report.json", tmp_path / "bare" / "report.json")
    with pytest.raises(ValidationError, match="cannot read the raw timings"):
        pooled_measurement([runs[0], read_load_run(tmp_path / "bare")])


def test_validate_pools_repeats_and_replicas(load_report: Path, calibration: Path, tmp_path: Path) -> None:
    """``--validate A --validate B --replications 2``: both runs replayed twice each from other seeds,
    the four replicas pooled against both runs pooled; every run's and replica's figures shown."""
    again = _repeat(load_report, tmp_path / "again", 1.25)
    result = RUNNER.invoke(
        app,
        ["simulate", "--validate", str(load_report), "--validate", str(again), "--replications", "2",
         "--calibration", str(calibration), "--report", str(tmp_path / "v")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "v" / "report.json").read_text(encoding="utf-8"))
    v = report["validation"]
    assert v["load_reports"] == [str(load_report / "report.json"), str(again / "report.json")]
    assert v["replications"] == 2
    run = report["runs"][0]
    assert run["replications"] == 4
    single = json.loads((load_report / "report.json").read_text(encoding="utf-8"))["operations"]
    rows = {r["operation"]: r for r in v["rows"]}
    assert rows["fetch"]["measured_count"] == 2 * single["fetch"]["count"]
    assert len(rows["fetch"]["measured_runs_p95_ms"]) == 2
    assert len(rows["fetch"]["predicted_replicas_p95_ms"]) == 4
    assert rows["fetch"]["predicted_count"] == sum(r["fetch"]["count"] for r in run["replicas"])
    assert run["sessions_per_s"] == pytest.approx(run["sessions"] / 4 / single_span(load_report), rel=1e-3)
    assert "each live run and each model replica" in result.output
    page = (tmp_path / "v" / "report.html").read_text(encoding="utf-8")
    spread_rows = [r for r in v["rows"] if "measured_runs_p50_ms" in r or "predicted_replicas_p50_ms" in r]
    assert spread_rows
    assert page.count('<tr class="spread">') == len(spread_rows)
    assert 'id="plot-validation"' in page


def single_span(load_report: Path) -> float:
    return float(json.loads((load_report / "report.json").read_text(encoding="utf-8"))["measured_s"])


def test_gateway_fits_are_robust_to_a_few_cold_reads() -> None:
    """Theil–Sen: three listings that cost ten times their neighbours (cold disk) leave the slope and the
    base where the other forty put them; a least-squares line would follow them."""
    points = [(float(x), 2.0 + 0.1 * x + (0.05 if x % 2 else -0.05)) for x in range(40)]
    points += [(35.0, 60.0), (38.0, 70.0), (39.0, 90.0)]
    slope, base = _linear(points)
    assert slope == pytest.approx(0.1, abs=0.01)
    assert base.median_ms == pytest.approx(2.0, abs=0.1)
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    ols = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    assert ols > 0.5  # what the fit used to be
    # no spread in x: no slope, the base is the times themselves
    flat, flat_base = _linear([(3.0, 1.0), (3.0, 2.0), (3.0, 3.0)])
    assert flat == 0.0
    assert flat_base.median_ms == 2.0
    with pytest.raises(CalibrationRunError):
        _linear([])


def test_gateway_lists_is_bounded(tmp_path: Path) -> None:
    """The Theil–Sen fit compares every two points, so the cold listings asked for are bounded; a request
    past the bound is refused before anything starts."""
    result = RUNNER.invoke(
        app,
        ["calibrate", "--world", str(tmp_path), "--out", str(tmp_path / "c.yaml"), "--gateway-lists", "1001"],
    )
    assert result.exit_code == 2
    assert "--gateway-lists" in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_compare_rules() -> None:
    m: dict[str, Any] = {"timeline": {"count": 100, "p50_ms": 100.0, "p95_ms": 200.0, "per_s": 10.0}}
    p = {
        "timeline": {"count": 98, "p50_ms": 110.0, "p95_ms": 150.0, "per_s": 10.2},
        "extra": {"count": 1, "p50_ms": 1.0, "p95_ms": 1.0, "per_s": 0.1},
    }
    rows = compare(m, p)
    assert [r["operation"] for r in rows] == ["timeline", "extra"]
    assert rows[0]["p50_error"] == pytest.approx(0.10)
    assert rows[0]["p95_error"] == pytest.approx(-0.25)
    assert rows[0]["within_goal"] is False  # p95 25 % off > 15 %
    assert rows[0]["beyond_goal"] == pytest.approx(0.10)  # only the p95 past its limit, by 10 points
    assert rows[1]["within_goal"] is None
    assert rows[1]["beyond_goal"] is None  # not judged: adds nothing
    p["timeline"]["per_s"] = 9.0  # −10 %: 5 points past the throughput's 5 %
    p["timeline"]["p50_ms"] = 80.0  # −20 %
    assert compare(m, p)[0]["beyond_goal"] == pytest.approx(0.05 + 0.05 + 0.10)
    p["timeline"].update(p95_ms=220.0, per_s=10.2, p50_ms=110.0)
    assert compare(m, p)[0]["within_goal"] is True
    assert compare(m, p)[0]["beyond_goal"] == 0.0
    assert GOALS == {"p50_error": 0.15, "p95_error": 0.15, "per_s_error": 0.05}


def test_not_a_load_report(tmp_path: Path) -> None:
    bad = tmp_path / "report.json"
    bad.write_text('{"format": "rhin-report"}', encoding="utf-8")
    with pytest.raises(ValidationError, match="not a rhin load report"):
        read_load_run(tmp_path)
    result = RUNNER.invoke(app, ["simulate", "--validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a rhin load report" in result.output


def test_bad_report_files_are_named_and_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken JSON, a JSON array, a broken ``load-config.json`` beside a good report, and a report over
    the size bound: each a ValidationError naming the file, the oversized one refused before reading."""
    import harness.des.validate as validate_module

    report = tmp_path / "report.json"
    report.write_text('{"format": "rhin-load-report",', encoding="utf-8")
    with pytest.raises(ValidationError, match=r"cannot read load report .*report\.json"):
        read_load_run(tmp_path)
    report.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValidationError, match="a load report is a JSON object, not list"):
        read_load_run(report)
    report.write_text('{"format": "rhin-load-report"}', encoding="utf-8")
    (tmp_path / "load-config.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"cannot read load configuration .*load-config\.json"):
        read_load_run(tmp_path)
    (tmp_path / "load-config.json").write_text('{"seed": 7}', encoding="utf-8")
    assert read_load_run(tmp_path).config == {"seed": 7}
    monkeypatch.setattr(validate_module, "MAX_JSON_BYTES", 16)
    size = len(report.read_bytes())
    with pytest.raises(ValidationError, match=rf"report\.json: {size} bytes; a load report over 0 MiB"):
        read_load_run(tmp_path)


def test_cpu_comparison_matches_each_process_with_its_station() -> None:
    """The monitored hub process is the hub's event-loop station, its password worker the hasher's (not
    the hub's), a shard its own station, the machine the shared cores (% of one core: up to 200 on two);
    a process the model has no station for is compared with nothing."""
    measured = {
        "hub": {"cpu_pct_mean": 80.0},
        "hub-hasher": {"cpu_pct_mean": 9.0},
        "gateways-0": {"cpu_pct_mean": 10.0},
        "machine": {"cpu_pct_mean": 120.0},
    }
    predicted = {
        "hub": {"utilisation": 0.5, "capacity": 1},
        "hub-hasher": {"utilisation": 0.1, "capacity": 1},
        "gateways-0": {"utilisation": 0.12, "capacity": 1},
        "machine": {"utilisation": 0.55, "capacity": 2},
    }
    out = cpu_comparison(measured, predicted)
    assert out["hub"] == {"measured_pct": 80.0, "predicted_pct": 50.0}
    assert out["hub-hasher"] == {"measured_pct": 9.0, "predicted_pct": 10.0}
    assert out["gateways-0"] == {"measured_pct": 10.0, "predicted_pct": 12.0}
    assert out["machine"] == {"measured_pct": 120.0, "predicted_pct": 110.0}
    del predicted["machine"]  # a replay without shared cores
    assert cpu_comparison(measured, predicted)["machine"] == {"measured_pct": 120.0, "predicted_pct": None}


def test_recorded_users_read_from_locusts_history(tmp_path: Path) -> None:
    """Locust's stats history gives the pool it really ran: the Aggregated rows' user count less the
    feeder, as seconds since the first row, one point per change."""
    from harness.des.validate import LoadRun, recorded_users

    (tmp_path / "locust_stats_history.csv").write_text(
        "Timestamp,User Count,Type,Name,Requests/s\n"
        "100,0,,Aggregated,0\n100,108,,Aggregated,1\n101,108,GET,login,1\n115,108,,Aggregated,1\n"
        "281,72,,Aggregated,1\n296,72,,Aggregated,1\n",
        encoding="utf-8",
    )
    run = LoadRun({}, {"feeds": True}, tmp_path / "report.json")
    assert recorded_users(run) == ((0.0, 107), (181.0, 71))
    assert recorded_users(LoadRun({}, {"feeds": False}, tmp_path / "report.json"))[0] == (0.0, 108)
    assert recorded_users(LoadRun({}, {}, tmp_path / "nowhere" / "report.json")) == ()


def test_client_parts_are_the_runs_latencies_less_the_networks_median_cpu() -> None:
    """Each operation with ≥ MIN_SAMPLES requests: its latencies shifted by the median CPU the probe measured
    for it, as empirical quantiles (floored at 10 µs); FEW_SAMPLES to MIN_SAMPLES − 1: a lognormal through
    the shifted median and nearest-rank p95; fewer requests, or no CPU measured: left out."""
    from harness.des.clientrun import FEW_SAMPLES, MIN_SAMPLES, QUANTILES, client_parts

    latencies = {
        "pix": [5.0 + i / 10 for i in range(100)],
        "pdq": [4.0] * (MIN_SAMPLES - 1),
        "refused": [3.0 + i / 10 for i in range(FEW_SAMPLES)],
        "emergency": [4.0] * (FEW_SAMPLES - 1),
        "logout": [2.0] * 50,
        "feed": [1.0] * 50,
    }
    server = {"pix": [2.0, 3.0, 4.0], "pdq": [1.0], "refused": [1.5], "emergency": [1.0], "feed": [3.0]}
    parts = client_parts(latencies, server)
    assert set(parts) == {"pix", "pdq", "refused", "feed"}  # emergency too few, logout no CPU measured
    assert parts["pdq"].kind == "lognormal"
    assert (parts["pdq"].median_ms, parts["pdq"].p95_ms, parts["pdq"].samples) == (3.0, 3.0, MIN_SAMPLES - 1)
    refused = parts["refused"]  # 3.0 … 3.9 less 1.5: median of 1.5 … 2.4, p95 the 10th of 10
    assert refused.kind == "lognormal"
    assert refused.median_ms == pytest.approx(1.95)
    assert refused.p95_ms == pytest.approx(2.4)
    pix = parts["pix"]
    assert pix.kind == "empirical"
    assert pix.samples == 100
    assert [q for q, _ in pix.quantiles] == list(QUANTILES)
    assert pix.quantile_ms(0.5) == pytest.approx(5.0 + 5.0 - 3.0, abs=0.1)  # median 10, less median CPU 3
    assert pix.quantiles[0][1] == pytest.approx(2.0)
    assert pix.quantiles[-1][1] == pytest.approx(14.9 - 3.0)
    assert parts["feed"].quantile_ms(0.9) == pytest.approx(0.01)  # faster than the CPU median: floored


def test_cpu_is_read_only_from_rhins_own_processes() -> None:
    """A network file's process IDs are trusted only when they are rhin's hub and gateways on this machine:
    this test process is neither, so the probe falls back on wall times."""
    import os

    from harness.des.calibrate import _local_network

    assert _local_network({}) is False
    assert _local_network({"hub": os.getpid()}) is False
    assert _local_network({"hub": 2**22 + 7}) is False  # no such process
