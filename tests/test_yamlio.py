"""``synthetic.yamlio.parse_yaml``: one parse (libyaml's when PyYAML has it) gives what ``yaml.safe_load`` and
PyYAML's own composer gave before, for every YAML file the project ships; errors keep PyYAML's wording."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthetic.errors import ProfileError
from synthetic.yamlio import LineMap, _walk, load_yaml, parse_yaml

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(
    p
    for pattern in ("*.yaml", "*.yml")
    for p in REPO.rglob(pattern)
    if not {".venv", "worlds", "reports", ".git"} & set(p.relative_to(REPO).parts)
)


def test_the_project_ships_yaml_files() -> None:
    assert len(SHIPPED) >= 100  # scenarios, profiles, pathways, workloads, targets


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_one_parse_gives_safe_loads_data_and_the_pure_parsers_lines(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected: LineMap = {}
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is not None:
        _walk(node, (), expected)
    root, data, lines = parse_yaml(text, str(path))
    assert data == yaml.safe_load(text)
    assert lines == expected
    assert (root is None) == (node is None)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb: *nope\n", 2, "found undefined alias 'nope'"),
        ("a:\n\t- 1\n", 2, "found character '\\t' that cannot start any token"),
        ("a: 1\nb: [1, 2\nc: 3\n", 3, "expected ',' or ']', but got ':'"),
    ],
)
def test_a_syntax_error_names_its_line_in_pyyamls_words(text: str, line: int, words: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_yaml(text, "t.yaml")
    assert caught.value.problems == [(line, "", f"YAML syntax: {words}")]


# ------------------------------------------------------------------------------------ bounded documents

# Nine lines whose aliases expand to 9⁹ nodes: walking them (for the line map, or validating) never ended.
BOMB = "\n".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['x'] * 9)}]"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def test_aliases_that_expand_past_the_bound_are_refused_naming_the_first_key_beyond_it() -> None:
    # a: 10 nodes, b: 91, c: 820, d: 7,381, e: 66,430, f: 597,871 — f is the first beyond 100,000
    with pytest.raises(ProfileError) as caught:
        parse_yaml(BOMB, "bomb.yaml")
    [(line, key, message)] = caught.value.problems
    assert (line, key) == (6, "f")
    assert "aliases counted each time (at most 100,000)" in message


def test_the_bound_counts_what_the_aliases_expand_to_not_the_text() -> None:
    nine = "\n".join(BOMB.splitlines()[:5])  # up to e: 66,430 nodes in five short lines
    data, lines = load_yaml(nine, "ok.yaml")
    assert len(data["e"]) == 9
    assert lines[("e",)] == 5
    with pytest.raises(ProfileError) as caught:  # f: [*d × 5] is 36,906: no key alone, the whole beyond
        load_yaml(nine + "\nf: [*d, *d, *d, *d, *d]", "two.yaml")
    assert caught.value.problems == [
        (1, "", "the document expands to 111,639 nodes, aliases counted each time (at most 100,000)")
    ]


@pytest.mark.parametrize(
    ("levels", "problem"),
    [
        (70, (2, "b", "the document nests 71 levels (at most 64)")),
        (900, (2, "b", "the document nests 901 levels (at most 64)")),
        (100_000, (2, "", "YAML syntax: exceeded maximum nesting depth")),  # libyaml's own bound
    ],
)
def test_nesting_past_the_bound_is_refused_at_any_depth(levels: int, problem: tuple[int, str, str]) -> None:
    with pytest.raises(ProfileError) as caught:
        load_yaml("a: 1\nb: " + "[" * levels + "]" * levels, "deep.yaml")
    assert caught.value.problems == [problem]


def test_nesting_within_the_bound_is_read() -> None:
    data, _ = load_yaml("a: " + "[" * 62 + "1" + "]" * 62, "ok.yaml")
    assert data["a"] is not None


def test_every_user_yaml_file_is_bounded(tmp_path: Path) -> None:
    """The what-if overlay, the gateway overrides and a target file: each refuses the bomb with its own error
    (no other reader of a user's YAML is left on yaml.safe_load)."""
    from harness.scenarios.errors import FormatError
    from harness.scenarios.world import WorldIndex
    from harness.targets import load_target
    from simulator.des.whatif import WhatIfError, load_overlay
    from simulator.netplan import NetworkError, load_overrides

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB, encoding="utf-8")
    with pytest.raises(WhatIfError, match=r"bomb.yaml:6: f: the document expands"):
        load_overlay(bomb)
    with pytest.raises(NetworkError, match=r"bomb.yaml:6: f: the document expands"):
        load_overrides(bomb, {"A"})
    with pytest.raises(FormatError, match=r"bomb.yaml:6.*the document expands"):
        load_target(bomb, WorldIndex.__new__(WorldIndex))
