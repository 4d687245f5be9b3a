"""Consent: the MHLW patterns as data, and the pure decisions every other part reuses.

Patterns (renkei-support.mhlw.go.jp, 同意方式): ``all`` (一括同意: every participating facility),
``all_except`` (一括同意 with an exclusion list), ``allow_list`` (個別同意/リスト指定: ticked facilities
only) and ``per_facility`` (施設ごとに同意: a first form for some facilities plus 連携先追加の同意書
for each added one).
A withdrawal (同意撤回届) ends sharing from its date on.

"Sharing" is defined precisely here (and nowhere else): a registered patient is *sharing* on a date when
some disclosing facility D holds data of theirs in an item category D discloses, D is within the
patient's consent, and another facility V ≠ D where the patient has a local ID is within the consent too —
so at least one facility other than the source may view something. Consent is judged on that date.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from synthetic.model import ConsentAddition, ConsentForm, ConsentWithdrawal, Facility
from synthetic.profile import Profile
from synthetic.rng import Weighted


@dataclass(frozen=True, slots=True)
class ConsentState:
    """One patient's consent documents, as the hub holds them."""

    form: ConsentForm
    additions: tuple[ConsentAddition, ...] = ()
    withdrawal: ConsentWithdrawal | None = None

    def active(self, on: dt.date) -> bool:
        if on < self.form.signed_on:
            return False
        return self.withdrawal is None or on < self.withdrawal.withdrawn_on

    def covers(self, facility_code: str, on: dt.date) -> bool:
        """Is ``facility_code`` within the consent on ``on`` (signed, not withdrawn, in scope)?"""
        if not self.active(on):
            return False
        pattern = self.form.pattern
        if pattern == "all":
            return True
        if pattern == "all_except":
            return facility_code not in self.form.facilities
        if facility_code in self.form.facilities:
            return True
        if pattern == "per_facility":
            return any(a.facility_code == facility_code and a.signed_on <= on for a in self.additions)
        return False


def is_sharing(
    consent: ConsentState,
    local_facilities: Iterable[str],
    held: Mapping[str, set[str]],
    disclosure: Mapping[str, Iterable[str]],
    on: dt.date,
) -> bool:
    """The definition of a sharing patient (see the module docstring)."""
    locals_in = [code for code in local_facilities if consent.covers(code, on)]
    for source, categories in held.items():
        shared = set(disclosure.get(source, ()))
        if not shared or categories.isdisjoint(shared) or not consent.covers(source, on):
            continue
        if any(code != source for code in locals_in):
            return True
    return False


def sharing_possible(
    local: Mapping[str, dt.date], held: Mapping[str, set[str]], by_code: Mapping[str, Facility]
) -> bool:
    """Would an unrestricted consent make this patient sharing? (held data at a discloser + a second site)"""
    sources = [
        c for c, cats in held.items() if by_code[c].disclosing and cats.intersection(by_code[c].disclosure)
    ]
    return bool(sources) and len(local) >= 2


def build_consent(
    rng: random.Random,
    profile: Profile,
    patient_index: int,
    local: Mapping[str, dt.date],
    held: Mapping[str, set[str]],
    by_code: Mapping[str, Facility],
    extra_pool: list[str],
    target_sharing: bool,
    reference: dt.date,
) -> ConsentState:
    """Consent documents that make the patient sharing exactly when ``target_sharing`` says so."""
    order = sorted(local, key=lambda c: (local[c], c))
    sources = [c for c in order if by_code[c].disclosing and c in held]
    taken_at = sources[0] if sources else order[0]
    signed_on = local[taken_at]
    patterns = profile.consent.patterns
    pattern = Weighted(list(patterns), list(patterns.values())).pick(rng)
    emergency = rng.random() < profile.consent.emergency_allowed_share
    withdraw = False
    restrict = False
    if not target_sharing:
        ratio = 1.0 - profile.sharing_ratio()
        withdraw = rng.random() < min(profile.consent.withdrawal_share / max(ratio, 1e-9), 1.0)
        withdraw = withdraw and signed_on < reference
        restrict = not withdraw and sharing_possible(local, held, by_code)
        if restrict:
            pattern = rng.choice(["allow_list", "per_facility"])
    form_id = f"C{patient_index + 1:07d}"
    additions: list[ConsentAddition] = []
    if pattern == "all":
        scope: tuple[str, ...] = ()
    elif pattern == "all_except":
        outside = [c for c in extra_pool if c not in local]
        scope = tuple(sorted(rng.sample(outside, min(len(outside), rng.randint(1, 3)))))
    elif pattern == "allow_list":
        if restrict:
            scope = (taken_at,)
        else:
            extras = [c for c in extra_pool if c not in local]
            scope = tuple(sorted({*local, *rng.sample(extras, min(len(extras), rng.randint(0, 3)))}))
    else:  # per_facility
        initial = sorted(c for c in local if local[c] <= signed_on)
        scope = tuple(initial) if not restrict else (taken_at,)
        if not restrict:
            for n, code in enumerate(c for c in order if c not in initial):
                additions.append(
                    ConsentAddition(f"{form_id}-A{n + 1}", patient_index, form_id, code, local[code], code)
                )
    form = ConsentForm(form_id, patient_index, pattern, signed_on, taken_at, scope, emergency)
    withdrawal = None
    if withdraw:
        span = (reference - signed_on).days
        when = signed_on + dt.timedelta(days=rng.randint(1, span)) if span >= 1 else reference
        withdrawal = ConsentWithdrawal(f"{form_id}-W", patient_index, form_id, when, rng.choice(order))
    return ConsentState(form, tuple(additions), withdrawal)
