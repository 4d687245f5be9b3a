"""``synthetic.yamlio.parse_yaml``: one parse (libyaml's when PyYAML has it) gives what ``yaml.safe_load`` and
PyYAML's own composer gave before, for every YAML file the project ships; errors keep PyYAML's wording."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthetic.errors import ProfileError
from synthetic.yamlio import LineMap, _walk, parse_yaml

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
