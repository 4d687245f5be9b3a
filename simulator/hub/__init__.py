"""The reference hub: MLLP (PIX/PDQ), HTTP (login, linking, consent, audit, records), its stores and policy.

Wire: :mod:`~simulator.hub.hl7v2`, :mod:`~simulator.hub.mllp`. Identity: :mod:`~simulator.hub.index` and the
PIX Manager / PDQ Supplier :mod:`~simulator.hub.pixpdq`. Decision: :mod:`~simulator.hub.policy` (pure).
Stores: :mod:`~simulator.hub.accounts`, :mod:`~simulator.hub.consents`, :mod:`~simulator.hub.audit`. HTTP:
:mod:`~simulator.hub.api` (the app) and :mod:`~simulator.hub.routes` (one router per concern), with
:mod:`~simulator.hub.records` (timeline and fetch through gateways), over :mod:`~simulator.hub.service`.
Process: :mod:`~simulator.hub.server` (``rhin hub``, ``-m simulator.hub``).
"""

from simulator.hub.audit import AuditBatcher, AuditEntry, AuditLog
from simulator.hub.hl7v2 import (
    CharsetError,
    ErrorCode,
    ErrorDetail,
    ErrorLocation,
    HL7Error,
    Message,
    ParseError,
    Segment,
    UndecodableError,
    UnencodableError,
    UnknownCharsetError,
    ack,
    basic_checks,
    charset_of,
    decode,
    encode,
    parse,
    parse_header,
)
from simulator.hub.index import (
    REGIONAL_NAMESPACE,
    REGIONAL_OID,
    Demographics,
    Directory,
    Domain,
    IdentityError,
    LinkConflictError,
    PatientIndex,
    SearchCriteria,
    UnknownDomainError,
    UnknownPatientError,
    normalize_kana,
)
from simulator.hub.mllp import (
    ConnectionClosedError,
    EchoHandler,
    FramingError,
    HL7Handler,
    MLLPClient,
    MLLPError,
    MLLPServer,
    SyncMLLPClient,
    serve_echo,
)
from simulator.hub.pixpdq import PixPdqHandler
from simulator.hub.policy import AccessRules, Decision, EmergencyGrant, PatientState, Viewer, may_view

__all__ = [
    "REGIONAL_NAMESPACE",
    "REGIONAL_OID",
    "AccessRules",
    "AuditBatcher",
    "AuditEntry",
    "AuditLog",
    "CharsetError",
    "ConnectionClosedError",
    "Decision",
    "Demographics",
    "Directory",
    "Domain",
    "EchoHandler",
    "EmergencyGrant",
    "ErrorCode",
    "ErrorDetail",
    "ErrorLocation",
    "FramingError",
    "HL7Error",
    "HL7Handler",
    "IdentityError",
    "LinkConflictError",
    "MLLPClient",
    "MLLPError",
    "MLLPServer",
    "Message",
    "ParseError",
    "PatientIndex",
    "PatientState",
    "PixPdqHandler",
    "SearchCriteria",
    "Segment",
    "SyncMLLPClient",
    "UndecodableError",
    "UnencodableError",
    "UnknownCharsetError",
    "UnknownDomainError",
    "UnknownPatientError",
    "Viewer",
    "ack",
    "basic_checks",
    "charset_of",
    "decode",
    "encode",
    "may_view",
    "normalize_kana",
    "parse",
    "parse_header",
    "serve_echo",
]
