"""``rhin calibrate``: measure, at low load, the service times the SimPy model needs, and fit them.

The target is the reference network for ``--world`` (started as ``rhin run`` starts it, *links off*: the
model adds the links itself, from the same link models) or an external hub from ``--target``. One request
at a time, from the harness's own clients (:class:`harness.hubclient.HubClient` over HTTP, the hub's
:class:`~simulator.hub.mllp.BlockingClient` for PIX / PDQ / ITI-8), over the workload plan's care sessions
(the patients a viewer really opens):

Requests go as Locust's viewer sends them: one HTTP connection kept across sessions (login … logout), and a
session's first MLLP exchange (its PIX or PDQ) on a new TLS connection, so the handshake is in that
exchange's time as it is in the load report's; a PDQ's next page and an ITI-8 feed on an open connection
(``feed``, as the "facility joins" burst sends them), and the same feed again on a new one
(``feed_fresh``, as Locust's feeder sends each register and update).

* **The reference network** (its process IDs in the network file): each request's CPU is read from the
  scheduler (:func:`harness.load.monitor.cpu_ns`, ns) for the hub, its password worker and each gateway
  shard, before and after it (``hub_measure: cpu``). The hub's CPU is its work per operation (the
  handshake's hub side included); the password worker's is ``login_hash``; the rest of what the client
  waited (the wall time less every process's CPU) is ``client``: the client's own work, the kernel, the
  audit commit's disk wait. What competes for cores in the model is then CPU, and only CPU.
* **An external target** (no process IDs): the whole wall time of a request the hub answers alone is its
  work (``hub_measure: wall``), the timeline's from its ``Server-Timing`` (``plan`` + ``encode``), a
  fetch's the hub's time less the same entry fetched straight from its gateway.
* Either way the audit writer's commit is included in the operations' times (``includes_audit``:
  subtracting a typical commit from each sample leaves noise); ``audit_commit`` is the timeline's
  ``Server-Timing`` ``audit`` part, which the slower-disk what-if scales.
* **gateways**, per shard: the list (fetch) straight from the gateway (its credential from the world)
  against the number of entries listed (bytes sent), fitted as ``base + slope × x`` by least squares (the
  base's distribution is the residuals' around the line, shifted to the intercept); the shard's CPU on
  the reference network, the wall time on an external one.
* **entry sizes** by item category, from the timelines' ``size`` fields.
* **the machine's speed** (:mod:`harness.load.speed`): readings before the measurements and after, their
  median in ``machine.speed``; a load run takes the same readings, and its validation scales the CPU times
  by the ratio (the machine here drifts by tens of per cent within an hour).

Lognormal fits (median and p95) are the default; the file says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from harness.hubclient import HttpOutcome, HubClient
from harness.load.monitor import (
    POOL_WORKER,
    children,
    cpu_ns,
    cpu_seconds,
    machine_cpu_seconds,
    machine_read_bytes,
    read_bytes,
)
from harness.load.run import monitored_pids
from harness.load.speed import SpeedReading, read_speed, summarise
from harness.scenarios.hl7build import CHARSETS, Header, feed_message, pdq_message, pix_message, plan_person
from harness.scenarios.world import WorldIndex
from harness.targets import ReferenceOptions, Target, load_target, reference_target
from hl7wire import BlockingClient, HL7Error, decode, encode
from simulator.des.calibration import (
    HUB_OPERATIONS,
    OPTIONAL_OPERATIONS,
    Background,
    Calibration,
    Dist,
    GatewayFit,
    Machine,
    Speed,
)
from simulator.workload import PlannedSession, PlanPatient, WorldPlan, default_workload
from synthetic.clock import jst_now
from synthetic.store import read_world_json

__all__ = ["BACKGROUND_WARN", "CalibrationRunError", "calibrate", "describe", "warnings"]

IDLE_S: Final = (5.0, 20.0)
"""How long the hub's idle CPU (its timers) is read before the light Locust run, to subtract it from its CPU
over the run: 1/20 of the run's length within these bounds. On an idle ``ishikawa`` hub 5-s windows of its
main thread read 3–10 ms (±0.7 ms/s): ±0.6 s over a 900-s light run in which the hub used 13–14 s, 5 % of
the load factor."""


class CalibrationRunError(Exception):
    """The target could not be calibrated (unreachable, no sessions, a request failed)."""


def _series() -> defaultdict[str, list[float]]:
    return defaultdict(list)


def _points() -> defaultdict[int, list[tuple[float, float]]]:
    return defaultdict(list)


@dataclass
class _Samples:
    """Everything measured; ``lists``/``fetches`` per shard as (entries or bytes, ms)."""

    hub: defaultdict[str, list[float]] = field(default_factory=_series)
    audit: list[float] = field(default_factory=list)
    lists: defaultdict[int, list[tuple[float, float]]] = field(
        default_factory=_points
    )  # shard → (entries, ms)
    fetches: defaultdict[int, list[tuple[float, float]]] = field(
        default_factory=_points
    )  # shard → (bytes, ms)
    sizes: defaultdict[str, list[float]] = field(default_factory=_series)
    client: defaultdict[str, list[float]] = field(default_factory=_series)
    hashing: list[float] = field(default_factory=list)
    server: defaultdict[str, list[float]] = field(default_factory=_series)  # every process's CPU per op
    burst_hash: list[float] = field(default_factory=list)  # the password worker's CPU per login in bursts
    list_bytes: list[tuple[int, int]] = field(default_factory=list)  # (entries, bytes) of each listing


@dataclass(frozen=True)
class _Cost:
    """One request: the client's wall time and the CPU each process spent on it (ms)."""

    wall: float
    hub: float
    hasher: float
    shards: tuple[float, ...]

    @property
    def rest(self) -> float:
        """What the client waited beyond every process's CPU."""
        return max(0.01, self.wall - self.hub - self.hasher - sum(self.shards))


