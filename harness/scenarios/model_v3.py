"""The PIXv3/PDQv3 step kinds (``feed_v3``, ``pix_query_v3``, ``pdq_query_v3``): their scenario models.

Declared as kinds of the ``soap`` family (:mod:`.kinds`; :mod:`.model` imports this module before it
builds ``Step``); the runners are :mod:`.steps_v3`. Each step sends one SOAP 1.2 request to the target's v3
endpoint and observes the reply as an HTTP step does — ``status`` and ``json:…`` over the reply read into a
document (:func:`.steps_v3.reply_document`): ``json:ack``, ``json:details[0].code``, ``json:query_status``,
``json:ids`` (``"<extension>^<root>"`` strings), ``json:fault.subcode``, ``json:correlated``… Every field
that makes a request odd (``action``, ``content_type``, ``id_root``, ``sender``) exists to exercise a
refusal.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .actions import CertChoice, DemographicOverrides
from .fields import Text, VarName
from .kinds import Action, Family, step_kind

__all__ = ["FeedV3", "PdqCriteriaV3", "PdqQueryV3", "PixQueryV3"]


class _V3(Action):
    """What every v3 step may change about its request (to exercise the SOAP layer's refusals)."""

    from_: VarName = Field(alias="from")
    sender: Text | None = Field(
        None, description="the sender device id's extension as sent (default: the `from` facility's code)"
    )
    action: Text | None = Field(None, description="wsa:Action as sent (default: the interaction's)")
    content_type: Text | None = Field(None, description="Content-Type as sent (default application/soap+xml)")
    cert: CertChoice | None = Field(
        None, description="the client certificate presented: a facility variable (default `from`) or `none`"
    )


@step_kind("feed_v3", Family.SOAP, changes_state=True)
class FeedV3(_V3):
    """ITI-44: PRPA_IN201301UV02 (add), 201302 (revise) or 201304 (merge, ``merge_from`` the prior ID)."""

    patient: VarName
    kind: Literal["add", "revise", "merge"] = "add"
    domain: VarName | None = Field(None, description="facility whose OID is patient/id/@root (default from)")
    id_root: Text | None = Field(None, description="a raw patient/id/@root ('' for none), overriding domain")
    local_id: Text | None = None
    merge_from: Text | None = None
    demographics_of: VarName | None = None
    demographics: DemographicOverrides | None = None
    names: Literal["both", "kanji", "kana"] = "both"

    @model_validator(mode="after")
    def _merge(self) -> FeedV3:
        if (self.kind == "merge") != (self.merge_from is not None):
            raise ValueError("`merge_from` goes with `kind: merge`, and a merge needs it")
        return self


@step_kind("pix_query_v3", Family.SOAP)
class PixQueryV3(_V3):
    """ITI-45: PRPA_IN201309UV02 for ``patient``'s ID at ``at`` (a facility or ``regional``)."""

    patient: VarName | None = None
    at: VarName | None = None
    local_id: Text | None = None
    id_root: Text | None = Field(None, description="a raw patientIdentifier/value/@root, overriding at's")
    data_sources: list[Text] = Field(
        default_factory=list, description="dataSource: facility variables, `regional` or raw OIDs"
    )
    query_id: Text | None = None


class PdqCriteriaV3(Action):
    """ITI-47 parameters; a name is matched after kana normalisation, ``*`` at the end is a prefix."""

    family: Text | None = None
    given: Text | None = None
    name_use: Literal["IDE", "SYL", ""] = ""
    birth_date: Text | None = None
    sex: Text | None = None
    postcode: Text | None = None
    city: Text | None = Field(None, description="an address part the reference hub does not search on")
    id_at: VarName | None = Field(None, description="livingSubjectId: a facility (or `regional`)")
    id_extension: Text | None = None
    id_root: Text | None = Field(None, description="livingSubjectId/@root as sent, overriding id_at")
    other_ids: list[Text] = Field(
        default_factory=list, description="otherIDsScopingOrganization: facilities, `regional` or raw OIDs"
    )
    extra: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$")]] = Field(
        default_factory=list, description="unsupported parameter element names, sent empty"
    )


@step_kind("pdq_query_v3", Family.SOAP)
class PdqQueryV3(_V3):
    """ITI-47 query (``criteria``), or ``continue``/``cancel`` of this scenario's last v3 PDQ (or
    ``query_id``'s) with QUQI_IN000003UV01."""

    criteria: PdqCriteriaV3 | None = None
    quantity: Annotated[int, Field(ge=1, le=10_000)] | None = None
    query_id: Text | None = None
    continue_: bool = Field(False, alias="continue")
    cancel: bool = False

    @model_validator(mode="after")
    def _one(self) -> PdqQueryV3:
        if self.continue_ and self.cancel:
            raise ValueError("`continue` or `cancel`, not both")
        if self.criteria is None and not (self.continue_ or self.cancel):
            raise ValueError("a v3 PDQ needs `criteria` (or `continue: true`, or `cancel: true`)")
        return self
