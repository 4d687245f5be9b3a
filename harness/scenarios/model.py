"""The scenario format, as pydantic models: what a YAML scenario may say, and nothing else (unknown keys are
errors everywhere).

A scenario picks its patients and facilities from the world by predicate (``given``), then runs steps. A step
is a mapping with exactly **one action key** naming its kind (``feed``, ``pix_query``, ``link`` …) beside the
common keys ``name``, ``expect`` and ``capture``::

    - name: PIX query for an ID the hub never saw
      pix_query: {from: V, patient: p, at: A, local_id: "NOPE${p.local_id@A}"}
      expect:
        - id: ITI9-unknown-patient
          that: {MSA-1: AE, QAK-2: AE, ERR-2: {erl: "QPD^1^3^1^1"}, ERR-3.1: "204"}

Why one action key rather than ``kind: feed``: the step reads like the operation it is, the action's own keys
sit under it (so an error path ``steps.3.feed.event`` points at the right line), and a misspelt action is an
"unknown key" like any other typo. Strings may hold ``${...}`` variables (see :mod:`.variables`); the loader
checks that every variable, patient and facility a step names is declared before the step runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from .subjects import parse_subject
from .variables import BUILTIN_ROOTS, PARAM_ROOT, references

__all__ = [
    "ACTION_MODELS",
    "DATA_FOLDER_KINDS",
    "HTTP_KINDS",
    "LOCAL_KINDS",
    "MLLP_KINDS",
    "SCHEMA_VERSION",
    "STATE_KINDS",
    "V3_KINDS",
    "Action",
    "Expectation",
    "FacilitySelector",
    "Given",
    "Matcher",
    "PatientSelector",
    "Range",
    "Repeat",
    "Scenario",
    "Step",
    "WorldNeeds",
]

SCHEMA_VERSION: Final = 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=40)]
ConnName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=40)]
Text = Annotated[str, Field(max_length=2_000_000)]
"""A string that may hold ``${...}`` variables, substituted when the step runs."""
AssertionId = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=80)]
"""``ITI9-unknown-patient``, ``ITI8-019``, ``CONSENT-withdrawn-denies-fetch``: PREFIX-rest."""
Tag = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=40)]
Charset = Literal["utf-8", "iso-2022-jp", "ascii"]
Purpose = Literal["care", "emergency"]
ConsentPattern = Literal["all", "all_except", "allow_list", "per_facility"]


def _subject(text: str) -> str:
    parse_subject(text)  # raises ValueError with the reason
    return text


SubjectKey = Annotated[str, AfterValidator(_subject)]


# ------------------------------------------------------------------------------------------- expectations


def _bound(value: Any) -> Any:
    if isinstance(value, str) and "${" not in value:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a number nor a ${{...}} variable") from None
    return value


Bound = Annotated[float | str, BeforeValidator(_bound)]
"""A number, or a string holding a ``${...}`` variable (e.g. ``${param.pix_p95_ms}``) resolved at run time."""


def _to_matcher(value: Any) -> Any:
    """A bare value means ``{equals: value}``; a mapping is a matcher (so its keys are checked)."""
    return value if isinstance(value, dict) else {"equals": value}


class Matcher(Strict):
    """What an observed value must satisfy; every operator given must hold.

    Values compare leniently across types the way HL7 needs (``QAK-4: 5`` matches the field ``"5"``).
    """

    equals: JsonValue = None
    one_of: list[JsonValue] | None = None
    not_: JsonValue = Field(None, alias="not")
    matches: str | None = Field(None, description="a regular expression searched in the value")
    contains: JsonValue = Field(None, description="a substring, or an element of a list")
    excludes: JsonValue = None
    present: bool | None = Field(None, description="true: non-empty; false: absent or empty")
    len: int | None = Field(None, ge=0)
    ge: Bound | None = None
    gt: Bound | None = None
    le: Bound | None = None
    lt: Bound | None = None
    set: list[JsonValue] | None = Field(None, description="a list equal to this one in any order")
    erl: str | None = Field(
        None, description="an ERR-2 error location (repetitions with ~), compared at the target's strictness"
    )

    @model_validator(mode="after")
    def _some_operator(self) -> Matcher:
        if not self.model_fields_set:
            raise ValueError("a matcher needs at least one operator (equals, one_of, matches, …)")
        return self

    def operators(self) -> dict[str, Any]:
        """The operators given, by their YAML names."""
        out = {}
        for name in self.model_fields_set:
            key = "not" if name == "not_" else name
            out[key] = getattr(self, name)
        return dict(sorted(out.items()))


MatcherIn = Annotated[
    Matcher,
    BeforeValidator(
        _to_matcher, json_schema_input_type=str | int | float | bool | None | list[Any] | Matcher
    ),
]


class Expectation(Strict):
    """One assertion: a stable ID, and the subjects of the step's exchange with what each must be."""

    id: AssertionId
    title: str | None = None
    that: Annotated[dict[SubjectKey, MatcherIn], Field(min_length=1)]