def _local_network(pids: dict[str, int]) -> bool:
    """Are the network file's process IDs rhin's hub and gateway shards, running on this machine? (A network
    file from another host, or from containers, names processes that are not these.)"""
    if "hub" not in pids:
        return False
    for name, pid in pids.items():
        module = "simulator.hub" if name == "hub" else "simulator.gateway"
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        if module.encode() not in argv:
            return False
    return True


class _Meter:
    """CPU counters of the reference network's processes: the hub, its children (the password worker) and
    each gateway shard. A short pause before the second reading lets a process finish what it does after
    its answer has left."""

    SETTLE_S: Final = 0.002

    def __init__(self, pids: dict[str, int]) -> None:
        self.hub = pids["hub"]
        self.shards = [pids[k] for k in sorted(k for k in pids if k.startswith("gateways-"))]
        self.hasher: list[int] = []

    def refresh(self) -> None:
        """Find the hub's password worker (started at the first login)."""
        self.hasher = children(self.hub, POOL_WORKER)  # not the resource tracker, as rhin load's monitor

    def idle_hub_ms_per_s(self, seconds: float) -> float:
        """The hub's CPU while nobody asks it anything (its timers), in ms per second (``stat``: threads
        that end meanwhile still count, as they must over the light run's minutes)."""
        before = cpu_seconds(self.hub)
        time.sleep(seconds)
        return (cpu_seconds(self.hub) - before) * 1000 / seconds

    def read(self) -> tuple[int, int, list[int]]:
        return cpu_ns([self.hub]), cpu_ns(self.hasher), [cpu_ns([p]) for p in self.shards]

    @contextlib.contextmanager
    def cost(self, out: list[_Cost]) -> Iterator[None]:
        """Time the block (wall) and read every process's CPU around it; appends one :class:`_Cost`."""
        hub0, hash0, shards0 = self.read()
        started = time.perf_counter()
        yield
        wall = (time.perf_counter() - started) * 1000
        time.sleep(self.SETTLE_S)
        hub1, hash1, shards1 = self.read()
        out.append(
            _Cost(
                wall,
                (hub1 - hub0) / 1e6,
                (hash1 - hash0) / 1e6,
                tuple((b - a) / 1e6 for a, b in zip(shards0, shards1, strict=True)),
            )
        )


BACKGROUND_WARN: Final = (0.15, 1.0)
"""Other work during the probe above which ``rhin calibrate`` warns (:class:`_Background`): cores, and MB/s
read from disk. A clean probe on ``mini`` read 0.000 cores and 0.00 MB/s; with a ``du`` over the
``ishikawa`` world beside it, 0.13 cores and 24.4 MB/s (``du`` waits on the disk more than it computes)."""


