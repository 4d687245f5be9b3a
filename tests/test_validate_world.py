"""`rhin validate-storage` on our own world: 0 errors and 0 warnings under --strict; breakage is caught."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def test_generated_world_validates_clean(mini_world: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    args = ["validate-storage", str(mini_world), "--json", "--strict", "--junit", str(junit)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    files = [p for p in (mini_world / "storage").rglob("*") if p.is_file()]
    assert report["files"] == len(files) > 1000
    assert report["errors"] == 0
    assert report["warnings"] == 0, report["by_rule"]
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0"
    assert int(suite.get("tests", "0")) >= 40


def test_one_facility_root_validates_clean(mini_world: Path) -> None:
    root = sorted((mini_world / "storage").iterdir())[0]
    result = runner.invoke(app, ["validate-storage", str(root), "--json", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["errors"] == 0


def test_a_damaged_copy_of_our_storage_fails(mini_world: Path, tmp_path: Path) -> None:
    root = sorted((mini_world / "storage").iterdir())[0]
    copy = tmp_path / root.name
    shutil.copytree(root, copy)
    victim = next(p for p in sorted(copy.rglob("*_1")) if "/OML-11/" in str(p))
    victim.write_bytes(victim.read_bytes().replace(b"~ISO IR87", b"UNICODE UTF-8").replace(b"\r", b"\n"))
    result = runner.invoke(app, ["validate-storage", str(copy), "--json"])
    assert result.exit_code == 1
    rules = {f["rule"] for f in json.loads(result.stdout)["findings"]}
    assert {"SS2-SEG-TERMINATOR"} <= rules, rules
    text = runner.invoke(app, ["validate-storage", str(copy)])
    assert text.exit_code == 1
    assert "SS2-SEG-TERMINATOR" in text.stdout
