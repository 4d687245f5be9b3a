"""Shared fixtures: one mini world generated through the real CLI, read back from its files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

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
