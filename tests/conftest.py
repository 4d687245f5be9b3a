"""Shared fixtures: one mini world generated through the real CLI, read back from its files, and the live
pieces several test modules start on it (a gateway shard, the reference network).

Fixtures that hold a live server are module-scoped, as they were in each module before they were shared
here: a module that stops gateways or changes the hub's state does so on its own copy. A module that needs
something else under the same name (``hub`` is a bare hub in test_hub_api, a client in test_pixpdq)
defines its own, which pytest prefers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.scenarios import WorldIndex
from harness.targets import ReferenceOptions, Target, reference_target
from synthetic import load_profile, write_world
from tests.hubrun import RunningHub, running_hub
from tests.test_gateway import RunningShard, running_shard

MINI_SEED = 7


def generate(out: Path, *args: str) -> None:
    result = CliRunner().invoke(app, ["generate", "--out", str(out), *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def mini_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mini") / "world"
    generate(out, "--profile", "mini", "--seed", str(MINI_SEED), "--jobs", "1")
    return out


@pytest.fixture(scope="session")
def world_json(mini_world: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((mini_world / "world.json").read_text(encoding="utf-8"))


@pytest.fixture
def db(mini_world: Path) -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(f"file:{mini_world / 'world.sqlite'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    yield con
    con.close()


@pytest.fixture(scope="session")
def bare_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini world without storage (world.json and world.sqlite only): enough for a hub alone."""
    out = tmp_path_factory.mktemp("bare") / "world"
    out.mkdir()
    write_world(load_profile("mini"), MINI_SEED, out, storage=None)
    return out


@pytest.fixture(scope="module")
def world(mini_world: Path) -> WorldIndex:
    """The scenario engine's index of the mini world."""
    return WorldIndex(mini_world)


@pytest.fixture(scope="module")
def hubs(
    mini_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningHub, RunningHub]]:
    """The security suites' two hubs on the mini world: the reference one (TLS MLLP, certificate checks)
    and a weak one on plain MLLP that trusts MSH-4, behind which the tests put their mutant front doors."""
    root = tmp_path_factory.mktemp("sechubs")
    with (
        running_hub(mini_world, root / "reference") as reference,
        running_hub(mini_world, root / "weak", plain_mllp=True) as weak,
    ):
        yield reference, weak


@pytest.fixture(scope="module")
def shard(mini_world: Path) -> Iterator[RunningShard]:
    """Every gateway of the mini world in one shard, without link delays."""
    with running_shard(mini_world, links=False) as running:
        yield running


@pytest.fixture(scope="module")
def hub(world: WorldIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The reference network (hub and two gateway shards) with real but cheap password hashing."""
    options = ReferenceOptions(scrypt_cost=4, shards=2)
    with reference_target(world, tmp_path_factory.mktemp("reference"), options=options) as target:
        yield target
