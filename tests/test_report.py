"""Reports of a real run (passed, failed, errored and skipped assertions against the reference hub): the JSON
reads back to the same results, the JUnit XML has one testcase per assertion with the evidence, and the HTML
is self-contained and renders in headless Chromium with the JSON's counts.

Chromium and chromedriver are Debian packages (`make system-deps` installs them); when they are missing the
browser test fails loudly — it never installs anything itself. The browser is driven through chromedriver's
W3C WebDriver endpoint with httpx.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import matplotlib.image
import pytest

from harness.report import read_json, write_reports
from harness.report.junit import failure_text
from harness.scenarios import RunResult, WorldIndex, discover, parse_scenario
from harness.scenarios.engine import run
from harness.targets import ReferenceOptions, reference_target

REPO = Path(__file__).resolve().parents[1]

WRONG = """\
schema_version: 1
id: report-wrong
title: 間違った期待 (a wrong expectation)
remarks: report test
given:
  patients:
    p: {fresh: true}
  facilities:
    A: {disclosing: true}
steps:
  - feed: {from: A, patient: p}
    expect:
      - {id: T-wrong, that: {MSA-1: AE, correlated: true}}
      - {id: T-right, that: {MSA-1: AA}}
  - mllp_raw: {hex: "0b 4d 53 48 1c 0d 00 01", frame: false}
    expect:
      - {id: T-raw, that: {reply: message}}
  - link: {by: A, patient: p}
    expect:
      - {id: T-skipped, that: {status: 200}}
"""

TIMED = """\
schema_version: 1
id: report-timed
title: a repeated query with a latency budget
remarks: report test
params: {budget_ms: 5000}
given:
  patients:
    p: {fresh: true}
  facilities:
    C: {kind: clinic}
steps:
  - pdq_query: {from: C, fields: {"@PID.7": "${p.birth_date}"}}
    repeat: {count: 8, warmup: 1}
    expect:
      - {id: T-timed, that: {MSA-1: AA, latency.p95: {le: "${param.budget_ms}"}}}
"""

BROKEN = """\
schema_version: 1
id: report-error
title: a step that cannot run
remarks: report test
given:
  facilities:
    A: {disclosing: true}
steps:
  - pdq_query: {from: A, continue: true}
    expect:
      - {id: T-error, that: {MSA-1: AA}}
"""


@pytest.fixture(scope="module")
def result(mini_world: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    world = WorldIndex(mini_world)
    suite = discover(REPO / "scenarios", [REPO / "scenarios" / "conformance"])
    chosen = [s for s in suite if s.id in ("iti9-unknown-patient", "iti21-continuation", "mllp-no-msh")]
    extra = [
        parse_scenario(WRONG, "wrong.yaml", suite="extra"),
        parse_scenario(BROKEN, "broken.yaml", suite="extra"),
        parse_scenario(TIMED, "timed.yaml", suite="extra"),
    ]
    options = ReferenceOptions(scrypt_cost=4, shards=1)
    with reference_target(world, tmp_path_factory.mktemp("hub"), options=options) as target:
        limited = replace(target, supports=target.supports - {"link"})
        return run([*chosen, *extra], limited, world, jobs=2)


@pytest.fixture(scope="module")
def reports(result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_reports(result, tmp_path_factory.mktemp("report"))


def test_the_run_has_every_status(result: RunResult) -> None:
    s = result.summary()
    assert s["passed"] > 0
    assert s["failed"] == 2  # T-wrong, T-raw
    assert s["error"] == 1
    assert s["skipped"] == 1
    assert not result.ok


def test_json_reads_back_to_the_same_results(result: RunResult, reports: dict[str, Path]) -> None:
    data = json.loads(reports["json"].read_text(encoding="utf-8"))
    assert data["format"] == "rhin-run-report"
    assert data["summary"] == result.summary()
    assert data["ok"] is False
    assert read_json(reports["json"]) == result
    keys = [(a["assertion_id"], a["status"]) for s in data["scenarios"] for a in s["assertions"]]
    assert keys == [(a.assertion_id, a.status) for a in result.assertions()]
    assert set(data["latency_ms"]) == set(result.latencies())


def test_junit_has_one_testcase_per_assertion_with_evidence(
    result: RunResult, reports: dict[str, Path]
) -> None:
    root = ET.parse(reports["junit"]).getroot()
    s = result.summary()
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == tuple(
        str(s[k]) for k in ("assertions", "failed", "error", "skipped")
    )
    suites = {node.get("name"): node for node in root.iter("testsuite")}
    assert set(suites) == {"conformance", "extra"}
    cases = list(root.iter("testcase"))
    assert len(cases) == s["assertions"]
    for suite, counts in result.suites().items():
        node = suites[suite]
        assert int(node.get("tests", "0")) == counts["assertions"] == len(node.findall("testcase"))
        assert int(node.get("failures", "0")) == counts["failed"]
    wrong = next(c for c in cases if c.get("name", "").startswith("T-wrong"))
    assert wrong.get("classname") == "extra.report-wrong"
    failure = wrong.find("failure")
    assert failure is not None
    text = failure.text or ""
    assert "FAIL MSA-1: expected = AE; actual AA" in text
    assert ">>> request" in text
    assert "ADT^A04^ADT_A01" in text
    assert "MSA|AA|" in text
    raw = next(c for c in cases if c.get("name", "").startswith("T-raw"))
    raw_text = (raw.find("failure").text or "") if raw.find("failure") is not None else ""
    assert "(hex) 0b 4d 53 48 1c 0d 00 01" in raw_text
    assert next(c for c in cases if c.get("name", "").startswith("T-skipped")).find("skipped") is not None
    error = next(c for c in cases if c.get("name", "").startswith("T-error")).find("error")
    assert error is not None
    assert "continue" in (error.get("message") or "")
    assert all(failure_text(a) for a in result.assertions())


class _Counts(HTMLParser):
    """The summary cells (id="count-…") and every external reference in the page."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, str] = {}
        self.external: list[str] = []
        self.tags: set[str] = set()
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        for key in ("src", "href", "xlink:href"):
            ref = values.get(key) or ""
            if ref and not ref.startswith("#"):
                self.external.append(ref)
        ident = values.get("id") or ""
        self._open = ident.removeprefix("count-") if ident.startswith("count-") else None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.counts[self._open] = data.strip()
            self._open = None


