"""``rhin calibrate``: measure, at low load, the service times the SimPy model needs, and fit them.

The target is the reference network for ``--world`` (started as ``rhin run`` starts it, *links off*: the
model adds the links itself, from the same link models) or an external hub from ``--target``. One request
at a time, from the harness's own clients (:class:`harness.hubclient.HubClient` over HTTP, the hub's
:class:`~simulator.hub.mllp.BlockingClient` for PIX / PDQ / ITI-8), over the workload plan's care sessions
(the patients a viewer really opens):

* **hub own work** per operation: login, logout, PIX, PDQ, the emergency grant and ITI-8 feeds are answered
  by the hub alone, so their whole time is its work, audit commit included (``includes_audit``: subtracting
  a typical commit from each sample leaves noise, not a service time). The timeline's comes from the hub's
  ``Server-Timing`` header (``plan`` + ``encode``: the fan-out to gateways and the audit are measured
  apart). A fetch's is the hub's time less the same entry fetched straight from its gateway.
* **audit commit**: the timeline's ``Server-Timing`` ``audit`` part (one group commit, alone).
* **gateways**, per shard: the list time straight from the gateway (its credential from the world) against
  the number of entries listed, and the fetch time against the bytes, each fitted as ``base + slope × x``
  by least squares (the base's distribution is the residuals' around the line, shifted to the intercept).
* **entry sizes** by item category, from the timelines' ``size`` fields.

Times include this client's own overhead on the same machine (a few hundred µs): the model's predictions
are of what a client sees, like the load report's. Lognormal fits (median and p95) are the default; the
file says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.hubclient import HubClient
from harness.scenarios.hl7build import CHARSETS, Header, feed_message, pdq_message, pix_message, plan_person
from harness.scenarios.world import WorldIndex
from harness.targets import ReferenceOptions, Target, load_target, reference_target
from hl7wire import BlockingClient, HL7Error, decode, encode
from simulator.des.calibration import Calibration, Dist, GatewayFit, Machine
from simulator.workload import PlannedSession, PlanPatient, WorldPlan, default_workload
from synthetic.clock import jst_now
from synthetic.store import read_world_json

__all__ = ["CalibrationRunError", "calibrate"]


class CalibrationRunError(Exception):
    """The target could not be calibrated (unreachable, no sessions, a request failed)."""


@dataclass
class _Samples:
    hub: dict[str, list[float]]
    audit: list[float]
    lists: dict[int, list[tuple[float, float]]]  # shard → (entries, ms)
    fetches: dict[int, list[tuple[float, float]]]  # shard → (bytes, ms)
    sizes: dict[str, list[int]]


def _linear(points: list[tuple[float, float]]) -> tuple[float, Dist]:
    """(slope ≥ 0, distribution of the intercept + residuals) of ms against x."""
    if not points:
        raise CalibrationRunError("no gateway measurements")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    slope = max(0.0, sum((x - mx) * (y - my) for x, y in points) / var) if var > 0 else 0.0
    base = [max(0.01, y - slope * x) for x, y in points]
    return round(slope, 6), Dist.fit(base)


def _timing(header: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        with contextlib.suppress(ValueError):
            out[name] = float(rest)
    return out


def _header(sender: str, charset: str, n: int, target: Target) -> Header:
    return Header(
        sender=sender,
        control_id=f"C{n}",
        timestamp=jst_now().strftime("%Y%m%d%H%M%S%z"),
        charset=charset,
        receiving_application=target.receiving_application,
        receiving_facility=target.receiving_facility,
    )


def _regional_id(raw: bytes, namespace: str) -> str | None:
    """The regional ID in a PIX answer: the PID-3 repetition whose CX.4 namespace is the hub's."""
    try:
        reply, _ = decode(raw)
    except HL7Error:
        return None
    for seg in reply.segments("PID"):
        d = seg.delimiters
        for rep in seg.field(3).split(d.repetition):
            comps = rep.split(d.component)
            if len(comps) > 3 and comps[0] and comps[3].split(d.subcomponent)[0] == namespace:
                return comps[0]
    return None


