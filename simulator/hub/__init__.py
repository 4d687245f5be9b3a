"""The reference hub: MLLP (PIX/PDQ), HTTP (login, linking, consent, audit, records), its stores and policy.

Wire: :mod:`hl7wire` (below every layer) and the hub's MLLP server :mod:`~simulator.hub.mllp`.
Identity: :mod:`~simulator.hub.index` and the PIX Manager / PDQ Supplier :mod:`~simulator.hub.pixpdq`.
Decision: :mod:`~simulator.hub.policy` (pure). Stores: :mod:`~simulator.hub.accounts`,
:mod:`~simulator.hub.consents`, :mod:`~simulator.hub.audit`. HTTP: :mod:`~simulator.hub.api` (the app) and
:mod:`~simulator.hub.routes` (one router per concern), with :mod:`~simulator.hub.records` (timeline and fetch
through gateways), over :mod:`~simulator.hub.service`.
Process: :mod:`~simulator.hub.server` (``rhin hub``, ``-m simulator.hub``).
"""

from simulator.hub.audit import AuditEntry, AuditLog
from simulator.hub.auditbatch import AuditBatcher
from simulator.hub.index import (
    REGIONAL_NAMESPACE,
    REGIONAL_OID,
    Domain,
    DomainDirectory,
    IdentityError,
    IndexDemographics,
    LinkConflictError,
    PatientIndex,
    SearchCriteria,
    UnknownDomainError,
    UnknownPatientError,
    normalize_kana,
)
from simulator.hub.mllp import EchoHandler, HL7Handler, MLLPServer, serve_echo
from simulator.hub.pixpdq import PixPdqHandler
from simulator.hub.policy import AccessRules, Decision, EmergencyGrant, PatientState, Viewer, may_view

__all__ = [
    "REGIONAL_NAMESPACE",
    "REGIONAL_OID",
    "AccessRules",
    "AuditBatcher",
    "AuditEntry",
    "AuditLog",
    "Decision",
    "Domain",
    "DomainDirectory",
    "EchoHandler",
    "EmergencyGrant",
    "HL7Handler",
    "IdentityError",
    "IndexDemographics",
    "LinkConflictError",
    "MLLPServer",
    "PatientIndex",
    "PatientState",
    "PixPdqHandler",
    "SearchCriteria",
    "UnknownDomainError",
    "UnknownPatientError",
    "Viewer",
    "may_view",
    "normalize_kana",
    "serve_echo",
]
