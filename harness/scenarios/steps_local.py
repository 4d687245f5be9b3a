"""Steps that read the world's files on this machine (no hub involved): find a patient's file, and tell which
file a reference gateway's entry ID names.

The reference network's gateways serve the world directory's files, so a scenario can ask for an entry the
hub never lists (a category the source does not disclose) and compare a fetched body with the file itself.
Both read the world's storage, extended storage and PACS folders, and name files by the reference gateway's
entry IDs (:mod:`simulator.gateway.entries`); targets whose gateways serve other files do not declare
``local_files``, and these steps are skipped there.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.gateway.entries import (
    DATA_TYPES,
    EntryRef,
    document_ref_of_names,
    document_type,
    hl7_ref,
    image_ref,
    parse_entry_id,
)
from simulator.gateway.errors import EntryIdError

from .actions import Wait, WorldFile
from .context import Context
from .results import Exchange
from .runners import runs
from .subjects import HttpObservation, MllpObservation

__all__ = ["WorldEntry", "find_world_file", "run_wait", "run_world_file", "world_path"]


@dataclass(frozen=True)
class WorldEntry:
    ref: EntryRef
    path: Path  # absolute

    def as_json(self, world_dir: Path, facility: str) -> dict[str, Any]:
        return {
            "entry": self.ref.entry_id,
            "facility": facility,
            "kind": self.ref.kind,
            "category": self.ref.category,
            "data_type": self.ref.data_type,
            "path": str(self.path.relative_to(world_dir)),
            "size": self.path.stat().st_size,
        }


def world_path(world_dir: Path, source: str, entry_id: str) -> Path | None:
    """The file a reference gateway entry ID of facility ``source`` names (None: not an entry ID)."""
    try:
        ref = parse_entry_id(entry_id)
    except EntryIdError:
        return None
    return world_dir / ref.root / source / ref.path


def _current(flag_field: str) -> bool:
    return flag_field == "1"


def _hl7(root: Path, category: str, data_type: str | None) -> list[WorldEntry]:
    found = []
    types = [t for t, (c, _) in DATA_TYPES.items() if c == category and (data_type in (None, t))]
    for t in types:
        for path in sorted(root.glob(f"*/{t}/*")):
            if _current(path.name.rsplit("_", 1)[-1]):
                try:
                    found.append(WorldEntry(hl7_ref(path.name), path))
                except EntryIdError:
                    continue
    return found


def _documents(root: Path, category: str, data_type: str | None) -> list[WorldEntry]:
    found = []
    for main in sorted(root.glob("*/*/*/main_document*")):
        content, type_folder = main.parent, main.parent.parent
        code, cat = document_type(type_folder.name)
        if cat != category or data_type not in (None, code) or not _current(content.name.rsplit("_", 1)[-1]):
            continue
        try:
            found.append(WorldEntry(document_ref_of_names(type_folder.name, content.name, main.name), main))
        except EntryIdError:
            continue
    return found


def _images(world_dir: Path, facility: str, patient_index: int, local_id: str) -> list[WorldEntry]:
    db = sqlite3.connect(f"file:{world_dir / 'world.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT payload FROM events WHERE patient_index=? AND facility_code=? AND detail='full'"
            " AND status!='cancelled' AND instr(payload, '\"study_uid\"') > 0 ORDER BY event_id",
            (patient_index, facility),
        ).fetchall()
    finally:
        db.close()
    found = []
    for (payload,) in rows:
        data = json.loads(payload)
        folder = world_dir / "images" / facility / str(data["study_uid"])
        for path in sorted(folder.glob("*.dcm")):
            try:
                found.append(
                    WorldEntry(image_ref(local_id, str(data["modality"]), folder.name, path.name), path)
                )
            except EntryIdError:
                continue
    return found


def find_world_file(
    world_dir: Path,
    facility: str,
    patient_index: int,
    local_id: str,
    category: str,
    kind: str | None = None,
    data_type: str | None = None,
) -> WorldEntry | None:
    """The first (in path order) current file of the patient at the facility in ``category``."""
    pid_path = Path(local_id[0:3], local_id[3:6], local_id)
    if kind in (None, "hl7"):
        hl7 = _hl7(world_dir / "storage" / facility / pid_path, category, data_type)
        if hl7:
            return hl7[0]
    if kind in (None, "document"):
        documents = _documents(world_dir / "extended" / facility / pid_path, category, data_type)
        if documents:
            return documents[0]
    if kind in (None, "image") and category == "images":
        images = [
            e
            for e in _images(world_dir, facility, patient_index, local_id)
            if data_type in (None, e.ref.data_type)
        ]
        if images:
            return images[0]
    return None


@runs(WorldFile)
def run_world_file(ctx: Context, a: WorldFile) -> tuple[HttpObservation, list[Exchange]]:
    started = time.perf_counter()
    binding = ctx.patient(a.patient)
    facility = ctx.facility(a.at)
    local_id = binding.local_id(facility.code)
    found = find_world_file(
        ctx.world.dir, facility.code, binding.patient.index, local_id, a.category, a.kind, a.data_type
    )
    if found is None:
        status = 404
        what = f"{a.kind} file" if a.kind else "file"
        detail = f"no current {what} of {local_id} at {facility.code} in {a.category}"
        body: dict[str, Any] = {"detail": detail}
    else:
        status, body = 200, found.as_json(ctx.world.dir, facility.code)
    elapsed = (time.perf_counter() - started) * 1000
    text = json.dumps(body, ensure_ascii=False, indent=2)
    request = f"world file: {a.patient} ({local_id}) at {facility.code}, category {a.category}"
    request += f", kind {a.kind}" if a.kind else ""
    request += f", data type {a.data_type}" if a.data_type else ""
    obs = HttpObservation(status, {"content-type": "application/json"}, text.encode(), elapsed, body)
    return obs, [Exchange("note", f"world file {facility.code} {a.category}", request, text, elapsed)]


@runs(Wait)
def run_wait(ctx: Context, a: Wait) -> tuple[MllpObservation, list[Exchange]]:
    """Sleep ``ms``; the observation is an empty MLLP one (nothing was exchanged), timed."""
    started = time.perf_counter()
    time.sleep(a.ms / 1000)
    elapsed = (time.perf_counter() - started) * 1000
    return MllpObservation(None, None, "", False, elapsed), [
        Exchange("note", f"wait {a.ms} ms", "", None, elapsed)
    ]
