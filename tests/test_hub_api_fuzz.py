"""Schemathesis against the live hub: no client input, valid or not, gets a 5xx.

The OpenAPI document is the hub's own (``/openapi.json``); schemathesis generates requests from it, both
conforming and not, for every operation, sent over a real socket with a logged-in user's token (and the
operator's for the audit routes). A linked patient with a consent exists, so the generated regional IDs
sometimes name nothing and the fixed one reaches deeper code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from synthetic import load_profile, write_world

from .hubrun import RunningHub, running_hub
from .test_hub_api import disclosing, feed, login


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHub, str]]:
    root = tmp_path_factory.mktemp("hubfuzz")
    world = root / "world"
    world.mkdir()
    write_world(load_profile("mini"), 7, world, storage=None)
    facilities = {f["code"]: f for f in json.loads((world / "world.json").read_text("utf-8"))["facilities"]}
    with running_hub(world, root / "data") as hub:
        source = disclosing(facilities)
        feed(hub, source, "P0001", "F1")
        staff = login(hub, source)
        rid = staff.post("/links", json={"facility": source["code"], "local_id": "P0001"}).json()[
            "regional_id"
        ]
        form = {"form_id": "CF-1", "pattern": "all", "signed_on": "2026-11-01", "emergency_allowed": True}
        assert staff.post(f"/patients/{rid}/consents", json=form).status_code == 201
        token = staff.headers["Authorization"].removeprefix("Bearer ")
        yield hub, token


@pytest.fixture(scope="module")
def api_schema(live: tuple[RunningHub, str]) -> Any:
    hub, _ = live
    spec = httpx.get(f"{hub.base_url}/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(spec)


def operations(api_schema: Any) -> list[Any]:
    found = []
    for result in api_schema.get_all_operations():
        found.append(result.ok())  # raises if schemathesis could not read an operation
    return found


def test_the_schema_lists_every_operation(api_schema: Any) -> None:
    labels = {op.label for op in operations(api_schema)}
    assert "POST /auth/login" in labels
    assert "GET /patients/{regional_id}/entries/{source}/{entry_id}" in labels
    assert len(labels) >= 15


def test_no_input_gives_a_server_error(api_schema: Any, live: tuple[RunningHub, str]) -> None:
    hub, token = live
    for op in operations(api_schema):
        _fuzz(op, hub, hub.admin_token if op.path.startswith("/audit") else token)


def _fuzz(op: Any, hub: RunningHub, bearer: str) -> None:
    """Hypothesis cases from one operation's schema, each sent to the live hub."""

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=op.as_strategy())
    def check(case: Any) -> None:
        response = case.call(base_url=hub.base_url, headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code < 500, (
            case.method,
            case.formatted_path,
            response.status_code,
            response.text,
        )
        ctype = response.headers.get("content-type", [""])  # schemathesis: a header is a list of values
        if response.status_code >= 400 and str(ctype[0] if isinstance(ctype, list) else ctype).startswith(
            "application/json"
        ):
            detail = response.json().get("detail")
            assert isinstance(detail, dict), response.text
            assert detail.get("reason"), response.text

    check()