class _Probe:
    """One target, measured one request at a time."""

    def __init__(self, target: Target, plan: WorldPlan, world_dir: Path) -> None:
        if target.http is None or target.mllp is None:
            raise CalibrationRunError(f"target {target.name} needs both MLLP and HTTP to be calibrated")
        self.target = target
        self.plan = plan
        meta = read_world_json(world_dir)
        self.secrets = {str(f["code"]): str(f.get("gateway_secret", "")) for f in meta["facilities"]}
        self.gateways: dict[str, tuple[str, int]] = {}
        if target.network is not None:
            for code, gw in target.network.gateways.items():
                if gw.url:
                    self.gateways[code] = (gw.url.rstrip("/"), int(gw.shard or 0))
        self.http = httpx.Client(timeout=30.0, trust_env=False)
        self.s = _Samples(defaultdict(list), [], defaultdict(list), defaultdict(list), defaultdict(list))
        self.n = 0

    def close(self) -> None:
        self.http.close()

    def _mllp(self, facility: str, name: str, text: str, codec: str) -> bytes:
        """Time one exchange on an open connection: a first copy (another control ID) opens it, as the
        connection and TLS handshake are not the hub's per-message work."""
        host, port = self.target.mllp or ("127.0.0.1", 0)
        tls = self.target.mllp_tls.context(facility) if self.target.mllp_tls else None
        client = BlockingClient(host, port, timeout=30.0, tls=tls)
        control = f"|C{self.n}|"
        try:
            client.send(encode(text.replace(control, f"|W{self.n}|", 1), codec))
            started = time.perf_counter()
            raw = client.send(encode(text, codec))
            self.s.hub[name].append((time.perf_counter() - started) * 1000)
            return raw
        finally:
            client.close()

    def session(self, s: PlannedSession) -> None:
        self.n += 1
        fac = self.plan.facilities[s.facility]
        codec = CHARSETS[s.charset][0]
        with HubClient(self.target.http or "", timeout=30.0) as hub:
            login = hub.login(s.facility, s.user.user_id, s.user.password)
            if login.status != 200:
                raise CalibrationRunError(f"login of {s.user.user_id}@{s.facility}: HTTP {login.status}")
            self.s.hub["login"].append(login.elapsed_ms)
            hd = f"^^^{self.target.regional_namespace}&{self.target.regional_oid}&ISO"
            rid = (self.target.regional_ids or {}).get(s.patient.patient_id)
            if s.local_id:
                qpd3 = f"{s.local_id}^^^{fac.namespace}&{fac.oid}&ISO"
                raw = self._mllp(s.facility, "pix", pix_message(_header(s.facility, s.charset, self.n,
                                 self.target), f"Q{self.n}", qpd3, [hd]), codec)  # fmt: skip
                rid = rid or _regional_id(raw, self.target.regional_namespace)
            fields = {"@PID.5.1.1": s.patient.family_kana, "@PID.7": s.patient.birth_date.replace("-", "")}
            pdq = pdq_message(_header(s.facility, s.charset, self.n, self.target), f"P{self.n}", fields, [],
                              quantity=self.plan.workload.session.pdq_page)  # fmt: skip
            self._mllp(s.facility, "pdq", pdq, codec)
            if rid is None:
                raise CalibrationRunError(
                    f"no regional ID for {s.patient.patient_id}: is the hub bootstrapped?"
                )
            t = hub.timeline(rid)
            if t.status != 200:
                raise CalibrationRunError(f"timeline of {rid}: HTTP {t.status}")
            timing = _timing(t.headers.get("server-timing", ""))
            if "plan" in timing:
                self.s.hub["timeline"].append(timing["plan"] + timing.get("encode", 0.0))
                self.s.audit.append(timing.get("audit", 0.0))
            body = t.json()
            for src in body["sources"]:
                if src["status"] == "ok":
                    self._list(src["facility"], s.patient.local_ids.get(src["facility"], ""))
            entries = body["entries"]
            for e in entries:
                self.s.sizes[e["category"]].append(int(e["size"]))
            for e in entries[-2:]:
                f = hub.fetch(rid, e["source"], e["id"])
                if f.status == 200:
                    direct = self._fetch(e["source"], e["id"])
                    self.s.hub["fetch"].append(max(0.01, f.elapsed_ms - (direct or 0.0)))
            out = hub.logout()
            self.s.hub["logout"].append(out.elapsed_ms)

    def resolve(self, p: PlanPatient) -> str | None:
        """A patient's regional ID: the target's bootstrap map, else a (not timed) PIX query from a facility
        holding one of the patient's local IDs."""
        known = (self.target.regional_ids or {}).get(p.patient_id)
        if known is not None:
            return known
        host, port = self.target.mllp or ("127.0.0.1", 0)
        for code, local in sorted(p.local_ids.items()):
            fac = self.plan.facilities.get(code)
            if fac is None:
                continue
            hd = f"^^^{self.target.regional_namespace}&{self.target.regional_oid}&ISO"
            text = pix_message(_header(code, "utf-8", self.n, self.target), "R", f"{local}^^^{fac.namespace}&"
                               f"{fac.oid}&ISO", [hd])  # fmt: skip
            tls = self.target.mllp_tls.context(code) if self.target.mllp_tls else None
            client = BlockingClient(host, port, timeout=30.0, tls=tls)
            try:
                rid = _regional_id(client.send(encode(text, "utf-8")), self.target.regional_namespace)
            finally:
                client.close()
            if rid:
                return rid
        return None

    def emergency(self, s: PlannedSession, rid: str) -> None:
        with HubClient(self.target.http or "", timeout=30.0) as hub:
            if hub.login(s.facility, s.user.user_id, s.user.password).status != 200:
                return
            e = hub.emergency(rid, "救急搬送 (calibration)", 5)
            if e.status == 201:
                self.s.hub["emergency"].append(e.elapsed_ms)
            hub.logout()

    def feed(self, p: PlanPatient) -> None:
        code = sorted(c for c in p.local_ids if c in self.plan.facilities)[0]
        fac = self.plan.facilities[code]
        pid3 = f"{p.local_ids[code]}^^^{fac.namespace}&{fac.oid}&ISO^PI"
        text = feed_message(_header(code, "iso-2022-jp", self.n, self.target), "A08", pid3, plan_person(p))
        self._mllp(code, "feed", text, CHARSETS["iso-2022-jp"][0])

    def _get(self, code: str, path: str, params: dict[str, str] | None = None) -> tuple[float, bytes] | None:
        where = self.gateways.get(code)
        if where is None:
            return None
        headers = {"Authorization": f"Bearer {self.secrets.get(code, '')}"}
        started = time.perf_counter()
        r = self.http.get(where[0] + path, params=params, headers=headers)
        ms = (time.perf_counter() - started) * 1000
        return (ms, r.content) if r.status_code == 200 else None

    def _list(self, code: str, local_id: str) -> None:
        got = self._get(code, f"/patients/{local_id}/entries")
        if got is not None:
            import json

            n = len(json.loads(got[1]).get("entries", []))
            self.s.lists[self.gateways[code][1]].append((float(n), got[0]))

    def _fetch(self, code: str, entry_id: str) -> float | None:
        got = self._get(code, f"/entries/{entry_id}")
        if got is None:
            return None
        self.s.fetches[self.gateways[code][1]].append((float(len(got[1])), got[0]))
        return got[0]


