"""What the hub's HTTP routes share: the stores, the directory, the clock, and the answers they give.

One :class:`HubServices` per hub process, built by :func:`.server.run_hub` and handed to the FastAPI app;
the routes (:mod:`.api`, :mod:`.records`) stay thin over it. Two rules live here once:

* **State for the decision.** :meth:`HubServices.patient_state` gives :func:`.policy.may_view` the consent as
  the consent store holds it and the *linked facilities from the identity index*, the one source of truth
  for links (so linking needs one committed write, not two that could disagree after a crash).
* **Errors.** :class:`Refused` is the one error a route raises: an HTTP status, a stable machine-readable
  ``reason`` and a human message, rendered as ``{"detail": {"reason": ..., "message": ...}}``. Its
  ``audit_reason`` is what the audit log keeps when the answer must hide it (an unrelated facility's 404).
* **Who may know a patient exists.** :meth:`HubServices.require_known_to`: a facility linked to the
  patient, within the consent in force or holding a live grant under it (:func:`.policy.may_know`);
  anyone else gets exactly the 404 of an unknown regional ID, so IDs cannot be walked.
* **Floods of refusals.** :class:`RefusalAudit` audits 401, 400 and 413 answers, aggregating a flood.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synthetic.clock import JST, jst_now

from .accounts import Accounts, Session
from .audit import AuditEntry, AuditLog, AuditRecord
from .auditbatch import AuditBatcher
from .consents import ConsentStore
from .facilities import Facilities, FacilityInfo
from .index import REGIONAL_NAMESPACE, PatientIndex, UnknownPatientError
from .policy import PatientState, may_know

__all__ = ["HubServices", "RefusalAudit", "Refused"]


class Refused(Exception):  # noqa: N818 - an answer, not a fault
    """A decided refusal: HTTP ``status``, a stable ``reason`` code and a message for people."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str = "",
        headers: Mapping[str, str] | None = None,
        *,
        audit_reason: str = "",
    ):
        super().__init__(message or reason)
        self.status = status
        self.reason = reason
        self.message = message or reason
        self.headers = dict(headers or {})
        self.audit_reason = audit_reason or reason


def unknown_patient(regional_id: str, audit_reason: str = "") -> Refused:
    """The one 404 for a regional ID that does not exist — or that the caller may not know exists."""
    return Refused(404, "unknown-patient", f"no regional patient {regional_id!r}", audit_reason=audit_reason)


