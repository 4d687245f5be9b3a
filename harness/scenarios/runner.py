"""``rhin run`` without the terminal: select scenarios, get a world and a target, run, write the reports.

The world: only the default ``worlds/mini`` is generated when missing (profile ``mini``, seed 42, for the
reference target); any other missing ``--world`` is refused with the ``rhin generate`` command that makes it
(a typo of ``worlds/ishikawa`` must not silently become a mini world under that name).

An external target (``--target``) lives on between runs: its state file
(:mod:`harness.scenarios.history`) says what earlier runs changed, which is reported at the start
(``on_note``) and kept from scenarios needing the world's state; the run is recorded before it starts.
The reserved pool is planned over every scenario under the scenarios root (the catalogue), so it does not
depend on the selection.

The reference target (no ``--target``) starts
the live network for it with its state in a temporary folder (a fresh hub per run, so runs never see each
other's feeds), bootstraps it, runs and stops it. The network has its link models off; scenarios needing
them (``world.links``: the latency suite) share a second network with them on, started in the background
while the first one's scenarios run; ``world.own`` ones each get one more. With no selection (no paths,
suites, tags or ``-k``) every scenario runs except those marked ``default: false``.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from harness.report import default_report_dir, write_reports
from harness.targets import ReferenceOptions, Target, ensure_world, load_target, reference_target

from . import engine
from .errors import FormatError, ScenarioError
from .history import TargetHistory
from .loader import LoadedScenario, discover, select
from .results import RunResult, ScenarioResult
from .world import WorldIndex

__all__ = ["DEFAULT_WORLD", "RunOptions", "default_scenarios_root", "execute", "selected"]

DEFAULT_WORLD: Final = Path("worlds/mini")
"""The one world ``rhin run`` makes when it is missing."""


def default_scenarios_root() -> Path:
    """``./scenarios`` when there is one, else the repository's."""
    here = Path("scenarios")
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "scenarios"


@dataclass
class RunOptions:
    scenarios_root: Path = field(default_factory=default_scenarios_root)
    paths: Sequence[Path] = ()
    suites: Sequence[str] = ()
    tags: Sequence[str] = ()
    keyword: str | None = None
    target_file: Path | None = None
    world_dir: Path = DEFAULT_WORLD
    jobs: int = 4
    report_dir: Path | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    allow_skips: bool = False
    reference: ReferenceOptions = field(default_factory=ReferenceOptions)

    @property
    def chooses(self) -> bool:
        """Whether anything was chosen (else the default selection: every scenario not ``default: false``)."""
        return bool(self.paths or self.suites or self.tags or self.keyword)


def selected(options: RunOptions, found: list[LoadedScenario] | None = None) -> list[LoadedScenario]:
    """The scenarios the options select (every file is validated, selected or not); ``found``: what
    :func:`~.loader.discover` already read for these options, if the caller has it."""
    found = discover(options.scenarios_root, options.paths) if found is None else found
    chosen = select(found, suites=options.suites, tags=options.tags, keyword=options.keyword)
    return chosen if options.chooses else [s for s in chosen if s.scenario.default]


def _catalogue(options: RunOptions) -> list[LoadedScenario] | None:
    """Every scenario under the scenarios root (the reserved pool is planned over them); None when the root
    cannot be read whole (then the selection is its own catalogue, and its broken files are reported when
    they are selected)."""
    try:
        return discover(options.scenarios_root) if options.scenarios_root.is_dir() else None
    except FormatError:
        return None


def _need_world(options: RunOptions) -> None:
    """Make the default world if it is missing; refuse any other missing world with the command."""
    folder = options.world_dir
    if (folder / "world.json").is_file() and (folder / "world.sqlite").is_file():
        return
    if options.target_file is None and folder == DEFAULT_WORLD:
        ensure_world(folder)
        return
    raise ScenarioError(
        f"no world at {folder} (no world.json and world.sqlite there): make it with "
        f"`rhin generate --profile mini --seed 42 --out {folder}` (or --profile ishikawa for the full "
        f"network); only the default {DEFAULT_WORLD} is made on demand"
        + (", and never for an external target, whose hub holds its own world" if options.target_file else "")
    )


def _check_params(scenarios: Sequence[LoadedScenario], params: Mapping[str, str]) -> None:
    declared = {name for s in scenarios for name in s.scenario.params}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ScenarioError(
            f"--param {', '.join(unknown)}: no selected scenario declares it"
            f" (declared: {', '.join(sorted(declared)) or 'none'})"
        )


