"""Partial timelines under gateway outages, live and modelled: the issue's check that "partial results grow
with the number of sources and their outage rates" (the model's curve and a live run agree in direction
and roughly in size).

Live (:func:`live_outages`): a reference network on a world (links off), and a fault injector that runs,
for every disclosing facility, an alternating renewal process — up for an exponential time of mean
``mtbf_s``, then ``down`` (the gateway's listener closed: connections refused) for an exponential time of
mean ``mttr_s`` — through the shards' fault API. Meanwhile one client opens the timelines of the workload
plan's care sessions one after another, and counts, per number of sources the hub asked (``ok``,
``timeout``, ``error``), how many timelines were partial.

Modelled (:func:`model_outages`): the same world and plan in the model with the what-ifs ``mtbf_days`` and
``mttr_hours`` set to the same means, counted the same way (:attr:`Results.partial_by_sources`).

Two choices, stated: a live ``down`` gateway refuses at once (``error``) where the model's waits for the
hub's timeout (``timeout``), so the two agree on *whether* a timeline is partial, not on how long it took;
and the expected share is ``1 − ∏(1 − u)`` over a timeline's sources with ``u = mttr / (mtbf + mttr)``
(each source's down fraction), printed beside both. A live run of minutes sees few outages per gateway,
so its realised down fractions are also reported, with the share they predict for the timelines it sent
and how often "partial" matched "one of its sources was down when it was sent".
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.hubclient import HubClient, set_fault
from harness.scenarios.world import WorldIndex
from harness.targets import ReferenceOptions, Target, reference_target
from simulator.des import DesModel, DesWorld, WhatIf
from simulator.des.calibration import Calibration
from simulator.workload import WorldPlan, default_workload

__all__ = ["expected_share", "live_outages", "model_outages"]


def expected_share(sources: int, mtbf_s: float, mttr_s: float) -> float:
    """The share of timelines with ``sources`` sources that meet at least one down (independent sources)."""
    if mtbf_s <= 0:
        return 0.0
    u = mttr_s / (mtbf_s + mttr_s)
    return 1 - (1 - u) ** sources


class _Injector(threading.Thread):
    """Every disclosing facility's gateway down and up as the module docstring says, until stopped."""

    def __init__(self, target: Target, codes: list[str], mtbf_s: float, mttr_s: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.target, self.codes, self.mtbf_s, self.mttr_s = target, codes, mtbf_s, mttr_s
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.switches = 0
        self.down: set[str] = set()  # down now (read by the client thread: a copy per timeline)
        self.down_s = dict.fromkeys(codes, 0.0)  # realised down time per gateway
        self._since: dict[str, float] = {}
        self.started = time.monotonic()

    def _set(self, code: str, mode: str) -> None:
        assert self.target.network is not None
        shard = self.target.network.shard_for(code)
        if shard is None:
            raise RuntimeError(f"no gateway shard serves {code}")
        out = set_fault(shard.admin_url, shard.admin_token, code, mode)
        if out.status != 200:
            raise RuntimeError(f"fault {mode} on {code}: HTTP {out.status}")
        self.switches += 1

    def _switch(self, code: str, up: bool) -> None:
        if up:
            self._set(code, "up")
            self.down = self.down - {code}
            self.down_s[code] += time.monotonic() - self._since.pop(code)
        else:
            self._set(code, "down")
            self._since[code] = time.monotonic()
            self.down = self.down | {code}

    def run(self) -> None:
        self.started = now = time.monotonic()
        due = {c: now + self.rng.expovariate(1 / self.mtbf_s) for c in self.codes}
        while not self.stop.is_set():
            code = min(due, key=due.__getitem__)
            if self.stop.wait(max(0.0, due[code] - time.monotonic())):
                break
            was_down = code in self.down
            self._switch(code, up=was_down)
            mean = self.mtbf_s if was_down else self.mttr_s
            due[code] = time.monotonic() + self.rng.expovariate(1 / mean)
        for code in sorted(self.down):
            self._switch(code, up=True)

    def fractions(self) -> dict[str, float]:
        """Each gateway's realised share of the run spent down."""
        span = max(time.monotonic() - self.started, 1e-9)
        return {c: d / span for c, d in self.down_s.items()}


class _Tally:
    """Per number of sources asked, [timelines, partial ones]; per set of sources asked, how many; and how
    often "partial" matched "a source was down when the timeline was sent"."""

    def __init__(self) -> None:
        self.by: dict[int, list[int]] = {}
        self.sets: dict[frozenset[str], int] = {}
        self.matched = 0
        self.checked = 0

    def add(self, sources: list[dict[str, Any]], down: set[str]) -> None:
        asked = [(str(x["facility"]), str(x["status"])) for x in sources if x["status"] in _ASKED]
        if not asked:
            return
        partial = any(st != "ok" for _, st in asked)
        row = self.by.setdefault(len(asked), [0, 0])
        row[0] += 1
        row[1] += partial
        codes = frozenset(c for c, _ in asked)
        self.sets[codes] = self.sets.get(codes, 0) + 1
        self.checked += 1
        self.matched += partial == bool(codes & down)

    def expected(self, fractions: dict[str, float]) -> float | None:
        """The partial share the realised down fractions predict for these timelines' sources."""
        total = sum(self.sets.values())
        if not total:
            return None
        share = 0.0
        for codes, n in self.sets.items():
            up = 1.0
            for c in codes:
                up *= 1 - fractions.get(c, 0.0)
            share += n * (1 - up)
        return round(share / total, 4)


_ASKED = ("ok", "timeout", "error")


def _timelines(
    target: Target,
    plan: WorldPlan,
    seconds: float,
    timeout_ms: int,
    every_s: float,
    injector: _Injector | None,
) -> _Tally:
    """Care sessions' timelines for ``seconds``, one every ``every_s`` seconds on a fixed schedule (at once
    when late): time-uniform sampling, as the model's Poisson arrivals are — back to back, a down gateway's
    fast refusals would be over-sampled."""
    tally = _Tally()
    clients: dict[tuple[str, str], HubClient] = {}
    start = time.monotonic()
    end = start + seconds
    sent = 0
    try:
        for i in range(10**9):
            now = time.monotonic()
            if now >= end:
                break
            s = plan.session(i)
            rid = (target.regional_ids or {}).get(s.patient.patient_id)
            if s.intent != "care" or rid is None:
                continue
            hub = clients.get((s.facility, s.user.user_id))
            if hub is None:
                hub = clients[(s.facility, s.user.user_id)] = HubClient(target.http or "", timeout=30.0)
                if hub.login(s.facility, s.user.user_id, s.user.password).status != 200:
                    raise RuntimeError(f"login of {s.user.user_id}@{s.facility} failed")
            time.sleep(max(0.0, start + sent * every_s - now))
            sent += 1
            down = set(injector.down) if injector is not None else set()
            reply = hub.timeline(rid, timeout_ms=timeout_ms)
            if reply.status != 200:
                raise RuntimeError(f"timeline of {rid}: HTTP {reply.status}")
            tally.add(reply.json()["sources"], down)
    finally:
        for c in clients.values():
            c.close()
    return tally


def live_outages(
    world_dir: Path,
    settings: list[tuple[float, float]],
    seconds: float,
    timeout_ms: int = 2000,
    seed: int = 42,
    every_s: float = 0.05,
) -> list[dict[str, Any]]:
    """One reference network; per ``(mtbf_s, mttr_s)`` setting (``mtbf_s`` 0: no outages) a run of
    ``seconds`` with the injector on; per setting the partial counts by number of sources."""
    world = WorldIndex(world_dir)
    plan = WorldPlan(world_dir, default_workload(), seed)
    codes = sorted(code for code, f in plan.facilities.items() if f.network_role == "disclosing")
    data = Path(tempfile.mkdtemp(prefix="rhin-outages-"))
    out = []
    try:
        with reference_target(world, data, options=ReferenceOptions(links=False, scrypt_cost=4)) as target:
            for k, (mtbf_s, mttr_s) in enumerate(settings):
                injector = _Injector(target, codes, mtbf_s, mttr_s, seed + k) if mtbf_s > 0 else None
                if injector is not None:
                    injector.start()
                try:
                    tally = _timelines(target, plan, seconds, timeout_ms, every_s, injector)
                finally:
                    if injector is not None:
                        injector.stop.set()
                        injector.join(30)
                row = _row(mtbf_s, mttr_s, tally.by, injector.switches if injector else 0)
                fractions = injector.fractions() if injector else {}
                row["down_fractions"] = {c: round(f, 4) for c, f in fractions.items()}
                row["expected_from_realised"] = tally.expected(fractions)
                row["partial_matches_down"] = (
                    round(tally.matched / tally.checked, 4) if tally.checked else None
                )
                out.append(row)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return out


def model_outages(
    world_dir: Path, calibration: Calibration, settings: list[tuple[float, float]], seed: int = 42
) -> list[dict[str, Any]]:
    """The model on the same world and plan, per setting: the what-ifs ``mtbf_days`` / ``mttr_hours`` at
    the same means, a high session rate (the share does not depend on load), two simulated hours each."""
    world = DesWorld.load(world_dir, default_workload(), seed, shards=calibration.machine.gateway_shards)
    out = []
    for mtbf_s, mttr_s in settings:
        whatif = WhatIf(
            feeds=False, think_scale=0, mtbf_days=mtbf_s / 86_400, mttr_hours=max(mttr_s, 1e-3) / 3600
        )
        model = DesModel(world, calibration, whatif, seed=seed, rate_override=5.0)
        res = model.run(7200.0)
        out.append(_row(mtbf_s, mttr_s, res.partial_by_sources, 0))
    return out


def _row(mtbf_s: float, mttr_s: float, by: dict[int, list[int]], switches: int) -> dict[str, Any]:
    timelines = sum(t for t, _ in by.values())
    partial = sum(p for _, p in by.values())
    return {
        "mtbf_s": mtbf_s,
        "mttr_s": mttr_s,
        "timelines": timelines,
        "partial_share": round(partial / timelines, 4) if timelines else None,
        "by_sources": {
            n: {
                "timelines": t,
                "partial_share": round(p / t, 4) if t else None,
                "expected": round(expected_share(n, mtbf_s, mttr_s), 4),
            }
            for n, (t, p) in sorted(by.items())
        },
        "fault_switches": switches,
    }
