"""The PIXv3/PDQv3 step runners: ``feed_v3`` (ITI-44), ``pix_query_v3`` (ITI-45), ``pdq_query_v3`` (ITI-47
with continuation and cancel), over :class:`harness.hl7v3client.V3Client`.

A v3 reply is observed as an HTTP reply whose JSON is :func:`reply_document`, so the existing subjects
(``status``, ``json:PATH``) and matchers apply unchanged. The client presents the ``from`` facility's
certificate (``cert:`` another facility, or ``none``) when the target's v3 endpoints use TLS; one client per
certificate per scenario, closed with the scenario (:func:`close`). Request ids derive from the scenario
tag and step (as MSH-10 does), so runs are reproducible.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from typing import Any, Final

import httpx
from lxml import etree

from harness.hl7v3client import V3Client, V3Patient, V3Reply, continuation, feed, pdq_query, pix_query
from simulator.pki import PkiError

from .context import Context
from .errors import StepError
from .model_v3 import FeedV3, PdqQueryV3, PixQueryV3
from .results import Exchange
from .runners import runs
from .steps_mllp import _person
from .subjects import HttpObservation

__all__ = ["close", "reply_document", "run_feed_v3", "run_pdq_v3", "run_pix_v3"]

Outcome = tuple[HttpObservation, list[Exchange]]
_V3: Final = "urn:hl7-org:v3:"
_FEEDS: Final = {"add": "PRPA_IN201301UV02", "revise": "PRPA_IN201302UV02", "merge": "PRPA_IN201304UV02"}
_LAST_PDQ: Final = "last-pdq"


def reply_document(reply: V3Reply, request_id: str) -> dict[str, Any]:
    """What scenarios look at (``json:…``): the fault or the acknowledgement, query status and counts,
    the returned patients (ids as ``"<extension>^<root>"``) and whether the reply answers this request."""
    doc: dict[str, Any] = {
        "action": reply.action,
        "correlated": bool(reply.request_message_id) and reply.relates_to == reply.request_message_id,
    }
    if reply.error:
        doc["error"] = reply.error
    if reply.fault_code:
        doc["fault"] = {
            "code": reply.fault_code,
            "subcode": reply.fault_subcode,
            "reason": reply.fault_reason,
        }
        return doc
    ids = [f"{ext}^{root}" for root, ext in reply.ids()]
    doc |= {
        "interaction": reply.interaction,
        "ack": reply.ack_code,
        "targets_request": reply.target_message == request_id,
        "details": reply.details,
        "query_status": reply.query_status,
        "query_id": reply.query_id[1],
        "patients": [{**p, "ids": [f"{i[1]}^{i[0]}" for i in p["ids"]]} for p in reply.patients],
        "ids": ids,
        "count": len(reply.patients),
    }
    doc |= reply.counts
    return doc


def close(ctx: Context) -> None:
    """Close the scenario's v3 clients."""
    for key, value in list(ctx.v3.items()):
        if isinstance(value, V3Client):
            value.close()
        del ctx.v3[key]


def _client(ctx: Context, cert: str) -> V3Client:
    target = ctx.target
    if target.soap is None:
        raise StepError(f"target {target.name} declares no v3 (SOAP) endpoint")
    key = f"client|{cert}"
    found = ctx.v3.get(key)
    if isinstance(found, V3Client):
        return found
    tls: ssl.SSLContext | None = None
    if target.soap_tls is not None:
        try:
            tls = target.soap_tls.context(None if cert == "none" else cert)
        except PkiError as exc:
            raise StepError(f"no client certificate to present: {exc}") from exc
    client = V3Client(target.soap, tls, target.http_timeout)
    ctx.v3[key] = client
    return client


def _sender(ctx: Context, a: FeedV3 | PixQueryV3 | PdqQueryV3) -> tuple[str, str]:
    if a.sender is None:
        f = ctx.facility(a.from_)
        return f.oid, f.code
    text = ctx.text(a.sender)
    if text in ctx.bindings.facilities:
        f = ctx.facility(text)
        return f.oid, f.code
    return "", text


def _oid(ctx: Context, value: str) -> str:
    """A facility variable or ``regional`` → its domain OID; anything else is a raw OID."""
    if value in ctx.bindings.facilities:
        return ctx.facility(value).oid
    if value == "regional":
        return ctx.target.regional_oid
    return ctx.text(value)


def _send(
    ctx: Context,
    a: FeedV3 | PixQueryV3 | PdqQueryV3,
    path_key: str,
    interaction: str,
    payload: etree._Element,
    label: str,
) -> Outcome:
    cert = a.cert if a.cert in (None, "none") else ctx.facility(a.cert or "").code
    client = _client(ctx, cert or ctx.facility(a.from_).code)
    path = ctx.target.soap_paths[path_key]
    action = ctx.text(a.action) if a.action is not None else _V3 + interaction
    control = ctx.control_id()  # the message id, as MSH-10: the same in every run with the same salt
    own_id = payload.find("{urn:hl7-org:v3}id")
    if own_id is not None:
        own_id.set("extension", control)
    message_id = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'rhin:' + control)}"
    data = client.envelope(action, payload, message_id, client.base_url + path)
    content_type = (
        ctx.text(a.content_type) if a.content_type is not None else "application/soap+xml; charset=UTF-8"
    )
    request_id = control
    started = time.perf_counter()
    try:
        reply = client.post(path, data, content_type)
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        note = f"no reply: {type(exc).__name__}: {exc}"
        obs = HttpObservation(0, {}, b"", elapsed, {"error": note, "correlated": False})
        return obs, [Exchange("http", label, _pretty(data), None, elapsed, note=note)]
    reply.request_message_id = message_id
    document = reply_document(reply, request_id)
    body = json.dumps(document, ensure_ascii=False).encode()
    obs = HttpObservation(
        reply.http_status, {"content-type": "application/json"}, body, reply.elapsed_ms, document
    )
    shown = f"HTTP {reply.http_status}\n{_pretty(reply.raw)}"
    return obs, [Exchange("http", label, f"POST {path}\n{_pretty(data)}", shown, reply.elapsed_ms)]


