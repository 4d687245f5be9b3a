"""The action models: what each step kind's action key may hold. Each is declared a step kind here, once
(:func:`~.kinds.step_kind`); the order of the declarations is the order of the action keys in the schema and
in error messages, so a new kind goes at the end."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from .fields import Charset, ConnName, ConsentPattern, Purpose, StrictModel, Text, VarName
from .kinds import Action, Family, step_kind

__all__ = [
    "AccessReport",
    "Action",
    "AuditQuery",
    "AuditTamper",
    "AuditVerify",
    "ConsentAdd",
    "ConsentGet",
    "ConsentRegister",
    "ConsentWithdraw",
    "DemographicOverrides",
    "Emergency",
    "Fault",
    "Feed",
    "Fetch",
    "HttpRaw",
    "Link",
    "Login",
    "LoginProbe",
    "Logout",
    "MllpRaw",
    "PatientGet",
    "PdqCancel",
    "PdqQuery",
    "PixQuery",
    "Timeline",
    "Unlink",
    "Wait",
    "WorldFile",
]


# ------------------------------------------------------------------------------------------- local


@step_kind("world_file", Family.LOCAL)
class WorldFile(Action):
    """Find one of ``patient``'s files at facility ``at`` in the world's storage on this machine (no hub
    involved): the current version of an entry in ``category`` (optionally of ``kind`` / ``data_type``),
    as JSON ``{entry, kind, category, data_type, path, size}`` (status 404 when there is none). ``entry`` is
    the reference gateway's ID for that file: what a fetch of a file the hub never listed (an undisclosed
    category) or a byte-for-byte comparison needs. Needs the world's files (``local_files``)."""

    patient: VarName
    at: VarName
    category: str
    kind: Literal["hl7", "document", "image"] | None = None
    data_type: str | None = None


# ------------------------------------------------------------------------------------------- MLLP


CertChoice = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=40,
        description="MLLP over TLS: the client certificate to present — a facility variable (default: the "
        "step's `from`; raw steps: MSH-4's facility, else the scenario's first), `none` (TLS without a "
        "certificate) or `plain` (plain MLLP, no TLS). A target without TLS (plain_mllp) ignores it.",
    ),
]


class _Hl7Edits(Action):
    """Edits applied to a built message before it is sent: how malformed and odd variants are made."""

    set: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{2}-[1-9][0-9]*$")], Text] = Field(
        default_factory=dict, description="SEG-n → raw ER7 value of that field in the first SEG"
    )
    append: list[Text] = Field(default_factory=list, description="raw segments added at the end")
    drop: list[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{2}$")]] = Field(
        default_factory=list, description="segment names removed"
    )
    charset: Charset = "utf-8"
    connection: ConnName = "main"
    cert: CertChoice | None = None


class DemographicOverrides(StrictModel):
    """Demographic overrides for a feed (e.g. an A08 update); unset keys keep the patient's own."""

    family_name: str | None = None
    given_name: str | None = None
    family_kana: str | None = None
    given_kana: str | None = None
    family_romaji: str | None = None
    given_romaji: str | None = None
    sex: Literal["M", "F", "O", "U"] | None = None
    birth_date: Annotated[str, Field(pattern=r"^[0-9]{8}$")] | None = None
    postcode: str | None = None
    address: str | None = None
    phone: str | None = None


@step_kind("feed", Family.MLLP, changes_state=True)
class Feed(_Hl7Edits):
    """ITI-8 patient identity feed (ADT^A01/A04/A05/A08/A40) from facility ``from`` for ``patient``."""

    from_: VarName = Field(alias="from")
    patient: VarName
    event: Annotated[str, Field(pattern=r"^A[0-9]{2}$")] = "A04"
    version: Literal["2.5", "2.3.1"] = "2.5"
    domain: VarName | None = Field(None, description="facility whose authority goes in PID-3 CX.4")
    authority: Literal["full", "namespace", "oid", "none", "empty"] = "full"
    local_id: Text | None = None
    merge_from: Text | None = Field(None, description="A40: the subsumed local ID (MRG-1, same domain)")
    demographics_of: VarName | None = None
    demographics: DemographicOverrides | None = None