class _Background:
    """What else the machine did while the probe measured, per second of the probe: every core's busy time
    (``/proc/stat``) less the network's processes' CPU and this process's own, in cores; and the bytes
    read from disk (``/proc/vmstat``) less theirs (``/proc/<pid>/io``), in MB/s.

    The probe reads each request's CPU per process, but not what a neighbour costs it: a ``du`` over the
    ``ishikawa`` world's 1.8 M files during stop 37's first calibration made its "cold" gateway listings
    read warm (1.5 ms + 0.03 ms/entry against 2.57 + 0.081 in a clean calibration an hour later) and two
    emergency grants wait ~0.8 s on the disk, and nothing in the file said so. The kernel's own work
    (softirqs of the loopback traffic, the journal) counts as other work, so a busy probe can read a
    little above zero on a quiet machine."""

    def __init__(self, meter: _Meter) -> None:
        self.meter = meter
        self._t0 = time.perf_counter()
        self._own0 = time.process_time()
        self._machine0 = machine_cpu_seconds(), machine_read_bytes()
        self._network0 = self._network()

    def _network(self) -> dict[int, tuple[float, int]]:
        """(CPU seconds, bytes read) of the network's processes and this one, by pid."""
        out = {}
        for pid in (self.meter.hub, *self.meter.shards, *self.meter.hasher, os.getpid()):
            with contextlib.suppress(OSError):  # a password worker that has ended
                out[pid] = (cpu_seconds(pid), read_bytes(pid))
        return out

    def read(self) -> Background | None:
        """Other work since the start (each figure ≥ 0); None without ``/proc``."""
        cpu, disk = machine_cpu_seconds(), machine_read_bytes()
        cpu0, disk0 = self._machine0
        if cpu is None or disk is None or cpu0 is None or disk0 is None:
            return None
        self.meter.refresh()
        wall = max(time.perf_counter() - self._t0, 1e-9)
        now = self._network()
        network = sum(
            c - self._network0.get(pid, (0.0, 0))[0] for pid, (c, _) in now.items() if pid != os.getpid()
        )
        own = time.process_time() - self._own0  # finer than stat's ticks for this process
        read = sum(b - self._network0.get(pid, (0.0, 0))[1] for pid, (_, b) in now.items())
        return Background(
            cores=round(max(0.0, (cpu - cpu0 - network - own) / wall), 3),
            read_mb_per_s=round(max(0.0, (disk - disk0 - read) / wall / 1e6), 3),
            seconds=round(wall, 1),
        )


def _linear(points: list[tuple[float, float]]) -> tuple[float, Dist]:
    """(slope ≥ 0, distribution of the intercept + residuals) of ms against x, fitted robustly.

    The slope is Theil–Sen's, the median of the pairwise slopes: cold reads make a few listings cost
    several times their neighbours, and a least-squares slope followed them (two calibrations of the same
    network fitted one shard's list cost per entry at 0.004 and 0.193 ms). The base is what is left of
    each point once the slope's part is taken off, fitted as every service time is (median, p95)."""
    if not points:
        raise CalibrationRunError("no gateway measurements")
    slope = max(0.0, _theil_sen(points))
    base = [max(0.01, y - slope * x) for x, y in points]
    return round(slope, 6), Dist.fit(base)


