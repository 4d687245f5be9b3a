"""Profiles and pathway files: valid ones load, broken ones fail with file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic import pathway as pathways
from synthetic.errors import ProfileError
from synthetic.profile import bundled_profiles, load_profile
from synthetic.yamlio import load_yaml, validate

MINI = Path(__file__).parents[1] / "synthetic" / "profiles" / "mini.yaml"


def test_bundled_profiles_load() -> None:
    assert {"ishikawa", "mini"} <= set(bundled_profiles())
    ishikawa = load_profile("ishikawa")
    assert ishikawa.registered_patients == 52640
    assert ishikawa.sharing_patients == 13257
    assert ishikawa.disclosing_total() == 32
    assert [ishikawa.count(k) for k in ("hospital", "clinic", "dental", "pharmacy", "care", "other")] == [
        80,
        339,
        8,
        29,
        66,
        10,
    ]


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = MINI.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(
        n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line
    )


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("history_days: 730", "history_days: 730\nhistory_dayz: 3", "history_dayz", "unknown key"),
        ("registered_patients: 300", "registered_patients: lots", "registered_patients", "valid integer"),
        (
            "    roken: {count: 1,",
            "    roken: {count: -1,",
            "facilities.care.roken.count",
            "greater than or equal to 0",
        ),
        (
            "  withdrawal_share: 0.015",
            "  withdrawal_share: 1.5",
            "consent.withdrawal_share",
            "less than or equal to 1",
        ),
        ("IP-VPN: 0.75", "Carrier pigeon: 0.75", "link_types.hospital.Carrier pigeon", "Input should be"),
    ],
)
def test_profile_errors_name_file_line_and_key(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    path = broken(tmp_path, old, new)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    text = str(info.value)
    assert str(path) in text, text
    assert f": {key}: " in text, text
    assert message in text, text
    line = next(p[0] for p in info.value.problems if p[1] == key)
    assert line == line_of(path, new.splitlines()[-1].split(":")[0].strip().strip("{"))


def test_missing_key_and_cross_field_rule(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="prefecture: required key is missing"):
        load_profile(broken(tmp_path, "prefecture: 石川県\n", ""))
    with pytest.raises(ProfileError, match="disclosing \\(3\\) exceeds count \\(1\\)"):
        load_profile(
            broken(tmp_path, "university: {count: 1, disclosing: 1,", "university: {count: 1, disclosing: 3,")
        )


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(broken(tmp_path, "history_days: 730", "history_days: [730"))
    assert info.value.problems[0][0] is not None
    assert "YAML syntax" in str(info.value)


def test_pathway_files_validate_and_reference_known_codes() -> None:
    for name in pathways.pathway_names():
        pw = pathways.pathway(name)
        assert pw.remarks, f"{name} cites its sources"
        assert pw.variants


def test_pathway_with_an_unknown_drug_names_the_key() -> None:
    text = """
id: t
title: t
remarks: [test]
variants: {v: {start: a}}
states:
  a:
    title: a
    facility: {kind: clinic}
    visit_every_days: [1, 2, 3]
    on_visit:
      - {prescription: {drugs: [no_such_drug]}}
"""
    data, lines = load_yaml(text, "t.yaml")
    pw = validate(pathways.Pathway, data, lines, "t.yaml")
    with pytest.raises(ProfileError) as info:
        pathways.check_references(pw, lines, "t.yaml")
    assert "t.yaml:12: states.a.on_visit.0.prescription.drugs.0: unknown drug 'no_such_drug'" in str(
        info.value
    )


def test_pathway_transition_probabilities_must_sum_to_one() -> None:
    text = """
id: t
title: t
remarks: [test]
variants: {v: {start: a}}
states:
  a: {title: a, facility: {kind: clinic}, visit_every_days: [1, 2, 3], duration_days: [1, 2, 3],
      transitions: {b: 0.5}}
  b: {title: b, terminal: true}
"""
    data, lines = load_yaml(text, "t.yaml")
    with pytest.raises(ProfileError, match=r"t\.yaml:7: states\.a: .*sum to 0\.5"):
        validate(pathways.Pathway, data, lines, "t.yaml")


def test_every_action_verb_has_one_care_function() -> None:
    """The care engine dispatches on PathwayAction.verb: a verb without a function is a KeyError mid-world."""
    from synthetic.care.actions import ACTIONS

    assert set(ACTIONS) == set(pathways.VERBS)
    assert pathways.PathwayAction(diet="常食").verb == "diet"
    assert pathways.PathwayAction(p=0.5, labs=["cbc"]).verb == "labs"
    with pytest.raises(ValueError, match="exactly one verb"):
        pathways.PathwayAction(diet="常食", outing=True)
    with pytest.raises(ValueError, match="exactly one verb"):
        pathways.PathwayAction(p=0.5)