@step_kind("pix_query", Family.MLLP)
class PixQuery(_Hl7Edits):
    """ITI-9 PIX query (QBP^Q23) from ``from`` for ``patient``'s ID at ``at`` (a facility or ``regional``)."""

    from_: VarName = Field(alias="from")
    patient: VarName | None = None
    at: VarName | None = None
    local_id: Text | None = None
    domain: VarName | None = Field(None, description="facility whose authority goes in QPD-3 (default: at)")
    authority: Literal["full", "namespace", "oid", "none", "empty"] = "full"
    domains: list[Text] = Field(default_factory=list, description="QPD-4: facilities, `regional` or raw CX")
    query_tag: Text | None = None


@step_kind("pdq_query", Family.MLLP)
class PdqQuery(_Hl7Edits):
    """ITI-21 PDQ query (QBP^Q22); ``continue`` re-sends this tag's query with the last DSC pointer."""

    from_: VarName = Field(alias="from")
    fields: dict[Annotated[str, Field(pattern=r"^@?[A-Z0-9][A-Z0-9.]*$")], Text] = Field(default_factory=dict)
    domains: list[Text] = Field(default_factory=list, description="QPD-8: facilities, `regional` or raw CX")
    quantity: Annotated[int, Field(ge=1, le=10_000)] | None = None
    query_tag: Text | None = None
    continue_: bool = Field(False, alias="continue")
    pointer: Text | None = Field(
        None, description="an explicit DSC-1 (e.g. a stale pointer captured earlier)"
    )

    @model_validator(mode="after")
    def _criteria(self) -> PdqQuery:
        if not self.fields and not self.continue_ and "QPD-3" not in self.set:
            raise ValueError("a PDQ query needs `fields` (or `continue: true`, or set: {QPD-3: …})")
        return self


@step_kind("pdq_cancel", Family.MLLP)
class PdqCancel(_Hl7Edits):
    """QCN^J01 cancel of a PDQ query's continuation (QID-1 = the query tag)."""

    from_: VarName = Field(alias="from")
    query_tag: Text


@step_kind("mllp_raw", Family.MLLP, changes_state=True)
class MllpRaw(Action):
    """Raw bytes on an MLLP connection: malformed frames, broken MSH, odd charsets."""

    text: Text | None = Field(None, description="text (with ${…}), encoded with `encoding`")
    hex: Annotated[str, Field(pattern=r"^[0-9A-Fa-f\s]*$")] | None = None
    encoding: Literal["utf-8", "iso-2022-jp", "latin-1", "ascii"] = "utf-8"
    pad: Annotated[int, Field(ge=0, le=64 * 1_048_576)] = Field(
        0, description="append this many bytes of filler (`X`) to the payload: oversize blocks"
    )
    frame: bool = Field(True, description="wrap in 0x0B … 0x1C 0x0D")
    eof: bool = Field(False, description="half-close the connection after sending (a truncated block)")
    connection: ConnName = "raw"
    cert: CertChoice | None = None
    timeout_ms: Annotated[int, Field(ge=1, le=120_000)] = 2000

    @model_validator(mode="after")
    def _one_payload(self) -> MllpRaw:
        if (self.text is None) == (self.hex is None):
            raise ValueError("give exactly one of `text` and `hex`")
        return self


@step_kind("wait", Family.TIMER)
class Wait(Action):
    """Sleep (e.g. for an emergency grant or a slow gateway to expire)."""

    ms: Annotated[int, Field(ge=0, le=600_000)]


# ------------------------------------------------------------------------------------------- HTTP


class _Http(Action):
    """Who acts: ``session`` (from a login step) or ``by`` (a facility: its user logs in automatically)."""

    actor_required: ClassVar[bool] = True
    """The loader asks for ``by`` or ``session`` (not ``http_raw``'s: it may test unauthenticated calls)."""

    by: VarName | None = None
    session: VarName | None = None
    user_kind: str | None = Field(None, description="the auto-login picks a user of this viewer kind")


class _OnPatient(_Http):
    patient: VarName | None = None
    regional_id: Text | None = Field(None, description="default: the patient's regional ID from a link")


