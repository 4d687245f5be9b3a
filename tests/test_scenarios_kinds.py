"""Step kinds declared once: the registry (harness/scenarios/kinds.py) is the only list of kinds, and the Step
model, the schema, the family sets and the runner table all agree with it.

No hub here; the engine's behaviour per kind is tested in test_scenarios_engine/http/suites.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.scenarios import engine, schema
from harness.scenarios.actions import Action, Feed, Wait
from harness.scenarios.kinds import KINDS, Family, kind_of, names, step_kind
from harness.scenarios.model import (
    ACTION_MODELS,
    DATA_FOLDER_KINDS,
    HTTP_KINDS,
    LOCAL_KINDS,
    MLLP_KINDS,
    STATE_KINDS,
    V3_KINDS,
    WITHDRAWAL_KINDS,
    Step,
)
from harness.scenarios.runners import RUNNERS, check_complete, runner_for, runs

# The kinds as they were listed by hand before the registry (issue 12): the derivation must give these.
BEFORE = [
    "world_file",
    "feed",
    "pix_query",
    "pdq_query",
    "pdq_cancel",
    "mllp_raw",
    "wait",
    "login",
    "logout",
    "patient_get",
    "link",
    "unlink",
    "consent_register",
    "consent_add",
    "consent_withdraw",
    "consent_get",
    "emergency",
    "timeline",
    "fetch",
    "access_report",
    "audit_query",
    "audit_verify",
    "fault",
    "audit_tamper",
    "login_probe",
    "http_raw",
]


def test_every_kind_is_declared_once_in_the_order_the_format_had() -> None:
    assert list(KINDS)[: len(BEFORE)] == BEFORE
    assert list(ACTION_MODELS) == list(KINDS)
    assert all(kind_of(k.model) is k for k in KINDS.values())


def test_family_sets_derive_from_the_declarations_as_the_hand_lists_were() -> None:
    assert {"feed", "pix_query", "pdq_query", "pdq_cancel", "mllp_raw"} <= MLLP_KINDS
    assert {"world_file"} == LOCAL_KINDS
    assert {"audit_tamper"} == DATA_FOLDER_KINDS
    # HTTP_KINDS was "everything else but wait" (and, since PIXv3/PDQv3, but the SOAP family): it still is.
    assert {"feed_v3", "pix_query_v3", "pdq_query_v3"} == V3_KINDS == names(Family.SOAP)
    assert frozenset(KINDS) - MLLP_KINDS - LOCAL_KINDS - DATA_FOLDER_KINDS - V3_KINDS - {"wait"} == HTTP_KINDS
    assert "feed_v3" in STATE_KINDS
    assert "fault" in HTTP_KINDS
    assert "wait" not in HTTP_KINDS
    state = {"feed", "link", "unlink", "consent_register", "consent_add", "consent_withdraw", "emergency"}
    assert state | {"mllp_raw"} <= STATE_KINDS
    assert not STATE_KINDS & {"pix_query", "pdq_query", "timeline", "fetch", "login", "wait", "world_file"}
    assert {"consent_withdraw"} == WITHDRAWAL_KINDS
    assert names(Family.TIMER) == {"wait"}


def test_step_model_and_schema_have_one_action_key_per_kind() -> None:
    step_fields = list(Step.model_fields)
    assert step_fields[:4] == ["name", "expect", "capture", "repeat"]
    assert step_fields[4:] == list(KINDS)
    data: dict[str, Any] = schema()["$defs"]["Step"]
    assert [alt["required"] for alt in data["oneOf"]] == [[k] for k in KINDS]
    assert data["description"] == "One operation (exactly one action key) with its expectations and captures."
    feed = Step.model_validate({"feed": {"from": "A", "patient": "p"}})
    assert feed.kind == "feed"
    assert isinstance(feed.action, Feed)


def test_every_kind_has_exactly_one_runner() -> None:
    assert set(RUNNERS) == set(KINDS)
    check_complete()  # what the engine does at import
    assert engine.STEP_MODULES  # the modules whose imports registered them
    assert runner_for("wait").__name__ == "run_wait"
    with pytest.raises(LookupError, match="'nope' has no runner"):
        runner_for("nope")


def test_a_kind_without_runner_stops_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(RUNNERS, "wait")
    with pytest.raises(RuntimeError, match="step kinds without a runner: wait"):
        check_complete()


def test_a_second_runner_for_a_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'wait' has two runners: run_wait and again"):

        @runs(Wait)
        def again(ctx: Any, a: Wait) -> Any:
            raise AssertionError("never called")

    assert RUNNERS["wait"].__name__ == "run_wait"


def test_runner_for_an_undeclared_model_is_refused() -> None:
    class Loose(Action):
        pass

    with pytest.raises(ValueError, match="Loose is not declared as a step kind"):
        runs(Loose)


def test_declarations_after_the_step_model_was_built_are_refused() -> None:
    """Step is built once from the registry: a late kind would be missing from it, so it is an error."""
    before = dict(KINDS)
    with pytest.raises(RuntimeError, match=r"declared after harness\.scenarios\.model\.Step built"):

        @step_kind("late_kind", Family.HTTP)
        class Late(Action):
            pass

    with pytest.raises(ValueError, match="step kind 'wait' \\(Again\\) is declared twice"):

        @step_kind("wait", Family.TIMER)
        class Again(Action):
            pass

    with pytest.raises(ValueError, match="cannot be a step kind"):
        step_kind("action", Family.HTTP)
    with pytest.raises(ValueError, match="cannot be a step kind"):
        step_kind("Bad-Name", Family.HTTP)
    assert before == KINDS