def _theil_sen(points: list[tuple[float, float]]) -> float:
    """The median of the slopes between every two points with different x (0 when there are none)."""
    xs = sorted(points)
    slopes = [(y1 - y0) / (x1 - x0) for i, (x0, y0) in enumerate(xs) for x1, y1 in xs[i + 1 :] if x1 > x0]
    return statistics.median(slopes) if slopes else 0.0


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
        pids = monitored_pids(target)
        self.meter = _Meter(pids) if _local_network(pids) else None
        self.http = httpx.Client(timeout=30.0, trust_env=False)
        self.hub = HubClient(target.http, timeout=30.0)  # one connection for every session, as Locust's
        self.s = _Samples()
        self.n = 0
        self.cold: set[tuple[str, str]] = set()  # (facility, local ID) listings already read

    def close(self) -> None:
        self.http.close()
        self.hub.close()

    # ----------------------------------------------------------------------------------- timing

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[list[_Cost]]:
        """Time one request as operation ``name``: its CPU per process on the reference network (hub's into
        ``hub``, the password worker's into ``hashing``, the rest of the wall time into ``client``), else
        its wall time into ``hub``."""
        costs: list[_Cost] = []
        if self.meter is None:
            started = time.perf_counter()
            yield costs
            self.s.hub[name].append((time.perf_counter() - started) * 1000)
            return
        with self.meter.cost(costs):
            yield costs
        c = costs[0]
        self.s.hub[name].append(max(0.01, c.hub))
        self.s.client[name].append(c.rest)
        self.s.server[name].append(c.hub + c.hasher + sum(c.shards))
        if name == "login":
            self.s.hashing.append(max(0.01, c.hasher))

    def _http(self, name: str, call: Callable[[], HttpOutcome]) -> HttpOutcome:
        with self._timed(name):
            return call()

    def _mllp(self, facility: str, name: str, text: str, codec: str, *, fresh: bool) -> bytes:
        """Time one exchange: with ``fresh``, on a new connection (connect and TLS handshake inside, as a
        session's first exchange); else on an open one (a first copy, another control ID, opens it)."""
        host, port = self.target.mllp or ("127.0.0.1", 0)
        tls = self.target.mllp_tls.context(facility) if self.target.mllp_tls else None
        payload = encode(text, codec)
        if fresh:
            with self._timed(name):
                client = BlockingClient(host, port, timeout=30.0, tls=tls)
                try:
                    return client.send(payload)
                finally:
                    client.close()
        client = BlockingClient(host, port, timeout=30.0, tls=tls)
        try:
            client.send(encode(text.replace(f"|C{self.n}|", f"|W{self.n}|", 1), codec))
            with self._timed(name):
                return client.send(payload)
        finally:
            client.close()

    # ----------------------------------------------------------------------------------- a session

    def session(self, s: PlannedSession) -> None:
        self.n += 1
        fac = self.plan.facilities[s.facility]
        codec = CHARSETS[s.charset][0]
        hub = self.hub
        if self.meter is not None:
            self.meter.refresh()
        login = self._http("login", lambda: hub.login(s.facility, s.user.user_id, s.user.password))
        if login.status != 200:
            raise CalibrationRunError(f"login of {s.user.user_id}@{s.facility}: HTTP {login.status}")
        hd = f"^^^{self.target.regional_namespace}&{self.target.regional_oid}&ISO"
        rid = (self.target.regional_ids or {}).get(s.patient.patient_id)
        if s.local_id:
            qpd3 = f"{s.local_id}^^^{fac.namespace}&{fac.oid}&ISO"
            raw = self._mllp(s.facility, "pix", pix_message(_header(s.facility, s.charset, self.n,
                             self.target), f"Q{self.n}", qpd3, [hd]), codec, fresh=True)  # fmt: skip
            rid = rid or _regional_id(raw, self.target.regional_namespace)
        fields = {"@PID.5.1.1": s.patient.family_kana, "@PID.7": s.patient.birth_date.replace("-", "")}
        pdq = pdq_message(_header(s.facility, s.charset, self.n, self.target), f"P{self.n}", fields, [],
                          quantity=self.plan.workload.session.pdq_page)  # fmt: skip
        self._mllp(s.facility, "pdq", pdq, codec, fresh=True)
        self._mllp(s.facility, "pdq_next", pdq, codec, fresh=False)
        if rid is None:
            raise CalibrationRunError(f"no regional ID for {s.patient.patient_id}: is the hub bootstrapped?")
        self._timeline(s, rid)
        out = self._http("logout", hub.logout)
        if out.status not in (200, 204):
            raise CalibrationRunError(f"logout of {s.user.user_id}@{s.facility}: HTTP {out.status}")

    def _timeline(self, s: PlannedSession, rid: str) -> None:
        """The timeline and a fetch of its last two entries. On the reference network the gateways' fits
        come from the shards' CPU *during the hub's requests* — the first listing of a patient, with its
        storage read cold as in a load run (a listing asked again straight after is warm and cheaper)."""
        hub = self.hub
        costs: list[_Cost] = []
        if self.meter is None:
            t = hub.timeline(rid)
            timing = _timing(t.headers.get("server-timing", ""))
            if "plan" in timing:
                self.s.hub["timeline"].append(timing["plan"] + timing.get("encode", 0.0))
        else:
            with self._timed("timeline") as costs:
                t = hub.timeline(rid)
            timing = _timing(t.headers.get("server-timing", ""))
        if t.status != 200:
            raise CalibrationRunError(f"timeline of {rid}: HTTP {t.status}")
        if "audit" in timing:
            self.s.audit.append(timing["audit"])
        body = t.json()
        listed: dict[int, int] = defaultdict(int)  # per shard, the sources it listed for this timeline
        for src in body["sources"]:
            if src["status"] == "ok":
                code = str(src["facility"])
                local_id = s.patient.local_ids.get(code, "")
                self._list(code, local_id, fit=not costs)
                if (where := self.gateways.get(code)) is not None:
                    listed[where[1]] += 1
                    self.cold.add((code, local_id))
        entries = body["entries"]
        for e in entries:
            self.s.sizes[e["category"]].append(int(e["size"]))
        if costs:  # per shard, the mean listing of its sources: (entries, CPU) over how many listed
            per_shard: dict[int, int] = defaultdict(int)
            for e in entries:
                if (where := self.gateways.get(str(e["source"]))) is not None:
                    per_shard[where[1]] += 1
            for shard, k in listed.items():
                cpu = max(0.01, costs[0].shards[shard])
                self.s.lists[shard].append((per_shard[shard] / k, cpu / k))
        for e in entries[-2:]:
            source, entry_id = str(e["source"]), str(e["id"])
            if self.meter is not None:
                with self._timed("fetch") as fetched:
                    f = hub.fetch(rid, source, entry_id)
                if f.status == 200 and (where := self.gateways.get(source)) is not None:
                    cpu = fetched[0].shards[where[1]]
                    self.s.fetches[where[1]].append((float(len(f.body)), max(0.01, cpu)))
                continue
            f = hub.fetch(rid, e["source"], e["id"])
            if f.status == 200:
                direct = self._fetch(e["source"], e["id"])
                self.s.hub["fetch"].append(max(0.01, f.elapsed_ms - (direct or 0.0)))

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

    def outside(self, s: PlannedSession, rid: str) -> None:
        """A viewer outside the patient's consent asks for the timeline: timed as ``refused`` (the hub
        decides without asking a gateway). Anything listed would be a consent leak: the calibration stops."""
        hub = self.hub
        if hub.login(s.facility, s.user.user_id, s.user.password).status != 200:
            raise CalibrationRunError(f"login of {s.user.user_id}@{s.facility} failed")
        t = self._http("refused", lambda: hub.timeline(rid))
        hub.logout()
        if t.status == 200 and (t.json().get("entries") or any(
            x.get("status") == "ok" for x in t.json().get("sources", [])
        )):  # fmt: skip
            raise CalibrationRunError(f"consent leak: {s.facility} outside the consent got {rid}'s timeline")
        if t.status not in (200, 403, 404):
            self._drop("refused")

    def hash_burst(self, s: PlannedSession, logins: int) -> None:
        """``logins`` logins at once (one user, as a burst of paced users sends them): the password worker's
        CPU per login while it hashes back to back (``burst``). A lone login's hash costs more CPU than one
        in a burst (measured on the 2-core VM: 26.8 ms against 23-24 ms), and bursts are where the worker's
        speed decides anything."""
        if self.meter is None or logins < 2:
            return
        body = {"facility": s.facility, "user_id": s.user.user_id, "password": s.user.password}
        url = (self.target.http or "").rstrip("/") + "/auth/login"

        def one(_: int) -> int:
            with httpx.Client(timeout=60.0, trust_env=False) as c:
                return c.post(url, json=body).status_code

        self.meter.refresh()
        costs: list[_Cost] = []
        with self.meter.cost(costs), ThreadPoolExecutor(logins) as pool:
            statuses = list(pool.map(one, range(logins)))
        if any(code != 200 for code in statuses):
            raise CalibrationRunError(f"burst of {logins} logins: HTTP {sorted(set(statuses))}")
        self.s.burst_hash.append(costs[0].hasher / logins)

    def emergency(self, s: PlannedSession, rid: str) -> None:
        hub = self.hub
        if hub.login(s.facility, s.user.user_id, s.user.password).status != 200:
            return
        e = self._http("emergency", lambda: hub.emergency(rid, "救急搬送 (calibration)", 5))
        if e.status != 201:  # a refused grant is no sample of a granted one
            self._drop("emergency")
        hub.logout()

    def _drop(self, name: str) -> None:
        for series in (self.s.hub, self.s.client):
            if series.get(name):
                series[name].pop()

    def feed(self, p: PlanPatient) -> None:
        code = sorted(c for c in p.local_ids if c in self.plan.facilities)[0]
        fac = self.plan.facilities[code]
        pid3 = f"{p.local_ids[code]}^^^{fac.namespace}&{fac.oid}&ISO^PI"
        text = feed_message(_header(code, "iso-2022-jp", self.n, self.target), "A08", pid3, plan_person(p))
        codec = CHARSETS["iso-2022-jp"][0]
        self._mllp(code, "feed", text, codec, fresh=False)
        # and as Locust's feeder sends a register or an update: alone, on a new connection (another ID)
        self._mllp(code, "feed_fresh", text.replace(f"|C{self.n}|", f"|F{self.n}|", 1), codec, fresh=True)

    def _get(self, code: str, path: str) -> tuple[float, bytes] | None:
        """A gateway's answer straight from it: (its cost in ms — the shard's CPU on the reference network,
        the wall time elsewhere — and the body), or None."""
        where = self.gateways.get(code)
        if where is None:
            return None
        headers = {"Authorization": f"Bearer {self.secrets.get(code, '')}"}
        costs: list[_Cost] = []
        if self.meter is None:
            started = time.perf_counter()
            r = self.http.get(where[0] + path, headers=headers)
            ms = (time.perf_counter() - started) * 1000
        else:
            with self.meter.cost(costs):
                r = self.http.get(where[0] + path, headers=headers)
            shard = where[1]
            ms = costs[0].shards[shard] if shard < len(costs[0].shards) else costs[0].wall
        return (max(0.01, ms), r.content) if r.status_code == 200 else None

    def cold_lists(self, per_shard: int, seed: int) -> None:
        """``per_shard`` more listings straight from each shard's gateways, of patients no request has read
        yet (their storage cold, as a load run finds most), so the list fit rests on hundreds of points,
        not on the few dozen the sessions gave."""
        if self.meter is None or per_shard <= 0:
            return
        order = list(range(len(self.plan.patients)))
        random.Random(seed).shuffle(order)
        wanted = {shard: per_shard for _, shard in self.gateways.values()}
        for i in order:
            if not any(wanted.values()):
                return
            for code, local_id in sorted(self.plan.patients[i].local_ids.items()):
                where = self.gateways.get(code)
                if where is None or wanted[where[1]] <= 0 or (code, local_id) in self.cold:
                    continue
                self.cold.add((code, local_id))
                if self._list(code, local_id):
                    wanted[where[1]] -= 1

    def _list(self, code: str, local_id: str, *, fit: bool = True) -> bool:
        """A listing straight from the gateway: its bytes per entry, and with ``fit`` its cost."""
        got = self._get(code, f"/patients/{local_id}/entries")
        if got is None:
            return False
        n = len(json.loads(got[1]).get("entries", []))
        if fit:
            self.s.lists[self.gateways[code][1]].append((float(n), got[0]))
        self.s.list_bytes.append((n, len(got[1])))
        return True

    def _fetch(self, code: str, entry_id: str) -> float | None:
        got = self._get(code, f"/entries/{entry_id}")
        if got is None:
            return None
        self.s.fetches[self.gateways[code][1]].append((float(len(got[1])), got[0]))
        return got[0]