@step_kind("login", Family.HTTP)
class Login(Action):
    """POST /auth/login as a user of ``facility``; the session is kept under ``as`` (default the facility)."""

    facility: VarName
    user: Text | None = Field(None, description="user ID (default: one of the facility's users)")
    user_kind: str | None = None
    password: Text | None = Field(None, description="override the target's password (wrong-password cases)")
    as_: VarName | None = Field(None, alias="as")


@step_kind("logout", Family.HTTP)
class Logout(_Http):
    """POST /auth/logout."""


@step_kind("patient_get", Family.HTTP)
class PatientGet(_OnPatient):
    """GET /patients/{regional_id}."""


@step_kind("link", Family.HTTP, changes_state=True)
class Link(_Http):
    """POST /links: tie ``patient``'s local ID at ``facility`` — and at each of ``others``, in the same
    operation (ID-Link's 患者登録し両院のID番号を紐付け) — to a regional ID (remembered as ``p.rid``)."""

    patient: VarName
    facility: VarName | None = Field(None, description="whose local ID (default: by)")
    local_id: Text | None = None
    regional_id: Text | None = Field(None, description="default: the patient's rid if known, else a new one")
    others: list[VarName] = Field(
        default_factory=list, description="more facilities whose local ID of the patient is linked too"
    )


@step_kind("unlink", Family.HTTP, changes_state=True)
class Unlink(_Http):
    """DELETE /links/{facility}/{local_id}."""

    patient: VarName
    facility: VarName | None = None
    local_id: Text | None = None


@step_kind("consent_register", Family.HTTP, changes_state=True)
class ConsentRegister(_OnPatient):
    """POST /patients/{rid}/consents; ``from_world`` takes pattern, list, date, emergency from the world."""

    form_id: Text | None = None
    pattern: ConsentPattern | None = None
    facilities: list[Text] = Field(default_factory=list)
    signed_on: Text | None = Field(None, description="YYYY-MM-DD (default: today, ${world.today})")
    emergency_allowed: bool | None = None
    from_world: bool = False


@step_kind("consent_add", Family.HTTP, changes_state=True)
class ConsentAdd(_OnPatient):
    """POST /patients/{rid}/consents/additions (連携先追加の同意書)."""

    form_id: Text | None = None
    base_form_id: Text
    facility: Text
    signed_on: Text | None = None


@step_kind("consent_withdraw", Family.HTTP, changes_state=True, withdraws=True)
class ConsentWithdraw(_OnPatient):
    """POST /patients/{rid}/consents/withdrawals (同意撤回届)."""

    form_id: Text | None = None
    base_form_id: Text
    withdrawn_on: Text | None = Field(None, description="YYYY-MM-DD (default: today, ${world.today})")


@step_kind("consent_get", Family.HTTP)
class ConsentGet(_OnPatient):
    """GET /patients/{rid}/consents."""


@step_kind("emergency", Family.HTTP, changes_state=True)
class Emergency(_OnPatient):
    """POST /patients/{rid}/emergency (break-glass, time-limited)."""

    reason: Text = "emergency care (rhin scenario)"
    minutes: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        60, description="the hub's range is 1–1,440; others are sent as they are (to test its refusal)"
    )


@step_kind("timeline", Family.HTTP)
class Timeline(_OnPatient):
    """GET /patients/{rid}/timeline."""

    categories: list[str] = Field(default_factory=list)
    since: Text | None = Field(None, description="`from`, YYYYMMDD")
    until: Text | None = Field(None, description="`to`, YYYYMMDD")
    purpose: Purpose = "care"
    timeout_ms: Annotated[int, Field(ge=1, le=600_000)] | None = Field(
        None, description="the hub's per-source timeout (query parameter timeout_ms)"
    )


@step_kind("fetch", Family.HTTP)
class Fetch(_OnPatient):
    """GET /patients/{rid}/entries/{source}/{entry}: one entry's bytes."""

    source: Text
    entry: Text
    purpose: Purpose = "care"
    timeout_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None
    world_file: bool = Field(
        False,
        description="compare the body with the world's file the entry names (subjects world_file, "
        "world_file_size); needs the world's files on this machine (local_files)",
    )


@step_kind("access_report", Family.HTTP)
class AccessReport(_OnPatient):
    """GET /patients/{rid}/access-report (as ``by``/``session``, or ``operator: true``: the hub operator)."""

    operator: bool = False


