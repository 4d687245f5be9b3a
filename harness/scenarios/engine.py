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

from .context import Context
from .errors import ScenarioError, SelectionError, StepError
from .loader import LoadedScenario
from .model import DATA_FOLDER_KINDS, LOCAL_KINDS, Expectation, Step
from .results import AssertionResult, CheckResult, Exchange, RunResult, ScenarioResult, StepRecord
from .steps_audit import run_audit_tamper
from .steps_http import RUNNERS as HTTP_RUNNERS
from .steps_http import reset_faults
from .steps_local import run_world_file
from .steps_mllp import run_cancel, run_feed, run_pdq, run_pix, run_raw
from .steps_v3 import RUNNERS as V3_RUNNERS
from .steps_v3 import close as close_v3
from .subjects import Latency, MllpObservation, Observation, check, observe, parse_subject, render
from .variables import substitute
from .world import Allocator, Bindings, ReservedError, WorldIndex, describe

if TYPE_CHECKING:
    from harness.targets import Target

__all__ = ["RUNNERS", "run", "run_scenario"]


def _wait(ctx: Context, a: Any) -> tuple[Observation, list[Exchange]]:
    started = time.perf_counter()
    time.sleep(a.ms / 1000)
    elapsed = (time.perf_counter() - started) * 1000
    return MllpObservation(None, None, "", False, elapsed), [
        Exchange("note", f"wait {a.ms} ms", "", None, elapsed)
    ]


RUNNERS: Final[Mapping[str, Callable[[Context, Any], tuple[Any, list[Exchange]]]]] = {
    "feed": run_feed,
    "pix_query": run_pix,
    "pdq_query": run_pdq,
    "pdq_cancel": run_cancel,
    "mllp_raw": run_raw,
    "wait": _wait,
    "world_file": run_world_file,
    "audit_tamper": run_audit_tamper,
    **HTTP_RUNNERS,
    **V3_RUNNERS,
}

Networks = Callable[[bool], AbstractContextManager["Target"]]
"""``networks(links)``: a new reference network (link models on or off) as a target, stopped on exit."""
OnResult = Callable[[ScenarioResult], None]


# ------------------------------------------------------------------------------------------- expectations


def _describe(ops: Mapping[str, Any]) -> str:
    words = {"equals": "=", "not": "≠", "one_of": "one of", "set": "same set as", "len": "length"}
    words |= {"le": "≤", "lt": "<", "ge": "≥", "gt": ">"}
    return " and ".join(f"{words.get(op, op)} {render(value)}" for op, value in ops.items())


def _resolved(value: Any, ctx: Context) -> Any:
    if isinstance(value, str):
        return substitute(value, ctx.resolve)
    if isinstance(value, list):
        return [_resolved(v, ctx) for v in value]
    return value


def _evaluate(
    e: Expectation, observations: Sequence[Observation], latency: Latency | None, ctx: Context
) -> tuple[str, str, list[CheckResult], set[int]]:
    """Status, message and checks of one expectation, and the repetitions (0-based) that failed it."""
    checks = []
    failing: set[int] = set()
    n = len(observations)
    for subject_text, matcher in e.that.items():
        written = matcher.operators()
        ops = {op: _resolved(v, ctx) for op, v in written.items()}
        subject = parse_subject(substitute(subject_text, ctx.resolve))
        if subject.kind == "latency" or n == 1:
            actual = observe(subject, observations[-1], latency)
            failed = check(ops, actual, strict_erl=ctx.target.strict_erl)
            shown = render(actual)
        else:  # every repetition must satisfy it; the first that does not is shown
            failed, shown = [], ""
            for i, obs in enumerate(observations):
                actual = observe(subject, obs)
                if check(ops, actual, strict_erl=ctx.target.strict_erl):
                    failed = ["repetition"]
                    failing.add(i)
                    if not shown:
                        shown = f"{render(actual)} (repetition {i + 1} of {n})"
            shown = shown or render(observe(subject, observations[-1]))
        checks.append(CheckResult(subject_text, _describe(ops), shown, not failed, _describe(written)))
    bad = [c.subject for c in checks if not c.passed]
    if not bad:
        return "passed", "", checks, failing
    return "failed", f"{len(bad)} of {len(checks)} checks failed: {', '.join(bad)}", checks, failing


def _perform(ctx: Context, step: Step) -> tuple[list[Observation], list[list[Exchange]], Latency | None]:
    """Run the step once, or warm-up + count times; the observations and each run's exchanges."""
    runner = RUNNERS[step.kind]
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


def _kept(runs: list[list[Exchange]], failing: set[int]) -> list[Exchange]:
    """A repeated step's evidence: the first, the last and failing repetitions in full, the others as
    timings only (a latency run would otherwise fill the report with identical exchanges)."""
    if len(runs) == 1:
        return runs[0]
    keep = {0, len(runs) - 1, *sorted(failing)[:3]}
    out = []
    for i, exchanges in enumerate(runs):
        for x in exchanges:
            if i in keep:
                out.append(x)
            else:
                note = "timing only: evidence is kept for the first, the last and failing repetitions"
                out.append(
                    Exchange(
                        x.protocol,
                        x.label,
                        "",
                        None,
                        x.elapsed_ms,
                        note=note,
                        operation=x.operation,
                        timed=x.timed,
                    )
                )
    return out


