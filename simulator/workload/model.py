"""The workload file: who uses the network, how often, doing what — one definition for Locust and SimPy.

A workload is YAML validated by :class:`Workload` (unknown keys are errors; every problem names
``file:line: key.path``, as profiles and scenarios do). The bundled default (:func:`default_workload`) holds
the figures of ``docs/world.md`` §3; what is derived from a world (facility weights, the patients
each session opens) is :mod:`.plan`'s, deterministic from the seed.

Rates are per *registered patient* so one file serves any world: まめネット's ~0.75 record views
per registered patient per month gives ~1.3k views/day for Ishikawa's 52,640 patients. A "view" is one
viewer session (log in, find, timeline, fetch k entries).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from synthetic.errors import ProfileError
from synthetic.model import ITEM_CATEGORIES
from synthetic.yamlio import load_model

__all__ = [
    "OPERATIONS",
    "FacilityWeights",
    "Feeds",
    "SessionMix",
    "ShapeSpec",
    "Slo",
    "Workload",
    "WorkloadError",
    "default_workload",
    "load_workload",
    "parse_slo",
]

OPERATIONS: Final = (
    "login",
    "logout",
    "pix",
    "pdq",
    "pdq_next",
    "timeline",
    "fetch",
    "emergency",
    "emergency_timeline",
    "emergency_fetch",
    "outside_timeline",
    "outside_fetch",
    "feed_register",
    "feed_update",
    "feed_join",
)
"""Every request name a load run reports. ``outside_*`` are attempts by viewers outside the patient's
consent: a refusal is their success, an answer with data is a consent leak."""

SLO_PATTERN: Final = re.compile(
    r"^\s*(?P<op>[a-z_]+)\.(?P<stat>p50|p95|p99|max|failures)\s*<\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|%)?\s*$"
)


class WorkloadError(ValueError):
    """A workload file (or an SLO string) is invalid; ``str()`` names file, line and key of each problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Slo(_Strict):
    """One objective: ``timeline.p95<800ms`` (latency in ms) or ``pdq.failures<1%`` (share of requests)."""

    operation: str
    stat: Literal["p50", "p95", "p99", "max", "failures"]
    limit: float  # ms for latencies, a fraction (0–1) for failures

    def __str__(self) -> str:
        if self.stat == "failures":
            return f"{self.operation}.failures<{self.limit * 100:g}%"
        return f"{self.operation}.{self.stat}<{self.limit:g}ms"


def parse_slo(text: str) -> Slo:
    """``op.stat<value[unit]``: latencies in ms (default) or s, failures in % (default) — e.g.
    ``timeline.p95<800ms``, ``fetch.p99<2s``, ``pdq.failures<1%``. Unknown operations are errors."""
    m = SLO_PATTERN.match(text)
    if m is None:
        raise WorkloadError(
            f"SLO {text!r}: expected op.stat<value, e.g. timeline.p95<800ms or pdq.failures<1%"
        )
    op, stat, value, unit = m["op"], m["stat"], float(m["value"]), m["unit"]
    if op not in OPERATIONS:
        raise WorkloadError(f"SLO {text!r}: unknown operation {op!r} (one of {', '.join(OPERATIONS)})")
    if stat == "failures":
        if unit not in (None, "%"):
            raise WorkloadError(f"SLO {text!r}: failures are a percentage")
        return Slo(operation=op, stat="failures", limit=value / 100)
    if unit == "%":
        raise WorkloadError(f"SLO {text!r}: latencies are in ms or s")
    return Slo(operation=op, stat=stat, limit=value * 1000 if unit == "s" else value)


def _slo_syntax(text: str) -> str:
    try:
        parse_slo(text)
    except WorkloadError as exc:
        raise ValueError(str(exc)) from None
    return text


class FacilityWeights(_Strict):
    """How often each facility's users open a session: a power law over facilities (docs/world.md §3).

    A facility's *activity* is ``kind factor × role factor × its viewable patients`` (patients it holds a
    local ID for, who are sharing and whose consent covers it); facilities are ranked by activity and the
    one at rank r gets weight ``r ** -zipf_exponent`` (log-rank vs log-count linear, as まめネット reports).
    ``inactive_hospital_share`` of hospitals (chosen by a hash of seed and code) view nothing: about half
    did in a month at まめネット."""

    zipf_exponent: Annotated[float, Field(gt=0, le=4)] = 1.0
    kind_factors: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {
            "clinic": 3.0,
            "care": 2.0,
            "hospital": 1.0,
            "pharmacy": 0.5,
            "dental": 0.3,
            "other": 0.3,
        }
    )
    role_factors: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"home_nursing": 2.0}
    )
    inactive_hospital_share: Annotated[float, Field(ge=0, le=1)] = 0.5