# ------------------------------------------------------------------------------------------- MLLP actions


class Action(Strict):
    """Base of every step action."""


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


class Demographics(Strict):
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
    demographics: Demographics | None = None


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


class PdqCancel(_Hl7Edits):
    """QCN^J01 cancel of a PDQ query's continuation (QID-1 = the query tag)."""

    from_: VarName = Field(alias="from")
    query_tag: Text


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


class Wait(Action):
    """Sleep (e.g. for an emergency grant or a slow gateway to expire)."""

    ms: Annotated[int, Field(ge=0, le=600_000)]


# ------------------------------------------------------------------------------------------- HTTP actions


class _Http(Action):
    """Who acts: ``session`` (from a login step) or ``by`` (a facility: its user logs in automatically)."""

    by: VarName | None = None
    session: VarName | None = None
    user_kind: str | None = Field(None, description="the auto-login picks a user of this viewer kind")


class _OnPatient(_Http):
    patient: VarName | None = None
    regional_id: Text | None = Field(None, description="default: the patient's regional ID from a link")


class Login(Action):
    """POST /auth/login as a user of ``facility``; the session is kept under ``as`` (default the facility)."""

    facility: VarName
    user: Text | None = Field(None, description="user ID (default: one of the facility's users)")
    user_kind: str | None = None
    password: Text | None = Field(None, description="override the target's password (wrong-password cases)")
    as_: VarName | None = Field(None, alias="as")


class Logout(_Http):
    """POST /auth/logout."""


class PatientGet(_OnPatient):
    """GET /patients/{regional_id}."""


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


class Unlink(_Http):
    """DELETE /links/{facility}/{local_id}."""

    patient: VarName
    facility: VarName | None = None
    local_id: Text | None = None


class ConsentRegister(_OnPatient):
    """POST /patients/{rid}/consents; ``from_world`` takes pattern, list, date, emergency from the world."""

    form_id: Text | None = None
    pattern: ConsentPattern | None = None
    facilities: list[Text] = Field(default_factory=list)
    signed_on: Text | None = Field(None, description="YYYY-MM-DD (default: today, ${world.today})")
    emergency_allowed: bool | None = None
    from_world: bool = False


class ConsentAdd(_OnPatient):
    """POST /patients/{rid}/consents/additions (連携先追加の同意書)."""

    form_id: Text | None = None
    base_form_id: Text
    facility: Text
    signed_on: Text | None = None


class ConsentWithdraw(_OnPatient):
    """POST /patients/{rid}/consents/withdrawals (同意撤回届)."""

    form_id: Text | None = None
    base_form_id: Text
    withdrawn_on: Text | None = Field(None, description="YYYY-MM-DD (default: today, ${world.today})")


class ConsentGet(_OnPatient):
    """GET /patients/{rid}/consents."""


class Emergency(_OnPatient):
    """POST /patients/{rid}/emergency (break-glass, time-limited)."""

    reason: Text = "emergency care (rhin scenario)"
    minutes: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        60, description="the hub's range is 1–1,440; others are sent as they are (to test its refusal)"
    )


