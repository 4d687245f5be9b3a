"""The conformance suite's PIXv3/PDQv3 scenarios (tags pixv3, pdqv3): they pass against the reference hub,
and every one of their assertions fails against some broken v3 hub — a proxy in front of the hub's SOAP
listener that behaves like a plausible bug (codes flipped, details or patients dropped, IDs garbled,
counts off, replies not correlated, faults answered as success, feeds acknowledged but not applied, names
without their JAHIS use). The hub runs in-process with plain MLLP and plain HTTP for SOAP, so the proxy is
a plain HTTP forwarder (the TLS path of the same scenarios runs in the default conformance suite against the
reference network: tests/test_scenarios_engine.py)."""

from __future__ import annotations

import asyncio
import copy
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.scenarios import LoadedScenario, WorldIndex, discover
from harness.scenarios.engine import run
from harness.targets import Target

from .hubrun import running_hub

REPO = Path(__file__).resolve().parents[1]
HL7 = "{urn:hl7-org:v3}"
WSA = "{http://www.w3.org/2005/08/addressing}"


@pytest.fixture(scope="module")
def world(mini_world: Path) -> WorldIndex:
    return WorldIndex(mini_world)


@pytest.fixture(scope="module")
def suite() -> list[LoadedScenario]:
    found = discover(REPO / "scenarios", [REPO / "scenarios" / "conformance"])
    return [s for s in found if {"pixv3", "pdqv3"} & set(s.scenario.tags)]


