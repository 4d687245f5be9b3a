"""Run scenarios against a target: steps in order, expectations into results, scenarios in parallel.

Determinism: patients are allocated for every selected scenario *before* any runs (in suite/ID order), each
scenario has its own connections and sessions, request IDs derive from the scenario and step, and results
are returned in suite/ID order — so ``jobs=N`` gives the same outcomes as ``jobs=1``. Scenarios that fault
gateways or ask for ``exclusive`` run after the parallel batch, one at a time. ``networks`` (the reference
target's launcher) gives more networks: ``world.links`` scenarios share one with the link models on, after
the main target's scenarios; ``world.own`` ones each get one of their own. Without it, ``links`` scenarios
run on the target as it is and ``own`` ones are skipped.

World patients (not ``fresh``) get the regional ID the target's bootstrap gave them (``regional_ids``), so
scenarios can use the world as the hub holds it; ``world.bootstrapped`` scenarios are skipped on a target
that does not hold the world. Scenarios that change world patients get pinned ones from the reserved pool,
the others never a pool patient nor one an earlier run changed (:mod:`.world`); a selection that cannot be
met so is refused (:class:`ReservedError`) before anything runs.

A step that cannot be carried out (unreachable target, unresolved variable, failed automatic login) marks
its own expectations and every later one ``error``; a step kind the target does not support — or a step
needing the world's files on a target without them — marks them ``skipped``. A hub that answers wrongly
only ever produces ``failed``. A repeated step (``repeat``) runs warm-up + count times; its expectations
must hold for every repetition, its ``latency.*`` subjects are computed over the timed ones.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final

import harness.scenarios.steps_audit as steps_audit
import harness.scenarios.steps_http as steps_http
import harness.scenarios.steps_local as steps_local
import harness.scenarios.steps_mllp as steps_mllp
import harness.scenarios.steps_probes as steps_probes
import harness.scenarios.steps_v3 as steps_v3

from .bindings import describe
from .context import Context
from .errors import ScenarioError, SelectionError, StepError
from .evaluation import evaluate, kept
from .loader import LoadedScenario
from .model import DATA_FOLDER_KINDS, LOCAL_KINDS, Step
from .results import (
    AssertionResult,
    CheckResult,
    Exchange,
    RunResult,
    ScenarioResult,
    Status,
    StepRecord,
    StepStatus,
)
from .runners import check_complete, runner_for
from .subjects import Latency, Observation, observe, parse_subject, render
from .variables import substitute
from .world import Allocator, Bindings, ReservedError, WorldIndex

if TYPE_CHECKING:
    from harness.targets import Target

__all__ = ["STEP_MODULES", "run", "run_scenario"]


# Importing the step modules registers their kinds' runners (@runs, see runners.py): a new one goes here.
STEP_MODULES: Final = (
    steps_audit,
    steps_http,
    steps_local,
    steps_mllp,
    steps_probes,
    steps_v3,
)
check_complete()

Networks = Callable[[bool], AbstractContextManager["Target"]]
"""``networks(links)``: a new reference network (link models on or off) as a target, stopped on exit."""
OnResult = Callable[[ScenarioResult], None]


# ------------------------------------------------------------------------------------------- one step


def _perform(ctx: Context, step: Step) -> tuple[list[Observation], list[list[Exchange]], Latency | None]:
    """Run the step once, or warm-up + count times; the observations and each run's exchanges."""
    runner = runner_for(step.kind)
    if step.repeat is None:
        obs, exchanges = runner(ctx, step.action)
        return [obs], [exchanges], None
    rep = step.repeat
    count = _count(ctx, rep.count)
    total = rep.warmup + count
    observations: list[Observation] = []
    runs: list[list[Exchange]] = []
    for i in range(total):
        obs, exchanges = runner(ctx, step.action)
        warm = i < rep.warmup
        for x in exchanges:
            x.label += f" [warm-up {i + 1}/{rep.warmup}]" if warm else f" [{i - rep.warmup + 1}/{count}]"
            x.timed = not warm
        observations.append(obs)
        runs.append(exchanges)
        if rep.pause_ms and i < total - 1:
            time.sleep(rep.pause_ms / 1000)
    timed = tuple(round(o.elapsed_ms, 3) for o in observations[rep.warmup :])
    return observations, runs, Latency(timed)


def _count(ctx: Context, value: int | str) -> int:
    if isinstance(value, int):
        return value
    text = ctx.text(value)
    try:
        count = int(float(text))
    except ValueError:
        raise StepError(f"repeat count {value} is {text!r}, not a number") from None
    if not 1 <= count <= 100_000:
        raise StepError(f"repeat count {value} is {count}: 1 to 100000")
    return count


