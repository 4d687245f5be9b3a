"""YAML loading that remembers where every key is, so validation errors can name file, line and key.

pydantic reports an error location as a tuple such as ``("facilities", "hospital", "acute", "count")``.
:func:`load_yaml` returns the data together with a map from such tuples to 1-based line numbers, and
:func:`validate` turns a :class:`pydantic.ValidationError` into a :class:`ProfileError` that names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from synthetic.errors import ProfileError


class Strict(BaseModel):
    """Base of the models read from YAML (profiles, pathways): unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)
LineMap = dict[tuple[str | int, ...], int]


MAX_NODES: Final = 100_000
"""Nodes a YAML document may expand to, aliases counted each time they are used (the largest file shipped
has a few hundred). Nine lines of nested aliases expand to 9⁹ nodes: walking them for the line map (or
validating them) would never end."""
MAX_DEPTH: Final = 64
"""Nesting a YAML document may have (the files shipped nest six or seven levels)."""


def _extent(node: yaml.Node, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(nodes, depth) of ``node`` with its aliases expanded, each distinct node computed once."""
    known = memo.get(id(node))
    if known is not None:
        return known
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [value for _, value in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    nodes, depth = 1, 1
    for child in children:
        n, d = _extent(child, memo)
        nodes, depth = nodes + n, max(depth, d + 1)
    memo[id(node)] = (nodes, depth)
    return nodes, depth


def _bounded(root: yaml.Node, source: str) -> None:
    """Refuse a document beyond :data:`MAX_NODES` or :data:`MAX_DEPTH`, naming the first top-level key (or
    item) that goes beyond them."""
    memo: dict[int, tuple[int, int]] = {}
    nodes, depth = _extent(root, memo)
    if nodes <= MAX_NODES and depth <= MAX_DEPTH:
        return
    parts: list[tuple[str, yaml.Node]] = []
    if isinstance(root, yaml.MappingNode):
        parts = [(str(key.value), value) for key, value in root.value]
    elif isinstance(root, yaml.SequenceNode):
        parts = [(str(i), item) for i, item in enumerate(root.value)]
    where, at = next(((k, v) for k, v in parts if _too_big(v, memo)), ("", root))
    message = (
        f"the document nests {depth} levels (at most {MAX_DEPTH})"
        if depth > MAX_DEPTH
        else f"the document expands to {nodes:,} nodes, aliases counted each time (at most {MAX_NODES:,})"
    )
    raise ProfileError(source, [(at.start_mark.line + 1, where, message)])


def _too_big(node: yaml.Node, memo: dict[int, tuple[int, int]]) -> bool:
    nodes, depth = _extent(node, memo)
    return nodes > MAX_NODES or depth >= MAX_DEPTH


def _walk(node: yaml.Node, path: tuple[str | int, ...], lines: LineMap) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it


def parse_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any, LineMap]:
    """Parse YAML text once: its node tree (for checks that need the document as written, such as duplicate
    keys), the data built from that tree (as ``yaml.safe_load`` builds it) and the line map. Syntax errors
    become a :class:`ProfileError` with the line."""
    try:
        node, data = _parse(_LOADER, text)
        if node is not None:
            _bounded(node, source)
    except yaml.MarkedYAMLError as fast:
        exc = _worded(text) or fast
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ProfileError(source, [(line, "", f"YAML syntax: {exc.problem}")]) from exc
    except RecursionError:  # a parser's or _extent's own recursion, far past MAX_DEPTH
        raise ProfileError(source, [(None, "", f"the document nests beyond {MAX_DEPTH} levels")]) from None
    lines: LineMap = {}
    if node is not None:
        _walk(node, (), lines)
    return node, data, lines


def _parse(loader_class: Any, text: str) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _worded(text: str) -> yaml.MarkedYAMLError | None:
    """The error PyYAML's own parser finds: it says more than libyaml's ("found undefined alias 'x'", not
    "found undefined alias"), at the same line; errors are rare, so the second parse costs nothing."""
    try:
        _parse(yaml.SafeLoader, text)
    except yaml.MarkedYAMLError as exc:
        return exc
    except RecursionError:  # nesting libyaml refused, deeper than this parser's recursion: libyaml's words
        return None
    return None


def load_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    """:func:`parse_yaml`'s data and line map."""
    _, data, lines = parse_yaml(text, source)
    return data, lines


def line_for(loc: tuple[str | int, ...], lines: LineMap) -> int | None:
    # pydantic may append pseudo-keys (union tags, "[key]" markers); fall back to the deepest known parent.
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def validate(model: type[M], data: Any, lines: LineMap, source: str) -> M:
    """Validate ``data`` against ``model``; every problem names file, line and dotted key path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[int | None, str, str]] = []
        for err in exc.errors():
            raw_loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
            is_key = "[key]" in raw_loc  # pydantic's marker for "this dict key is invalid"
            loc = tuple(p for p in raw_loc if p != "[key]")
            kind = err["type"]
            if is_key:
                message = f"invalid key: {err['msg']}"
            elif kind == "extra_forbidden":
                message = "unknown key"
            elif kind == "missing":
                message = "required key is missing"
            else:
                message = err["msg"]
                if "input" in err and kind != "model_type":
                    message += f" (got {err['input']!r})"
            path = ".".join(str(p) for p in loc)
            problems.append((line_for(loc, lines), path, message))
        raise ProfileError(source, problems) from None


def load_model(model: type[M], path: Path) -> M:
    """Read ``path`` and validate it as ``model``."""
    text = path.read_text(encoding="utf-8")
    data, lines = load_yaml(text, str(path))
    return validate(model, data, lines, str(path))
