"""``given`` and ``world``: which patients and facilities a scenario picks from the world (by predicate), and
what the world and the hub must be for it to run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from .fields import ConsentPattern, StrictModel, VarName

__all__ = ["FacilitySelector", "Given", "Holds", "PatientSelector", "Range", "RangeIn", "WorldNeeds"]


def _to_range(value: Any) -> Any:
    return {"min": value, "max": value} if isinstance(value, int) and not isinstance(value, bool) else value


class Range(StrictModel):
    """A count: ``3`` (exactly), or ``{min: 2}``, ``{max: 5}``, ``{min: 1, max: 3}``."""

    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None

    def holds(self, n: int) -> bool:
        return (self.min is None or n >= self.min) and (self.max is None or n <= self.max)


RangeIn = Annotated[Range, BeforeValidator(_to_range, json_schema_input_type=int | Range)]


class PatientSelector(StrictModel):
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


class Holds(StrictModel):
    """The facility holds (is the source of) data of ``patient`` — in every one of ``categories`` if given —
    by the world's events (full detail, not cancelled; ``images`` for performed imaging)."""

    patient: VarName
    categories: list[str] = Field(default_factory=list)


class FacilitySelector(StrictModel):
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


class Given(StrictModel):
    """Named patients and facilities picked from the world; names are the scenario's variables."""

    patients: dict[VarName, PatientSelector] = Field(default_factory=dict)
    facilities: dict[VarName, FacilitySelector] = Field(default_factory=dict)


class WorldNeeds(StrictModel):
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
