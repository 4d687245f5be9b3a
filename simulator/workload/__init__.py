"""The workload model: who uses the network, how often, doing what — read by Locust (``loadtests``) and the
SimPy model alike. :mod:`.model` is the file format, :mod:`.shape` the rates in time, :mod:`.plan` the
workload applied to a world (facility weights, sessions, feeds), deterministic from the seed."""

from .model import (
    OPERATIONS,
    Slo,
    Workload,
    WorkloadError,
    default_workload,
    load_workload,
    parse_slo,
)
from .plan import FeedMessage, PlanFacility, PlannedSession, PlanPatient, PlanUser, WorldPlan
from .shape import STEP_SETTLING, Rates, diurnal_factor, peak_factor, step_multiplier

__all__ = [
    "OPERATIONS",
    "STEP_SETTLING",
    "FeedMessage",
    "PlanFacility",
    "PlanPatient",
    "PlanUser",
    "PlannedSession",
    "Rates",
    "Slo",
    "Workload",
    "WorkloadError",
    "WorldPlan",
    "default_workload",
    "diurnal_factor",
    "load_workload",
    "parse_slo",
    "peak_factor",
    "step_multiplier",
]
