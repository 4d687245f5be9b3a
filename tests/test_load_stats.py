"""The load report's arithmetic on known raw logs: exact percentiles (against numpy, and against Locust's
buckets that would hide them), SLO verdicts, leaks, the step curve and its knee; the HTML page."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from harness.load.report import write_report
from harness.load.stats import (
    RawRow,
    http_failure,
    knee,
    knee_text,
    leaks,
    op_stats,
    per_facility,
    read_raw,
    slo_results,
    step_curve,
    step_multipliers,
    time_series,
)
from simulator.workload import parse_slo

FIELDS = ("t", "name", "ms", "ok", "reason", "facility", "worker", "size")


def rows_of(n: int, seed: int = 1) -> list[RawRow]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(["timeline", "fetch", "pdq"])
        ok = rng.random() > 0.05
        reason = "" if ok else rng.choice(["HTTP 500: internal", "consent-leak: HTTP 200, 3 entries"])
        ms = rng.lognormvariate(3, 0.8)
        out.append(
            RawRow(1000 + i * 0.01, name, ms, ok, reason, f"F{rng.randrange(5)}", rng.randrange(2), 10)
        )
    return out


def test_percentiles_are_exact_and_equal_an_independent_computation(tmp_path: Path) -> None:
    rows = rows_of(5000)
    raw = tmp_path / "raw.csv"
    with raw.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in rows:
            w.writerow([r.t, r.name, r.ms, int(r.ok), r.reason, r.facility, r.worker, r.size])
    stats = op_stats(read_raw(raw), 50.0)
    for name in ("timeline", "fetch", "pdq"):
        ok = np.array([r.ms for r in rows if r.name == name and r.ok])
        for p in (50, 95, 99):
            expected = round(float(np.percentile(ok, p, method="inverted_cdf")), 3)
            assert stats[name].stat(f"p{p}") == pytest.approx(expected, abs=1e-9)
        assert stats[name].max == round(float(ok.max()), 3)
        assert stats[name].count == sum(1 for r in rows if r.name == name)
        assert stats[name].failures == sum(1 for r in rows if r.name == name and not r.ok)
        assert sum(stats[name].reasons.values()) == stats[name].failures
        assert set(stats[name].reasons) <= {"HTTP 500: internal", "consent-leak"}


def test_a_p99_locust_buckets_would_hide() -> None:
    """101–149 ms all land in Locust's 100/110/…/150 buckets (two significant digits): 99 requests at
    120.4 ms and one at 149.6 ms have a p99 of 120.4 and a max of 149.6, both exact here."""
    rows = [RawRow(float(i), "timeline", 120.4, True, "", "F", 0, 1) for i in range(99)]
    rows.append(RawRow(99.0, "timeline", 149.6, True, "", "F", 0, 1))
    s = op_stats(rows, 100.0)["timeline"]
    assert (s.p50, s.p99, s.max) == (120.4, 120.4, 149.6)
    assert s.per_s == 1.0


def test_slo_results_and_leaks() -> None:
    rows = rows_of(2000)
    stats = op_stats(rows, 20.0)
    slos = [parse_slo(t) for t in ("timeline.p95<100000ms", "timeline.p50<0.001ms", "fetch.failures<0.01%")]
    slos.append(parse_slo("emergency.p95<1s"))  # never measured in this run: broken, not silently held
    verdicts = slo_results(slos, stats)
    assert [v["ok"] for v in verdicts] == [True, False, False, False]
    assert verdicts[3]["value"] is None
    assert len(leaks(rows)) == sum(1 for r in rows if r.reason.startswith("consent-leak"))
    assert sum(per_facility(rows).values()) == len(rows)


def test_step_curve_and_knee() -> None:
    rows = []
    step_s = 10.0
    for i, (m, ms) in enumerate([(1, 50.0), (2, 60.0), (4, 90.0), (8, 900.0)]):
        for k in range(int(10 * m)):
            rows.append(RawRow(i * step_s + 2 + k * (8 / (10 * m)), "timeline", ms, True, "", "F", 0, 1))
    multipliers = step_multipliers(1, 2, 8)
    assert multipliers == [1, 2, 4, 8]
    curve = step_curve(rows, 0.0, step_s, multipliers)
    assert [p["p95_ms"] for p in curve] == [50.0, 60.0, 90.0, 900.0]
    assert curve[3]["per_s"] > curve[0]["per_s"]
    assert knee(curve, 800) == (4, 8)  # the last step that held the SLO, the first that broke it
    assert knee(curve, 40) == (None, 1)
    assert knee(curve, 1000) == (8, None)
    quiet = [{**curve[0], "p95_ms": None}, *curve[1:]]  # a step with no timeline neither holds nor breaks
    assert knee(quiet, 800) == (4, 8)
    assert knee_text({"knee_multiplier": 4, "broke_multiplier": 8}) == (
        "knee: 4× the realistic peak held the SLO; 8× broke it"
    )
    assert "not reached" in knee_text({"knee_multiplier": 8, "broke_multiplier": None})
    assert "below the first step" in knee_text({"knee_multiplier": None, "broke_multiplier": 1})


def test_time_series_counts_every_request() -> None:
    rows = rows_of(1000)
    series = time_series(rows, 1.0)
    assert sum(series["per_s"]) == len(rows)
    assert set(series["p95"]) == {"timeline", "fetch", "pdq"}


def test_the_report_page_is_self_contained(tmp_path: Path) -> None:
    rows = rows_of(300)
    stats = op_stats(rows, 3.0)
    report = {
        "target": {"name": "t", "http": None},
        "shape": "step",
        "multiplier": 1.0,
        "duration_s": 3.0,
        "seed": 1,
        "workload": {"name": "w"},
        "totals": {"requests": len(rows), "failures": sum(1 for r in rows if not r.ok)},
        "operations": {n: s.to_json() for n, s in stats.items()},
        "slo": slo_results([parse_slo("timeline.p95<1s")], stats),
        "per_facility": per_facility(rows),
        "series": time_series(rows),
        "resources": {"hub": {"samples": [{"t": 1.0, "cpu_pct": 50.0, "rss_mb": 100.0}]}},
        "step": {"curve": [{"multiplier": 1, "per_s": 5.0, "p95_ms": 40.0, "failures": 0}], "slo_ms": 800,
                 "knee_multiplier": 1, "broke_multiplier": None},
        "verdict": {"ok": False, "consent_leaks": len(leaks(rows)), "slo_broken": []},
    }  # fmt: skip
    files = write_report(report, tmp_path)
    page = files["html"].read_text(encoding="utf-8")
    assert page.count('class="op"') == 3
    assert page.count("<svg") == 6  # throughput, latency, facilities, step, cpu, memory
    assert 'id="knee"' in page
    assert "src=" not in page
    assert "<link" not in page


# ------------------------------------------------------------------------------------------- the command


def test_durations_and_bad_input_get_clear_errors(tmp_path: Path, mini_world: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.load.command import parse_duration

    assert [parse_duration(t) for t in ("90", "90s", "10m", "1.5h")] == [90, 90, 600, 5400]
    with pytest.raises(typer.BadParameter):
        parse_duration("ten minutes")
    runner = CliRunner()
    bad_shape = runner.invoke(app, ["load", "--world", str(mini_world), "--shape", "sine"])
    assert bad_shape.exit_code == 2
    assert "peak, diurnal, step" in bad_shape.output
    bad = tmp_path / "w.yaml"
    bad.write_text("schema_version: 1\nsession: {emergency_share: 2}\n", encoding="utf-8")
    wrong = runner.invoke(app, ["load", "--world", str(mini_world), "--workload", str(bad)])
    assert wrong.exit_code == 2  # refused before any network starts
    assert f"{bad}:2: session.emergency_share" in " ".join(wrong.output.split())
    no_slo = runner.invoke(app, ["load", "--world", str(mini_world), "--slo", "timeline.p95>1ms"])
    assert no_slo.exit_code == 2
    assert "expected op.stat<value" in no_slo.output
    worker = runner.invoke(app, ["load", "--world", str(mini_world), "--worker"])
    assert worker.exit_code == 2
    assert "--worker needs --target" in " ".join(worker.output.split())


class _Answer:
    """A Locust response as ``http_failure`` reads it."""

    def __init__(self, status: int, body: object = None, error: Exception | None = None) -> None:
        self.status_code = status
        self.error = error
        self._body = body

    def json(self) -> object:
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


def test_a_failures_reason_says_whether_an_answer_came() -> None:
    """The hub's own reason when it answered; the client's error, not ``HTTP 0``, when nothing came."""
    assert (
        http_failure(_Answer(409, {"detail": {"reason": "consent-withdrawn"}}))
        == "HTTP 409: consent-withdrawn"
    )
    assert http_failure(_Answer(401, {"detail": "bad token"})) == "HTTP 401: bad token"
    assert http_failure(_Answer(502)) == "HTTP 502: no JSON body"
    huge = http_failure(_Answer(409, {"detail": {"reason": "x" * 100_000}}))
    assert huge == "HTTP 409: " + "x" * 80  # a hub's reason is bounded, in a dict or not
    timed_out = http_failure(_Answer(0, error=TimeoutError("timed out")))
    assert timed_out == "no answer: TimeoutError: timed out"
    assert http_failure(_Answer(0)) == "no answer"