class Timeline(_OnPatient):
    """GET /patients/{rid}/timeline."""

    categories: list[str] = Field(default_factory=list)
    since: Text | None = Field(None, description="`from`, YYYYMMDD")
    until: Text | None = Field(None, description="`to`, YYYYMMDD")
    purpose: Purpose = "care"
    timeout_ms: Annotated[int, Field(ge=1, le=600_000)] | None = Field(
        None, description="the hub's per-source timeout (query parameter timeout_ms)"
    )


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


class AccessReport(_OnPatient):
    """GET /patients/{rid}/access-report (as ``by``/``session``, or ``operator: true``: the hub operator)."""

    operator: bool = False


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


class AuditQuery(Action):
    """GET /audit (the hub operator's token)."""

    patient: VarName | None = None
    regional_id: Text | None = None
    action: str | None = None
    since: Text | None = None
    limit: Annotated[int, Field(ge=1, le=100_000)] | None = None


class AuditVerify(Action):
    """GET /audit/verify (the hub operator's token)."""


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


class HttpRaw(_Http):
    """One raw HTTP/1.1 request over a plain socket (what a client library would refuse to send): bodies
    of any size, chunked or with a false ``Content-Length``, non-ASCII bytes in the bearer token. Who acts
    is optional (``by``/``session`` adds that session's token unless ``bearer_hex`` is given)."""

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


class Fault(Action):
    """POST {shard admin}/faults/{code}: make a facility's gateway down, slow or failing (or up again)."""

    gateway: Text = Field(description="a facility variable or a facility code")
    mode: Literal["down", "slow", "error", "up"]
    ms: Annotated[int, Field(ge=0, le=600_000)] | None = None


from .model_v3 import V3_ACTION_MODELS, V3_KINDS, FeedV3, PdqQueryV3, PixQueryV3  # noqa: E402 - needs Action

ACTION_MODELS: Final[dict[str, type[Action]]] = {
    "world_file": WorldFile,
    "feed": Feed,
    "pix_query": PixQuery,
    "pdq_query": PdqQuery,
    "pdq_cancel": PdqCancel,
    "mllp_raw": MllpRaw,
    "wait": Wait,
    "login": Login,
    "logout": Logout,
    "patient_get": PatientGet,
    "link": Link,
    "unlink": Unlink,
    "consent_register": ConsentRegister,
    "consent_add": ConsentAdd,
    "consent_withdraw": ConsentWithdraw,
    "consent_get": ConsentGet,
    "emergency": Emergency,
    "timeline": Timeline,
    "fetch": Fetch,
    "access_report": AccessReport,
    "audit_query": AuditQuery,
    "audit_verify": AuditVerify,
    "fault": Fault,
    "audit_tamper": AuditTamper,
    "login_probe": LoginProbe,
    "http_raw": HttpRaw,
    **V3_ACTION_MODELS,
}
MLLP_KINDS: Final = frozenset({"feed", "pix_query", "pdq_query", "pdq_cancel", "mllp_raw"})
LOCAL_KINDS: Final = frozenset({"world_file"})
"""Steps that read the world's files on this machine rather than talk to the hub."""
DATA_FOLDER_KINDS: Final = frozenset({"audit_tamper"})
"""Steps that act on the hub's data folder: only the reference target's is on this machine."""
HTTP_KINDS: Final = (
    frozenset(ACTION_MODELS) - MLLP_KINDS - LOCAL_KINDS - DATA_FOLDER_KINDS - {"wait"} - V3_KINDS
)
STATE_KINDS: Final = frozenset(
    {"feed", "link", "unlink", "consent_register", "consent_add", "consent_withdraw", "emergency", "mllp_raw"}
) | {"feed_v3"}
"""Steps that change what the hub holds about a patient (identity, links, consent, emergency grants);
``mllp_raw`` because its bytes may be a feed. See :attr:`Scenario.changes_world`."""
WITHDRAWAL_KINDS: Final = frozenset({"consent_withdraw"})
"""Steps whose effect on a world patient cannot be set up again that day (:attr:`Scenario.consumes_world`)."""


