"""The consent-administration state machine (:mod:`tests.consent_fsm`) for a modest number of steps in CI.

``benchmarks/bench_consent_fsm.py`` runs the same machine for at least 10,000 steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.consent_fsm import ConsentAdministration, Lab, lab


@pytest.fixture(scope="module")
def opened() -> Iterator[Lab]:
    with lab() as found:
        yield found


def test_no_sequence_of_papers_lets_anyone_see_outside_a_valid_current_consent(opened: Lab) -> None:
    run_state_machine_as_test(
        ConsentAdministration,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert opened.steps >= 200  # the machine really ran (writes and emergency requests sent to the hub)