def test_html_is_self_contained_with_the_json_counts(result: RunResult, reports: dict[str, Path]) -> None:
    page = reports["html"].read_text(encoding="utf-8")
    parser = _Counts()
    parser.feed(page)
    assert parser.external == []  # no CDN, no stylesheet or script files, no images
    assert "link" not in parser.tags
    s = result.summary()
    for key in ("assertions", "passed", "failed", "error", "skipped"):
        assert parser.counts[key] == str(s[key]), key
    assert page.count("<svg") == len(result.latencies()) + len(result.repeated_steps())
    assert page.count('class="budget-plot"') == 1
    assert 'id="budget-table"' in page
    assert "間違った期待" in page
    assert 'class="seg"' in page  # the HL7 decoded into fields beside the expectation
    assert "T-wrong" in page


# ------------------------------------------------------------------------------------------- Chromium


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        missing = " and ".join(
            n for n, found in (("chromium", chromium), ("chromedriver", driver)) if not found
        )
        pytest.fail(
            f"{missing} not on PATH: install the Debian packages chromium and chromium-driver"
            " (make system-deps)"
        )
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def webdriver(chromium: str, driver: str, tmp: Path) -> Iterator[tuple[httpx.Client, str]]:
    port = _free_port()
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    session = ""
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if http.get("/status").json()["value"]["ready"]:
                    break
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,2000",
        ]
        args.append(f"--user-data-dir={tmp / 'profile'}")
        options = {"binary": chromium, "args": args}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        reply = http.post("/session", json=caps).json()
        assert "sessionId" in reply.get("value", {}), reply
        session = reply["value"]["sessionId"]
        yield http, f"/session/{session}"
    finally:
        if session:
            with contextlib.suppress(httpx.HTTPError):
                http.delete(f"/session/{session}")
        http.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_the_html_renders_in_headless_chromium(
    result: RunResult, reports: dict[str, Path], tmp_path: Path
) -> None:
    chromium, driver = _browser()
    with webdriver(chromium, driver, tmp_path) as (http, session):
        assert (
            http.post(f"{session}/url", json={"url": reports["html"].resolve().as_uri()}).status_code == 200
        )
        script = (
            "return Object.assign({}, document.body.dataset, {title: document.title, "
            "failedCell: document.getElementById('count-failed').textContent, "
            "verdict: document.getElementById('verdict').textContent, "
            "svgWidth: document.querySelector('figure.plot svg').getBoundingClientRect().width});"
        )
        seen: dict[str, Any] = http.post(
            f"{session}/execute/sync", json={"script": script, "args": []}
        ).json()["value"]
        shot = base64.b64decode(http.get(f"{session}/screenshot").json()["value"])
    data = json.loads(reports["json"].read_text(encoding="utf-8"))
    summary = data["summary"]
    for key in ("assertions", "passed", "failed", "error", "skipped"):
        rendered = int(seen[f"rendered{key[0].upper()}{key[1:]}"])
        assert rendered == summary[key], (key, seen)  # the browser's own count of result rows
    assert seen["failedCell"] == str(summary["failed"])
    assert seen["verdict"] == "FAILED"
    assert int(seen["renderedPlots"]) == len(data["latency_ms"]) > 0
    assert int(seen["renderedBudgetPlots"]) == 1  # the repeated step's histogram
    assert float(seen["svgWidth"]) > 100
    pixels = matplotlib.image.imread(io.BytesIO(shot), format="png")
    assert pixels.shape[0] > 500
    assert pixels.std() > 0.05  # not a blank page