def _needs_local_files(step: Step) -> bool:
    action = step.action
    return step.kind in LOCAL_KINDS or (step.kind == "fetch" and bool(getattr(action, "world_file", False)))


# ------------------------------------------------------------------------------------------- one scenario

Stop = tuple[Status, str]
"""Why the rest of a scenario does not run: the status its later assertions get, and the message."""


def _assertions(
    loaded: LoadedScenario, n: int, step: Step, status: Status, message: str, evidence: list[Exchange]
) -> Iterator[AssertionResult]:
    for e_index, e in enumerate(step.expect):
        yield AssertionResult(
            assertion_id=e.id,
            status=status,
            suite=loaded.suite,
            scenario=loaded.id,
            step=n + 1,
            step_name=step.name or step.kind,
            kind=step.kind,
            title=e.title or "",
            message=message,
            location=loaded.where("steps", n, "expect", e_index),
            evidence=list(evidence),
        )


def _not_run(
    result: ScenarioResult,
    loaded: LoadedScenario,
    n: int,
    record: StepStatus,
    stop: Stop,
    error: str = "",
    begun: float | None = None,
) -> None:
    """Record step ``n`` as not carried out (``record``: the step's status) and each of its expectations
    with ``stop``'s status and message: the one place a skipped, failed or unreached step is written."""
    step = loaded.scenario.steps[n]
    elapsed = 0.0 if begun is None else _ms(begun)
    result.steps.append(StepRecord(n + 1, step.name or step.kind, step.kind, record, elapsed, error))
    result.assertions.extend(_assertions(loaded, n, step, *stop, []))


def _skip_reason(step: Step, target: Target) -> str:
    """Why ``target`` cannot run ``step`` at all (so it is skipped, not failed), or ""."""
    if step.kind in DATA_FOLDER_KINDS and target.kind != "reference":
        return "acts on the hub's data folder; only the reference target's is on this machine"
    if step.kind not in target.supports and step.kind not in LOCAL_KINDS:
        return f"target {target.name} does not support {step.kind} steps"
    if _needs_local_files(step) and not target.local_files:
        return f"needs the world's files on this machine; target {target.name} does not declare local_files"
    return ""


def run_scenario(
    loaded: LoadedScenario,
    target: Target,
    world: WorldIndex,
    bindings: Bindings | None,
    problem: str = "",
    params: Mapping[str, str] | None = None,
) -> ScenarioResult:
    """Run one scenario (``bindings`` from the run's allocator; ``problem``: why it cannot run at all;
    ``params``: the run's parameter values over the scenario's defaults)."""
    sc = loaded.scenario
    result = ScenarioResult(loaded.suite, sc.id, sc.title, str(loaded.path), list(sc.tags), list(sc.remarks))
    started = time.perf_counter()
    if bindings is None or problem:
        result.error = problem.removeprefix("skipped: ")
        stop: Stop = ("skipped" if problem.startswith("skipped: ") else "error", result.error)
        for n in range(len(sc.steps)):
            _not_run(result, loaded, n, "not-run", stop)
        return result
    for b in bindings.patients.values():
        b.rid = (
            None if b.fresh or target.regional_ids is None else target.regional_ids.get(b.patient.patient_id)
        )
    result.given = describe(bindings)
    ctx = Context(loaded, bindings, target, world, params=dict(params or {}))
    stopped: Stop | None = None  # once a step could not run, the later ones do not either
    try:
        for n in range(len(sc.steps)):
            ctx.step = n + 1
            if stopped is not None:
                _not_run(result, loaded, n, "not-run", stopped, error=stopped[1])
            else:
                stopped = _run_step(ctx, result, n)
    finally:
        _close(ctx)
        result.duration_ms = _ms(started)
    return result


def _run_step(ctx: Context, result: ScenarioResult, n: int) -> Stop | None:
    """Run step ``n`` and record it; what stops the scenario's later steps if it could not run."""
    loaded = ctx.loaded
    step = loaded.scenario.steps[n]
    why = _skip_reason(step, ctx.target)
    if why:
        _not_run(result, loaded, n, "skipped", ("skipped", why), error=why)
        return "skipped", f"not run: step {n + 1} was skipped ({why})"
    begun = time.perf_counter()
    try:
        observations, runs, latency = _perform(ctx, step)
    except (StepError, ScenarioError) as exc:
        why = f"step {n + 1} ({step.kind}) could not run: {exc}"
        _not_run(result, loaded, n, "error", ("error", why), error=str(exc), begun=begun)
        return "error", f"not run: {why}"
    except Exception as exc:  # a bug must not take the other scenarios down
        why = f"step {n + 1} ({step.kind}) crashed: {type(exc).__name__}: {exc}"
        _not_run(result, loaded, n, "error", ("error", why), error=why, begun=begun)
        return "error", f"not run: {why}"
    elapsed = _ms(begun)
    _record(ctx, result, n, observations, runs, latency, elapsed)
    for var, subject in step.capture.items():
        try:
            value = observe(parse_subject(substitute(subject, ctx.resolve)), observations[-1], latency)
        except StepError:
            value = None
        ctx.captures[var] = None if value is None or _absent(value) else render(value)
    for effect in ctx.after_step:
        effect()
    ctx.after_step.clear()
    return None


