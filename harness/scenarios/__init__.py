"""Scenario suites: the YAML format, loading with file:line:key errors, ``given`` resolved against a world,
and the engine that runs steps against a target into results.

Where things are:

- the format (:mod:`.model`, which builds ``Step`` and ``Scenario`` and re-exports the rest): shared field
  types (:mod:`.fields`), expectations (:mod:`.expectations`), the action of each step kind
  (:mod:`.actions`, declared with :mod:`.kinds`: read its docstring to add a kind), ``given`` and ``world``
  (:mod:`.given`); ``${...}`` variables (:mod:`.variables`) and subjects such as ``MSA-1`` (:mod:`.subjects`);
- loading and selection (:mod:`.loader`); the world and allocation of its patients (:mod:`.worldindex`,
  :mod:`.world`), and what runs on a long-lived target left (:mod:`.history`);
- running: :mod:`.engine` (a run, a scenario, a step), :mod:`.evaluation` (expectations), :mod:`.context`
  (one scenario's state), :mod:`.runners` (the runner of each kind), and the step modules that register
  them: :mod:`.steps_mllp` (HL7 v2 built by :mod:`.hl7build`), :mod:`.steps_http` and :mod:`.steps_probes`
  (through :mod:`.hubcalls`), :mod:`.steps_local`, :mod:`.steps_audit`;
- results (:mod:`.results`), and the ``rhin run`` driver with its reports (:mod:`.runner`).

This package's namespace holds the format, loading and results only: the engine (``from
harness.scenarios.engine import run``) needs a :class:`harness.targets.Target`, and targets are described
with the format's step kinds, users and errors, so re-exporting the engine here would make
``harness.targets`` and this package import each other.
"""

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
    "schema",
    "select",
]


def schema() -> dict[str, object]:
    """The JSON Schema of a scenario file (what ``rhin scenarios schema`` prints), for editors."""
    out = Scenario.model_json_schema(by_alias=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = "https://rhin.invalid/schema/scenario-v1.json"
    return out