@pytest.fixture(scope="module")
def target(world: WorldIndex, mini_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with running_hub(mini_world, tmp_path_factory.mktemp("v3suite") / "data", plain_mllp=True) as hub:
        assert hub.soap is not None
        yield Target(
            name="v3-plain",
            kind="reference",
            mllp=hub.mllp,
            http=hub.base_url,
            users=world.users(),
            soap=f"http://{hub.soap[0]}:{hub.soap[1]}",
        )


def failures(result: object) -> str:
    return "\n".join(
        f"{a.status} {a.scenario} step {a.step} {a.assertion_id}: {a.message} {a.actual}"
        for a in result.assertions()  # type: ignore[attr-defined]
        if a.status != "passed"
    )


# ------------------------------------------------------------------------------------------- mutants

Mutator = Callable[[bytes, etree._Element], etree._Element | None]  # (request, reply envelope) → reply


def _all(root: etree._Element, path: str) -> list[etree._Element]:
    return list(root.iter(f"{HL7}{path}"))


def flip_codes(_: bytes, env: etree._Element) -> etree._Element:
    swap = {"AA": "AE", "AE": "AA", "AR": "AA", "OK": "NF", "NF": "OK"}
    for el in _all(env, "typeCode") + _all(env, "queryResponseCode"):
        el.set("code", swap.get(el.get("code", ""), "AA"))
    return env


def drop_details(_: bytes, env: etree._Element) -> etree._Element:
    for el in _all(env, "acknowledgementDetail"):
        el.getparent().remove(el)  # type: ignore[union-attr]
    return env


def other_detail(_: bytes, env: etree._Element) -> etree._Element:
    for el in _all(env, "acknowledgementDetail"):
        code = el.find(f"{HL7}code")
        if code is not None:
            code.set("code", "207")
            code.set("codeSystem", "2.16.840.1.113883.5.1100")
        for child in el.findall(f"{HL7}location") + el.findall(f"{HL7}text"):
            child.text = "/elsewhere"
    return env


def drop_patients(_: bytes, env: etree._Element) -> etree._Element:
    for el in _all(env, "subject"):
        if el.getparent() is not None and el.getparent().tag == f"{HL7}controlActProcess":  # type: ignore[union-attr]
            el.getparent().remove(el)  # type: ignore[union-attr]
    return env


def extra_patient(_: bytes, env: etree._Element) -> etree._Element:
    subjects = [s for s in _all(env, "subject") if s.find(f"{HL7}registrationEvent") is not None]
    if subjects:
        clone = copy.deepcopy(subjects[0])
        for pid in clone.iter(f"{HL7}id"):
            if pid.get("extension"):
                pid.set("extension", pid.get("extension", "") + "Z")
        subjects[0].addnext(clone)
    return env


def garble_ids(_: bytes, env: etree._Element) -> etree._Element:
    for patient in _all(env, "patient"):
        for pid in patient.findall(f"{HL7}id"):
            pid.set("extension", pid.get("extension", "") + "X")
    for name in _all(env, "name"):
        for part in list(name):
            part.text = (part.text or "") + "X"
        if name.get("use"):
            del name.attrib["use"]
    for el in _all(env, "birthTime") + _all(env, "administrativeGenderCode"):
        el.attrib.clear()
    return env


def off_counts(_: bytes, env: etree._Element) -> etree._Element:
    for name in ("resultTotalQuantity", "resultCurrentQuantity", "resultRemainingQuantity"):
        for el in _all(env, name):
            el.set("value", str(int(el.get("value", "0")) + 1))
    for qid in _all(env, "queryId"):
        qid.set("extension", "other")
    return env


def uncorrelated(_: bytes, env: etree._Element) -> etree._Element:
    for el in env.iter(f"{WSA}RelatesTo", f"{WSA}Action"):
        el.text = "urn:uuid:someone-else" if el.tag.endswith("RelatesTo") else "urn:hl7-org:v3:Other"
    for el in _all(env, "targetMessage"):
        for i in el.findall(f"{HL7}id"):
            i.set("extension", "other")
    for el in _all(env, "interactionId"):
        el.set("extension", "Other")
    root = env.find(".//{http://www.w3.org/2003/05/soap-envelope}Body")
    if root is not None and len(root):
        root[0].tag = f"{HL7}Other"
    return env


def _ok(request: bytes) -> etree._Element:
    """An AA acknowledgement to anything, with a correlated envelope: what a lax hub answers."""
    req = etree.fromstring(request)
    message_id = req.findtext(f".//{WSA}MessageID", "")
    body = req.find(".//{http://www.w3.org/2003/05/soap-envelope}Body")
    hl7 = body[0] if body is not None and len(body) else None
    own = hl7.find(HL7 + "id") if hl7 is not None else None
    extension = own.get("extension", "") if own is not None else ""
    text = (
        '<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"'
        ' xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header>'
        "<wsa:Action>urn:hl7-org:v3:MCCI_IN000002UV01</wsa:Action>"
        f"<wsa:RelatesTo>{message_id}</wsa:RelatesTo></soap:Header><soap:Body>"
        '<MCCI_IN000002UV01 xmlns="urn:hl7-org:v3"><acknowledgement><typeCode code="AA"/><targetMessage>'
        f'<id extension="{extension}"/>'
        "</targetMessage></acknowledgement></MCCI_IN000002UV01></soap:Body></soap:Envelope>"
    )
    return etree.fromstring(text.encode())


def faults_as_ok(request: bytes, env: etree._Element) -> etree._Element:
    if env.find(".//{http://www.w3.org/2003/05/soap-envelope}Fault") is not None:
        return _ok(request)
    return env


FEED = re.compile(rb"PRPA_IN20130[124]UV02</wsa:Action>")


def feeds_not_applied(request: bytes, env: etree._Element | None) -> etree._Element | None:
    """Feeds are acknowledged AA and dropped (``None`` before forwarding: not forwarded at all)."""
    if FEED.search(request):
        return _ok(request)
    return env


MUTANTS: dict[str, tuple[Mutator, bool]] = {  # name → (mutator, decide before forwarding)
    "flip-codes": (flip_codes, False),
    "drop-details": (drop_details, False),
    "other-detail": (other_detail, False),
    "drop-patients": (drop_patients, False),
    "extra-patient": (extra_patient, False),
    "garble-ids": (garble_ids, False),
    "off-counts": (off_counts, False),
    "uncorrelated": (uncorrelated, False),
    "faults-as-ok": (faults_as_ok, False),
    "feeds-not-applied": (feeds_not_applied, True),  # type: ignore[dict-item]
}


@contextmanager
def mutating_proxy(upstream: str, mutate: Mutator, before: bool) -> Iterator[str]:
    """A plain HTTP proxy on a free port forwarding to ``upstream`` and rewriting each reply's envelope."""
    client = httpx.AsyncClient(base_url=upstream, timeout=15)

    async def handle(request: Request) -> Response:
        body = await request.body()
        if before:
            decided = mutate(body, None)  # type: ignore[arg-type]
            if decided is not None:
                return Response(etree.tostring(decided), 200, media_type="application/soap+xml")
        reply = await client.post(
            request.url.path, content=body, headers={"content-type": request.headers.get("content-type", "")}
        )
        try:
            env = etree.fromstring(reply.content)
        except etree.XMLSyntaxError:
            return Response(reply.content, reply.status_code, media_type=reply.headers.get("content-type"))
        out = mutate(body, env)
        status = (
            200
            if out is not env and env.find(".//{http://www.w3.org/2003/05/soap-envelope}Fault") is not None
            else reply.status_code
        )
        return Response(etree.tostring(out), status, media_type="application/soap+xml")

    app = Starlette(routes=[Route("/{path:path}", handle, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        loop.run_until_complete(client.aclose())
        loop.close()


def test_the_v3_scenarios_pass(target: Target, world: WorldIndex, suite: list[LoadedScenario]) -> None:
    assert len(suite) >= 10
    result = run(suite, replace(target, salt="v3pass"), world, jobs=4)
    assert result.ok, failures(result)
    assert result.summary()["passed"] == sum(s.scenario.assertion_count for s in suite)


def test_every_v3_assertion_fails_under_some_broken_hub(
    target: Target, world: WorldIndex, suite: list[LoadedScenario]
) -> None:
    assert target.soap is not None
    baseline = run(suite, replace(target, salt="v3base"), world, jobs=4)
    assert baseline.ok, failures(baseline)
    killed: dict[tuple[str, str, int, str], list[str]] = {}
    for name, (mutate, before) in MUTANTS.items():
        with mutating_proxy(target.soap, mutate, before) as url:
            result = run(suite, replace(target, soap=url, salt=f"v3{name}"), world, jobs=4)
        for a in result.assertions():
            if a.status == "failed":
                assert a.evidence, f"{name}: {a.key} failed without evidence"
                killed.setdefault(a.key, []).append(name)
    # The v2 feeds (ITI8-003) and links (LINK-…) these scenarios set up with are the v2 suite's assertions,
    # failed by its MLLP and HTTP breakages (tests/test_scenarios_engine.py); everything v3 must fail here.
    v3_ids = [a for a in baseline.assertions() if not a.assertion_id.startswith(("ITI8-", "LINK-"))]
    survivors = [a.key for a in v3_ids if a.key not in killed]
    assert not survivors, f"v3 assertions no broken hub could fail: {survivors}"
