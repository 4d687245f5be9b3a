"""The machine's speed: readings (harness.load.speed), the calibration at another speed
(Calibration.at_speed) and the factors a validation takes from a load run and its calibration."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest

from harness.des.validate import Factors, LoadRun, measured_factors, service_times_text, speed_factors
from harness.load.speed import SpeedProbe, SpeedReading, read_speed, summarise
from simulator.des import CalibrationError, Dist, load_calibration, nominal_calibration
from simulator.des.calibration import Speed, write_calibration


def test_a_reading_is_the_threads_cpu_not_the_wall() -> None:
    """While another thread holds the GIL half the time, a reading's wall time grows (its Python part
    waits for the GIL; the hash releases it) and its figure does not (much): it is the probing thread's
    CPU time. Quiet and contended readings alternate, so that the host's own speed changes (this VM's
    readings fall in two groups ~1.7× apart) reach both sides alike."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(10_000))

    quiet: list[float] = []
    busy: list[float] = []
    waited: list[float] = []
    for _ in range(3):
        quiet += [read_speed().python_ms for _ in range(2)]
        stop.clear()
        rival = threading.Thread(target=spin)
        rival.start()
        try:
            for _ in range(2):
                t0 = time.perf_counter()
                r = read_speed()
                wall = (time.perf_counter() - t0) * 1000
                busy.append(r.python_ms)
                waited.append(wall / (3 * r.python_ms + r.hash_ms))  # ≥ 1 alone (3 runs, one hash)
        finally:
            stop.set()
            rival.join()
    assert 0.5 < min(quiet) < 500
    assert min(busy) < 1.6 * min(quiet), (busy, quiet)
    assert min(waited) > 1.25, waited  # ~1.44 here: the GIL waits are in the wall time, not the reading


def test_the_probe_reads_at_start_and_every_interval() -> None:
    probe = SpeedProbe(every_s=0.05).start()
    time.sleep(0.4)
    out = probe.stop()
    n = len(out["readings"])
    assert n >= 2
    assert out["readings"][0]["t"] < 0.05
    assert out["python_ms"] == pytest.approx(
        statistics.median(r["python_ms"] for r in out["readings"]), abs=1e-3
    )
    assert out["hash_ms"] == pytest.approx(statistics.median(r["hash_ms"] for r in out["readings"]), abs=1e-3)
    assert all(r["hash_ms"] > 0 for r in out["readings"])
    with pytest.raises(ValueError, match="every_s"):
        SpeedProbe(every_s=0)


def test_summarise_nothing() -> None:
    assert summarise([]) == {"python_ms": None, "hash_ms": None, "readings": []}
    one = summarise([SpeedReading(0.0, 10.0, 40.0), SpeedReading(30.0, 12.0, 50.0), SpeedReading(60, 20, 41)])
    assert (one["python_ms"], one["hash_ms"]) == (12.0, 41.0)


def test_dists_scale_in_every_kind() -> None:
    assert Dist(median_ms=2.0, p95_ms=5.0).scaled(1.5) == Dist(median_ms=3.0, p95_ms=7.5)
    assert Dist(kind="exponential", mean=4.0).scaled(0.5).mean == 2.0
    emp = Dist(kind="empirical", quantiles=[(0.0, 1.0), (0.5, 2.0), (1.0, 8.0)], samples=9).scaled(2.0)
    assert emp.quantiles == [(0.0, 2.0), (0.5, 4.0), (1.0, 16.0)]
    assert emp.samples == 9


def test_the_calibration_at_another_speed_scales_only_cpu() -> None:
    """CPU times × the factor (hub per operation, gateways, the hash by its own); the audit commit (a disk)
    and the client parts (the replay takes the generator's CPU from the run itself) stay."""
    base = nominal_calibration().model_copy(
        update={
            "hub_measure": "cpu",
            "login_hash": Dist(median_ms=40.0, p95_ms=50.0),
            "client": {"pix": Dist(median_ms=1.0, p95_ms=2.0)},
        }
    )
    slow = base.at_speed(1.25, 2.0)
    for op, d in base.hub.items():
        assert slow.hub[op].median_ms == pytest.approx(1.25 * d.median_ms), op
        assert slow.hub[op].p95_ms == pytest.approx(1.25 * d.p95_ms), op
    g, s = base.gateways[0], slow.gateways[0]
    assert s.list_base.median_ms == pytest.approx(1.25 * g.list_base.median_ms)
    assert s.fetch_base.median_ms == pytest.approx(1.25 * g.fetch_base.median_ms)
    assert s.list_per_entry_ms == pytest.approx(1.25 * g.list_per_entry_ms)
    assert s.fetch_per_kb_ms == pytest.approx(1.25 * g.fetch_per_kb_ms)
    assert slow.login_hash.median_ms == pytest.approx(80.0)
    assert slow.audit_commit == base.audit_commit
    assert slow.client == base.client
    assert "× 1.250" in slow.source
    # a wall calibration's hub times are mostly waits on other things: left as they are
    wall = nominal_calibration()
    assert wall.hub_measure == "wall"
    assert wall.at_speed(2.0, 2.0).hub == wall.hub
    with pytest.raises(ValueError, match="> 0"):
        base.at_speed(0.0, 1.0)


