"""Benchmark: the consent-administration state machine (tests/consent_fsm.py) for at least 10,000 steps.

Each step is one paper, one emergency request or one back-dated attempt sent to the hub's real app
(in-process), followed by the invariants: no unauthorised write succeeds, the hub takes exactly the papers
it must, nobody sees what a valid current consent does not allow, only related facilities can look a patient
up. Prints the steps, the examples and the rate.

    .venv/bin/python benchmarks/bench_consent_fsm.py [--steps N] [--per-example N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.consent_fsm import ConsentAdministration, lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="at least this many hub operations")
    parser.add_argument("--per-example", type=int, default=50, help="rules per generated sequence")
    args = parser.parse_args()
    with lab() as opened:
        started = time.perf_counter()
        rounds = 0
        while opened.steps < args.steps:
            run_state_machine_as_test(
                ConsentAdministration,
                settings=settings(
                    max_examples=50,
                    stateful_step_count=args.per_example,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
            rounds += 1
        elapsed = time.perf_counter() - started
    print(f"consent state machine: {opened.steps} steps (hub operations) in {rounds * 50} examples")
    print(f"  {elapsed:.1f} s, {opened.steps / elapsed:.0f} steps/s; every invariant held after every step")


if __name__ == "__main__":
    main()
