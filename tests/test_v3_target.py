"""A target file may declare PIXv3/PDQv3 endpoints (``soap:``) and ``supports`` the v3 step kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.scenarios import WorldIndex
from harness.scenarios.errors import FormatError, TargetError
from harness.targets import load_target


@pytest.fixture(scope="module")
def world(mini_world: Path) -> WorldIndex:
    return WorldIndex(mini_world)


def write(folder: Path, body: str) -> Path:
    path = folder / "vendor.yaml"
    path.write_text("schema_version: 1\nname: vendor\n" + body, encoding="utf-8")
    return path


def test_soap_endpoints_and_their_kinds(world: WorldIndex, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not read here", encoding="ascii")
    (tmp_path / "certs").mkdir()
    target = load_target(
        write(
            tmp_path,
            "mllp: {host: 127.0.0.1, port: 2575, tls: {ca: ca.pem, certs: certs}}\n"
            'soap: {base_url: "https://127.0.0.1:8443", pdq_path: /vendor/pdq}\n',
        ),
        world,
    )
    assert target.soap == "https://127.0.0.1:8443"
    assert target.soap_tls is not None
    assert target.soap_tls.ca_file == tmp_path / "ca.pem"
    assert target.soap_paths == {"feed": "/pixv3/feed", "pix": "/pixv3/query", "pdq": "/vendor/pdq"}
    assert {"feed_v3", "pix_query_v3", "pdq_query_v3"} <= target.supports
    assert target.describe()["soap"] == "https://127.0.0.1:8443"


def test_supports_can_name_v3_kinds_and_plain_http_needs_no_tls(world: WorldIndex, tmp_path: Path) -> None:
    target = load_target(
        write(tmp_path, 'soap: {base_url: "http://127.0.0.1:8080"}\nsupports: [pix_query_v3, wait]\n'), world
    )
    assert target.soap_tls is None
    assert target.supports == {"pix_query_v3", "wait"}
    without = load_target(write(tmp_path, "mllp: {host: 127.0.0.1, port: 2575}\nplain_mllp: true\n"), world)
    assert not {"feed_v3", "pix_query_v3", "pdq_query_v3"} & without.supports


def test_https_soap_without_certificates_is_refused(world: WorldIndex, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"soap\.tls"):
        load_target(write(tmp_path, 'soap: {base_url: "https://127.0.0.1:8443"}\n'), world)


def test_supports_takes_every_declared_kind_and_names_an_unknown_one(
    world: WorldIndex, tmp_path: Path
) -> None:
    """The kinds a target file may list are the registry's (harness.scenarios.kinds), not a second list."""
    from harness.scenarios.model import ACTION_MODELS

    every = load_target(write(tmp_path, f"supports: [{', '.join(ACTION_MODELS)}]\n"), world)
    assert every.supports == set(ACTION_MODELS)
    with pytest.raises(FormatError) as caught:  # a file error: file, line and key
        load_target(write(tmp_path, "supports: [pix_query, pix_query_v4]\n"), world)
    assert "vendor.yaml:3" in str(caught.value)
    assert "supports.1" in str(caught.value)
    assert "unknown step kind 'pix_query_v4'" in str(caught.value)