def test_speed_is_optional_in_the_file_and_checked(tmp_path: Path) -> None:
    cal = nominal_calibration()
    assert cal.machine.speed is None  # files from before speed readings still load
    with_speed = cal.model_copy(
        update={"machine": cal.machine.model_copy(update={"speed": Speed(python_ms=8.0, hash_ms=45.0)})}
    )
    path = write_calibration(with_speed, tmp_path / "cal.yaml")
    assert load_calibration(path).machine.speed == Speed(python_ms=8.0, hash_ms=45.0, readings=1)
    text = path.read_text(encoding="utf-8").replace("python_ms: 8.0", "python_ms: -1")
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(CalibrationError, match=r"bad\.yaml:\d+: machine\.speed\.python_ms"):
        load_calibration(tmp_path / "bad.yaml")


def _run(speed: dict[str, object] | None) -> LoadRun:
    report: dict[str, object] = {"format": "rhin-load-report"}
    if speed is not None:
        report["machine_speed"] = speed
    return LoadRun(report, {}, Path("report.json"))


def test_speed_factors_need_both_readings() -> None:
    cal = nominal_calibration()
    measured = cal.model_copy(
        update={"machine": cal.machine.model_copy(update={"speed": Speed(python_ms=8.0, hash_ms=40.0)})}
    )
    run = _run({"python_ms": 6.0, "hash_ms": 50.0, "readings": []})
    assert speed_factors(run, measured) == Factors(hub=0.75, hashing=1.25, gateways=0.75)
    assert speed_factors(run, cal) is None  # the calibration has no reading
    assert speed_factors(_run(None), measured) is None  # a load run from before readings
    assert speed_factors(_run({"python_ms": None, "hash_ms": None}), measured) is None


def test_measured_factors_are_the_runs_cpu_over_the_models() -> None:
    """The utilisation law per part: measured % of a core over the model's, shards together; a part the run
    did not record keeps its times (the hasher) or follows the hub (the gateways); no hub, no factors."""
    cpu = {
        "hub": {"measured_pct": 20.0, "predicted_pct": 25.0},
        "hub-hasher": {"measured_pct": 60.0, "predicted_pct": 40.0},
        "gateways-0": {"measured_pct": 3.0, "predicted_pct": 2.0},
        "gateways-1": {"measured_pct": 3.0, "predicted_pct": 4.0},
        "machine": {"measured_pct": 104.0, "predicted_pct": 123.0},
    }
    assert measured_factors(cpu) == Factors(hub=0.8, hashing=1.5, gateways=1.0)
    assert measured_factors({"hub": cpu["hub"]}) == Factors(hub=0.8, hashing=1.0, gateways=0.8)
    assert measured_factors({"machine": cpu["machine"]}) is None
    assert measured_factors({"hub": {"measured_pct": 0.0, "predicted_pct": 2.0}}) is None


def test_service_times_in_words() -> None:
    f = {"hub": 0.75, "hashing": 1.25, "gateways": 0.75}
    speed = service_times_text({"asked": "speed", "used": "speed", "factors": [f, None]})
    assert "machine speed readings (hub × 0.750, hash × 1.250, gateways × 0.750; as is)" in speed
    assert "checks the model's queueing" in service_times_text(
        {"asked": "measured", "used": "measured", "factors": [f]}
    )
    assert "(asked)" in service_times_text({"asked": "calibration", "used": "calibration", "factors": [None]})
    assert "no speed reading" in service_times_text(
        {"asked": "speed", "used": "calibration", "factors": [None]}
    )
    assert "before service-time modes" in service_times_text(None)