def _one_action_schema(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [{"required": [kind]} for kind in ACTION_MODELS]


def _to_repeat(value: Any) -> Any:
    return {"count": value} if isinstance(value, int | str) and not isinstance(value, bool) else value


class Repeat(Strict):
    """Run the step ``warmup`` + ``count`` times (light-load latency): every expectation must hold for
    every repetition, except ``latency.*`` subjects, computed over the ``count`` timed ones."""

    count: int | str = Field(
        description="repetitions timed: 1 to 100,000, or ${param.NAME} (so a run can ask for more or fewer)"
    )
    warmup: Annotated[int, Field(ge=0, le=10_000)] = 0
    pause_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(0, description="sleep between repetitions")

    @field_validator("count")
    @classmethod
    def _count(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            if not re.fullmatch(r"\$\{param\.[A-Za-z_][A-Za-z0-9_]*\}", value):
                raise ValueError(f"a number of repetitions or ${{param.NAME}}, not {value!r}")
        elif not 1 <= value <= 100_000:
            raise ValueError(f"1 to 100000 repetitions, not {value}")
        return value


RepeatIn = Annotated[Repeat, BeforeValidator(_to_repeat, json_schema_input_type=int | str | Repeat)]


class Step(Strict):
    """One operation (exactly one action key) with its expectations and captures."""

    model_config = ConfigDict(json_schema_extra=_one_action_schema)

    name: str | None = None
    expect: list[Expectation] = Field(default_factory=list)
    capture: dict[VarName, SubjectKey] = Field(
        default_factory=dict, description="variable → subject of this step's reply, for later steps"
    )
    repeat: RepeatIn | None = None

    world_file: WorldFile | None = None
    feed: Feed | None = None
    pix_query: PixQuery | None = None
    pdq_query: PdqQuery | None = None
    pdq_cancel: PdqCancel | None = None
    mllp_raw: MllpRaw | None = None
    wait: Wait | None = None
    login: Login | None = None
    logout: Logout | None = None
    patient_get: PatientGet | None = None
    link: Link | None = None
    unlink: Unlink | None = None
    consent_register: ConsentRegister | None = None
    consent_add: ConsentAdd | None = None
    consent_withdraw: ConsentWithdraw | None = None
    consent_get: ConsentGet | None = None
    emergency: Emergency | None = None
    timeline: Timeline | None = None
    fetch: Fetch | None = None
    access_report: AccessReport | None = None
    audit_query: AuditQuery | None = None
    audit_verify: AuditVerify | None = None
    fault: Fault | None = None
    audit_tamper: AuditTamper | None = None
    login_probe: LoginProbe | None = None
    http_raw: HttpRaw | None = None
    feed_v3: FeedV3 | None = None
    pix_query_v3: PixQueryV3 | None = None
    pdq_query_v3: PdqQueryV3 | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Step:
        given = [kind for kind in ACTION_MODELS if getattr(self, kind) is not None]
        if not given:
            raise ValueError(f"a step needs one action key, one of: {', '.join(ACTION_MODELS)}")
        if len(given) > 1:
            raise ValueError(f"a step has exactly one action; this one has {' and '.join(given)}")
        ids = [e.id for e in self.expect]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"assertion IDs repeat within one step: {', '.join(duplicates)}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in ACTION_MODELS if getattr(self, kind) is not None)

    @property
    def action(self) -> Action:
        found: Action = getattr(self, self.kind)
        return found


# ------------------------------------------------------------------------------------------- given


def _to_range(value: Any) -> Any:
    return {"min": value, "max": value} if isinstance(value, int) and not isinstance(value, bool) else value


class Range(Strict):
    """A count: ``3`` (exactly), or ``{min: 2}``, ``{max: 5}``, ``{min: 1, max: 3}``."""

    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None

    def holds(self, n: int) -> bool:
        return (self.min is None or n >= self.min) and (self.max is None or n <= self.max)


RangeIn = Annotated[Range, BeforeValidator(_to_range, json_schema_input_type=int | Range)]


class PatientSelector(Strict):
    """Predicates over a world patient; all given must hold.

    ``fresh: true`` keeps the patient's names but gives them local IDs no hub has seen (``ZZ…``) and a birth
    date no world patient has, so feeds and queries on them are independent of what the hub already holds.
    """

    fresh: bool = False
    pathway: list[str] | None = Field(None, description="pathway or pathway/variant prefixes (any)")
    sharing: bool | None = Field(None, description="sharing on the world's reference date")
    consent: list[ConsentPattern] | None = None
    consent_facilities: RangeIn | None = Field(None, description="size of the allow-list or exclusion list")
    additions: RangeIn | None = Field(None, description="連携先追加 additions on the consent")
    withdrawn: bool | None = None
    emergency_allowed: bool | None = None
    facilities: RangeIn | None = Field(None, description="facilities where the patient has a local ID")
    disclosing_facilities: RangeIn | None = Field(None, description="of those, disclosing ones")
    sex: Literal["M", "F"] | None = None
    alive: bool | None = None
    variant_kanji: bool | None = Field(None, description="surname written outside JIS X 0208 (髙, 﨑 …)")

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("pathway", "consent"):
                if isinstance(data.get(key), str):
                    data = {**data, key: [data[key]]}
        return data


class Holds(Strict):
    """The facility holds (is the source of) data of ``patient`` — in every one of ``categories`` if given —
    by the world's events (full detail, not cancelled; ``images`` for performed imaging)."""

    patient: VarName
    categories: list[str] = Field(default_factory=list)


class FacilitySelector(Strict):
    """Predicates over a world facility; all given must hold. Facilities of one scenario are distinct."""

    code: str | None = None
    kind: list[str] | None = Field(None, description="hospital, clinic, dental, pharmacy, care, other")
    role: list[str] | None = Field(None, description="university, acute, recovery, internal, community …")
    disclosing: bool | None = None
    link_type: list[str] | None = None
    discloses: list[str] | None = Field(None, description="item categories it must disclose (all)")
    not_discloses: list[str] | None = Field(None, description="item categories it must not disclose (any)")
    user_kind: str | None = Field(None, description="has a hub user of this viewer kind")
    local_id_of: list[VarName] | None = Field(None, description="these patients have a local ID here")
    no_local_id_of: list[VarName] | None = None
    in_consent_of: list[VarName] | None = Field(None, description="within these patients' consent")
    outside_consent_of: list[VarName] | None = None
    added_for: list[VarName] | None = Field(
        None, description="named on one of these patients' 連携先追加 additions (per_facility forms)"
    )
    holds: list[Holds] | None = None

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            keys: tuple[str, ...] = ("kind", "role", "link_type", "discloses", "not_discloses", "local_id_of")
            keys += ("no_local_id_of", "in_consent_of", "outside_consent_of", "added_for")
            for key in keys:
                if isinstance(data.get(key), str):
                    data = {**data, key: [data[key]]}
            if isinstance(data.get("holds"), dict):
                data = {**data, "holds": [data["holds"]]}
        return data

    def patients(self) -> set[str]:
        """The patient variables this selector refers to."""
        out: set[str] = set()
        for names in (
            self.local_id_of,
            self.no_local_id_of,
            self.in_consent_of,
            self.outside_consent_of,
            self.added_for,
        ):
            out.update(names or ())
        out.update(h.patient for h in self.holds or ())
        return out


class Given(Strict):
    """Named patients and facilities picked from the world; names are the scenario's variables."""

    patients: dict[VarName, PatientSelector] = Field(default_factory=dict)
    facilities: dict[VarName, FacilitySelector] = Field(default_factory=dict)


class WorldNeeds(Strict):
    """What the world and the hub must be: profile, seed, at least ``patients`` registered, users of some
    viewer kinds; ``bootstrapped``: the hub holds the world; ``links``: link models on; ``own``: a fresh
    hub."""

    profile: list[str] | None = None
    seed: int | None = None
    patients: Annotated[int, Field(ge=1)] | None = None
    user_kinds: list[str] | None = Field(None, description="the world has hub users of these viewer kinds")
    bootstrapped: bool = Field(
        False,
        description="the hub holds the world: every registration fed, every patient linked, every consent "
        "document registered (rhin up's bootstrap); world patients come with their regional IDs",
    )
    links: bool = Field(
        False,
        description="the reference network with its link models on (latency, bandwidth, loss); an external "
        "target is used as it is",
    )
    own: bool = Field(False, description="run alone on a hub of its own (its state must not leak)")

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("profile", "user_kinds"):
                if isinstance(data.get(key), str):
                    data = {**data, key: [data[key]]}
        return data


# ------------------------------------------------------------------------------------------- scenario


def _to_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Scenario(Strict):
    """One scenario file."""

    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=100)]
    title: str
    tags: list[Tag] = Field(default_factory=list)
    remarks: Annotated[list[str], BeforeValidator(_to_list, json_schema_input_type=str | list[str])] = Field(
        default_factory=list, description="sources: IHE transaction and assertion, MHLW pattern, the seed"
    )
    default: bool = Field(
        True, description="false: not in the default selection; runs only when chosen (path, suite, tag, -k)"
    )
    params: dict[VarName, float | int | str] = Field(
        default_factory=dict,
        description="named values with their defaults (e.g. latency budgets), used as ${param.NAME}; "
        "`rhin run --param NAME=VALUE` and a target file's `params` override them",
    )
    world: WorldNeeds = Field(default_factory=WorldNeeds)
    given: Given = Field(default_factory=Given)
    exclusive: bool = Field(False, description="run alone (no other scenario at the same time)")
    steps: Annotated[list[Step], Field(min_length=1)]

    @property
    def assertion_count(self) -> int:
        return sum(len(step.expect) for step in self.steps)

    @property
    def changes_world(self) -> bool:
        """Whether the scenario may leave a world (not ``fresh``) patient other than the world has it.

        Derived from the step kinds, so it holds for every suite, present and future: a step of a
        :data:`STATE_KINDS` kind changes the world's state unless every name it uses — its ``patient`` and
        ``demographics_of``, and the roots of its ``${...}`` variables — is a fresh patient, a facility, a
        parameter or a built-in (a captured value might be a world patient's regional ID, so it counts). Such
        a scenario counts as changing *all* its world patients: the rule stays simple and errs on the safe
        side (its patients come from the reserved pool, see :mod:`harness.scenarios.world`)."""
        world = {v for v, p in self.given.patients.items() if not p.fresh}
        if not world:
            return False
        harmless = {v for v, p in self.given.patients.items() if p.fresh}
        harmless |= set(self.given.facilities) | set(BUILTIN_ROOTS) | {PARAM_ROOT}
        return any(step.kind in STATE_KINDS and not _names(step.action) <= harmless for step in self.steps)

    @property
    def consumes_world(self) -> frozenset[str]:
        """The world patients (variables) whose consent the scenario withdraws: a 同意撤回 is history for
        good — every later form must be dated after it (no date after today is accepted) — so such a patient
        can never again be brought to the state the scenario sets up on the same hub that day. On a
        long-lived target these variables take a patient no earlier run changed (see
        :mod:`harness.scenarios.world`), instead of the same pinned one every run."""
        world = {v for v, p in self.given.patients.items() if not p.fresh}
        return frozenset(
            var for step in self.steps if step.kind in WITHDRAWAL_KINDS for var in _names(step.action) & world
        )

    @property
    def needs_exclusive(self) -> bool:
        """Faults change shared gateways: such scenarios never run beside others."""
        return self.exclusive or any(step.kind == "fault" for step in self.steps)


def _names(value: Any) -> set[str]:
    """Every variable name an action uses: ``patient``/``demographics_of`` values and ``${...}`` roots."""
    out: set[str] = set()
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field_value = getattr(value, name)
            if name in ("patient", "demographics_of") and isinstance(field_value, str):
                out.add(field_value)
            else:
                out |= _names(field_value)
    elif isinstance(value, str):
        out |= {ref.root for ref in references(value) if not isinstance(ref, ValueError)}
    elif isinstance(value, dict):
        for item in value.values():
            out |= _names(item)
    elif isinstance(value, list | tuple):
        for item in value:
            out |= _names(item)
    return out
