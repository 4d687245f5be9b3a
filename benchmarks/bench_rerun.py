"""Benchmark (issue 18): the whole default selection again and again against ONE long-lived network.

What a vendor does nightly: one network started once (as ``rhin up`` would: hub + gateways, bootstrapped,
link models off), described by a target file without ``supports`` or ``network`` (so the fault scenarios
skip, as they must on an external hub), then ``rhin run --target`` over and over — the runs the CI test
``tests/test_scenarios_rerun.py`` keeps short:

1. the default selection three times, each with a new salt (``--jobs 4``);
2. twice more with ``--jobs 8``;
3. the consent suite alone, then the whole default run again.

Printed per run: the pass/fail/error/skip counts, seconds, and what the run said at its start about earlier
runs; then the ratios to track — each run's passed count over the first's (1.00 = re-runs see what a fresh
hub sees) and its seconds over the first's. Exit status 1 if any run failed or errored an assertion, or a
run's counts differ from the first default run's.

    .venv/bin/python benchmarks/bench_rerun.py [--world DIR] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.scenarios.runner import RunOptions, execute  # noqa: E402
from harness.targets import ReferenceOptions, ensure_world, launch_reference  # noqa: E402
from simulator.pki import ClientTls  # noqa: E402


def _target(
    folder: Path, mllp: tuple[str, int], http: str, token: str, ids: Path, tls: ClientTls | None
) -> Path:
    """The network as a vendor's target file would describe it (its TLS material, else plain MLLP)."""
    path = folder / "vendor.yaml"
    transport = f', tls: {{ca: "{tls.ca_file}", certs: "{tls.certs}"}}' if tls else ""
    plain = "" if tls else "plain_mllp: true\n"
    path.write_text(
        f"schema_version: 1\nname: vendor-hub\nmllp: {{host: {mllp[0]}, port: {mllp[1]}{transport}}}\n{plain}"
        f'http: {{base_url: "{http}"}}\nadmin_token_file: {token}\nregional_ids: {ids}\nlocal_files: true\n',
        encoding="utf-8",
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="a world directory (default: a mini world, seed 42)")
    parser.add_argument("--runs", type=int, default=3, help="default runs with --jobs 4 (then 2 with 8)")
    parser.add_argument("--keep", type=Path, help="keep the network's data and the reports here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        work = args.keep or Path(tmp)
        world = args.world or ensure_world(work / "world")
        plan: list[tuple[str, list[str], int]] = [("default", [], 4)] * args.runs
        plan += [("default", [], 8)] * 2 + [("consent", ["consent"], 4), ("default", [], 4)]
        rows = []
        with launch_reference(world, work / "net", ReferenceOptions()) as endpoints:
            assert endpoints.mllp
            assert endpoints.http
            assert endpoints.network
            token = str(endpoints.network.hub["admin_token_file"])
            target = _target(
                work,
                endpoints.mllp,
                endpoints.http,
                token,
                work / "net" / "hub" / "bootstrap.json",
                endpoints.mllp_tls,
            )
            for n, (name, suites, jobs) in enumerate(plan, 1):
                notes: list[str] = []
                options = RunOptions(
                    scenarios_root=REPO / "scenarios",
                    suites=suites,
                    target_file=target,
                    world_dir=world,
                    jobs=jobs,
                    report_dir=work / f"report-{n}",
                    allow_skips=True,
                )
                started = time.monotonic()
                result, _ = execute(options, on_note=notes.append)
                seconds = time.monotonic() - started
                summary = result.summary()
                rows.append((name, jobs, summary, seconds))
                print(
                    f"run {n} ({name}, --jobs {jobs}): {summary['passed']} passed, "
                    f"{summary['failed']} failed, {summary['error']} errors, {summary['skipped']} skipped "
                    f"in {seconds:.1f} s",
                    flush=True,
                )
                for note in notes:
                    print(f"  {note}", flush=True)
                for a in result.assertions():
                    if a.status in ("failed", "error"):
                        print(f"  {a.status} {a.assertion_id} {a.scenario}: {a.message}", flush=True)
    first = next(r for r in rows if r[0] == "default")
    bad = False
    print("\nratios to the first default run (passed, seconds):")
    for n, (name, jobs, summary, seconds) in enumerate(rows, 1):
        ratio = summary["passed"] / first[2]["passed"]
        print(f"  run {n} ({name}, --jobs {jobs}): passed {ratio:.2f}, seconds {seconds / first[3]:.2f}")
        bad |= bool(summary["failed"] or summary["error"])
        bad |= name == "default" and summary != first[2]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