# ------------------------------------------------------------------------------------------- operator, probes


@step_kind("audit_query", Family.HTTP)
class AuditQuery(Action):
    """GET /audit (the hub operator's token)."""

    patient: VarName | None = None
    regional_id: Text | None = None
    action: str | None = None
    since: Text | None = None
    limit: Annotated[int, Field(ge=1, le=100_000)] | None = None


@step_kind("audit_verify", Family.HTTP)
class AuditVerify(Action):
    """GET /audit/verify (the hub operator's token)."""


@step_kind("fault", Family.HTTP)
class Fault(Action):
    """POST {shard admin}/faults/{code}: make a facility's gateway down, slow or failing (or up again)."""

    gateway: Text = Field(description="a facility variable or a facility code")
    mode: Literal["down", "slow", "error", "up"]
    ms: Annotated[int, Field(ge=0, le=600_000)] | None = None


@step_kind("audit_tamper", Family.DATA_FOLDER)
class AuditTamper(Action):
    """Tamper with a COPY of the hub's audit log (database, checkpoint file) as its database owner would —
    without the key — and verify the copy offline with the hub's own code (``rhin audit verify``): JSON
    ``{ok, problems, problem_counts, issues, head, records, checkpoints, tampered}``. The live log is never
    touched, so scenarios running beside this one keep their records. Needs the hub's data folder on this
    machine: the reference target's; skipped, with that reason, for other targets.

    ``tamper``: ``none`` (the copy as it is), ``truncate`` (delete the last ``rows`` records the last
    checkpoint covers, and every later one), ``edit`` (change one record's outcome), ``recompute`` (edit
    one record, then recompute every later hash as plain SHA-256: the best an owner without the key can
    do), ``drop_checkpoint`` (delete the checkpoint file's last line). ``record`` (edit, recompute): a record
    the last checkpoint covers (``checkpointed``) or the last record of all (``latest``)."""

    tamper: Literal["none", "truncate", "edit", "recompute", "drop_checkpoint"]
    rows: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    record: Literal["checkpointed", "latest"] = "checkpointed"


@step_kind("login_probe", Family.HTTP)
class LoginProbe(Action):
    """Wrong-password logins for ``users`` real users and as many unknown user IDs, interleaved: can a caller
    tell who exists? Each ID is tried twice in a row (the second attempt meets any throttling). The reply is
    JSON: ``known``/``unknown`` each ``{statuses, second_statuses, bodies, median_ms, times_ms}`` (first
    attempts; ``bodies`` the distinct JSON ``detail`` values, IDs blanked), ``same_body`` and
    ``median_ratio`` (known over unknown medians: a timing test whose tolerance the expectation states).
    Real users are taken from ``facility`` (or every facility) skipping the first of each viewer kind, the
    ones other steps log in as, and once the back-off is over each logs in with the right password and out
    again (clean-up, no assertion), so that later runs find them unthrottled."""

    facility: VarName | None = None
    users: Annotated[int, Field(ge=1, le=200)] = 15
    password: Text = "wrong-password-rhin"


@step_kind("http_raw", Family.HTTP)
class HttpRaw(_Http):
    """One raw HTTP/1.1 request over a plain socket (what a client library would refuse to send): bodies
    of any size, chunked or with a false ``Content-Length``, non-ASCII bytes in the bearer token. Who acts
    is optional (``by``/``session`` adds that session's token unless ``bearer_hex`` is given)."""

    actor_required: ClassVar[bool] = False

    method: Literal["GET", "POST", "DELETE", "PUT"] = "POST"
    path: Text
    body: Text = ""
    pad: Annotated[int, Field(ge=0, le=256 * 1_048_576)] = Field(
        0, description="append this many filler bytes (`x`) to the body: oversize bodies"
    )
    chunked: bool = Field(False, description="send the body chunked (no Content-Length)")
    content_length: Annotated[int, Field(ge=0)] | None = Field(
        None, description="declare this Content-Length whatever the body is"
    )
    bearer_hex: Text | None = Field(
        None, description="send `Authorization: Bearer <these bytes>` (hex digits, or a ${...} giving them)"
    )
    timeout_ms: Annotated[int, Field(ge=1, le=600_000)] = 10_000