def _hash_fit(samples: _Samples) -> Dist:
    """The password worker's CPU per login: lone logins' spread, centred on the burst's median when one was
    measured (a burst is where the worker's speed matters; lone hashes cost more)."""
    lone = Dist.fit(samples.hashing)
    if not samples.burst_hash:
        return lone
    median = sorted(samples.burst_hash)[(len(samples.burst_hash) - 1) // 2]
    ratio = lone.p95_ms / lone.median_ms if lone.median_ms else 1.0
    return Dist(
        median_ms=round(median, 4),
        p95_ms=round(median * ratio, 4),
        samples=len(samples.hashing) + len(samples.burst_hash),
    )


def _fit(samples: _Samples, target: Target, source: str) -> Calibration:
    audit = Dist.fit(samples.audit) if samples.audit else Dist.constant(0.0)
    hub: dict[str, Dist] = {}
    for op in HUB_OPERATIONS:
        values = samples.hub.get(op) or []
        if values:
            hub[op] = Dist.fit(values)
        elif op not in OPTIONAL_OPERATIONS:
            raise CalibrationRunError(f"no measurement of {op}")
    cpu = bool(samples.client)
    client = {op: Dist.fit(v) for op, v in samples.client.items() if v} if cpu else {}
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
    listed = sum(n for n, _ in samples.list_bytes)
    per_entry = round(sum(b for _, b in samples.list_bytes) / listed, 1) if listed else 400.0
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
        hub_measure="cpu" if cpu else "wall",
        login_hash=_hash_fit(samples) if cpu and samples.hashing else Dist.constant(0.0),
        client=client,
        audit_commit=audit,
        gateways=gateways,
        entry_bytes=sizes,
        list_bytes_per_entry=per_entry,
        includes_audit=[
            "login",
            "logout",
            "pix",
            "pdq",
            "pdq_next",
            "emergency",
            "feed",
            "feed_fresh",
            "fetch",
            *(["timeline", "refused"] if cpu else []),
        ],
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
    client_seconds: float = 0.0,
    client_rate: float = 1.0,
    processes: int = 2,
    gateway_lists: int = 100,
) -> Calibration:
    """Measure the target over ``sessions`` of the workload plan's care sessions (plus ITI-8 updates, one
    per session, and emergency grants and outside viewers' refused timelines, at least
    :data:`SPECIAL_SAMPLES` of each) and fit the calibration; on the reference network also
    ``gateway_lists`` cold listings per gateway shard (:meth:`_Probe.cold_lists`). With
    ``client_seconds``, a light Locust run (:mod:`.clientrun`: ``client_rate`` sessions/s on
    ``processes`` processes) then gives the client parts as the load generator sees them."""
    world = WorldIndex(world_dir)
    plan = WorldPlan(world_dir, default_workload(), seed)
    with _target(world, target_file, scrypt_cost) as target:
        readings = [read_speed() for _ in range(SPEED_READINGS)]
        probe = _Probe(target, plan, world_dir)
        background = _Background(probe.meter) if probe.meter is not None else None
        try:
            done = index = 0
            special = {"emergency": probe.emergency, "outside": probe.outside}
            counts = dict.fromkeys(special, 0)
            # outside viewers and emergency grants are a few % of the plan's sessions: the few met among
            # the care sessions (3 and 2 in 60 on ishikawa) fit their times no better than a guess, so
            # once the care sessions are done, look further into the plan until each has `wanted`
            wanted = min(sessions, SPECIAL_SAMPLES)
            while (done < sessions or min(counts.values()) < wanted) and index < sessions * 50:
                s = plan.session(index)
                index += 1
                if s.intent in special:
                    cap = sessions if done < sessions else wanted
                    if counts[s.intent] < cap and (rid := probe.resolve(s.patient)):
                        special[s.intent](s, rid)
                        counts[s.intent] += 1
                    continue
                if s.intent != "care" or done >= sessions:
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
            probe.cold_lists(gateway_lists, seed)
            first_care = next(p for p in map(plan.session, range(index)) if p.intent == "care")
            for _ in range(3):
                probe.hash_burst(first_care, 20)
            where = "an external target" if target_file else f"the reference network for {world_dir}"
            how = "CPU per process from the scheduler" if probe.meter else "wall times"
            cal = _fit(probe.s, target, f"{where}, links off, {done} sessions, {how}")
            if background is not None and (other := background.read()) is not None:
                cal = cal.model_copy(update={"machine": cal.machine.model_copy(update={"background": other})})
        finally:
            probe.close()
        if client_seconds > 0:
            if probe.meter is None or cal.hub_measure != "cpu":
                raise CalibrationRunError(
                    "the light Locust run needs the network's processes on this machine (their CPU is read)"
                )
            light = (client_seconds, client_rate, seed, processes)
            cal = _with_light_run(cal, probe.s, probe.meter, world_dir, target, *light)
        readings += [read_speed() for _ in range(SPEED_READINGS)]
    return _with_speed(cal, readings)