def _record(
    ctx: Context,
    result: ScenarioResult,
    n: int,
    observations: list[Observation],
    runs: list[list[Exchange]],
    latency: Latency | None,
    elapsed: float,
) -> None:
    """Evaluate a step's expectations on what it observed; record the step and its assertions."""
    loaded = ctx.loaded
    step = loaded.scenario.steps[n]
    evaluated: list[tuple[Status, str, list[CheckResult]]] = []
    failing: set[int] = set()
    for e in step.expect:
        try:
            status, message, checks, bad = evaluate(e, observations, latency, ctx)
        except StepError as exc:
            status, message, checks, bad = "error", f"expectation could not be evaluated: {exc}", [], set()
        evaluated.append((status, message, checks))
        failing |= bad
    exchanges = kept(runs, failing)
    name = step.name or step.kind
    record = StepRecord(n + 1, name, step.kind, "ok", elapsed, exchanges=exchanges)
    if step.repeat is not None and latency is not None:
        record.repeat = {
            "count": len(latency.values),
            "warmup": step.repeat.warmup,
            "latencies_ms": list(latency.values),
        }
    result.steps.append(record)
    for e_index, (e, (status, message, checks)) in enumerate(zip(step.expect, evaluated, strict=True)):
        result.assertions.append(
            AssertionResult(
                assertion_id=e.id,
                status=status,
                suite=loaded.suite,
                scenario=loaded.id,
                step=n + 1,
                step_name=name,
                kind=step.kind,
                title=e.title or "",
                message=message,
                location=loaded.where("steps", n, "expect", e_index),
                duration_ms=round(elapsed, 3),
                checks=checks,
                evidence=list(exchanges),
            )
        )


def _absent(value: Any) -> bool:
    return render(value) in ("<absent>", "")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _close(ctx: Context) -> None:
    steps_http.reset_faults(ctx)
    for conn in ctx.connections.values():
        conn.close()
    for session in ctx.sessions.values():
        session.close()
    steps_v3.close(ctx)


# ------------------------------------------------------------------------------------------- a run


def _world_problem(loaded: LoadedScenario, world: WorldIndex, target: Target) -> str:
    needs = loaded.scenario.world
    if needs.profile is not None and world.profile not in needs.profile:
        return (
            f"skipped: needs a world of profile {' or '.join(needs.profile)}; this world is {world.profile}"
        )
    if needs.seed is not None and world.seed != needs.seed:
        return f"skipped: needs a world of seed {needs.seed}; this world's is {world.seed}"
    if needs.patients is not None and world.registered < needs.patients:
        return f"skipped: needs at least {needs.patients} patients; this world has {world.registered}"
    if needs.user_kinds:
        have = {u.viewer_kind for users in target.users.values() for u in users}
        missing = sorted(set(needs.user_kinds) - have)
        if missing:
            return (
                f"skipped: needs hub users of kind {', '.join(missing)}; target {target.name} has none "
                f"(its users are {', '.join(sorted(have)) or 'none'})"
            )
    if needs.bootstrapped and target.regional_ids is None:
        return (
            f"skipped: needs a hub that holds the world (bootstrapped); target {target.name} gives no "
            "regional IDs (an external target names its bootstrap.json in `regional_ids`)"
        )
    return ""


Plan = tuple[LoadedScenario, Bindings | None, str]


