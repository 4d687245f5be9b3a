"""The ``rhin`` application: every command, registered here and nowhere else, so this file is the table of
contents. A command lives in the module of its concern (the function, its options, its helpers); a new
concern gets a new module, registered below in its own block.
"""

from __future__ import annotations

import typer

from harness.des.commands import calibrate_cmd, simulate_cmd
from harness.load.command import load_cmd

from . import gateway, hub, network, run, scenarios, storage, world

__all__ = ["app", "main"]

app = typer.Typer(
    help="rhin: a test-bed for Japanese regional health information networks.", no_args_is_help=True
)

# --- worlds (world.py, storage.py) --------------------------------------------------------------------
app.command()(world.generate)
app.command("validate-storage")(storage.validate_storage_cmd)
world_app = typer.Typer(help="Inspect a generated world.", no_args_is_help=True)
world_app.command("stats")(world.stats)
app.add_typer(world_app, name="world")

# --- the hub and the live network (hub.py, network.py) -------------------------------------------------
app.command()(hub.hub)
app.command()(gateway.gateway)
audit_app = typer.Typer(help="The hub's audit log, offline.", no_args_is_help=True)
audit_app.command("verify")(hub.audit_verify)
app.add_typer(audit_app, name="audit")
app.command()(network.up)
app.command()(network.fault)
app.command()(network.down)
app.command("bootstrap")(network.bootstrap_cmd)
app.command()(network.compose)

# --- scenarios (scenarios.py, run.py) ------------------------------------------------------------------
scenarios_app = typer.Typer(help="Scenario files: validate them, list them, print their JSON Schema.")
scenarios_app.command("schema")(scenarios.scenarios_schema)
scenarios_app.command("check")(scenarios.scenarios_check)
scenarios_app.command("list")(scenarios.scenarios_list)
app.add_typer(scenarios_app, name="scenarios")
app.command("run")(run.run_scenarios)

# --- load testing (harness/load/command.py: the command beside the load runner it drives) ----------------
app.command("load")(load_cmd)

# --- the capacity model (harness/des/commands.py: calibrate from the live network, simulate in SimPy) -----
app.command("calibrate")(calibrate_cmd)
app.command("simulate")(simulate_cmd)


def main() -> None:
    """The console script (``rhin = "harness.cli:main"``) and ``python -m harness.cli``."""
    app()
