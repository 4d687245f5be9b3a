"""Profiles: the YAML that describes a regional network, validated by pydantic with precise errors.

A profile names how many facilities of each kind and role the network has (and how many of them
disclose data), how patients are spread over pathways, consent patterns and ages, and the figures the
built world must match (registered and sharing patients). Unknown keys are errors everywhere.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from synthetic.errors import ProfileError
from synthetic.model import ITEM_CATEGORIES
from synthetic.yamlio import Strict, load_model

FacilityKind = Literal["hospital", "clinic", "dental", "pharmacy", "care", "other"]
FACILITY_KINDS: tuple[FacilityKind, ...] = ("hospital", "clinic", "dental", "pharmacy", "care", "other")
LinkType = Literal["IP-VPN", "Internet VPN", "Internet"]
ConsentPattern = Literal["all", "all_except", "allow_list", "per_facility"]
MedicalArea = Literal["南加賀", "石川中央", "能登中部", "能登北部"]

Share = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0)]


class RoleSpec(Strict):
    """One role of a facility kind (e.g. hospital/acute): how many, how many disclose, where."""

    count: Annotated[int, Field(ge=0)]
    disclosing: Annotated[int, Field(ge=0)] = 0
    area_weights: dict[MedicalArea, Weight] | None = Field(
        default=None, description="Relative weight per secondary medical area; default: population share."
    )
    beds: tuple[int, int] | None = Field(default=None, description="Bed range (hospitals and care homes).")

    @model_validator(mode="after")
    def _disclosing_within_count(self) -> Self:
        if self.disclosing > self.count:
            raise ValueError(f"disclosing ({self.disclosing}) exceeds count ({self.count})")
        return self


class LinkModelSpec(Strict):
    """A network link's behaviour (used by the live network and the SimPy model in later parts)."""

    rtt_ms_median: Annotated[float, Field(gt=0)]
    rtt_ms_p95: Annotated[float, Field(gt=0)]
    bandwidth_mbps: Annotated[float, Field(gt=0)]
    loss: Share = 0.0
    remarks: str


class ConsentSpec(Strict):
    patterns: dict[ConsentPattern, Weight]
    withdrawal_share: Share = Field(description="Share of registered patients who withdrew (同意撤回).")
    emergency_allowed_share: Share = Field(description="Share of consents that allow emergency viewing.")
    remarks: str = ""


class PathwayMix(Strict):
    """Share of patients per pathway variant (``pathway/variant``), separately for sharing patients."""

    sharing: dict[str, Weight]
    non_sharing: dict[str, Weight]


class AgeBand(Strict):
    low: Annotated[int, Field(ge=0, le=110)]
    high: Annotated[int, Field(ge=0, le=110)]
    weight: Weight


class DemographicsSpec(Strict):
    female_share: Share
    age_bands: list[AgeBand]
    same_name_and_birthdate_share: Share = Field(
        description="Share of patients who deliberately repeat an earlier patient's name, sex and birth date."
    )
    variant_kanji_share: Share = Field(description="Share of patients whose surname uses 髙/﨑-style kanji.")
    address_change_share: Share = 0.03
    remarks: str = ""


def _known_categories(names: list[str], where: str) -> None:
    unknown = [n for n in names if n not in ITEM_CATEGORIES]
    if unknown:
        raise ValueError(f"{where}: unknown item categories {unknown}; known: {', '.join(ITEM_CATEGORIES)}")


class Disclosure(Strict):
    """Which item categories a disclosing facility shares: some always, others with a probability."""

    always: list[str]
    optional: dict[str, Share]

    @model_validator(mode="after")
    def _categories(self) -> Self:
        _known_categories([*self.always, *self.optional], "disclosure")
        return self


class ViewerRules(Strict):
    """Which item categories each kind of viewing facility may see, and limits for some user kinds.

    ``all`` means every category. Users of a kind listed in ``users`` see at most the listed categories
    (for example clerks see patient basics only), whatever their facility may see.
    """

    facilities: dict[FacilityKind, Literal["all"] | list[str]]
    users: dict[str, list[str]] = {}
    remarks: str = ""

    @model_validator(mode="after")
    def _categories(self) -> Self:
        for kind, allowed in self.facilities.items():
            if allowed != "all":
                _known_categories(allowed, f"viewer_rules.facilities.{kind}")
        for user_kind, limit in self.users.items():
            _known_categories(limit, f"viewer_rules.users.{user_kind}")
        missing = [k for k in FACILITY_KINDS if k not in self.facilities]
        if missing:
            raise ValueError(f"viewer_rules.facilities must list every facility kind; missing {missing}")
        return self


class Profile(Strict):
    schema_version: Literal[1]
    name: str
    title: str
    prefecture_code: Annotated[str, Field(pattern=r"^\d{2}$")]
    prefecture: str
    reference_date: dt.date
    history_days: Annotated[int, Field(ge=30, le=3650)]
    registered_patients: Annotated[int, Field(ge=1)]
    sharing_patients: Annotated[int, Field(ge=0)]
    facilities: dict[FacilityKind, dict[str, RoleSpec]]
    link_types: dict[FacilityKind, dict[LinkType, Weight]]
    links: dict[LinkType, LinkModelSpec]
    disclosure: Disclosure
    consent: ConsentSpec
    pathways: PathwayMix
    demographics: DemographicsSpec
    viewer_rules: ViewerRules
    remarks: list[str] = []
    sharing_share: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        default=None,
        description="Share of registered patients who share; default sharing_patients / registered_patients.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.sharing_patients > self.registered_patients:
            raise ValueError("sharing_patients exceeds registered_patients")
        missing = [k for k in FACILITY_KINDS if k not in self.facilities]
        if missing:
            raise ValueError(f"facilities must list every kind; missing: {', '.join(missing)}")
        if self.disclosing_total() < 1:
            raise ValueError("at least one facility must disclose data")
        for kind in FACILITY_KINDS:
            if kind not in self.link_types:
                raise ValueError(f"link_types has no entry for {kind}")
        return self

    def count(self, kind: FacilityKind) -> int:
        return sum(r.count for r in self.facilities[kind].values())

    def disclosing_total(self) -> int:
        return sum(r.disclosing for roles in self.facilities.values() for r in roles.values())

    def sharing_ratio(self) -> float:
        if self.sharing_share is not None:
            return self.sharing_share
        return self.sharing_patients / self.registered_patients

    def with_patients(self, registered: int) -> Profile:
        """The same network with another registered-patient count.

        The sharing *share* is carried over exactly (not the rounded count), so patient *i* gets the same
        sharing flag, and hence the same care, whatever the patient count.
        """
        ratio = self.sharing_ratio()
        return self.model_copy(
            update={
                "registered_patients": registered,
                "sharing_patients": round(registered * ratio),
                "sharing_share": ratio,
            }
        )


def bundled_profiles() -> list[str]:
    folder = resources.files("synthetic") / "profiles"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a bundled profile by name (``ishikawa``, ``mini``) or a user's profile by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ProfileError(str(path), [(None, "", "profile file not found")])
        return load_model(Profile, path)
    name = str(name_or_path)
    if name not in bundled_profiles():
        raise ProfileError(
            name, [(None, "", f"no such profile; bundled: {', '.join(bundled_profiles())}, or give a path")]
        )
    with resources.as_file(resources.files("synthetic") / "profiles" / f"{name}.yaml") as bundled:
        return load_model(Profile, bundled)
