"""Scenario suites: the YAML format (:mod:`.model`), loading with file:line:key errors (:mod:`.loader`),
``given`` resolved against a world (:mod:`.world`), and the engine that runs steps against a target
(:mod:`.engine`) into results (:mod:`.results`)."""

from harness.scenarios.engine import run, run_scenario
from harness.scenarios.errors import FormatError, ScenarioError, SelectionError, StepError, TargetError
from harness.scenarios.loader import LoadedScenario, discover, load_scenario, parse_scenario, select
from harness.scenarios.model import SCHEMA_VERSION, Scenario, Step
from harness.scenarios.results import AssertionResult, CheckResult, Exchange, RunResult, ScenarioResult
from harness.scenarios.world import Allocator, Bindings, WorldIndex

__all__ = [
    "SCHEMA_VERSION",
    "Allocator",
    "AssertionResult",
    "Bindings",
    "CheckResult",
    "Exchange",
    "FormatError",
    "LoadedScenario",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "SelectionError",
    "Step",
    "StepError",
    "TargetError",
    "WorldIndex",
    "discover",
    "load_scenario",
    "parse_scenario",
    "run",
    "run_scenario",
    "schema",
    "select",
]


def schema() -> dict[str, object]:
    """The JSON Schema of a scenario file (what ``rhin scenarios schema`` prints), for editors."""
    out = Scenario.model_json_schema(by_alias=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = "https://rhin.invalid/schema/scenario-v1.json"
    return out
