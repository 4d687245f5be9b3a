"""The CLI contract: generate, world stats, refusal to overwrite, errors that say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from synthetic.profile import load_profile

runner = CliRunner()


def test_stats_json_has_the_contract_keys(mini_world: Path) -> None:
    result = runner.invoke(app, ["world", "stats", str(mini_world), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in (
        "facilities_by_kind",
        "facilities_total",
        "registered_patients",
        "sharing_patients",
        "disclosing_facilities",
        "episodes_by_pathway",
        "consents_by_pattern",
        "seed",
        "profile",
    ):
        assert key in data, key
    assert set(data["facilities_by_kind"]) == {"hospital", "clinic", "dental", "pharmacy", "care", "other"}
    assert data["profile"] == "mini"
    assert data["seed"] == 7


def test_stats_tables_print(mini_world: Path) -> None:
    result = runner.invoke(app, ["world", "stats", str(mini_world)])
    assert result.exit_code == 0, result.output
    assert "sharing_patients" in result.stdout
    assert "facilities_by_kind" in result.stdout


def test_mini_counts_match_the_profile(mini_world: Path) -> None:
    data = json.loads(runner.invoke(app, ["world", "stats", str(mini_world), "--json"]).stdout)
    profile = load_profile("mini")
    assert data["registered_patients"] == profile.registered_patients
    assert data["facilities_total"] == sum(profile.count(k) for k in profile.facilities)
    for kind in profile.facilities:
        assert data["facilities_by_kind"][kind] == profile.count(kind)
    assert data["disclosing_facilities"] == profile.disclosing_total() >= 4
    assert abs(data["sharing_patients"] - profile.sharing_patients) <= 3


def test_generate_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["generate", "--profile", "mini", "--out", str(tmp_path), "--patients", "5"])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"
    forced = runner.invoke(
        app,
        [
            "generate",
            "--profile",
            "mini",
            "--out",
            str(tmp_path),
            "--patients",
            "5",
            "--force",
            "--jobs",
            "1",
        ],
    )
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "world.sqlite").is_file()


def test_patients_override_keeps_facilities(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["generate", "--profile", "mini", "--out", str(tmp_path), "--patients", "40", "--jobs", "1"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(runner.invoke(app, ["world", "stats", str(tmp_path), "--json"]).stdout)
    assert data["registered_patients"] == 40
    assert data["facilities_total"] == 19


def test_unknown_profile_and_bad_profile_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--profile", "atlantis", "--out", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "no such profile" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: x\nunknown_key: 3\n", encoding="utf-8")
    result = runner.invoke(app, ["generate", "--profile", str(bad), "--out", str(tmp_path / "w2")])
    assert result.exit_code == 2
    assert "bad.yaml:3: unknown_key: unknown key" in result.output


def test_stats_on_a_directory_that_is_not_a_world(tmp_path: Path) -> None:
    result = runner.invoke(app, ["world", "stats", str(tmp_path)])
    assert result.exit_code == 2
    assert "no world.json" in result.output


def test_generate_into_a_relative_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` passes a relative --out (worlds/mini); storage writing must cope."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["generate", "--profile", "mini", "--out", "worlds/rel", "--patients", "12", "--jobs", "1"]
    )
    assert result.exit_code == 0, result.output
    assert any((tmp_path / "worlds" / "rel" / "storage").rglob("*_1"))
    assert any((tmp_path / "worlds" / "rel" / "extended").rglob("main_document.xml"))
