"""``rhin run``: scenario suites against the reference network or an external target, with a live
progress line and JSON, JUnit and HTML reports. The engine (:func:`harness.scenarios.runner.execute`)
does the work; this module only reads the options and shows what happens."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from .options import (
    SCRYPT_COST,
    Backend,
    DockerHost,
    Keyword,
    ScenariosRoot,
    ScryptCost,
    Suites,
    Tags,
    console,
    fail,
    progress_bar,
)
from .scenarios import scenario_root

if TYPE_CHECKING:
    from harness.scenarios.results import RunResult
    from harness.scenarios.runner import RunOptions

__all__ = ["run_scenarios"]

COLOURS = {"passed": "green", "failed": "red", "error": "yellow", "skipped": "dim"}


def run_scenarios(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Scenario files or folders (default: all).")
    ] = None,
    suite: Suites = None,
    tag: Tags = None,
    keyword: Keyword = None,
    target: Annotated[Path | None, typer.Option("--target", help="An external target YAML.")] = None,
    world: Annotated[
        Path, typer.Option("--world", help="World directory (the default worlds/mini is made if missing).")
    ] = Path("worlds/mini"),
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Scenarios run at once.")] = 4,
    report: Annotated[Path | None, typer.Option("--report", help="Report folder (reports/<time>).")] = None,
    root: ScenariosRoot = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="NAME=VALUE: a scenario parameter, e.g. a latency budget (repeatable)."),
    ] = None,
    allow_skips: Annotated[
        bool,
        typer.Option(
            "--allow-skips", help="Exit 0 with skipped assertions (targets declaring unsupported steps)."
        ),
    ] = False,
    scrypt_cost: ScryptCost = SCRYPT_COST,
    backend: Backend = "process",
    docker_host: DockerHost = None,
) -> None:
    """Run scenario suites against the reference network (default: the live network for --world, made if
    missing, bootstrapped from it) or --target; write JSON, JUnit and HTML reports to reports/<time>/.
    Exit 0 only when every assertion passed; skipped ones fail the run too unless --allow-skips."""
    from harness.scenarios.runner import RunOptions
    from harness.targets import ReferenceOptions

    options = RunOptions(
        scenarios_root=scenario_root(root),
        paths=paths or [],
        suites=suite or [],
        tags=tag or [],
        keyword=keyword,
        target_file=target,
        world_dir=world,
        jobs=jobs,
        report_dir=report,
        params=_params(param or []),
        allow_skips=allow_skips,
        reference=ReferenceOptions(scrypt_cost=scrypt_cost, backend=backend, docker_host=docker_host),
    )
    result, files = _execute(options)
    _summarise(result, files, allow_skips)
    raise typer.Exit(0 if result.passed(allow_skips=allow_skips) else 1)


def _params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--param {item!r}: write NAME=VALUE")
        params[name.strip()] = value.strip()
    return params


def _execute(options: RunOptions) -> tuple[RunResult, dict[str, Path]]:
    """Run with a live progress line: scenarios done, and assertions by status so far."""
    from harness.scenarios import LoadedScenario, ScenarioError, ScenarioResult
    from harness.scenarios.runner import execute
    from harness.targets import Target

    counts = dict.fromkeys(COLOURS, 0)
    with progress_bar(spinner=True, counts=True, eta=False) as bar:
        task = bar.add_task("starting the target", total=None, counts="")

        def started(scenarios: list[LoadedScenario], tgt: Target) -> None:
            total = sum(s.scenario.assertion_count for s in scenarios)
            bar.update(task, description=f"{tgt.name}: scenarios", total=len(scenarios))
            bar.update(task, counts=f"0/{total} assertions")

        def finished(result: ScenarioResult) -> None:
            for a in result.assertions:
                counts[a.status] += 1
            text = " ".join(f"[{COLOURS[s]}]{n} {s}[/]" for s, n in counts.items())
            bar.update(task, advance=1, counts=text)

        try:
            return execute(
                options,
                on_start=started,
                on_result=finished,
                on_note=lambda text: console.print(text, highlight=False, soft_wrap=True),
            )
        except ScenarioError as exc:
            bar.stop()
            fail(str(exc))


def _summarise(result: RunResult, files: dict[str, Path], allow_skips: bool) -> None:
    summary = result.summary()
    out = Console()
    for a in (a for a in result.assertions() if a.status in ("failed", "error")):
        out.print(
            f"[red]{a.status}[/] {a.assertion_id} [dim]{a.scenario} step {a.step}[/] {a.message}",
            highlight=False,
            soft_wrap=True,
        )
    out.print(
        f"{summary['assertions']} assertions in {summary['scenarios']} scenarios: "
        f"{summary['passed']} passed, {summary['failed']} failed, {summary['error']} errors, "
        f"{summary['skipped']} skipped",
        highlight=False,
    )
    if summary["skipped"] and not allow_skips and result.ok:
        out.print("[yellow]skipped assertions fail the run[/] (--allow-skips accepts them)", highlight=False)
    for kind, path in files.items():
        out.print(f"  {kind}: {path}", highlight=False)