def _needs_local_files(step: Step) -> bool:
    action = step.action
    return step.kind in LOCAL_KINDS or (step.kind == "fetch" and bool(getattr(action, "world_file", False)))


# ------------------------------------------------------------------------------------------- one scenario


def _assertions(
    loaded: LoadedScenario, n: int, step: Step, status: str, message: str, evidence: list[Exchange]
) -> Iterator[AssertionResult]:
    for e_index, e in enumerate(step.expect):
        yield AssertionResult(
            assertion_id=e.id,
            status=status,  # type: ignore[arg-type]
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
        status = "skipped" if problem.startswith("skipped: ") else "error"
        result.error = problem.removeprefix("skipped: ")
        for n, step in enumerate(sc.steps):
            result.steps.append(StepRecord(n + 1, step.name or step.kind, step.kind, "not-run"))
            result.assertions.extend(_assertions(loaded, n, step, status, result.error, []))
        return result
    for b in bindings.patients.values():
        b.rid = (
            None if b.fresh or target.regional_ids is None else target.regional_ids.get(b.patient.patient_id)
        )
    result.given = describe(bindings)
    ctx = Context(loaded, bindings, target, world, params=dict(params or {}))
    stopped: tuple[str, str] | None = None  # (status, why) once a step could not run
    try:
        for n, step in enumerate(sc.steps):
            ctx.step = n + 1
            name = step.name or step.kind
            if stopped is not None:
                result.steps.append(StepRecord(n + 1, name, step.kind, "not-run", error=stopped[1]))
                result.assertions.extend(_assertions(loaded, n, step, stopped[0], stopped[1], []))
                continue
            why = ""
            if step.kind in DATA_FOLDER_KINDS and target.kind != "reference":
                why = "acts on the hub's data folder; only the reference target's is on this machine"
            elif step.kind not in target.supports and step.kind not in LOCAL_KINDS:
                why = f"target {target.name} does not support {step.kind} steps"
            elif _needs_local_files(step) and not target.local_files:
                why = (
                    f"needs the world's files on this machine; target {target.name} does not declare "
                    "local_files"
                )
            if why:
                result.steps.append(StepRecord(n + 1, name, step.kind, "skipped", error=why))
                result.assertions.extend(_assertions(loaded, n, step, "skipped", why, []))
                stopped = ("skipped", f"not run: step {n + 1} was skipped ({why})")
                continue
            begun = time.perf_counter()
            try:
                observations, runs, latency = _perform(ctx, step)
            except (StepError, ScenarioError) as exc:
                why = f"step {n + 1} ({step.kind}) could not run: {exc}"
                result.steps.append(StepRecord(n + 1, name, step.kind, "error", _ms(begun), str(exc)))
                result.assertions.extend(_assertions(loaded, n, step, "error", why, []))
                stopped = ("error", f"not run: {why}")
                continue
            except Exception as exc:  # a bug must not take the other scenarios down
                why = f"step {n + 1} ({step.kind}) crashed: {type(exc).__name__}: {exc}"
                result.steps.append(StepRecord(n + 1, name, step.kind, "error", _ms(begun), why))
                result.assertions.extend(_assertions(loaded, n, step, "error", why, []))
                stopped = ("error", f"not run: {why}")
                continue
            elapsed = _ms(begun)
            evaluated = []
            failing: set[int] = set()
            for e in step.expect:
                try:
                    status, message, checks, bad = _evaluate(e, observations, latency, ctx)
                except StepError as exc:
                    status, message, checks, bad = (
                        "error",
                        f"expectation could not be evaluated: {exc}",
                        [],
                        set(),
                    )
                evaluated.append((status, message, checks))
                failing |= bad
            exchanges = _kept(runs, failing)
            record = StepRecord(n + 1, name, step.kind, "ok", elapsed, exchanges=exchanges)
            if step.repeat is not None and latency is not None:
                record.repeat = {
                    "count": len(latency.values),
                    "warmup": step.repeat.warmup,
                    "latencies_ms": list(latency.values),
                }
            result.steps.append(record)
            for e_index, (e, (status, message, checks)) in enumerate(
                zip(step.expect, evaluated, strict=True)
            ):
                result.assertions.append(
                    AssertionResult(
                        assertion_id=e.id,
                        status=status,  # type: ignore[arg-type]
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
            for var, subject in step.capture.items():
                try:
                    value = observe(
                        parse_subject(substitute(subject, ctx.resolve)), observations[-1], latency
                    )
                except StepError:
                    value = None
                ctx.captures[var] = None if value is None or _absent(value) else render(value)
            for effect in ctx.after_step:
                effect()
            ctx.after_step.clear()
    finally:
        _close(ctx)
        result.duration_ms = _ms(started)
    return result


def _absent(value: Any) -> bool:
    return render(value) in ("<absent>", "")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _close(ctx: Context) -> None:
    reset_faults(ctx)
    for conn in ctx.connections.values():
        conn.close()
    for session in ctx.sessions.values():
        session.close()
    close_v3(ctx)


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
        if not problem and loaded.scenario.world.own and networks is None:
            problem = f"skipped: needs a hub of its own, which target {target.name} cannot provide"
        plans.append((loaded, bindings, problem))
    results: dict[str, ScenarioResult] = {}

    def done(r: ScenarioResult) -> None:
        results[r.id] = r
        if on_result is not None:
            on_result(r)

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
