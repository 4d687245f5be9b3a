"""The network's facility directory as the hub's HTTP side needs it: kinds, roles, disclosure and users.

:class:`~.index.DomainDirectory` knows assigning authorities (what PIX/PDQ needs); this knows what the access
decision and the logins need: each facility's kind (viewer-kind rules), whether it discloses and which item
categories (the ``source_disclosure`` of :func:`.policy.may_view`), its gateway credential, and its users.

Users and enrolment: the world directory is the network's enrolment authority, the synthetic stand-in for
the form by which a facility receives its users' initial passwords. The hub's own store never holds a
password in clear: :class:`~.accounts.Accounts` keeps salted scrypt hashes, and a user is enrolled (hashed
and stored) on first login rather than all at start. Hashing ~7,400 users of the full world at scrypt's
cost (~40 ms each) would take minutes of CPU before the hub could answer; enrolling lazily keeps start-up
instant and spends the cost only on users who log in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .policy import ALL, AccessRules

__all__ = ["CONSENT_ADMIN_KINDS", "Enrolment", "Facilities", "FacilityInfo"]

CONSENT_ADMIN_KINDS: Mapping[str, frozenset[str]] = {
    "hospital": frozenset({"physician", "clerk"}),
    "clinic": frozenset({"physician", "clerk"}),
    "dental": frozenset({"dentist", "clerk"}),
    "pharmacy": frozenset({"pharmacist"}),
    "care": frozenset({"physician", "nurse"}),
    "other": frozenset({"physician", "nurse"}),
}
"""Facility kind → the viewer kinds whose users may register, add to and withdraw a patient's consent
papers (at a facility where the patient has a local ID). The profile says nothing about it, so the hub
chooses: the staff who explain the form and receive the paper there — at hospitals and clinics the doctors
in consultation and the clerks (医療事務) at reception, at dental clinics the dentists, at pharmacies the
pharmacists, and at care facilities and community support centres (no doctor or clerk at a home-nursing
station or a 特養) their licensed staff, physicians and nurses. Never care workers, and never a hospital's
or clinic's nurses (the paper is the doctor's or the reception's). The world has papers taken at every one
of these kinds (連携先追加 at pharmacies, 特養 and home-nursing stations), so each kind needs someone. A
world.json may override it with ``consent_administration: {viewer_kinds: {KIND: [...], ...}}``; a kind it
leaves out has nobody."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A user as the world enrols them (the initial password is only ever hashed by the hub)."""

    user_id: str
    password: str
    staff_id: str
    viewer_kind: str


@dataclass(frozen=True, slots=True)
class FacilityInfo:
    code: str
    name: str
    kind: str  # hospital, clinic, dental, pharmacy, care, other
    disclosing: bool
    disclosure: frozenset[str]  # item categories shared (empty unless disclosing)
    namespace: str  # its patient-ID assigning authority (PID-3 CX.4 namespace)
    link_type: str
    gateway_secret: str


class Facilities:
    """Facility code → :class:`FacilityInfo`, the enrolled users, and the world's access rules."""

    def __init__(
        self,
        facilities: Mapping[str, FacilityInfo],
        users: Mapping[tuple[str, str], Enrolment],
        rules: AccessRules,
        consent_admins: Mapping[str, frozenset[str]] = CONSENT_ADMIN_KINDS,
    ) -> None:
        self._by_code = dict(facilities)
        self._users = dict(users)
        self.rules = rules
        self.consent_admins = consent_admins

    @classmethod
    def from_world(cls, world: Mapping[str, Any]) -> Facilities:
        """From a world.json document; ``viewer_rules`` must be present (worlds since the hub API)."""
        by_code: dict[str, FacilityInfo] = {}
        users: dict[tuple[str, str], Enrolment] = {}
        for f in world["facilities"]:
            code = str(f["code"])
            by_code[code] = FacilityInfo(
                code=code,
                name=str(f.get("name", "")),
                kind=str(f["kind"]),
                disclosing=f.get("network_role") == "disclosing",
                disclosure=frozenset(f.get("disclosure", ())),
                namespace=str(f["assigning_authority"]["namespace"]),
                link_type=str(f.get("link_type", "")),
                gateway_secret=str(f.get("gateway_secret", "")),
            )
            for u in f.get("users", ()):
                users[(code, str(u["user_id"]))] = Enrolment(
                    str(u["user_id"]), str(u["password"]), str(u["staff_id"]), str(u["viewer_kind"])
                )
        raw_rules = world["viewer_rules"]
        rules = AccessRules(
            {kind: ALL if v == "all" else frozenset(v) for kind, v in raw_rules["facilities"].items()},
            {kind: frozenset(v) for kind, v in raw_rules.get("users", {}).items()},
        )
        admins = world.get("consent_administration", {}).get("viewer_kinds")
        chosen = CONSENT_ADMIN_KINDS if admins is None else {k: frozenset(v) for k, v in dict(admins).items()}
        return cls(by_code, users, rules, chosen)

    def __iter__(self) -> Iterator[FacilityInfo]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> FacilityInfo | None:
        return self._by_code.get(code)

    def consent_administrators(self, facility: str) -> frozenset[str]:
        """The viewer kinds that may administer consent papers at ``facility`` (empty if unknown)."""
        info = self._by_code.get(facility)
        return self.consent_admins.get(info.kind, frozenset()) if info is not None else frozenset()

    def enrolment(self, facility: str, user_id: str) -> Enrolment | None:
        return self._users.get((facility, user_id))

    def disclosing(self) -> list[FacilityInfo]:
        return [f for f in self._by_code.values() if f.disclosing]