class SessionMix(_Strict):
    """What one viewer session does. Think times are exponential with the given mean, drawn per session."""

    find: dict[Literal["pdq", "pix"], Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"pdq": 0.5, "pix": 0.5}  # type: ignore[arg-type]
    )
    fetch_k: dict[int, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {0: 0.1, 1: 0.3, 2: 0.3, 3: 0.2, 4: 0.1},
        description="weights of k, the number of entries fetched after the timeline",
    )
    categories: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {
            "progress_notes": 4.0,
            "discharge_summaries": 3.0,
            "referral_letters": 1.0,
            "lab_results": 2.0,
            "prescription_orders": 1.0,
            "nursing_notes": 1.0,
            "images": 0.3,
        },
        description="which entries a viewer opens: relative weights by item category",
    )
    charsets: dict[Literal["iso-2022-jp", "utf-8"], Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"iso-2022-jp": 0.7, "utf-8": 0.3},  # type: ignore[arg-type]
        description="MSH-18 of the viewer's MLLP queries (JAHIS systems mostly send ISO-2022-JP)",
    )
    pdq_page: Annotated[int, Field(ge=1, le=1000)] = 5
    think_time_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    outside_consent_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    emergency_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    emergency_minutes: Annotated[int, Field(ge=1, le=1440)] = 30

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(ITEM_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown item categories {unknown} (known: {', '.join(ITEM_CATEGORIES)})")
        if not any(value.values()):
            raise ValueError("at least one category needs a weight above 0")
        return value

    @field_validator("find", "fetch_k", "charsets")
    @classmethod
    def _some_weight(cls, value: dict[object, float]) -> dict[object, float]:
        if not any(value.values()):
            raise ValueError("at least one weight must be above 0")
        return value

    @model_validator(mode="after")
    def _shares(self) -> SessionMix:
        if self.outside_consent_share + self.emergency_share > 1:
            raise ValueError("outside_consent_share + emergency_share exceed 1")
        if any(k < 0 or k > 50 for k in self.fetch_k):
            raise ValueError("fetch_k keys must be 0–50 entries")
        return self


class Feeds(_Strict):
    """ITI-8 traffic beside the viewers. Rates per registered patient per day (assumptions, stated: about
    5 % new registrations and 3 % demographic updates a year). ``join_facility``: a facility whose whole
    patient list is registered at once ``join_at_s`` seconds into the run (``auto``: the world's viewing
    facility with the most patients; ``null``: no burst)."""

    registrations_per_patient_day: Annotated[float, Field(ge=0)] = 0.05 / 365
    updates_per_patient_day: Annotated[float, Field(ge=0)] = 0.03 / 365
    join_facility: str | None = "auto"
    join_at_s: Annotated[float, Field(ge=0)] = 5.0


class ShapeSpec(_Strict):
    """How load varies in time. ``peak``: the realistic weekday peak × ``multiplier``, constant.
    ``diurnal``: the weekday curve (:func:`.shape.diurnal_factor`), one day compressed into ``day_s``
    seconds, × ``multiplier``. ``step``: ``step_start`` × peak, times ``step_factor`` every ``step_s``
    seconds, until an SLO breaks or ``step_max`` is passed (the knee)."""

    kind: Literal["peak", "diurnal", "step"] = "peak"
    multiplier: Annotated[float, Field(gt=0, le=100_000)] = 1.0
    day_s: Annotated[float, Field(gt=0)] = 600.0
    step_start: Annotated[float, Field(gt=0)] = 1.0
    step_factor: Annotated[float, Field(gt=1)] = 2.0
    step_s: Annotated[float, Field(gt=0)] = 60.0
    step_max: Annotated[float, Field(gt=0)] = 1000.0


class Workload(_Strict):
    """A workload file (``schema_version: 1``)."""

    schema_version: Literal[1]
    name: str = "default"
    remarks: str = ""
    views_per_patient_month: Annotated[float, Field(ge=0)] = 0.75
    weekday_hours_share: Annotated[float, Field(gt=0, lt=1)] = 0.7
    facilities: FacilityWeights = FacilityWeights()
    session: SessionMix = SessionMix()
    feeds: Feeds = Feeds()
    shape: ShapeSpec = ShapeSpec()
    slo: list[Annotated[str, AfterValidator(_slo_syntax)]] = Field(
        default_factory=lambda: ["timeline.p95<800ms", "fetch.p95<1500ms"]
    )

    def slos(self) -> list[Slo]:
        return [parse_slo(s) for s in self.slo]

    def views_per_day(self, registered_patients: int) -> float:
        """Viewer sessions a day (30-day month): ishikawa's 52,640 patients × 0.75 / 30 ≈ 1,316."""
        return registered_patients * self.views_per_patient_month / 30


DEFAULT_REMARKS: Final = (
    "Figures from docs/world.md §3: まめネット ~0.75 record views per registered patient per month "
    "(≈1.3k/day for Ishikawa), ~70 % in weekday clinic hours 9–18, accesses per facility following a power "
    "law, clinics and home nursing viewing most, about half of hospitals viewing nothing in a month. The "
    "session mix, think time and feed rates are assumptions."
)


def default_workload() -> Workload:
    """The bundled workload (docs/world.md §3 figures; the rest stated as assumptions in ``remarks``)."""
    return Workload(schema_version=1, name="default", remarks=DEFAULT_REMARKS)


def load_workload(path: Path) -> Workload:
    """A workload from YAML; :class:`WorkloadError` names ``file:line: key.path`` for every problem."""
    try:
        return load_model(Workload, path)
    except OSError as exc:
        raise WorkloadError(f"cannot read workload file {path}: {exc}") from exc
    except ProfileError as exc:
        raise WorkloadError(str(exc)) from None
