"""One scenario's running state: its bindings, captures, connections, sessions and the variable resolver.

A context belongs to one scenario on one thread; nothing in it is shared, which is what makes a parallel run
equal to a serial one. A step's effects on variables (its captures, the regional ID a link returns) apply
after its own expectations are evaluated, so ``${p.rid}`` in a link step's expectation is the ID from
before that step. Request identifiers derive from the scenario tag and step number (MSH-10
``<tag><step><n>``, query tags ``Q<tag><step>``), and MSH-7 is the world's reference date at 09:00 JST, so
the same run sends the same requests whatever the thread count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .bindings import Bindings, PatientBinding
from .errors import StepError
from .variables import PARAM_ROOT, Reference, substitute
from .worldindex import WorldFacility, WorldIndex

if TYPE_CHECKING:
    from harness.hubclient import HubClient
    from harness.targets import Target

    from .loader import LoadedScenario

__all__ = ["Connection", "Context", "PdqState"]


class Connection(Protocol):
    """A connection a scenario keeps open between steps. The context only closes it when the scenario ends;
    the step module that opens one knows its type (:mod:`.steps_mllp`'s). A protocol, so that this module
    need not import the step modules, which import it."""

    def close(self) -> None: ...


@dataclass
class PdqState:
    """The last PDQ query of a tag: how to rebuild it, and the continuation pointer its reply gave."""

    sender: str
    charset: str
    fields: dict[str, str]
    domains: list[str]
    quantity: int | None
    pointer: str = ""


@dataclass
class Context:
    loaded: LoadedScenario
    bindings: Bindings
    target: Target
    world: WorldIndex
    captures: dict[str, str | None] = field(default_factory=dict)
    step: int = 0
    connections: dict[str, Connection] = field(default_factory=dict)
    sessions: dict[str, HubClient] = field(default_factory=dict)
    pdq: dict[str, PdqState] = field(default_factory=dict)
    last_query_tag: str | None = None
    faults: set[str] = field(default_factory=set)
    after_step: list[Callable[[], None]] = field(default_factory=list)
    params: Mapping[str, str] = field(default_factory=dict)  # the run's overrides of scenario params
    v3: dict[str, Any] = field(default_factory=dict)  # v3 clients and the last v3 PDQ (.steps_v3)
    _counter: int = 0

    # ----------------------------------------------------------------------------------- identifiers

    @property
    def tag(self) -> str:
        return self.bindings.tag

    def control_id(self) -> str:
        """A fresh MSH-10, unique in the run and the same in every run with the same salt."""
        self._counter += 1
        return f"{self.tag}{self.step:03d}{self._counter:02d}"

    def query_tag(self) -> str:
        return f"Q{self.tag}{self.step:03d}"

    def timestamp(self) -> str:
        return self.world.reference_date.strftime("%Y%m%d") + "090000+0900"

    # ----------------------------------------------------------------------------------- variables

    def text(self, value: str) -> str:
        return substitute(value, self.resolve)

    def maybe(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def resolve(self, ref: Reference) -> str:
        root, attr = ref.root, ref.attr
        if root in self.bindings.patients:
            return self._patient_attr(self.bindings.patients[root], attr or "", ref.at)
        if root in self.bindings.facilities:
            return self._facility_attr(self.bindings.facilities[root], attr or "")
        if root == "world":
            return self._world_attr(attr or "")
        if root == "scenario":
            return self.loaded.scenario.id if attr == "id" else self.tag
        if root == PARAM_ROOT and attr is not None:
            return self.param(attr)
        if root == "regional":
            t = self.target
            hd = f"{t.regional_namespace}&{t.regional_oid}&ISO"
            return {"namespace": t.regional_namespace, "oid": t.regional_oid, "hd": hd}[attr or "hd"]
        if root in self.captures:
            value = self.captures[root]
            if value is None:
                raise StepError(f"${{{ref.text}}}: the step that should have captured it saw nothing")
            return value
        raise StepError(f"${{{ref.text}}} is not defined (yet)")

    def _patient_attr(self, b: PatientBinding, attr: str, at: str | None) -> str:
        p = b.patient
        if attr in ("local_id", "cx"):
            facility = self.facility(at or "")
            local = b.local_id(facility.code)
            return local if attr == "local_id" else f"{local}^^^{facility.hd}"
        if attr == "rid":
            if b.rid is None:
                raise StepError(
                    f"{b.var} has no regional ID yet: link them first (a link step) or capture one"
                )
            return b.rid
        if attr == "birth_date":
            return b.birth_date
        if attr == "birth_date_iso":
            return b.birth_date_iso
        if attr == "world_regional_id":
            return p.regional_id
        if attr == "index":
            return str(p.index)
        if attr == "consent_form":
            consent = self.world.consents.get(p.index)
            if consent is None:
                raise StepError(f"{b.var} has no consent form in the world")
            return consent.form.form_id
        value: Any = getattr(p, attr)
        return str(value)

    def _facility_attr(self, f: WorldFacility, attr: str) -> str:
        if attr == "hd":
            return f.hd
        if attr == "user":
            return self.user(f.code, None)[0]
        value: Any = getattr(f, attr)
        return str(value)

    def _world_attr(self, attr: str) -> str:
        w = self.world
        values = {
            "reference_date": w.reference_date.isoformat(),
            "reference_day": w.reference_date.strftime("%Y%m%d"),
            "profile": w.profile,
            "seed": str(w.seed),
            # The network's today (JST, as the hub dates papers): for a paper that must be dated after
            # others yet not in the future (e.g. a new consent after a withdrawal dated reference_date).
            "today": dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date().isoformat(),
        }
        return values[attr]

    def param(self, name: str) -> str:
        """A parameter: the run's (or the target's) value, else the scenario's default."""
        if name in self.params:
            return self.params[name]
        declared = self.loaded.scenario.params
        if name not in declared:
            raise StepError(f"${{param.{name}}}: the scenario declares no such parameter")
        value = declared[name]
        return str(value) if not isinstance(value, float) or not value.is_integer() else str(int(value))

    # ----------------------------------------------------------------------------------- lookups

    def facility(self, var: str) -> WorldFacility:
        try:
            return self.bindings.facilities[var]
        except KeyError:
            raise StepError(f"{var!r} is not a facility of this scenario") from None

    def patient(self, var: str) -> PatientBinding:
        try:
            return self.bindings.patients[var]
        except KeyError:
            raise StepError(f"{var!r} is not a patient of this scenario") from None

    def facility_code(self, value: str) -> str:
        """A facility variable's code, or the text itself (a raw code) after substitution."""
        if value in self.bindings.facilities:
            return self.bindings.facilities[value].code
        return self.text(value)

    def domain(self, value: str) -> str:
        """A QPD-4/QPD-8 repetition: a facility variable or ``regional`` → ``^^^NS&OID&ISO``; else raw."""
        if value in self.bindings.facilities:
            return f"^^^{self.bindings.facilities[value].hd}"
        if value == "regional":
            t = self.target
            return f"^^^{t.regional_namespace}&{t.regional_oid}&ISO"
        return self.text(value)

    def user(self, facility_code: str, kind: str | None, user_id: str | None = None) -> tuple[str, str]:
        """(user ID, password) of one of the facility's users known to the target."""
        users = self.target.users.get(facility_code, ())
        for u in users:
            if (user_id is None or u.user_id == user_id) and (kind is None or u.viewer_kind == kind):
                return u.user_id, u.password
        wanted = f"user {user_id!r}" if user_id else f"a {kind} user" if kind else "any user"
        raise StepError(f"the target knows {wanted} of facility {facility_code}: none")

    def regional_id(self, patient: str | None, explicit: str | None) -> str:
        if explicit is not None:
            return self.text(explicit)
        if patient is None:
            raise StepError("say whose record: `patient` or `regional_id`")
        b = self.patient(patient)
        if b.rid is None:
            raise StepError(f"{patient} has no regional ID yet: link them first, or give regional_id")
        return b.rid