class _Prestarted:
    """A network started in a background thread while the main target's scenarios run, handed over when
    the scenarios needing it come (its start and bootstrap cost wall time, not CPU the run is short of).

    The thread that starts it keeps it — enters and exits its context — and lives until :meth:`close`: the
    network's children die with the *thread* that spawned them (``PR_SET_PDEATHSIG`` is per thread), so a
    thread that started them and returned would take them down with it."""

    def __init__(self, start: Callable[[], contextlib.AbstractContextManager[Target]]) -> None:
        self._start = start
        self._target: Target | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="prestart-network", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        try:
            with self._start() as target:
                self._target = target
                self._ready.set()
                self._done.wait()
        except BaseException as exc:  # handed to the caller of get() (or dropped at close)
            self._error = exc
        finally:
            self._ready.set()

    def get(self) -> Target:
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._target is not None
        return self._target

    def close(self) -> None:
        self._done.set()
        self._thread.join()


@contextlib.contextmanager
def _target(
    options: RunOptions, world: WorldIndex, scenarios: Sequence[LoadedScenario]
) -> Iterator[tuple[Target, engine.Networks | None]]:
    if options.target_file is not None:
        yield load_target(options.target_file, world), None
        return
    with tempfile.TemporaryDirectory(prefix="rhin-run-") as tmp, contextlib.ExitStack() as stack:
        count = 0

        @contextlib.contextmanager
        def fresh(links: bool) -> Iterator[Target]:
            nonlocal count
            count += 1
            name = f"reference (links {'on' if links else 'off'}, network {count + 1})"
            with (
                tempfile.TemporaryDirectory(prefix="net-", dir=tmp) as data,
                reference_target(world, Path(data), name, replace(options.reference, links=links)) as target,
            ):
                yield target

        main = stack.enter_context(
            reference_target(world, Path(tmp) / "main", "reference", options.reference)
        )
        prestarted: list[_Prestarted] = []
        if any(s.scenario.world.links and not s.scenario.world.own for s in scenarios):
            prestarted.append(_Prestarted(lambda: fresh(True)))
            stack.callback(prestarted[0].close)

        @contextlib.contextmanager
        def network(links: bool) -> Iterator[Target]:
            if links and prestarted:
                yield prestarted.pop().get()  # closed with the run
                return
            with fresh(links) as target:
                yield target

        yield main, network


def execute(
    options: RunOptions,
    *,
    on_start: Callable[[list[LoadedScenario], Target], None] | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> tuple[RunResult, dict[str, Path]]:
    """Run what ``options`` select; returns the results and the report files written. ``on_note`` hears
    what is known of earlier runs on an external target, before anything runs."""
    catalogue = _catalogue(options)  # read once: with no paths given, it is what the selection picks from
    scenarios = selected(options, None if options.paths else catalogue)
    if not scenarios:
        raise ScenarioError("no scenario matches the selection (--suite, --tag, -k)")
    _check_params(scenarios, options.params)
    _need_world(options)
    world = WorldIndex(options.world_dir)
    catalogue = catalogue if catalogue is not None else scenarios
    with _target(options, world, scenarios) as (target, networks):
        history = None
        if target.state_file is not None:
            history = TargetHistory(target.state_file, target.name, world, target.regional_ids)
            target = replace(target, salt=history.salt(target.salt, target.salt_fixed))
            for note in [*history.notes, f"target {target.name}: {history.describe()}"]:
                if on_note is not None:
                    on_note(note)
        if on_start is not None:
            on_start(scenarios, target)

        def plan(changes: Mapping[str, list[str]]) -> None:
            if history is not None:
                history.begin(target.salt, changes)

        try:
            result = engine.run(
                scenarios,
                target,
                world,
                jobs=options.jobs,
                on_result=on_result,
                networks=networks,
                params=options.params,
                options={
                    "suites": list(options.suites),
                    "tags": list(options.tags),
                    "keyword": options.keyword,
                    "target_file": str(options.target_file) if options.target_file else None,
                    "allow_skips": options.allow_skips,
                    "reference": None
                    if options.target_file
                    else {
                        "links": options.reference.links,
                        "scrypt_cost": options.reference.scrypt_cost,
                        "shards": options.reference.shards,
                    },
                },
                catalogue=catalogue,
                changed=history.changed if history is not None else (),
                on_plan=plan,
            )
        except BaseException as exc:
            if history is not None:
                history.abort(f"{type(exc).__name__}: {exc}")
            raise
        if history is not None:
            history.finish(result)
    folder = options.report_dir or default_report_dir()
    return result, write_reports(result, folder)
