"""`rhin load` end to end on loopback: the mini network, Locust as a subprocess, the report checked against
an independent computation from the raw timings; a planted consent leak; master + 2 workers; the MLLP
client against the real hub.

Lean on purpose: one `rhin load` starts its own reference network (the default path, with links), the
others share one network started here and reached through a target file; every run lasts seconds.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import socket
import threading
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.scenarios.hl7build import CHARSETS, Header, pdq_message
from harness.scenarios.world import WorldIndex
from harness.targets import ReferenceOptions, Target, reference_target
from hl7wire import END_BLOCK, START_BLOCK
from loadtests.mllp import MllpError, MllpSession
from simulator.workload import OPERATIONS
from tests.test_report import _browser, webdriver
from tests.test_scenarios_suites import BrokenHub, _gateways, no_consent_check

RUNNER = CliRunner()


def load(*args: str) -> Any:
    return RUNNER.invoke(app, ["load", *args], catch_exceptions=False)


def independent(raw: Path) -> dict[str, dict[str, float]]:
    """p50/p95/p99/max per operation from raw.csv with numpy's inverted-CDF percentiles (nearest rank)."""
    values: dict[str, list[float]] = defaultdict(list)
    with raw.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["ok"] == "1":
                values[row["name"]].append(float(row["ms"]))
    out = {}
    for name, v in values.items():
        a = np.array(v)
        out[name] = {
            f"p{p}_ms": round(float(np.percentile(a, p, method="inverted_cdf")), 3) for p in (50, 95, 99)
        }
        out[name]["max_ms"] = round(float(a.max()), 3)
    return out


def check_exact(folder: Path) -> dict[str, Any]:
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    expected = independent(folder / "raw.csv")
    for name, stats in report["operations"].items():
        if name in expected:
            for key, value in expected[name].items():
                assert stats[key] == pytest.approx(value, abs=1e-9), (name, key)
    return dict(report)


# ------------------------------------------------------------------------------------------- default path


