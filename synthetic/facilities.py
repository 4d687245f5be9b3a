"""Facilities of the network: kinds, roles, places, codes, names, departments, staff, users, disclosure.

Each facility draws from its own stream ``(seed, "facility", kind, role, i)``, so the patient count never
changes a facility. Within a role, the facilities with the most beds are the ones that disclose (as in
the seed network, where public and university hospitals are the information-providing sites).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import yaml

from synthetic import codes, tables
from synthetic.errors import DataTableError
from synthetic.geography import Geography
from synthetic.model import PATIENT_ID_OID_ARC, Facility, Staff, User
from synthetic.names import NameDrawer
from synthetic.profile import FACILITY_KINDS, Profile, RoleSpec
from synthetic.rng import Weighted, stream

#: 事業所区分 digit of 介護保険事業所番号 per care role (see :mod:`synthetic.codes` for the caveat).
CARE_DIVISION = {"roken": 5, "tokuyo": 7, "home_nursing": 1, "care_manager": 1, "community_support": 1}
#: Roles of kind "other" that are medical (have a 医療機関コード); the rest are care-side organisations.
MEDICAL_OTHER_ROLES = {"health_check"}


@dataclass(frozen=True, slots=True)
class RoleTemplate:
    names: tuple[tuple[str, str], ...]
    departments: tuple[str, ...]
    doctors_per_department: tuple[int, int]
    nurses: tuple[int, int]
    pharmacists: tuple[int, int]
    care_workers: tuple[int, int]
    pid_formats: tuple[str, ...]


def _pair(value: Any, where: str) -> tuple[int, int]:
    if value is None:
        return (0, 0)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise DataTableError(f"facility_roles.yaml: {where} must be [low, high]")
    return (value[0], value[1])


@cache
def role_templates() -> dict[tuple[str, str], RoleTemplate]:
    text = (resources.files("synthetic") / "data" / "facility_roles.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    departments = tables.departments()
    by_name = {name: code for code, name in departments.items()}
    out = {}
    for kind, roles in raw.items():
        for role, spec in roles.items():
            where = f"{kind}.{role}"
            names = []
            for pattern in spec["names"]:
                kanji, _, kana = pattern.partition("|")
                if not kana:
                    raise DataTableError(f"facility_roles.yaml: {where}: name {pattern!r} lacks a kana part")
                names.append((kanji, kana))
            dept_codes = []
            for alternatives in spec.get("departments", []):
                found = next((by_name[a] for a in alternatives.split("|") if a in by_name), None)
                if found is None:
                    raise DataTableError(
                        f"facility_roles.yaml: {where}: no department {alternatives!r} in departments.csv"
                    )
                dept_codes.append(found)
            out[(kind, role)] = RoleTemplate(
                names=tuple(names),
                departments=tuple(dept_codes),
                doctors_per_department=_pair(spec.get("doctors_per_department"), where),
                nurses=_pair(spec.get("nurses"), where),
                pharmacists=_pair(spec.get("pharmacists"), where),
                care_workers=_pair(spec.get("care_workers"), where),
                pid_formats=tuple(spec["pid_formats"]),
            )
    return out


def _short_municipality(name: str, kana: str) -> tuple[str, str]:
    """金沢市/カナザワシ stays; 能美郡川北町/ノミグンカワキタマチ drops the district (郡) prefix."""
    if "郡" in name:
        name = name.split("郡", 1)[1]
        kana = kana.split("グン", 1)[1]
    return name, kana


class _Namer:
    def __init__(self, geo: Geography, drawer: NameDrawer) -> None:
        self.geo = geo
        self.drawer = drawer
        words = tables.facility_words()
        self.stems = [(w, k) for w, k, use in words if use == "stem"]
        self.care = [(w, k) for w, k, use in words if use == "care"]
        self.used: set[str] = set()

    def name(self, rng: random.Random, template: RoleTemplate, jis_code: str) -> tuple[str, str]:
        muni = self.geo.municipalities[jis_code]
        towns = self.geo.postcodes_by_municipality[jis_code]
        for _attempt in range(60):
            kanji, kana = rng.choice(template.names)
            surname = self.drawer.surname(rng, 0.0)
            town = rng.choice(towns)
            stem = rng.choice(self.stems)
            care = rng.choice(self.care)
            short = _short_municipality(muni.name, muni.kana)
            values = {
                "surname": (surname.kanji, surname.kana),
                "town": (town.town, town.town_kana),
                "stem": stem,
                "care": care,
                "muni": short,
            }
            for key, (k_val, r_val) in values.items():
                kanji = kanji.replace("{" + key + "}", k_val)
                kana = kana.replace("{" + key + "}", r_val)
            if kanji not in self.used:
                self.used.add(kanji)
                return kanji, kana
        raise DataTableError(f"could not find a unique facility name for template {template.names[0][0]!r}")


CLERK_KINDS = frozenset({"hospital", "clinic"})
"""Facility kinds with a medical clerk (医療事務) among their users: the viewer kind whose rule is
"patient basics only" (viewer_rules.users.clerk), so that the rule can be exercised on any world."""


_STAFF_PREFIX: Final = {
    "doctor": "D",
    "dentist": "D",
    "nurse": "N",
    "pharmacist": "P",
    "care_worker": "C",
    "clerk": "A",  # administration (医事課)
}


def _password(rng: random.Random, length: int = 12) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(length))


def _staff(
    rng: random.Random,
    template: RoleTemplate,
    drawer: NameDrawer,
    dental: bool,
    clerk_rng: random.Random | None = None,
) -> tuple[tuple[Staff, ...], tuple[User, ...]]:
    """The facility's staff and the users among them; with ``clerk_rng``, also one medical clerk (医療事務)
    with a login, drawn from that generator only, so that adding clerks changed nothing else in a world."""
    staff: list[Staff] = []
    users: list[User] = []

    def add(role: Any, department: str, viewer: Any, login: bool, draw: random.Random = rng) -> None:
        sex = "F" if draw.random() < (0.25 if role in ("doctor", "dentist") else 0.8) else "M"
        name = drawer.person(draw, sex, draw.randint(1955, 1998))
        prefix = _STAFF_PREFIX[role]
        staff_id = f"{prefix}{len(staff) + 1:05d}"
        staff.append(Staff(staff_id, role, name, department))
        if login:
            users.append(User(f"u{len(users) + 1:04d}", _password(draw), staff_id, viewer))

    for dept in template.departments:
        low, high = template.doctors_per_department
        for _ in range(rng.randint(max(low, 1), max(high, 1))):
            if dental:
                add("dentist", dept, "dentist", True)
            else:
                add("doctor", dept, "physician", True)
    if not template.departments and template.doctors_per_department[1]:
        add("doctor", "", "physician", True)
    for n in range(rng.randint(*template.nurses)):
        add("nurse", "", "nurse", n < 3)
    for _ in range(rng.randint(*template.pharmacists)):
        add("pharmacist", "", "pharmacist", True)
    for n in range(rng.randint(*template.care_workers)):
        add("care_worker", "", "care_worker", n < 3)
    if clerk_rng is not None:
        add("clerk", "", "clerk", True, clerk_rng)
    return tuple(staff), tuple(users)


def _disclosure(rng: random.Random, profile: Profile) -> tuple[str, ...]:
    chosen = list(profile.disclosure.always)
    chosen += [c for c, p in profile.disclosure.optional.items() if rng.random() < p]
    return tuple(chosen)


def _area_municipality(rng: random.Random, spec: RoleSpec, geo: Geography) -> str:
    if spec.area_weights:
        areas = [a for a, w in spec.area_weights.items() if w > 0]
        area = Weighted(areas, [spec.area_weights[a] for a in areas]).pick(rng)
        return geo.municipality(rng, area)
    return geo.municipality(rng)


def build_facilities(profile: Profile, seed: int, geo: Geography, drawer: NameDrawer) -> list[Facility]:
    """All facilities of the profile, in kind/role order, with unique codes and names."""
    templates = role_templates()
    namer = _Namer(geo, drawer)
    area_numbers = {code: i + 1 for i, code in enumerate(sorted(geo.municipalities))}
    counters: dict[tuple[str, ...], int] = {}
    facilities: list[Facility] = []
    for kind in FACILITY_KINDS:
        for role, spec in profile.facilities[kind].items():
            template = templates.get((kind, role))
            if template is None:
                raise DataTableError(f"no facility template for {kind}/{role} in facility_roles.yaml")
            drafts = []
            for i in range(spec.count):
                rng = stream(seed, "facility", kind, role, i)
                beds = rng.randint(*spec.beds) if spec.beds else 0
                drafts.append((rng, beds, i))
            by_size = sorted(drafts, key=lambda d: (-d[1], d[2]))
            disclosing_ids = {d[2] for d in by_size[: spec.disclosing]}
            for rng, beds, i in drafts:
                jis = _area_municipality(rng, spec, geo)
                muni = geo.municipalities[jis]
                medical = kind in ("hospital", "clinic", "dental", "pharmacy") or role in MEDICAL_OTHER_ROLES
                if medical:
                    table = {"dental": "dental", "pharmacy": "pharmacy"}.get(kind, "medical")
                    key = (table, jis)
                    counters[key] = counters.get(key, 0) + 1
                    number = 1000 + counters[key] * 7 + rng.randint(0, 6)  # sparse, as real numbers are
                    code = codes.medical_code(profile.prefecture_code, table, area_numbers[jis], number)
                else:
                    division = CARE_DIVISION.get(role, 1)
                    key = ("care", str(division))
                    counters[key] = counters.get(key, 0) + 1
                    code = codes.care_code(profile.prefecture_code, division, 100000 + counters[key] * 13)
                name, kana = namer.name(rng, template, jis)
                address = geo.address(rng, jis)
                links = profile.link_types[kind]
                link = Weighted(list(links), list(links.values())).pick(rng)
                clerks = stream(seed, "facility", kind, role, i, "clerk") if kind in CLERK_KINDS else None
                staff, users = _staff(rng, template, drawer, dental=kind == "dental", clerk_rng=clerks)
                disclosing = i in disclosing_ids
                facilities.append(
                    Facility(
                        code=code,
                        code_kind="medical" if medical else "care",
                        kind=kind,
                        role=role,
                        name=name,
                        kana=kana,
                        municipality_code=jis,
                        municipality=muni.name,
                        medical_area=muni.medical_area,
                        postcode=address.postcode,
                        address=address.text,
                        phone=geo.landline(rng, jis),
                        beds=beds,
                        disclosing=disclosing,
                        link_type=link,
                        oid=codes.patient_id_oid(PATIENT_ID_OID_ARC, code),
                        namespace=f"JP{code}",
                        pid_format=rng.choice(template.pid_formats),
                        departments=template.departments,
                        staff=staff,
                        users=users,
                        disclosure=_disclosure(rng, profile) if disclosing else (),
                        gateway_secret=f"{rng.getrandbits(128):032x}" if disclosing else "",
                    )
                )
    return facilities


def local_id(facility: Facility, patient_index: int) -> str:
    """The patient's ID at ``facility``: an affine bijection of the patient index, formatted per facility.

    ``n = (a·i + b) mod 10^k`` with ``a`` odd and not a multiple of 5 is a bijection on ``[0, 10^k)``, so IDs
    are unique within the facility, look unordered, and do not depend on other patients (prefix-stable).
    """
    fmt = facility.pid_format
    digits = {"digits6": 6, "digits7": 7, "digits8": 8, "digits9": 9, "digits10": 10, "alpha1digits7": 7}[fmt]
    modulus = 10**digits
    seed = int(facility.code)
    a = (seed % 9973) * 10 + 3  # ends in 3: coprime to 10
    b = (seed * 7919) % modulus
    n = (a * (patient_index + 1) + b) % modulus
    if fmt == "alpha1digits7":
        return f"{'ABCDEFGHJK'[int(facility.code[-1])]}{n:07d}"
    return f"{n:0{digits}d}"