SPECIAL_SAMPLES: Final = 30
"""Outside viewers' refused timelines and emergency grants the calibration times at least (when its
sessions are that many and the plan's first ``50 × sessions`` sessions hold them)."""

SPEED_READINGS: Final = 5
"""Machine speed readings (:mod:`harness.load.speed`) before the measurements and as many after."""


def _with_speed(cal: Calibration, readings: list[SpeedReading]) -> Calibration:
    """``cal`` with the machine's speed over the calibration: the median of the readings."""
    read = summarise(readings)
    speed = Speed(python_ms=read["python_ms"], hash_ms=read["hash_ms"], readings=len(readings))
    return cal.model_copy(update={"machine": cal.machine.model_copy(update={"speed": speed})})


def _with_light_run(
    cal: Calibration,
    samples: _Samples,
    meter: _Meter,
    world_dir: Path,
    target: Target,
    seconds: float,
    rate: float,
    seed: int,
    processes: int,
) -> Calibration:
    """``cal`` with the hub's times scaled by the load run's factor and the client parts of a light Locust
    run where it had enough requests (the probe's elsewhere); see :mod:`.clientrun`."""
    from .clientrun import client_parts, light_run

    idle = meter.idle_hub_ms_per_s(min(IDLE_S[1], max(IDLE_S[0], seconds / 20)))
    folder = Path(tempfile.mkdtemp(prefix="rhin-calibrate-locust-"))
    try:
        hub0, started = cpu_seconds(meter.hub), time.perf_counter()
        latencies, counts = light_run(
            world_dir, target, folder, seconds=seconds, rate=rate, seed=seed, processes=processes
        )
        used = (cpu_seconds(meter.hub) - hub0) * 1000 - idle * (time.perf_counter() - started)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    expected = sum(n * cal.hub[op].median_ms for op, n in counts.items() if op in cal.hub)
    factor = round(min(3.0, max(1.0, used / expected)), 3) if expected > 0 else 1.0
    hub = {op: d.scaled(factor) for op, d in cal.hub.items()}
    extra = {op: (factor - 1) * statistics.median(v) for op, v in samples.hub.items() if v}
    server = {op: [c + extra.get(op, 0.0) for c in v] for op, v in samples.server.items()}
    parts = client_parts(latencies, server)
    if not parts:
        raise CalibrationRunError(f"the light Locust run ({seconds:g} s) gave too few requests to fit")
    runs = ", ".join(f"{op} {d.samples}" for op, d in parts.items())
    return cal.model_copy(
        update={
            "hub": hub,
            "client": {**cal.client, **parts},
            "source": f"{cal.source}; client parts and the hub's load factor {factor:g} (its CPU "
            f"{used / 1000:.1f} s against {expected / 1000:.1f} s predicted) from a light Locust run "
            f"({rate:g} sessions/s, {seconds:g} s, {processes} processes: {runs})",
        }
    )


