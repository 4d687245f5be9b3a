"""The engine against the real reference network (hub and gateways as processes on 127.0.0.1, bootstrapped
from the mini world), through its sockets only.

* the shipped conformance suite passes, and a broken hub makes every one of its assertions fail: a mutating
  MLLP proxy in front of the hub (garbled fields, flipped codes, dropped or extra segments, the other
  charset, a reply where the hub hung up) and an HTTP stand-in that refuses links;
* each MLLP step kind, and the builders' messages checked by hl7apy (an independent structure check);
* a wrong expectation fails with evidence; a step that cannot run errors, an unsupported one is skipped;
* a parallel run equals a serial one; external-target mode; ``rhin run`` end to end;
* repeated steps and their latency figures, parameters, world needs, targets without local files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from typer.testing import CliRunner

from harness.cli import app
from harness.scenarios import (
    FormatError,
    LoadedScenario,
    RunResult,
    WorldIndex,
    discover,
    parse_scenario,
)
from harness.scenarios.engine import run
from harness.scenarios.errors import TargetError
from harness.scenarios.hl7build import Header, Person, feed_message, pdq_message, pix_message
from harness.scenarios.runner import RunOptions, execute, selected
from harness.targets import ReferenceOptions, Target, load_target, reference_target
from hl7wire import END_BLOCK, ISO2022_JP, UTF8, HL7Error, decode, encode, frame
from simulator.pki import ClientTls, Pki, facility_of

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO / "scenarios" / "conformance"
CHEAP = ReferenceOptions(scrypt_cost=4, shards=1)  # real hashing and a real gateway process, cheaply


@pytest.fixture(scope="module")
def hub(world: WorldIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with reference_target(world, tmp_path_factory.mktemp("hub"), options=CHEAP) as target:
        yield target


@pytest.fixture(scope="module")
def suite() -> list[LoadedScenario]:
    return discover(REPO / "scenarios", [CONFORMANCE])


def failures(result: RunResult) -> str:
    lines = []
    for a in result.assertions():
        if a.status != "passed":
            lines.append(f"{a.status} {a.scenario} step {a.step} {a.assertion_id}: {a.message} {a.actual}")
    return "\n".join(lines)


def one(text: str, name: str = "test.yaml") -> LoadedScenario:
    return parse_scenario(text, name, suite="test")


# ------------------------------------------------------------------------------------------- the suite


def test_the_conformance_suite_passes_against_the_reference_hub(
    hub: Target, world: WorldIndex, suite: list[LoadedScenario]
) -> None:
    result = run(suite, replace(hub, salt="pass"), world, jobs=4)
    assert result.ok, failures(result)
    summary = result.summary()
    assert summary["assertions"] == sum(s.scenario.assertion_count for s in suite) >= 80
    assert summary["passed"] == summary["assertions"]


def test_a_parallel_run_equals_a_serial_run(
    hub: Target, world: WorldIndex, suite: list[LoadedScenario]
) -> None:
    """On one hub, with other fresh patients each time (a salt per run): the same verdicts, in order."""
    outcomes = []
    for jobs in (1, 6):
        result = run(suite, replace(hub, salt=f"jobs{jobs}"), world, jobs=jobs)
        assert [s.id for s in result.scenarios] == sorted(s.id for s in suite)
        outcomes.append([a.outcome() for a in result.assertions()])
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0]) >= 80


# ------------------------------------------------------------------------------------------- mutants


FAKE_ACK = b"MSH|^~\\&|HUB|HUB|X|X|20260101||ACK^A01^ACK|FAKE|P|2.5\rMSA|AA|FAKE\r"


def _lines(payload: bytes) -> tuple[list[str], str] | None:
    try:
        message, codec = decode(payload)
    except HL7Error:
        return None
    return [s.to_er7() for s in message], codec


def _garble(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        fields = line.split("|")
        start = 2 if fields[0] == "MSH" else 1
        for n in range(start, len(fields)):
            if fields[n] and not (fields[0] == "MSH" and n == 17):  # keep MSH-18 readable
                fields[n] += "Z"
        out.append("|".join(fields))
    return out


def _flip(lines: list[str]) -> list[str]:
    swap = {"MSA": {"AA": "AE", "AE": "AA", "AR": "AA"}, "QAK": {"OK": "NF", "NF": "OK", "AE": "OK"}}
    out = []
    for line in lines:
        fields = line.split("|")
        table = swap.get(fields[0])
        if table is not None:
            n = 1 if fields[0] == "MSA" else 2
            if len(fields) > n:
                fields[n] = table.get(fields[n], fields[n])
        out.append("|".join(fields))
    return out


def _blank_msa3(line: str) -> str:
    fields = line.split("|")
    if fields[0] == "MSA" and len(fields) > 3:
        fields[3] = ""
    return "|".join(fields)


def _mutator(change: Callable[[list[str]], list[str]]) -> Callable[[bytes], bytes]:
    def mutate(payload: bytes) -> bytes:
        read = _lines(payload)
        if read is None:
            return payload
        lines, codec = read
        return encode("".join(line + "\r" for line in change(lines)), codec, "replace")

    return mutate


def _other_charset(payload: bytes) -> bytes:
    read = _lines(payload)
    if read is None:
        return payload
    lines, codec = read
    codec, name = (UTF8, "UNICODE UTF-8") if codec == ISO2022_JP else (ISO2022_JP, "~ISO IR87")
    fields = lines[0].split("|")
    fields += [""] * (18 - len(fields))
    fields[17] = name
    lines[0] = "|".join(fields)
    text = "".join(line + "\r" for line in lines)
    try:
        return encode(text, codec)
    except HL7Error:
        return encode(text.replace(name, "UNICODE UTF-8"), UTF8)


MUTANTS: dict[str, tuple[Callable[[bytes], bytes], bool]] = {
    "garble-fields": (_mutator(_garble), False),
    "flip-codes": (_mutator(_flip), False),
    "drop-segments": (_mutator(lambda lines: [x for x in lines if x[:3] in ("MSH", "MSA")]), False),
    "extra-segments": (_mutator(lambda lines: [*lines, "ERR|||207", "PID|1||ZZZ", "DSC|PTR|I"]), False),
    "other-charset": (_other_charset, False),
    "no-explanations": (_mutator(lambda lines: [_blank_msa3(x) for x in lines]), False),
    "answer-instead-of-hanging-up": (lambda payload: payload, True),
}


class MutatingProxy:
    """An MLLP proxy in front of the hub that changes every reply (and, optionally, answers when the hub
    hangs up): a broken hub, as far as a client can tell.

    With ``tls`` (the hub's client material, in a :mod:`simulator.pki` folder) it speaks to the hub over TLS
    with a facility's certificate: the client's own when it terminates TLS as the hub would (the hub's
    certificate, client certificates required), or, with ``plain_clients``, MSH-4's in the client's first
    bytes (any facility's when there is none) — for scenarios that half-close, which TLS cannot carry."""

    def __init__(
        self,
        upstream: tuple[str, int],
        mutate: Callable[[bytes], bytes],
        answer_on_close: bool,
        tls: ClientTls | None = None,
        *,
        plain_clients: bool = False,
    ) -> None:
        self.upstream, self.mutate, self.answer_on_close = upstream, mutate, answer_on_close
        self.tls, self.plain_clients = tls, plain_clients
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.serving: set[asyncio.Task[None]] = set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio keeps only a weak reference to the task serving a connection: once the TLS link to the
        # hub had been closed, nothing else held this one while it waited for the hub's end, and now and
        # then (~2 % of runs of the suite) the collector destroyed it mid-wait ("Task was destroyed but it
        # is pending"): the client saw a close and no answer, and this mutant survived a check it fails
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        try:
            with contextlib.suppress(asyncio.CancelledError):  # stopped with the proxy: end quietly
                await self._serve(reader, writer)
        finally:
            self.serving.discard(task)

    def _facility(self, writer: asyncio.StreamWriter, first: bytes) -> str | None:
        if not self.plain_clients:
            return facility_of(writer.get_extra_info("peercert"))
        found = re.search(rb"MSH\|[^|]*\|[^|]*\|([0-9]+)", first)
        assert self.tls is not None
        if found and self.tls.has(found.group(1).decode()):
            return found.group(1).decode()
        return next(self.tls.certs.glob("*.pem")).stem

    async def _hung_up(self, writer: asyncio.StreamWriter) -> None:
        """The hub ended the connection (or never took it): the mutant that answers anyway does."""
        if self.answer_on_close:
            writer.write(frame(FAKE_ACK))
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = b""
        try:
            if self.tls is None:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            else:
                if self.plain_clients:
                    first = await reader.read(65536)
                up_reader, up_writer = await asyncio.open_connection(
                    *self.upstream,
                    ssl=self.tls.context(self._facility(writer, first)),
                    server_hostname=self.upstream[0],
                )
        except OSError:  # refused, reset, a TLS error: as far as the client can tell, a hang-up
            with contextlib.suppress(OSError):
                await self._hung_up(writer)
            writer.close()
            return

        async def forward() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                data = first or await reader.read(65536)
                while data:
                    up_writer.write(data)
                    await up_writer.drain()
                    data = await reader.read(65536)
                if up_writer.can_write_eof():
                    up_writer.write_eof()
                else:
                    up_writer.close()  # TLS has no half-close: the hub sees the end of the connection

        pump = asyncio.create_task(forward())
        try:
            while True:
                try:
                    block = await up_reader.readuntil(END_BLOCK)
                except (asyncio.IncompleteReadError, OSError, asyncio.LimitOverrunError):
                    # OSError: a reset, or the TLS layer's own error as the connection ends (an
                    # ssl.SSLError is no ConnectionError): the hub hung up all the same
                    await self._hung_up(writer)
                    if self.answer_on_close:
                        await pump
                    break
                writer.write(frame(self.mutate(block[1 : -len(END_BLOCK)])))
                await writer.drain()
        except OSError:  # the client went away
            pass
        finally:
            pump.cancel()
            for w in (writer, up_writer):
                w.close()

    def __enter__(self) -> tuple[str, int]:
        self.thread.start()

        async def start() -> asyncio.Server:
            server_tls = None
            if self.tls is not None and not self.plain_clients:
                server_tls = Pki(self.tls.ca_file.parent).server_context()
            return await asyncio.start_server(
                self._client, "127.0.0.1", 0, limit=64 * 1_048_576, ssl=server_tls
            )

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return ("127.0.0.1", self.port)

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            while tasks := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.sleep(0.01)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _BrokenApi(BaseHTTPRequestHandler):
    """An HTTP 'hub' that lets everyone log in, then refuses everything with a 500 — or, ``new_ids``, links
    every local ID to a new regional ID (a hub whose linking is broken)."""

    new_ids = False
    issued = 0

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/auth/login":
            self._reply(
                200, {"token": "t", "token_type": "bearer", "facility": "", "user_id": "", "viewer_kind": ""}
            )
        elif self.path == "/links" and self.new_ids:
            type(self).issued += 1
            self._reply(
                200, {"regional_id": f"R{self.issued}", "facility": "", "local_id": "", "created": False}
            )
        else:
            self._reply(500, {"detail": {"reason": "broken"}})

    do_GET = do_DELETE = do_POST  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def broken_api(new_ids: bool) -> Iterator[str]:
    handler = type("Handler", (_BrokenApi,), {"new_ids": new_ids})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_broken_hub_makes_every_assertion_fail(
    hub: Target, world: WorldIndex, suite: list[LoadedScenario]
) -> None:
    """Each assertion of the default run must be able to fail: some broken hub fails it (status failed)."""
    assert hub.mllp is not None
    suite = [s for s in suite if not {"pixv3", "pdqv3"} & set(s.scenario.tags)]  # tests/test_v3_suite.py
    killed: dict[tuple[str, str, int, str], list[str]] = {}
    baseline = run(suite, replace(hub, salt="base"), world, jobs=6)
    assert baseline.ok, failures(baseline)
    for name, (mutate, answer) in MUTANTS.items():
        # Plain MLLP to the proxy (which speaks TLS to the hub): the truncated-block scenario half-closes.
        with MutatingProxy(hub.mllp, mutate, answer, hub.mllp_tls, plain_clients=True) as address:
            broken = replace(hub, mllp=address, salt=name, mllp_timeout=10.0, mllp_tls=None)
            result = run(suite, broken, world, jobs=6)
        for a in result.assertions():
            if a.status == "failed":
                assert a.evidence, f"{name}: {a.key} failed without evidence"
                killed.setdefault(a.key, []).append(name)
    for new_ids in (False, True):
        with broken_api(new_ids) as url:
            result = run(suite, replace(hub, http=url, salt=f"http{new_ids}"), world, jobs=6)
        for a in result.assertions():
            if a.status == "failed":
                killed.setdefault(a.key, []).append(f"broken-http-{new_ids}")
    survivors = [a.key for a in baseline.assertions() if a.key not in killed]
    assert not survivors, f"assertions no broken hub could fail: {survivors}"


# ------------------------------------------------------------------------------------------- step kinds

EVERY_MLLP_KIND = """\
schema_version: 1
id: every-mllp-kind
title: every MLLP step kind, each version and charset
remarks: engine test
given:
  patients:
    p: {fresh: true}
    q: {fresh: true}
  facilities:
    A: {disclosing: true}
    B: {disclosing: true}
    C: {kind: clinic}
steps:
  - feed: {from: A, patient: p, event: A01, version: "2.3.1", charset: iso-2022-jp}
    expect: [{id: T-a01, that: {MSA-1: AA, MSH-12: "2.3.1", charset: iso2022_jp}}]
  - feed: {from: B, patient: p, event: A04, charset: ascii}
    expect: [{id: T-a04, that: {MSA-1: AA, charset: ascii}}]
  - feed: {from: A, patient: q, event: A05, local_id: "${q.local_id@A}X"}
    expect: [{id: T-a05, that: {MSA-1: AA}}]
  - feed:
      from: A
      patient: q
      event: A08
      local_id: "${q.local_id@A}X"
      demographics: {given_name: 花子, sex: F}
    expect: [{id: T-a08, that: {MSA-1: AA}}]
  - feed: {from: A, patient: q, event: A04}
    expect: [{id: T-a04b, that: {MSA-1: AA}}]
  - feed: {from: A, patient: q, event: A40, merge_from: "${q.local_id@A}X"}
    expect: [{id: T-a40, that: {MSA-1: AA, type: "ACK^A40^ACK"}}]
  - pix_query: {from: C, patient: p, at: A, domains: [B]}
    capture: {tag: QAK-1}
    expect: [{id: T-pix, that: {MSA-1: AA, QAK-2: NF}}]
  - pdq_query:
      from: C
      query_tag: "${tag}P"
      quantity: 1
      fields: {"@PID.7": "${p.birth_date}"}
    expect:
      - {id: T-pdq, that: {QAK-4: 2, QAK-6: 1, "PID-3.1": {one_of: ["${p.local_id@A}", "${p.local_id@B}"]}}}
  - pdq_query: {from: C, continue: true}
    expect: [{id: T-pdq-continue, that: {QAK-5: 1, QAK-6: 0}}]
  - pdq_cancel: {from: C, query_tag: "${tag}P"}
    expect: [{id: T-cancel, that: {MSA-1: AA}}]
  - pdq_query: {from: C, fields: {"@PID.7": "${q.birth_date}"}}
    expect: [{id: T-merged, that: {QAK-4: 1, PID-3.1: "${q.local_id@A}", PID-8: "${q.sex}"}}]
  - wait: {ms: 30}
    expect: [{id: T-wait, that: {elapsed_ms: {ge: 25}}}]
  - mllp_raw: {hex: "48 45 4c 4c 4f", frame: false}
    expect: [{id: T-raw, that: {connection: closed, reply: none}}]
"""


def test_each_mllp_step_kind_against_the_hub(hub: Target, world: WorldIndex) -> None:
    result = run([one(EVERY_MLLP_KIND)], replace(hub, salt="kinds"), world)
    assert result.ok, failures(result)
    steps = result.scenarios[0].steps
    kinds = {s.kind for s in steps}
    assert kinds == {"feed", "pix_query", "pdq_query", "pdq_cancel", "wait", "mllp_raw"}
    first = steps[0].exchanges[0]
    assert "|2.3.1||||||~ISO IR87" in first.request.splitlines()[0]
    raw = steps[-1].exchanges[0]
    assert raw.request_hex == "48 45 4c 4c 4f"
    assert raw.note == "connection closed, no reply"
    continuation = steps[8].exchanges[0]
    assert "DSC|" in continuation.request
    assert continuation.label.endswith("(continuation)")


def test_the_built_messages_have_the_standard_structure() -> None:
    """hl7apy (an independent parser with the HL7 structures) reads what the steps send."""
    h = Header("1710110072", "C1", "20261031090000+0900")
    person = Person(
        "山田", "太郎", "ヤマダ", "タロウ", "Yamada", "Taro", "M", "19600102", "9200833", "金沢市", "076"
    )
    cx = "L1^^^JP1710110072&1.2.392.100495.20.3.51.11710110072&ISO"
    for event, structure in (("A01", "ADT_A01"), ("A04", "ADT_A01"), ("A05", "ADT_A05"), ("A08", "ADT_A01")):
        msg = parse_message(feed_message(h, event, cx, person), validation_level=VALIDATION_LEVEL.TOLERANT)
        assert msg.name == structure
        assert msg.msh.msh_9.to_er7() == f"ADT^{event}^{structure}"
        assert msg.pid.pid_3.cx_1.to_er7() == "L1"
        assert msg.pid.pid_3.cx_4.to_er7() == "JP1710110072&1.2.392.100495.20.3.51.11710110072&ISO"
        assert [r.xpn_8.to_er7() for r in msg.pid.pid_5] == ["I", "P"]
    merge = parse_message(
        feed_message(h, "A40", cx, person, merge_from="L0^^^JP1&1.2&ISO"),
        validation_level=VALIDATION_LEVEL.TOLERANT,
        find_groups=True,
    )
    assert merge.name == "ADT_A39"
    assert merge.adt_a39_patient.mrg.mrg_1.to_er7() == "L0^^^JP1&1.2&ISO"
    pix = parse_message(
        pix_message(h, "T1", cx, ["^^^JP2&1.3&ISO"]), validation_level=VALIDATION_LEVEL.TOLERANT
    )
    assert (pix.name, pix.qpd.qpd_3.to_er7(), pix.rcp.rcp_1.to_er7()) == ("QBP_Q21", cx, "I")
    pdq = pdq_message(h, "T2", {"@PID.5.1.1": "山田"}, [], quantity=2, pointer="P1")
    parsed = parse_message(pdq, validation_level=VALIDATION_LEVEL.TOLERANT)
    assert (parsed.rcp.rcp_2.to_er7(), parsed.dsc.dsc_1.to_er7()) == ("2^RD", "P1")


WRONG = """\
schema_version: 1
id: wrong-expectation
title: expects the wrong answer
remarks: engine test
given:
  patients:
    p: {fresh: true}
  facilities:
    A: {disclosing: true}
steps:
  - feed: {from: A, patient: p}
    expect:
      - id: T-wrong
        title: deliberately wrong
        that: {MSA-1: AE, correlated: true}
  - feed: {from: A, patient: p}
    expect:
      - id: T-right
        that: {MSA-1: AA}
"""


def test_a_wrong_expectation_fails_with_evidence(hub: Target, world: WorldIndex) -> None:
    result = run([one(WRONG, "wrong.yaml")], replace(hub, salt="wrong"), world)
    wrong, right = result.scenarios[0].assertions
    assert not result.ok
    assert (wrong.status, right.status) == ("failed", "passed")
    assert wrong.message == "1 of 2 checks failed: MSA-1"
    msa, corr = wrong.checks
    assert (msa.subject, msa.expected, msa.actual, msa.passed) == ("MSA-1", "= AE", "AA", False)
    assert corr.passed
    assert wrong.location == f"wrong.yaml:{WRONG.splitlines().index('      - id: T-wrong') + 1}"
    [exchange] = wrong.evidence
    assert exchange.protocol == "mllp"
    assert "ADT^A04^ADT_A01" in exchange.request
    assert exchange.response is not None
    control_id = exchange.request.splitlines()[0].split("|")[9]
    assert f"MSA|AA|{control_id}" in exchange.response.splitlines()


STEPS_THAT_CANNOT_RUN = """\
schema_version: 1
id: cannot-run
title: the target cannot do it
remarks: engine test
given:
  patients:
    p: {fresh: true}
  facilities:
    A: {disclosing: true}
steps:
  - feed: {from: A, patient: p}
    expect: [{id: T-first, that: {MSA-1: AA}}]
  - link: {by: A, patient: p}
    expect: [{id: T-second, that: {status: 200}}]
"""


def test_unreachable_and_unsupported_steps(hub: Target, world: WorldIndex) -> None:
    nowhere = replace(hub, mllp=("127.0.0.1", 1), salt="x")
    result = run([one(STEPS_THAT_CANNOT_RUN)], nowhere, world)
    first, second = result.scenarios[0].assertions
    assert first.status == "error"
    assert "cannot connect to MLLP 127.0.0.1:1" in first.message
    assert (second.status, second.message.startswith("not run: step 1")) == ("error", True)
    assert not result.ok
    mllp_only = replace(hub, supports=frozenset({"feed", "wait"}), salt="y")
    result = run([one(STEPS_THAT_CANNOT_RUN)], mllp_only, world)
    first, second = result.scenarios[0].assertions
    assert (first.status, second.status) == ("passed", "skipped")
    assert "does not support link steps" in second.message
    assert result.ok  # skipped is reported, not failed
    no_http = replace(hub, http=None, salt="z")
    result = run([one(STEPS_THAT_CANNOT_RUN)], no_http, world)
    assert result.scenarios[0].assertions[1].status == "error"
    assert "no HTTP API address" in result.scenarios[0].assertions[1].message


# ------------------------------------------------------------------------------------------- external target


def test_external_target_mode(hub: Target, world: WorldIndex, tmp_path: Path) -> None:
    assert hub.mllp is not None
    assert hub.http is not None
    token = tmp_path / "admin.token"
    token.write_text(hub.admin_token or "", encoding="utf-8")
    tls = hub.mllp_tls
    assert tls is not None
    target = tmp_path / "target.yaml"
    target.write_text(
        f"""\
schema_version: 1
name: vendor-hub
mllp: {{host: {hub.mllp[0]}, port: {hub.mllp[1]}, tls: {{ca: "{tls.ca_file}", certs: "{tls.certs}"}}}}
http: {{base_url: "{hub.http}"}}
admin_token_file: admin.token
""",
        encoding="utf-8",
    )
    loaded = load_target(target, world)
    assert (loaded.kind, loaded.mllp, loaded.http, loaded.admin_token, loaded.mllp_tls) == (
        "external",
        hub.mllp,
        hub.http,
        hub.admin_token,
        tls,
    )
    assert loaded.describe()["mllp_transport"] == "TLS, mutual"
    no_tls = tmp_path / "no-tls.yaml"
    no_tls.write_text(re.sub(r", tls: \{.*\}\}", "}", target.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(TargetError, match="plain_mllp: true"):
        load_target(no_tls, world)  # plain MLLP only when the file says so
    no_tls.write_text(no_tls.read_text(encoding="utf-8") + "plain_mllp: true\n", encoding="utf-8")
    plain = load_target(no_tls, world)
    assert (plain.mllp_tls, plain.describe()["mllp_transport"]) == (None, "plain MLLP (no TLS)")
    assert "fault" not in loaded.supports  # no network file
    assert {"feed", "link", "pix_query"} <= loaded.supports
    options = RunOptions(
        scenarios_root=REPO / "scenarios",
        paths=[CONFORMANCE],
        keyword="iti9-found or iti9-unknown-patient or mllp-no-msh",
        target_file=target,
        world_dir=world.dir,
        report_dir=tmp_path / "report",
    )
    result, files = execute(options)
    assert result.target["name"] == "vendor-hub"
    assert result.target["kind"] == "external"
    assert {s.id for s in result.scenarios} == {"iti9-found", "iti9-unknown-patient", "mllp-no-msh"}
    assert result.ok, failures(result)
    assert files["json"].is_file()
    limited = tmp_path / "limited.yaml"
    limited.write_text(
        target.read_text().replace(
            "admin_token_file", "supports: [feed, pix_query, mllp_raw, wait]\nadmin_token_file"
        )
    )
    result, _ = execute(replace(options, target_file=limited))
    skipped = [a for a in result.assertions() if a.status == "skipped"]
    assert skipped
    assert all(a.scenario == "iti9-found" for a in skipped)
    assert result.ok
    broken = tmp_path / "broken.yaml"
    broken.write_text(target.read_text().replace("http:", "htp:"))
    with pytest.raises(FormatError, match=r"broken\.yaml:4: htp: unknown key"):
        load_target(broken, world)
    # A running live network: its network.json alone says where the hub is.
    network = {
        "hub": {
            "mllp": {
                "host": hub.mllp[0],
                "port": hub.mllp[1],
                "tls": {"ca": str(tls.ca_file), "certs": str(tls.certs)},
            },
            "http": {"base_url": hub.http},
            "admin_token_file": str(token),
        },
        "gateways": {},
        "shards": [],
    }
    (tmp_path / "network.json").write_text(json.dumps(network), encoding="utf-8")
    (tmp_path / "live.yaml").write_text(
        "schema_version: 1\nname: live\nnetwork: network.json\n", encoding="utf-8"
    )
    live = load_target(tmp_path / "live.yaml", world)
    assert (live.mllp, live.http, live.admin_token) == (hub.mllp, hub.http, hub.admin_token)
    assert "fault" not in live.supports  # no shards in that network
    result, _ = execute(replace(options, target_file=tmp_path / "live.yaml"))
    assert result.ok, failures(result)


# ------------------------------------------------------------------------------------------- rhin run


def _write_target(hub: Target, folder: Path, name: str = "live") -> Path:
    """A target file for the module's network: addresses, operator token, its bootstrap's regional IDs."""
    assert hub.mllp is not None
    (folder / "admin.token").write_text(hub.admin_token or "", encoding="utf-8")
    (folder / "ids.json").write_text(json.dumps(dict(hub.regional_ids or {})), encoding="utf-8")
    tls = hub.mllp_tls
    assert tls is not None
    path = folder / f"{name}.yaml"
    path.write_text(
        f"""\
schema_version: 1
name: {name}
mllp: {{host: {hub.mllp[0]}, port: {hub.mllp[1]}, tls: {{ca: "{tls.ca_file}", certs: "{tls.certs}"}}}}
http: {{base_url: "{hub.http}"}}
admin_token_file: admin.token
regional_ids: ids.json
local_files: true
""",
        encoding="utf-8",
    )
    return path


def test_rhin_run_end_to_end(hub: Target, mini_world: Path, tmp_path: Path) -> None:
    base = ["run", "--world", str(mini_world), "--scenarios", str(REPO / "scenarios"), "--jobs", "3"]
    (tmp_path / "wrong.yaml").write_text(WRONG, encoding="utf-8")
    passing = str(CONFORMANCE / "iti21-no-match.yaml")
    unmet = tmp_path / "needs-ishikawa.yaml"  # one assertion, skipped on the mini world
    unmet.write_text(NEEDS.format(name="ishikawa", world="{profile: ishikawa}"), encoding="utf-8")
    # The reference target: its own live network, started, bootstrapped and stopped by the run.
    reference = [
        *base,
        "--scrypt-cost",
        "4",
        "--report",
        str(tmp_path / "a"),
        passing,
        str(tmp_path / "wrong.yaml"),
    ]
    failed = CliRunner().invoke(app, reference)
    assert failed.exit_code == 1, failed.output
    assert "failed T-wrong" in failed.output.replace("\n", " ")
    report = json.loads((tmp_path / "a" / "report.json").read_text(encoding="utf-8"))
    assert (report["ok"], report["passed"], report["target"]["kind"]) == (False, False, "reference")
    assert report["target"]["bootstrapped"] is True
    facilities = json.loads((mini_world / "world.json").read_text(encoding="utf-8"))["facilities"]
    assert report["target"]["gateways"] == sum(f["network_role"] == "disclosing" for f in facilities)
    assert {"report.json", "junit.xml", "report.html"} <= {p.name for p in (tmp_path / "a").iterdir()}
    # An external target (the module's network): a skipped scenario fails the run unless skips are allowed.
    target = _write_target(hub, tmp_path)
    external = [*base, "--target", str(target), passing, str(unmet)]
    skipped = CliRunner().invoke(app, [*external, "--report", str(tmp_path / "b")])
    assert skipped.exit_code == 1, skipped.output
    assert "skipped assertions fail the run" in skipped.output
    report = json.loads((tmp_path / "b" / "report.json").read_text(encoding="utf-8"))
    assert (report["ok"], report["passed"], report["summary"]["skipped"]) == (True, False, 1)
    allowed = CliRunner().invoke(app, [*external, "--allow-skips", "--report", str(tmp_path / "c")])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads((tmp_path / "c" / "report.json").read_text(encoding="utf-8"))["passed"] is True
    unknown = CliRunner().invoke(app, [*external, "--param", "nope=1"])
    assert unknown.exit_code == 2
    assert "--param nope: no selected scenario declares it" in unknown.output.replace("\n", " ")
    none = CliRunner().invoke(app, [*base, "--target", str(target), "--tag", "no-such-tag"])
    assert none.exit_code == 2
    assert "no scenario matches" in none.output


def test_the_default_selection_leaves_out_default_false(tmp_path: Path) -> None:
    root = tmp_path / "scenarios"
    (root / "consent").mkdir(parents=True)
    (root / "consent" / "on.yaml").write_text(NEEDS.format(name="on", world="{}"), encoding="utf-8")
    off = NEEDS.format(name="off", world="{}").replace(
        "remarks: engine test\n", "remarks: x\ndefault: false\n"
    )
    assert "default: false" in off
    (root / "consent" / "off.yaml").write_text(off, encoding="utf-8")
    every = selected(RunOptions(scenarios_root=root))
    assert {s.id for s in every} == {"needs-on"}
    chosen = selected(RunOptions(scenarios_root=root, suites=["consent"]))
    assert {s.id for s in chosen} == {"needs-on", "needs-off"}
    real = selected(RunOptions(scenarios_root=REPO / "scenarios"))
    assert {s.suite for s in real} == {"conformance", "consent", "distributed", "latency", "security"}


NEEDS = """\
schema_version: 1
id: needs-{name}
title: a scenario with world needs
remarks: engine test
world: {world}
given:
  patients:
    p: {{fresh: true}}
  facilities:
    A: {{disclosing: true}}
steps:
  - feed: {{from: A, patient: p}}
    expect: [{{id: T-fed, that: {{MSA-1: AA}}}}]
"""


def test_world_needs_own_hubs_and_skips(hub: Target, world: WorldIndex) -> None:
    own = one(NEEDS.format(name="own", world="{own: true}"), "own.yaml")
    other = one(NEEDS.format(name="ishikawa", world="{profile: ishikawa}"), "ishikawa.yaml")
    big = one(NEEDS.format(name="big", world="{patients: 1000000}"), "big.yaml")
    plain = one(NEEDS.format(name="plain", world="{profile: [mini, ishikawa], patients: 10}"), "plain.yaml")
    given: list[str] = []

    @contextlib.contextmanager
    def own_hub(links: bool) -> Iterator[Target]:
        given.append(f"own links={links}")
        yield replace(hub, name="own hub")

    result = run([own, other, big, plain], replace(hub, salt="needs"), world, networks=own_hub)
    status = {s.id: s.assertions[0].status for s in result.scenarios}
    assert status == {
        "needs-own": "passed",
        "needs-ishikawa": "skipped",
        "needs-big": "skipped",
        "needs-plain": "passed",
    }
    assert given == ["own links=False"]
    messages = {s.id: s.assertions[0].message for s in result.scenarios}
    assert "profile ishikawa; this world is mini" in messages["needs-ishikawa"]
    assert "at least 1000000 patients" in messages["needs-big"]
    without = run([own], replace(hub, salt="needs2"), world)
    assert without.scenarios[0].assertions[0].status == "skipped"
    assert "a hub of its own" in without.scenarios[0].assertions[0].message


REPEATED = """\
schema_version: 1
id: repeated-pix
title: a repeated PIX query with a latency budget
remarks: engine test
params: {reps: 5, budget_ms: 10000}
given:
  patients:
    p: {fresh: true}
  facilities:
    A: {disclosing: true}
    C: {kind: clinic}
steps:
  - feed: {from: A, patient: p}
    expect: [{id: T-fed, that: {MSA-1: AA}}]
  - pix_query: {from: C, patient: p, at: A}
    repeat: {count: "${param.reps}", warmup: 2}
    expect:
      - {id: T-pix, that: {MSA-1: AA, QAK-2: NF}}
      - id: T-budget
        that: {latency.count: "${param.reps}", latency.p95: {le: "${param.budget_ms}"}, latency.min: {gt: 0}}
"""


def test_repeated_steps_time_every_repetition_and_keep_little_evidence(
    hub: Target, world: WorldIndex
) -> None:
    result = run([one(REPEATED)], replace(hub, salt="rep"), world, params={"reps": "7"})
    assert result.ok, failures(result)
    step = result.scenarios[0].steps[1]
    assert step.repeat is not None
    assert (step.repeat["count"], step.repeat["warmup"], len(step.repeat["latencies_ms"])) == (7, 2, 7)
    assert len(step.exchanges) == 9  # two warm-ups and seven timed repetitions
    assert [x.timed for x in step.exchanges] == [False, False] + [True] * 7
    full = [x for x in step.exchanges if x.request]
    assert [x.label.rsplit(" [", 1)[-1] for x in full] == ["warm-up 1/2]", "7/7]"]  # the first and the last
    assert all("timing only" in x.note for x in step.exchanges if not x.request)
    timed = [round(v, 3) for v in result.latencies()["pix_query"]]
    assert timed == step.repeat["latencies_ms"]  # warm-ups are not in the figures
    assert result.options["params"] == {"reps": "7"}
    # a budget the hub cannot meet, and an expectation one repetition after another fails
    text = REPEATED.replace("QAK-2: NF", "QAK-2: OK")
    slow = run([one(text)], replace(hub, salt="rep2"), world, params={"budget_ms": "0.0001"})
    pix, budget = slow.scenarios[0].assertions[1:]
    assert (pix.status, budget.status) == ("failed", "failed")
    assert pix.checks[1].actual == "NF (repetition 1 of 7)"
    assert [c.passed for c in budget.checks] == [True, False, True]
    kept = [x for x in slow.scenarios[0].steps[1].exchanges if x.request]
    assert len(kept) == 4  # the first three failing repetitions and the last


NEEDY = """\
schema_version: 1
id: needy-{name}
title: a scenario needing more than the target gives
remarks: engine test
world: {world}
given:
  patients:
    p: {{facilities: {{min: 1}}}}
  facilities:
    H: {{disclosing: true, local_id_of: p}}
steps:
  - world_file: {{patient: p, at: H, category: patient_basics}}
    capture: {{entry: "json:entry"}}
  - fetch: {{by: H, patient: p, source: H, entry: "${{entry}}", world_file: true}}
    expect: [{{id: T-fetched, that: {{world_file: identical}}}}]
"""


def test_needs_the_target_cannot_meet_are_skipped_with_the_reason(hub: Target, world: WorldIndex) -> None:
    clerk = one(NEEDY.format(name="clerk", world="{user_kinds: [clerk]}"), "clerk.yaml")
    held = one(NEEDY.format(name="held", world="{bootstrapped: true}"), "held.yaml")
    # A target whose file lists no clerk (the world's clerks left out), as a vendor's might.
    users = {code: tuple(u for u in found if u.viewer_kind != "clerk") for code, found in hub.users.items()}
    result = run([clerk, held], replace(hub, salt="needy", users=users), world)
    status = {s.id: (s.assertions[0].status, s.assertions[0].message) for s in result.scenarios}
    assert status["needy-held"] == ("passed", "")  # the world patient's rid from the bootstrap
    assert status["needy-clerk"][0] == "skipped"
    assert "needs hub users of kind clerk" in status["needy-clerk"][1]
    assert not result.passed()
    assert result.passed(allow_skips=True)
    elsewhere = replace(hub, salt="needy2", regional_ids=None, local_files=False)
    result = run([held, one(NEEDY.format(name="files", world="{}"), "files.yaml")], elsewhere, world)
    messages = {s.id: s.assertions[0].message for s in result.scenarios}
    assert "needs a hub that holds the world" in messages["needy-held"]
    assert "needs the world's files on this machine" in messages["needy-files"]
    assert all(s.assertions[0].status == "skipped" for s in result.scenarios)