def _fit(samples: _Samples, target: Target, source: str) -> Calibration:
    audit = Dist.fit(samples.audit) if samples.audit else Dist.constant(0.0)
    hub: dict[str, Dist] = {}
    for op in ("login", "logout", "pix", "pdq", "timeline", "fetch", "emergency", "feed"):
        values = samples.hub.get(op) or []
        if not values:
            raise CalibrationRunError(f"no measurement of {op}")
        hub[op] = Dist.fit(values)
    hub["pdq_next"] = hub["pdq"]
    shards = sorted(set(samples.lists) | set(samples.fetches)) or [0]
    gateways = []
    for i in range(max(shards) + 1):
        lists, fetches = samples.lists.get(i, []), samples.fetches.get(i, [])
        if not lists or not fetches:
            gateways.append(GatewayFit())
            continue
        per_entry, list_base = _linear(lists)
        per_byte, fetch_base = _linear(fetches)
        gateways.append(
            GatewayFit(
                list_base=list_base,
                list_per_entry_ms=per_entry,
                fetch_base=fetch_base,
                fetch_per_kb_ms=round(per_byte * 1000, 6),
            )
        )
    sizes = {c: round(sum(v) / len(v), 1) for c, v in sorted(samples.sizes.items()) if v}
    shard_count = len(target.network.shards) if target.network is not None and target.network.shards else 1
    return Calibration(
        schema_version=1,
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        source=source,
        machine=Machine(
            cores=os.cpu_count() or 1,
            hub_processes=1,
            gateway_shards=max(1, shard_count),
            platform=platform.platform(),
            python=platform.python_version(),
        ),
        hub=hub,
        audit_commit=audit,
        gateways=gateways,
        entry_bytes=sizes,
        includes_audit=["login", "pix", "pdq", "pdq_next", "emergency", "feed", "fetch"],
    )


