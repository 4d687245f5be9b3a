"""The world as the SimPy model needs it, read once: the workload plan, the hub's facility directory and
access rules, link models, gateway shards, and each patient's entry counts per source and category.

Entry counts come from the world's ``events`` table (one event per SS-MIX2 message or document the
gateways serve), grouped by patient, facility and item category; an event category outside
:data:`synthetic.model.ITEM_CATEGORIES` counts as ``other``. That is what a gateway lists for the patient,
up to the few files the writers split or merge — a stated approximation: the model needs list *sizes*, not
the entries themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.gateway.shard import partition
from simulator.hub.facilities import Facilities
from simulator.links import LinkModel
from simulator.workload import Workload, WorkloadError, WorldPlan
from synthetic.model import ITEM_CATEGORIES
from synthetic.store import open_db, read_world_json

__all__ = ["DesWorld"]


@dataclass
class DesWorld:
    plan: WorldPlan
    facilities: Facilities
    links: dict[str, LinkModel]
    link_type: dict[str, str]  # facility code → link type name
    shard_of: dict[str, int]  # disclosing facility → shard index
    shards: int
    entries: dict[int, dict[str, dict[str, int]]]  # patient index → source → category → entries
    registered: int
    meta: dict[str, Any]  # world.json (re-partitioning the gateways for a ``shards`` what-if)

    @classmethod
    def load(cls, world_dir: Path, workload: Workload, seed: int, shards: int = 2) -> DesWorld:
        """Read ``world_dir`` (raises :class:`WorkloadError` for a missing or unreadable world)."""
        plan = WorldPlan(world_dir, workload, seed)
        try:
            meta = read_world_json(world_dir)
        except Exception as exc:
            raise WorkloadError(f"{world_dir}: {exc}") from exc
        facilities = Facilities.from_world(meta)
        links = LinkModel.from_world(meta.get("links", {}))
        link_type = {str(f["code"]): str(f.get("link_type", "")) for f in meta["facilities"]}
        groups = partition(meta, shards)
        shard_of = {code: i for i, group in enumerate(groups) for code in group}
        disclosing = {f.code for f in facilities.disclosing()}
        known = set(ITEM_CATEGORIES)
        entries: dict[int, dict[str, dict[str, int]]] = {}
        db = open_db(world_dir)
        try:
            rows = db.execute(
                "SELECT patient_index, facility_code, category, count(*) FROM events GROUP BY 1, 2, 3"
            )
            for patient, code, category, n in rows:
                if code not in disclosing:
                    continue
                cat = category if category in known else "other"
                per = entries.setdefault(patient, {}).setdefault(code, {})
                per[cat] = per.get(cat, 0) + n
        finally:
            db.close()
        return cls(
            plan=plan,
            facilities=facilities,
            links=links,
            link_type=link_type,
            shard_of=shard_of,
            shards=max(1, len(groups)),
            entries=entries,
            registered=int(meta.get("registered_patients") or len(plan.patients)),
            meta=meta,
        )