def test_headless_load_on_its_own_reference_network(
    mini_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CI run: every operation a session makes shows up with zero failures, percentiles are exact, the
    HTML is self-contained; an SLO nobody can meet makes the exit code 1 while the run itself is healthy.
    The report folder is given relative to a working folder that is not the project's (Locust runs in the
    project's: a relative path once sent its processes looking for their configuration there)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report"
    result = load(
        "--world", str(mini_world), "--duration", "8s", "--rate", "3", "--think-scale", "0",
        "--scrypt-cost", "4", "--report", "report", "--seed", "3", "--slo", "login.p50<0.001ms",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    report = check_exact(out)
    ops = report["operations"]
    for name in ("login", "timeline", "fetch", "logout", "feed_join"):
        assert ops[name]["count"] > 0, name
    assert "pix" in ops or "pdq" in ops
    assert set(ops) <= set(OPERATIONS)
    unexpected = {n: o["failures_by_reason"] for n, o in ops.items() if o["failures"]}
    assert not unexpected
    assert report["verdict"]["consent_leaks"] == 0
    assert report["verdict"]["slo_broken"] == ["login.p50<0.001ms"]
    assert report["target"]["links"] is True  # the reference network as `rhin run` starts it, links on
    resources = report["resources"]
    assert resources["hub"]["samples"]  # the hub's CPU and memory were sampled
    hasher = resources["hub-hasher"]  # its password worker, a child found once logins started it
    assert hasher["samples"]
    assert hasher["pid"] not in (None, resources["hub"]["pid"])
    machine = [r["cpu_pct"] for r in resources["machine"]["samples"]]
    assert machine
    assert all(0 <= c <= 100 * (os.cpu_count() or 1) + 5 for c in machine)
    assert max(machine) >= max(r["cpu_pct"] for r in resources["hub"]["samples"]) - 5  # the hub is in it
    assert sum(report["per_facility"].values()) == report["totals"]["requests"]
    speed = report["machine_speed"]  # read at the start (and every 30 s): one reading in 8 s
    assert len(speed["readings"]) >= 1
    assert speed["python_ms"] > 0
    assert speed["hash_ms"] > 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"a fixed piece of Python {speed['python_ms']:.2f} ms" in page
    assert re.search(r'(src|href)="https?:', page) is None  # self-contained: nothing fetched
    assert "<link" not in page
    assert page.count('class="op"') == len(ops)
    assert (out / "locust_stats.csv").is_file()  # Locust's own CSV and HTML are written too
    assert (out / "locust.html").is_file()
    chromium, driver = _browser()
    with webdriver(chromium, driver, tmp_path) as (http, session):
        assert (
            http.post(f"{session}/url", json={"url": (out / "report.html").resolve().as_uri()}).status_code
            == 200
        )
        script = (
            "return Object.assign({}, document.body.dataset, "
            "{verdict: document.getElementById('verdict').textContent});"
        )
        seen = http.post(f"{session}/execute/sync", json={"script": script, "args": []}).json()["value"]
    assert int(seen["renderedOps"]) == len(ops)  # the browser's own count of operation rows
    assert int(seen["renderedPlots"]) >= 5  # throughput, latency, facilities, CPU, memory
    assert seen["verdict"].startswith("FAILED")


# ------------------------------------------------------------------------------------------- shared network


@pytest.fixture(scope="module")
def world(mini_world: Path) -> WorldIndex:
    return WorldIndex(mini_world)


@pytest.fixture(scope="module")
def net(world: WorldIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with reference_target(
        world, tmp_path_factory.mktemp("loadnet"), options=ReferenceOptions(scrypt_cost=4, shards=2)
    ) as target:
        yield target


def target_file(folder: Path, net: Target, http: str | None = None) -> Path:
    assert net.network is not None
    network = folder / "network.json"
    network.write_text(net.network.model_dump_json(), encoding="utf-8")
    spec: dict[str, Any] = {"schema_version": 1, "name": "shared-mini", "network": str(network)}
    if http is not None:
        spec["http"] = {"base_url": http}
    path = folder / "target.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_the_step_shape_stops_when_an_slo_breaks(mini_world: Path, net: Target, tmp_path: Path) -> None:
    """Steps of 3 s (1×, 2×, 4×, … 64×) against an SLO no hub meets: the shape stops once the last 10 s of
    raw timings break it (after 5 s and 20 timelines), long before the last step; no step held: no knee."""
    workload = tmp_path / "step.yaml"
    workload.write_text(
        "schema_version: 1\nname: step\nshape: {kind: step, step_s: 3, step_max: 64}\n"
        "slo: ['timeline.p95<0.001ms']\n",
        encoding="utf-8",
    )
    out = tmp_path / "report"
    result = load(
        "--world", str(mini_world), "--target", str(target_file(tmp_path, net)), "--workload", str(workload),
        "--duration", "60s", "--rate", "4", "--think-scale", "0", "--no-feeds", "--report", str(out),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    curve = report["step"]["curve"]
    assert [p["multiplier"] for p in curve][:2] == [1, 2]
    assert curve[1]["per_s"] > 1.4 * curve[0]["per_s"]  # the user pool doubled with the step
    assert report["measured_s"] < 3 * 7 - 3  # stopped before the 64× step
    assert report["step"]["knee_multiplier"] is None
    assert "below the first step" in result.output


class _Unavailable(BaseHTTPRequestHandler):
    """A hub front door that answers every request 503: every login fails."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"detail": {"reason": "unavailable"}}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


def test_the_step_shape_stops_at_the_first_failing_step(
    mini_world: Path, net: Target, tmp_path: Path
) -> None:
    """The knee's rule (a step with a failure broke) also ends the run: every login fails here and no
    timeline is ever measured, so no SLO can break — the shape stops after 5 s anyway, not at the 64× step,
    and the knee is below the first step."""
    workload = tmp_path / "step.yaml"
    workload.write_text(
        "schema_version: 1\nname: step\nshape: {kind: step, step_s: 3, step_max: 64}\n"
        "slo: ['timeline.p95<60s']\n",
        encoding="utf-8",
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        out = tmp_path / "report"
        result = load(
            "--world", str(mini_world), "--target", str(target_file(tmp_path, net, url)),
            "--workload", str(workload), "--duration", "60s", "--rate", "4", "--think-scale", "0",
            "--no-feeds", "--report", str(out),
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["operations"]["login"]["failures"] == report["operations"]["login"]["count"] > 0
    assert report["measured_s"] < 3 * 4  # stopped within the third step, not after the seventh
    assert report["step"]["knee_multiplier"] is None
    assert "below the first step" in result.output


LOCUST_DEFAULT_MASTER_PORT = 5557


@contextlib.contextmanager
def _occupied(port: int) -> Iterator[None]:
    """A listener on ``port`` (Locust's fixed default master port) for the duration — standing in for a
    second load run on the same machine; if something already listens there, that serves as well."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(("0.0.0.0", port))
            sock.listen()
        except OSError:
            pass  # already taken: the condition under test holds anyway
        yield
    finally:
        sock.close()


def test_refusals_succeed_on_master_and_workers_and_a_hub_ignoring_consent_fails_the_run(
    mini_world: Path, world: WorldIndex, net: Target, tmp_path: Path
) -> None:
    """Viewers outside the consent are refused by the real hub (successes) — run as a Locust master with 2
    workers, whose merged percentiles are exact —; behind a proxy that skips may_view they see entries: a
    consent leak, exit 1 whatever the SLOs say."""
    workload = tmp_path / "outside.yaml"
    workload.write_text(
        "schema_version: 1\nname: outside-heavy\n"
        "session: {outside_consent_share: 0.7, emergency_share: 0.1}\nslo: []\n",
        encoding="utf-8",
    )
    assert net.http is not None
    common = ["--world", str(mini_world), "--workload", str(workload), "--duration", "6s", "--rate", "4"]
    common += ["--think-scale", "0", "--no-feeds", "--seed", "5"]
    target = str(target_file(tmp_path, net))
    with _occupied(LOCUST_DEFAULT_MASTER_PORT):  # another run's master there must not matter
        honest = load(*common, "--target", target, "--processes", "2", "--report", str(tmp_path / "a"))
    assert honest.exit_code == 0, honest.output
    fine = check_exact(tmp_path / "a")
    with (tmp_path / "a" / "raw.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["worker"] for r in rows} == {"0", "1"}  # both workers' timings reached the master
    assert fine["totals"]["requests"] == len(rows)
    assert all(o["failures"] == 0 for o in fine["operations"].values()), fine["operations"]
    assert fine["operations"]["outside_timeline"]["count"] > 0
    assert fine["operations"]["outside_timeline"]["failures"] == 0  # refusals counted as successes
    assert fine["operations"]["emergency"]["failures"] == 0
    broken = BrokenHub(net.http, world, _gateways(net, world), no_consent_check)
    with broken.running() as url:
        folder = tmp_path / "leaky"
        folder.mkdir()
        leaky = load(*common, "--target", str(target_file(folder, net, url)), "--report", str(tmp_path / "b"))
    assert leaky.exit_code == 1, leaky.output
    bad = json.loads((tmp_path / "b" / "report.json").read_text(encoding="utf-8"))
    assert bad["verdict"]["consent_leaks"] > 0
    assert bad["operations"]["outside_timeline"]["failures_by_reason"].get("consent-leak", 0) > 0
    assert f"consent leaks: {bad['verdict']['consent_leaks']}" in leaky.output


# ------------------------------------------------------------------------------------------- MLLP client


def _session(net: Target, facility: str, fired: list[dict[str, Any]]) -> MllpSession:
    assert net.mllp is not None
    assert net.mllp_tls is not None
    return MllpSession(
        net.mllp[0], net.mllp[1], tls=net.mllp_tls.context(facility), timeout=10,
        fire=lambda **kw: fired.append(kw), facility=facility,
    )  # fmt: skip


@pytest.mark.parametrize("charset", ["iso-2022-jp", "utf-8"])
def test_pdq_pages_with_continuation_add_up_to_the_whole_answer(
    net: Target, world: WorldIndex, charset: str
) -> None:
    """A family name shared by several patients: page by page (1 per reply, DSC pointers) gives the same
    people as one unlimited query, every name decoded by MSH-18."""
    by_name: dict[str, list[Any]] = defaultdict(list)
    for p in world.patients:
        by_name[p.family_kana].append(p)
    kana, people = max(by_name.items(), key=lambda kv: len(kv[1]))
    assert len(people) >= 3
    facility = next(f for f in world.facilities if f.users).code
    fired: list[dict[str, Any]] = []
    codec = CHARSETS[charset][0]
    header = Header(sender=facility, control_id="T1", timestamp="20261201090000+0900", charset=charset)
    with_all = _session(net, facility, fired)
    try:
        whole = with_all.exchange("pdq", pdq_message(header, "QALL", {"@PID.5.1.1": kana}, []), codec)
        assert whole.code == "AA"
        expected = [seg.field(3) for seg in whole.reply.segments("PID")]
        assert len(expected) == len(people)
        assert all(seg.get(5, 1, comp=1) == kana for seg in whole.reply.segments("PID"))
        pages, pointer = [], None
        for _ in range(len(people) + 2):
            text = pdq_message(header, "QPAGE", {"@PID.5.1.1": kana}, [], quantity=1, pointer=pointer)
            found = with_all.exchange("pdq_next" if pointer else "pdq", text, codec)
            pages += [seg.field(3) for seg in found.reply.segments("PID")]
            pointer = found.reply.get("DSC", 1) or None
            if pointer is None:
                break
        assert pages == expected
    finally:
        with_all.close()
    assert all(e["exception"] is None for e in fired)
    assert all(e["context"] == {"facility": facility} and e["response_time"] > 0 for e in fired)


def _one_shot_server(behaviour: str) -> tuple[int, threading.Thread]:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            conn.recv(65536)
            if behaviour == "close":
                return
            ack = b"MSH|^~\\&|HUB|RHIN|A|B|20261201||ACK^A04^ACK|9|P|2.5\rMSA|AA|T2\r"
            for b in START_BLOCK + ack + END_BLOCK:  # one byte per send: the client must read to the end
                conn.sendall(bytes([b]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


def test_the_client_reads_a_fragmented_reply_and_reports_a_server_that_closes() -> None:
    fired: list[dict[str, Any]] = []
    port, thread = _one_shot_server("fragments")
    s = MllpSession("127.0.0.1", port, tls=None, timeout=5, fire=lambda **kw: fired.append(kw))
    text = "MSH|^~\\&|A|B|HUB|RHIN|20261201||ADT^A04|T2|P|2.5\r"
    try:
        assert s.exchange("feed_register", text, "ascii").code == "AA"
    finally:
        s.close()
    thread.join(5)
    port, thread = _one_shot_server("fragments")
    s = MllpSession("127.0.0.1", port, tls=None, timeout=5, fire=lambda **kw: fired.append(kw))
    with pytest.raises(
        MllpError, match="does not name the patient"
    ):  # AA, but the answer is not what we need
        s.exchange("pix", text, "ascii", check=lambda reply: "does not name the patient")
    s.close()
    thread.join(5)
    port, thread = _one_shot_server("close")
    s = MllpSession("127.0.0.1", port, tls=None, timeout=5, fire=lambda **kw: fired.append(kw))
    with pytest.raises(MllpError, match="transport"):
        s.exchange("feed_register", text, "ascii")
    s.close()
    thread.join(5)
    assert [e["exception"] is None for e in fired] == [True, False, False]  # one event per exchange
    assert [e["name"] for e in fired] == ["feed_register", "pix", "feed_register"]