@contextlib.contextmanager
def _target(world: WorldIndex, target_file: Path | None, scrypt_cost: int) -> Iterator[Target]:
    if target_file is not None:
        yield load_target(target_file, world)
        return
    data = Path(tempfile.mkdtemp(prefix="rhin-calibrate-"))
    try:
        with reference_target(
            world, data, options=ReferenceOptions(links=False, scrypt_cost=scrypt_cost)
        ) as t:
            yield t
    finally:
        shutil.rmtree(data, ignore_errors=True)


def calibrate(
    world_dir: Path,
    target_file: Path | None = None,
    *,
    sessions: int = 40,
    seed: int = 42,
    scrypt_cost: int = 14,
) -> Calibration:
    """Measure the target over ``sessions`` of the workload plan's care sessions (plus emergency grants and
    ITI-8 updates, one per session) and fit the calibration."""
    world = WorldIndex(world_dir)
    plan = WorldPlan(world_dir, default_workload(), seed)
    with _target(world, target_file, scrypt_cost) as target:
        probe = _Probe(target, plan, world_dir)
        try:
            done = emergencies = 0
            index = 0
            while done < sessions and index < sessions * 50:
                s = plan.session(index)
                index += 1
                if s.intent == "emergency" and emergencies < sessions:
                    rid = probe.resolve(s.patient)
                    if rid:
                        probe.emergency(s, rid)
                        emergencies += 1
                    continue
                if s.intent != "care":
                    continue
                probe.session(s)
                probe.feed(s.patient)
                done += 1
            if not probe.s.hub.get("emergency") and plan.emergency_patients and plan.emergency_viewers:
                for i in range(min(sessions, 10)):
                    p = plan.patients[plan.emergency_patients[i % len(plan.emergency_patients)]]
                    code = plan.emergency_viewers[i % len(plan.emergency_viewers)]
                    fac = plan.facilities[code]
                    rid = probe.resolve(p)
                    if rid and fac.users:
                        fake = PlannedSession(
                            -1, "emergency", code, fac.users[0], p, "", "pdq", "utf-8", (), ()
                        )
                        probe.emergency(fake, rid)
            where = "an external target" if target_file else f"the reference network for {world_dir}"
            cal = _fit(probe.s, target, f"{where}, links off, {done} sessions")
        finally:
            probe.close()
    return cal


def describe(cal: Calibration) -> list[tuple[str, str]]:
    """Rows for the terminal: what was fitted."""
    rows = [
        (f"hub {op}", f"median {d.median_ms:.2f} ms, p95 {d.p95_ms:.2f} ms (n={d.samples})")
        for op, d in cal.hub.items()
    ]
    rows.append(
        ("audit commit", f"median {cal.audit_commit.median_ms:.3f} ms, p95 {cal.audit_commit.p95_ms:.3f} ms")
    )
    for i, g in enumerate(cal.gateways):
        rows.append(
            (
                f"gateway shard {i}",
                f"list {g.list_base.median_ms:.2f} ms + {g.list_per_entry_ms:.4f} ms/entry; "
                f"fetch {g.fetch_base.median_ms:.2f} ms + {g.fetch_per_kb_ms:.4f} ms/kB",
            )
        )
    return rows