class RefusalAudit:
    """Audit of refusals that happen before any route logic (401 bad or missing token, 400, 413).

    One record per refusal, except in a flood: per (action, reason, source address) the first refusal of a
    ``window`` is recorded in full; later ones in that window are only counted, and one ``refusals-summary``
    record (details: the count and when the window opened) is written when the window closes. So a script
    hammering the hub with bad tokens costs two audit records per 10 s per address, not one per request,
    and nothing goes uncounted (except a window still open when the hub stops: :meth:`flush`).
    """

    def __init__(self, record: Any, window: float = 10.0, clock: Callable[[], dt.datetime] = jst_now) -> None:
        self._record = record
        self._clock = clock  # the network's time, for the summaries' "since"
        self.window = window
        self._open: dict[tuple[str, str, str], list[Any]] = {}  # key → [opened (monotonic), count, first]
        self._tasks: set[asyncio.Task[None]] = set()

    async def note(
        self, who: Session | tuple[str, str], action: str, reason: str, address: str, target: str
    ) -> None:
        key = (action, reason, address)
        now = asyncio.get_running_loop().time()
        entry = self._open.get(key)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            return
        if entry is not None:  # its window is over but its timer has not run yet
            self._expire(key, entry)
        entry = [now, 0, self._clock().isoformat()]
        self._open[key] = entry
        details = {"address": address}
        await self._record(who, action, "failure", target=target, reason=reason, details=details)
        # A timer, not a sleeping task: a loop that stops with the window open leaves nothing pending.
        asyncio.get_running_loop().call_later(self.window, self._expire, key, entry)

    def _expire(self, key: tuple[str, str, str], entry: list[Any]) -> None:
        if self._open.get(key) is not entry:
            return  # already summarised
        del self._open[key]
        if entry[1]:
            task = asyncio.get_running_loop().create_task(self._summary(key, entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _summary(self, key: tuple[str, str, str], entry: list[Any]) -> None:
        action, reason, address = key
        await self._record(
            ("", ""),
            "refusals-summary",
            "failure",
            target=action,
            reason=reason,
            details={"address": address, "count": entry[1], "since": entry[2]},
        )

    async def flush(self) -> None:
        """Write the summaries of every open window now (tests; a stopping hub)."""
        for key in list(self._open):
            entry = self._open.pop(key)
            if entry[1]:
                await self._summary(key, entry)
        for task in list(self._tasks):
            await task


@dataclass
class HubServices:
    facilities: Facilities
    index: PatientIndex
    accounts: Accounts
    consents: ConsentStore
    audit_log: AuditLog
    audit: AuditBatcher
    admin_token: str
    clock: Callable[[], dt.datetime] = jst_now

    def now(self) -> dt.datetime:
        """Aware JST now (audit records, tokens)."""
        return self.clock()

    def local_now(self) -> dt.datetime:
        """Naive JST now: the form :func:`.policy.may_view` and the consent store compare in."""
        return self.clock().astimezone(JST).replace(tzinfo=None)

    def facility(self, code: str) -> FacilityInfo:
        found = self.facilities.get(code)
        if found is None:
            raise Refused(404, "unknown-facility", f"no facility {code!r} in the network")
        return found

    def require_patient(self, regional_id: str) -> None:
        if not self.index.known(REGIONAL_NAMESPACE, regional_id):
            raise unknown_patient(regional_id)

    def require_known_to(self, facility: str, regional_id: str) -> PatientState:
        """The patient's current state, if ``facility`` may know the patient exists; else the 404 of an
        unknown ID (audited as ``not-related``). See :func:`.policy.may_know`."""
        now = self.local_now()
        state, _ = self.patient(regional_id, now.date())
        if not may_know(state, facility, now):
            raise unknown_patient(regional_id, "not-related")
        return state

    def linked_facilities(self, regional_id: str) -> frozenset[str]:
        """Facilities whose local ID is linked to the regional patient (from the identity index)."""
        return frozenset(self.local_ids(regional_id))

    def local_ids(self, regional_id: str) -> dict[str, str]:
        """Facility code → the local patient ID linked to the regional patient there."""
        return self._by_facility(self.index.identifiers(REGIONAL_NAMESPACE, regional_id)[1:])

    def _by_facility(self, identifiers: list[tuple[str, str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for namespace, local_id in identifiers:
            domain = self.index.directory.get(namespace)
            if domain is not None and domain.facility:
                out.setdefault(domain.facility, local_id)
        return out

    def patient(self, regional_id: str, on: dt.date | None = None) -> tuple[PatientState, dict[str, str]]:
        """A known patient's state for the decision and local IDs by facility, from one index read (the
        record routes' hot path); 404 ``unknown-patient`` as :meth:`require_patient`."""
        try:
            identifiers = self.index.identifiers(REGIONAL_NAMESPACE, regional_id)
        except UnknownPatientError:
            raise unknown_patient(regional_id) from None
        local = self._by_facility(identifiers[1:])
        stored = self.consents.state(regional_id, on)
        return dataclasses.replace(stored, linked_facilities=frozenset(local)), local

    def patient_state(self, regional_id: str, on: dt.date | None = None) -> PatientState:
        """Consent (in force on ``on``, default current), linked facilities (index) and emergency grants."""
        stored = self.consents.state(regional_id, on)
        if not self.index.known(REGIONAL_NAMESPACE, regional_id):
            return dataclasses.replace(stored, linked_facilities=frozenset())
        return dataclasses.replace(stored, linked_facilities=self.linked_facilities(regional_id))

    async def record(
        self,
        who: Session | tuple[str, str],
        action: str,
        outcome: str,
        *,
        patient: str = "",
        target: str = "",
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one audit record (committed before this returns, so before the caller answers)."""
        facility, user = (who.facility, who.user_id) if isinstance(who, Session) else who
        return await self.audit.record(
            AuditEntry(
                time=self.now(),
                actor_facility=facility,
                actor_user=user,
                action=action,
                outcome=outcome,
                patient=patient,
                target=target,
                reason=reason,
                details=details,
            )
        )