def warnings(cal: Calibration) -> list[str]:
    """What in a calibration says it may not describe the machine at rest (the terminal's warnings)."""
    other = cal.machine.background
    if other is None:
        return []
    cores, read = BACKGROUND_WARN
    if other.cores <= cores and other.read_mb_per_s <= read:
        return []
    return [
        f"other work used {other.cores:.2f} cores and read {other.read_mb_per_s:.1f} MB/s from disk while "
        f"the probe measured (warned above {cores} cores or {read} MB/s): its times may not be the quiet "
        "machine's; calibrate again with nothing else running"
    ]


def describe(cal: Calibration) -> list[tuple[str, str]]:
    """Rows for the terminal: what was fitted."""
    rows = [
        (f"hub {op}", f"median {d.median_ms:.2f} ms, p95 {d.p95_ms:.2f} ms (n={d.samples})")
        for op, d in cal.hub.items()
    ]
    if cal.hub_measure == "cpu":
        h = cal.login_hash
        rows.append(("password hash", f"median {h.median_ms:.2f} ms, p95 {h.p95_ms:.2f} ms"))
        rows += [
            (
                f"client {op}",
                f"median {d.quantile_ms(0.5):.2f} ms, p95 {d.quantile_ms(0.95):.2f} ms ({d.kind})",
            )
            for op, d in cal.client.items()
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
    if (other := cal.machine.background) is not None:
        rows.append(
            (
                "other work while probing",
                f"{other.cores:.3f} cores, {other.read_mb_per_s:.2f} MB/s read "
                f"from disk ({other.seconds:g} s)",
            )
        )
    return rows
