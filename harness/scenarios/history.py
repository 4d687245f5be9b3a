"""What earlier runs did to a long-lived target: the state file next to its target file.

A hub that lives on (a vendor's staging hub, a network ``rhin up`` started once) keeps what every run
changed. The reserved pool (:meth:`harness.scenarios.world.Allocator.allocate_all`) already keeps the world
patients that scenarios change apart from those that need the world's state; this file is the second line:
it records, before any scenario runs, which world patients the run's changing scenarios will use, and the
next run never gives one of them to a scenario that needs a patient as the world has it — also when the
pool moved (other scenario files, another rhin) or a run died half-way. It also lets ``rhin run --target``
say at the start what it knows of earlier runs, and keeps a new run's salt (fresh identities) off the earlier
runs' salts and fresh birth-date epochs.

The file (``<target file stem>.rhin-state.json`` beside the target file unless the target names one with
``state_file``) is JSON::

    {"format": "rhin-target-state", "format_version": 1, "target": "vendor-hub",
     "world": {"profile": "mini", "seed": 42}, "bootstrap": "<sha256 of the regional IDs>",
     "runs": [{"started": "...", "finished": "..." | null, "pid": 1234, "salt": "...",
               "changed": {"consent-viewer-kinds": ["P0000042"]}, "summary": {...} | null}]}

Choices: a run is recorded *before* it starts (``finished: null``), so a run that dies still counts; a run
that has not finished and whose process still lives makes the next one refuse (two runs at once would share
patients). A hub whose regional IDs differ from the record's (``regional_ids``: bootstrapped again with
other IDs, or another hub) makes the record inapplicable: it is moved aside to ``….previous.json`` and a new
one begins. A hub reset to the very same IDs cannot be told apart: delete the file then (keeping it only
costs patients). The record of another world refuses the run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .bindings import EPOCHS, fresh_epoch
from .errors import ScenarioError, TargetError
from .results import RunResult
from .world import WorldIndex

__all__ = ["FORMAT", "TargetHistory", "default_state_file"]

FORMAT: Final = "rhin-target-state"
_SHOWN: Final = 12  # patient IDs named in the start message (the rest counted)


def default_state_file(target_file: Path) -> Path:
    """``vendor.yaml`` → ``vendor.rhin-state.json`` in the same folder."""
    return target_file.with_name(f"{target_file.stem}.rhin-state.json")


def _fingerprint(regional_ids: Mapping[str, str] | None) -> str | None:
    if regional_ids is None:
        return None
    text = json.dumps(dict(sorted(regional_ids.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TargetHistory:
    """The state file of one target: read at the start of a run, written before and after it."""

    def __init__(
        self, path: Path, target_name: str, world: WorldIndex, regional_ids: Mapping[str, str] | None
    ) -> None:
        self.path = path
        self.notes: list[str] = []
        self._world = {"profile": world.profile, "seed": world.seed}
        self._bootstrap = _fingerprint(regional_ids)
        self._data: dict[str, Any] = {
            "format": FORMAT,
            "format_version": 1,
            "target": target_name,
            "world": self._world,
            "bootstrap": self._bootstrap,
            "runs": [],
        }
        self._current: dict[str, Any] | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TargetError(
                f"cannot read the target's state file {self.path}: {exc} (it records what earlier runs "
                "changed on the hub; fix it, or delete it if the hub was reset)"
            ) from exc
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("runs"), list)
        ):
            raise TargetError(f"{self.path} is not a rhin target state file (format {FORMAT!r})")
        if data.get("bootstrap") != self._bootstrap:
            aside = self.path.with_name(self.path.name.removesuffix(".json") + ".previous.json")
            os.replace(self.path, aside)
            self.notes.append(
                f"the hub's regional IDs are not those earlier runs saw (bootstrapped again?): their record "
                f"is set aside as {aside} and a new one begins"
            )
            return
        if data.get("world") != self._world:
            raise TargetError(
                f"{self.path} records runs with the world {data.get('world')}, not this one {self._world}: "
                "run with the world the hub holds (--world), or delete the file if the hub was reset"
            )
        for run in data["runs"]:
            if run.get("finished") is None and _alive(run.get("pid")):
                raise TargetError(
                    f"another run on this target is in progress (process {run.get('pid')}, started "
                    f"{run.get('started')}, recorded in {self.path}): runs at once would share patients"
                )
        self._data = data

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self._data["runs"])

    @property
    def changed(self) -> dict[str, list[str]]:
        """World patient ID → the scenarios whose runs changed it (every run recorded, finished or not)."""
        out: dict[str, list[str]] = {}
        for run in self._data["runs"]:
            for scenario, patients in (run.get("changed") or {}).items():
                for pid in patients:
                    if scenario not in out.setdefault(pid, []):
                        out[pid].append(scenario)
        return out

    def describe(self) -> str:
        """What is known of earlier runs, for the start of a run."""
        runs = self._data["runs"]
        if not runs:
            return f"no earlier run recorded on this target ({self.path} will record this one)"
        changed = self.changed
        unfinished = sum(1 for r in runs if r.get("finished") is None)
        first, last = runs[0].get("started"), runs[-1].get("started")
        plural = "s" if len(runs) != 1 else ""
        text = f"{len(runs)} earlier run{plural} on this target (first {first}, last {last}"
        text += f"; {unfinished} did not finish)" if unfinished else ")"
        if not changed:
            return text + ": no world patient changed"
        shown = sorted(changed)[:_SHOWN]
        more = f" and {len(changed) - len(shown)} more" if len(changed) > len(shown) else ""
        return (
            f"{text}: {len(changed)} world patient{'s are' if len(changed) != 1 else ' is'} no longer as the "
            f"world has {'them' if len(changed) != 1 else 'it'} — {', '.join(shown)}{more} — and no "
            f"scenario needing the world's state gets {'them' if len(changed) != 1 else 'it'} "
            f"(recorded in {self.path})"
        )

    def salt(self, salt: str, fixed: bool) -> str:
        """The run's salt: one no earlier run used, whose fresh birth-date epoch no earlier run used either
        (else fresh patients would meet their earlier selves in the hub). A random salt is drawn again; a salt
        the target file fixes is refused with the reason."""
        used = {str(r.get("salt")) for r in self._data["runs"]}
        epochs = {fresh_epoch(s) for s in used}
        if fixed:
            if salt in used or fresh_epoch(salt) in epochs:
                what = "was the salt" if salt in used else "gives the fresh birth dates"
                raise TargetError(
                    f"the target's salt {salt!r} {what} of an earlier run on this target ({self.path}): "
                    "its fresh patients would not be fresh; drop `salt` from the target file (a new one "
                    "each run) or choose another"
                )
            return salt
        if len(epochs) >= EPOCHS:
            raise TargetError(
                f"{len(used)} runs on this target used every fresh birth-date epoch ({EPOCHS}): reset "
                f"the hub and delete {self.path}"
            )
        while salt in used or fresh_epoch(salt) in epochs:
            salt = os.urandom(4).hex()
        return salt

    def begin(self, salt: str, plan: Mapping[str, list[str]]) -> None:
        """Record the run before it starts: the world patients its changing scenarios will use."""
        self._current = {
            "started": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
            "finished": None,
            "pid": os.getpid(),
            "salt": salt,
            "changed": {sid: list(pids) for sid, pids in sorted(plan.items()) if pids},
            "summary": None,
        }
        self._data["runs"].append(self._current)
        self._write()

    def finish(self, result: RunResult) -> None:
        """The run is over: its time and counts."""
        if self._current is None:
            raise ScenarioError("finish() before begin()")
        self._current["finished"] = dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")
        self._current["summary"] = result.summary()
        self._write()

    def abort(self, why: str) -> None:
        """The run stopped on an error: over, its patients still counted as changed."""
        if self._current is not None and self._current["finished"] is None:
            self._current["finished"] = dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")
            self._current["aborted"] = why
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self._data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
