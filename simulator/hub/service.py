"""What the hub's HTTP routes share: the stores, the directory, the clock, and the answers they give.

One :class:`HubServices` per hub process, built by :func:`.server.run_hub` and handed to the FastAPI app;
the routes (:mod:`.api`, :mod:`.records`) stay thin over it. Two rules live here once:

* **State for the decision.** :meth:`HubServices.patient_state` gives :func:`.policy.may_view` the consent as
  the consent store holds it and the *linked facilities from the identity index*, the one source of truth
  for links (so linking needs one committed write, not two that could disagree after a crash).
* **Errors.** :class:`Refused` is the one error a route raises: an HTTP status, a stable machine-readable
  ``reason`` and a human message, rendered as ``{"detail": {"reason": ..., "message": ...}}``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .accounts import Accounts, Session
from .audit import AuditBatcher, AuditEntry, AuditLog, AuditRecord
from .consents import ConsentStore
from .facilities import Facilities, FacilityInfo
from .hl7v2 import JST
from .index import REGIONAL_NAMESPACE, PatientIndex, UnknownPatientError
from .policy import PatientState

__all__ = ["HubServices", "Refused", "jst_clock"]


def jst_clock() -> dt.datetime:
    """The live network's clock: wall time in JST (the network's zone), aware."""
    return dt.datetime.now(JST)


class Refused(Exception):  # noqa: N818 - an answer, not a fault
    """A decided refusal: HTTP ``status``, a stable ``reason`` code and a message for people."""

    def __init__(self, status: int, reason: str, message: str = "", headers: Mapping[str, str] | None = None):
        super().__init__(message or reason)
        self.status = status
        self.reason = reason
        self.message = message or reason
        self.headers = dict(headers or {})


@dataclass
class HubServices:
    facilities: Facilities
    index: PatientIndex
    accounts: Accounts
    consents: ConsentStore
    audit_log: AuditLog
    audit: AuditBatcher
    admin_token: str
    clock: Callable[[], dt.datetime] = jst_clock

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
            raise Refused(404, "unknown-patient", f"no regional patient {regional_id!r}")

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
            raise Refused(404, "unknown-patient", f"no regional patient {regional_id!r}") from None
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