def _pretty(data: bytes) -> str:
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
        return etree.tostring(etree.fromstring(data, parser), pretty_print=True, encoding="unicode")
    except etree.XMLSyntaxError:
        return data[:4000].decode("utf-8", "replace")


@runs(FeedV3)
def run_feed_v3(ctx: Context, a: FeedV3) -> Outcome:
    domain = ctx.facility(a.domain or a.from_)
    binding = ctx.patient(a.patient)
    local = ctx.maybe(a.local_id) or binding.local_id(domain.code)
    root = ctx.text(a.id_root) if a.id_root is not None else domain.oid
    person = _person(ctx, a)  # type: ignore[arg-type]  # the same fields as a v2 Feed
    names = []
    if a.names in ("both", "kanji"):
        names.append((person.family_name, person.given_name, "IDE"))
    if a.names in ("both", "kana"):
        names.append((person.family_kana, person.given_kana, "SYL"))
    patient = V3Patient(
        root, local, names, person.birth_date, person.sex, person.address, person.postcode,
        (person.phone,) if person.phone else (),
    )  # fmt: skip
    prior = (root, ctx.text(a.merge_from)) if a.merge_from is not None else None
    payload = feed(a.kind, _sender(ctx, a), patient, prior)
    interaction = _FEEDS[a.kind]
    return _send(
        ctx, a, "feed", interaction, payload, f"ITI-44 {interaction} from {ctx.facility(a.from_).code}"
    )


@runs(PixQueryV3)
def run_pix_v3(ctx: Context, a: PixQueryV3) -> Outcome:
    if a.at == "regional":
        root = ctx.target.regional_oid
        local = ctx.maybe(a.local_id) or ctx.regional_id(a.patient, None)
    elif a.at is not None:
        at = ctx.facility(a.at)
        root = at.oid
        if a.local_id is not None:
            local = ctx.text(a.local_id)
        elif a.patient is not None:
            local = ctx.patient(a.patient).local_id(at.code)
        else:
            raise StepError("a v3 PIX query at a facility needs `patient` or `local_id`")
    else:
        root, local = "", ctx.maybe(a.local_id) or ""
    if a.id_root is not None:
        root = ctx.text(a.id_root)
    sources = [_oid(ctx, s) for s in a.data_sources]
    payload = pix_query(_sender(ctx, a), (root, local), sources, ctx.maybe(a.query_id) or ctx.query_tag())
    label = f"ITI-45 PRPA_IN201309UV02 from {ctx.facility(a.from_).code}"
    return _send(ctx, a, "pix", "PRPA_IN201309UV02", payload, label)


@runs(PdqQueryV3)
def run_pdq_v3(ctx: Context, a: PdqQueryV3) -> Outcome:
    sender = _sender(ctx, a)
    code = ctx.facility(a.from_).code
    if a.continue_ or a.cancel:
        last = ctx.v3.get(_LAST_PDQ)
        query_id = ("1.2.392.200250.9.4", ctx.text(a.query_id)) if a.query_id is not None else last
        if not isinstance(query_id, tuple):
            raise StepError("continue/cancel needs an earlier pdq_query_v3 in this scenario, or `query_id`")
        payload = continuation(sender, query_id, a.quantity, cancel=a.cancel)
        kind = "QUQI_IN000003UV01_Cancel" if a.cancel else "QUQI_IN000003UV01_Continue"
        return _send(ctx, a, "pdq", kind, payload, f"ITI-47 {kind} from {code}")
    assert a.criteria is not None
    c = a.criteria
    criteria: dict[str, Any] = {
        key: ctx.text(value)
        for key, value in (
            ("family", c.family), ("given", c.given), ("birth_date", c.birth_date), ("sex", c.sex),
            ("postcode", c.postcode), ("city", c.city),
        )
        if value is not None
    }  # fmt: skip
    criteria["name_use"] = c.name_use
    if c.id_at is not None or c.id_root is not None or c.id_extension is not None:
        root = ctx.text(c.id_root) if c.id_root is not None else _oid(ctx, c.id_at) if c.id_at else ""
        criteria["id"] = (root, ctx.maybe(c.id_extension) or "")
    criteria["other_ids"] = [_oid(ctx, o) for o in c.other_ids]
    criteria["extra"] = list(c.extra)
    query_id = ctx.maybe(a.query_id) or ctx.query_tag()
    ctx.v3[_LAST_PDQ] = ("1.2.392.200250.9.4", query_id)
    payload = pdq_query(sender, criteria, initial_quantity=a.quantity, query_id=query_id)
    return _send(ctx, a, "pdq", "PRPA_IN201305UV02", payload, f"ITI-47 PRPA_IN201305UV02 from {code}")