def run(
    scenarios: Sequence[LoadedScenario],
    target: Target,
    world: WorldIndex,
    *,
    jobs: int = 1,
    on_result: OnResult | None = None,
    networks: Networks | None = None,
    params: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    catalogue: Sequence[LoadedScenario] = (),
    changed: Collection[str] = (),
    on_plan: Callable[[Mapping[str, list[str]]], None] | None = None,
) -> RunResult:
    """Run ``scenarios`` (any order given; results come back in suite/ID order).

    ``params`` override the scenarios' declared parameters (on top of the target's own ``params``).
    ``catalogue``: every scenario there is (the reserved pool is planned over it and the selection, so it
    does not depend on the selection); ``changed``: world patient IDs earlier runs on the target changed
    (never given to a scenario needing them as the world has them). Before any scenario runs, ``on_plan``
    gets the world patient IDs each changing scenario of the run will use. :class:`ReservedError` (before
    anything runs) when the selection cannot be met without a reserved or changed patient.
    """
    started = dt.datetime.now(dt.UTC).astimezone()
    ordered = sorted(scenarios, key=lambda s: (s.suite, s.id))
    values = {**target.params, **(params or {})}
    plans = _plan(ordered, catalogue, target, world, changed, on_plan, own=networks is not None)
    results: dict[str, ScenarioResult] = {}

    def done(r: ScenarioResult) -> None:
        results[r.id] = r
        if on_result is not None:
            on_result(r)

    _execute(plans, target, world, values, jobs, networks, done)
    finished = dt.datetime.now(dt.UTC).astimezone()
    return RunResult(
        started=started.isoformat(timespec="seconds"),
        finished=finished.isoformat(timespec="seconds"),
        target=target.describe(),
        world={
            "dir": str(world.dir),
            "profile": world.profile,
            "seed": world.seed,
            "reference_date": world.reference_date.isoformat(),
            "registered_patients": world.registered,
        },
        options=dict(options or {}) | {"jobs": jobs, "params": dict(values)},
        scenarios=[results[loaded.id] for loaded, _, _ in plans],
    )


def _plan(
    ordered: Sequence[LoadedScenario],
    catalogue: Sequence[LoadedScenario],
    target: Target,
    world: WorldIndex,
    changed: Collection[str],
    on_plan: Callable[[Mapping[str, list[str]]], None] | None,
    *,
    own: bool,
) -> list[Plan]:
    """Each scenario with its patients, or why it cannot run (``own``: hubs of their own can be had);
    every patient is allocated before anything runs, so a parallel run equals a serial one."""
    problems = {s.id: _world_problem(s, world, target) for s in ordered}
    runnable = [s.scenario for s in ordered if not problems[s.id]]
    every = [s.scenario for s in catalogue if not _world_problem(s, world, target)]
    salt = target.salt if target.allocation_salt is None else target.allocation_salt
    by_id = {p.patient_id: p.index for p in world.patients}
    indices = {by_id[pid] for pid in changed if pid in by_id}
    allocator = Allocator(world, salt, fresh_salt=target.salt, changed=indices)
    allocated = allocator.allocate_all(runnable, every)
    refused = [str(found) for found in allocated.values() if isinstance(found, ReservedError)]
    if refused:
        raise ReservedError(
            f"the selection cannot be met on target {target.name}:\n  " + "\n  ".join(refused)
        )
    if on_plan is not None:
        on_plan(
            {
                sc.id: sorted(b.patient.patient_id for b in found.patients.values() if not b.fresh)
                for sc in runnable
                if sc.changes_world and isinstance(found := allocated[sc.id], Bindings)
            }
        )
    plans: list[Plan] = []
    for loaded in ordered:
        problem = problems[loaded.id]
        bindings = None
        if not problem:
            found = allocated[loaded.id]
            if isinstance(found, SelectionError):
                problem = f"given: {found}"
            else:
                bindings = found
        if not problem and loaded.scenario.world.own and not own:
            problem = f"skipped: needs a hub of its own, which target {target.name} cannot provide"
        plans.append((loaded, bindings, problem))
    return plans


def _execute(
    plans: Sequence[Plan],
    target: Target,
    world: WorldIndex,
    values: Mapping[str, str],
    jobs: int,
    networks: Networks | None,
    done: OnResult,
) -> None:
    """Run the plans: the main target's, then ``world.links`` ones on a network with link models on, then
    ``world.own`` ones each on a network of its own; ``done`` gets each result as it comes."""

    def batch(group: Sequence[Plan], on: Target) -> None:
        """Shared scenarios in parallel, then the exclusive ones one at a time."""
        shared = [p for p in group if p[2] or not p[0].scenario.needs_exclusive]
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="scenario") as pool:
            futures: list[Future[ScenarioResult]] = [
                pool.submit(run_scenario, loaded, on, world, bindings, problem, values)
                for loaded, bindings, problem in shared
            ]
            for future in as_completed(futures):
                done(future.result())
        for loaded, bindings, problem in group:
            if not problem and loaded.scenario.needs_exclusive:
                done(run_scenario(loaded, on, world, bindings, problem, values))

    def needs(plan: Plan) -> str:
        sc = plan[0].scenario
        if plan[2]:
            return "main"  # it will not run: report it with the others
        if sc.world.own:
            return "own"
        return "links" if sc.world.links and networks is not None else "main"

    batch([p for p in plans if needs(p) == "main"], target)
    linked = [p for p in plans if needs(p) == "links"]
    if linked and networks is not None:
        with networks(True) as links_target:
            batch(linked, links_target)
    for plan in (p for p in plans if needs(p) == "own"):
        assert networks is not None
        loaded, bindings, problem = plan
        with networks(loaded.scenario.world.links) as own:
            done(run_scenario(loaded, own, world, bindings, problem, values))
