"""Scenario files → models, with every problem named by file, line and key path; discovery and selection.

YAML is read with :func:`synthetic.yamlio.parse_yaml` (the same line map the profiles use). Beyond pydantic's
checks the loader catches what a schema cannot: duplicate keys, names a step uses but ``given`` lacks,
``${...}`` variables nothing defines (captures count only from earlier steps), subjects that do not fit the
step's kind (``status`` on an MLLP step), and the same scenario ID in two files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from synthetic.errors import ProfileError
from synthetic.yamlio import LineMap, line_for, parse_yaml

from .actions import _Http
from .errors import FormatError
from .model import DATA_FOLDER_KINDS, HTTP_KINDS, LOCAL_KINDS, MLLP_KINDS, V3_KINDS, Scenario, Step
from .subjects import HL7_ONLY, HTTP_ONLY, parse_subject
from .variables import BUILTIN_ROOTS, PARAM_ROOT, references

__all__ = [
    "LoadedScenario",
    "discover",
    "load_scenario",
    "parse_scenario",
    "select",
    "validate_model",
]

M = TypeVar("M", bound=BaseModel)
Problem = tuple[int | None, str, str]
Loc = tuple[str | int, ...]

# Action fields naming a facility variable, and those naming a patient variable.
_FACILITY_FIELDS: Final = ("from", "domain", "at", "by", "facility")
_PATIENT_FIELDS: Final = ("patient", "demographics_of")


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with where it came from: its suite (folder under the root) and line map."""

    scenario: Scenario
    path: Path
    suite: str
    lines: LineMap

    @property
    def id(self) -> str:
        return self.scenario.id

    def line(self, *loc: str | int) -> int | None:
        return line_for(loc, self.lines)

    def where(self, *loc: str | int) -> str:
        line = self.line(*loc)
        return f"{self.path}:{line}" if line is not None else str(self.path)


# ------------------------------------------------------------------------------------------- validation


def _clean(loc: Loc, lines: LineMap) -> Loc:
    """pydantic's location without its pseudo-parts (union members, validator names) that YAML has not."""
    kept: list[str | int] = []
    for n, part in enumerate(loc):
        if (*kept, part) in lines or n == len(loc) - 1:
            kept.append(part)
    while kept and tuple(kept) not in lines and isinstance(kept[-1], str) and len(kept) > 1:
        # a missing key: keep its name, but only if the parent exists
        if tuple(kept[:-1]) in lines:
            break
        kept.pop()
    return tuple(kept)


def validate_model(model: type[M], data: Any, lines: LineMap, source: str) -> M:
    """Validate ``data`` as ``model``; every problem names file, line and dotted key path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems: list[Problem] = []
        for err in exc.errors():
            raw = tuple(p for p in err["loc"] if isinstance(p, str | int))
            is_key = "[key]" in raw
            loc = _clean(tuple(p for p in raw if p != "[key]"), lines)
            kind = err["type"]
            if is_key:
                message = f"invalid key: {err['msg']}"
            elif kind == "extra_forbidden":
                message = "unknown key"
            elif kind == "missing":
                message = "required key is missing"
            else:
                message = err["msg"].removeprefix("Value error, ")
                if (
                    "input" in err
                    and kind not in ("model_type", "value_error")
                    and not isinstance(err["input"], dict | list)
                ):
                    message += f" (got {err['input']!r})"
            problems.append((line_for(loc, lines), ".".join(str(p) for p in loc), message))
        raise FormatError(source, _unique(problems)) from None


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _duplicate_keys(root: yaml.Node | None) -> list[Problem]:
    """YAML silently keeps the last of two equal keys; a scenario must not."""
    problems: list[Problem] = []

    def walk(node: yaml.Node, path: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if key.value in seen:
                    where = ".".join(str(p) for p in (*path, key.value))
                    problems.append((key.start_mark.line + 1, where, "duplicate key"))
                seen.add(key.value)
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for n, item in enumerate(node.value):
                walk(item, (*path, n))

    if root is not None:
        walk(root, ())
    return problems


def parse_scenario(text: str, source: str, *, suite: str = "", path: Path | None = None) -> LoadedScenario:
    """Validate scenario YAML text; raises :class:`FormatError` listing every problem found."""
    try:
        root, data, lines = parse_yaml(text, source)
    except ProfileError as exc:
        raise FormatError(source, exc.problems) from None
    duplicates = _duplicate_keys(root)
    if duplicates:
        raise FormatError(source, duplicates)
    scenario = validate_model(Scenario, data, lines, source)
    loaded = LoadedScenario(scenario, path or Path(source), suite, lines)
    problems = [(line_for(loc, lines), ".".join(map(str, loc)), msg) for loc, msg in _semantic(scenario)]
    if problems:
        raise FormatError(source, problems)
    return loaded


def load_scenario(path: Path, *, suite: str = "") -> LoadedScenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(str(path), [(None, "", f"cannot read: {exc}")]) from exc
    return parse_scenario(text, str(path), suite=suite, path=path)


# ------------------------------------------------------------------------------------------- semantics


def _texts(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from _texts(getattr(value, name), (*loc, info.alias or name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from _texts(item, (*loc, n))


def _semantic(scenario: Scenario) -> Iterator[tuple[Loc, str]]:
    patients = set(scenario.given.patients)
    facilities = set(scenario.given.facilities)
    for name in sorted(patients & facilities):
        yield ("given", "facilities", name), f"{name!r} names both a patient and a facility"
    for name in sorted((patients | facilities) & {*BUILTIN_ROOTS, PARAM_ROOT}):
        yield ("given",), f"{name!r} is reserved for built-in variables"
    for name, selector in scenario.given.facilities.items():
        for ref in sorted(selector.patients() - patients):
            yield ("given", "facilities", name), f"refers to {ref!r}, which is not a given patient"
    captures: set[str] = set()
    sessions: set[str] = set()
    params = frozenset(scenario.params)
    for n, step in enumerate(scenario.steps):
        yield from _step_problems(n, step, patients, facilities, captures, sessions, params)
        captures |= set(step.capture)


def _step_problems(
    n: int,
    step: Step,
    patients: set[str],
    facilities: set[str],
    captures: set[str],
    sessions: set[str],
    params: frozenset[str],
) -> Iterator[tuple[Loc, str]]:
    """Step ``n``'s undeclared names, missing actors and subjects its kind cannot assert (``sessions``
    gains the session a login step opens)."""
    yield from _action_problems(n, step, patients, facilities, captures, sessions, params)
    yield from _expectation_problems(n, step, patients, facilities, captures, params)


def _action_problems(
    n: int,
    step: Step,
    patients: set[str],
    facilities: set[str],
    captures: set[str],
    sessions: set[str],
    params: frozenset[str],
) -> Iterator[tuple[Loc, str]]:
    kind, action = step.kind, step.action
    base: Loc = ("steps", n, kind)
    values = action.model_dump(by_alias=True)
    for key in _FACILITY_FIELDS:
        value = values.get(key)
        if (
            value is None
            or (key == "at" and value == "regional" and kind != "world_file")
            or (key, kind) == ("facility", "consent_add")
        ):
            continue  # consent_add's facility is a facility variable or a raw code
        if isinstance(value, str) and value not in facilities:
            yield (*base, key), f"{value!r} is not a facility of this scenario's `given`"
    for i, other in enumerate(values.get("others") or ()):
        if other not in facilities:
            yield (*base, "others", i), f"{other!r} is not a facility of this scenario's `given`"
    for key in _PATIENT_FIELDS:
        value = values.get(key)
        if isinstance(value, str) and value not in patients:
            yield (*base, key), f"{value!r} is not a patient of this scenario's `given`"
    if kind == "login":
        sessions.add(values.get("as") or values["facility"])
    session = values.get("session")
    if session is not None and session not in sessions:
        yield (*base, "session"), f"no earlier login step opened session {session!r}"
    operator = kind == "access_report" and values.get("operator")
    if isinstance(action, _Http) and action.actor_required and not (values.get("by") or session or operator):
        yield base, "say who acts: `by: <facility>` or `session: <login name>`"
    if operator and (values.get("by") or session):
        yield base, "`operator: true` acts as the hub operator: no `by` or `session` with it"
    if kind == "pix_query" and "QPD-3" not in values.get("set", {}) and not values.get("at"):
        yield base, "a PIX query needs `at` (a facility or `regional`) or set: {QPD-3: …}"
    for loc, text in _texts(action, base):
        for ref in references(text):
            if isinstance(ref, ValueError):
                yield loc, str(ref)
                continue
            problem = ref.problem(patients, facilities, captures, params)
            if problem:
                yield loc, problem


def _expectation_problems(
    n: int,
    step: Step,
    patients: set[str],
    facilities: set[str],
    captures: set[str],
    params: frozenset[str],
) -> Iterator[tuple[Loc, str]]:
    kind = step.kind

    def reference_problems(text: str, loc: Loc) -> Iterator[tuple[Loc, str]]:
        for ref in references(text):
            problem = (
                str(ref)
                if isinstance(ref, ValueError)
                else ref.problem(patients, facilities, captures, params)
            )
            if problem:
                yield loc, problem

    allowed = _subject_kinds(kind)
    for e, expectation in enumerate(step.expect):
        for subject, matcher in expectation.that.items():
            loc: Loc = ("steps", n, "expect", e, "that", subject)
            if parse_subject(subject).kind not in allowed:
                yield loc, f"{subject!r} does not apply to a {kind} step"
            yield from reference_problems(subject, loc)
            for op, value in matcher.operators().items():
                for _, text in _texts(value, (*loc, op)):
                    yield from reference_problems(text, loc)
    for name, subject in step.capture.items():
        loc = ("steps", n, "capture", name)
        if parse_subject(subject).kind not in allowed:
            yield loc, f"{subject!r} does not apply to a {kind} step"
        yield from reference_problems(subject, loc)
    if step.repeat is not None and isinstance(step.repeat.count, str):
        yield from reference_problems(step.repeat.count, ("steps", n, "repeat", "count"))
    if kind == "world_file" and step.repeat is not None:
        yield ("steps", n, "repeat"), "a world_file step reads a file on this machine: nothing to repeat"


def _subject_kinds(kind: str) -> set[str]:
    common = {"elapsed_ms", "text", "latency"}
    if kind in MLLP_KINDS:
        return common | set(HL7_ONLY)
    if kind in HTTP_KINDS:
        return common | set(HTTP_ONLY)
    if kind in V3_KINDS:  # a v3 reply is observed as an HTTP one (status, json: its document)
        return common | set(HTTP_ONLY)
    if kind in LOCAL_KINDS | DATA_FOLDER_KINDS:
        return common | {"status", "json"}
    return {"elapsed_ms", "latency"}


# ------------------------------------------------------------------------------------------- discovery


def discover(root: Path, paths: Sequence[Path] = ()) -> list[LoadedScenario]:
    """Every scenario under ``root`` (or only ``paths``, files or folders); suite = folder under root.

    All files are read before anything fails, so one run reports every broken file at once.
    """
    files: list[Path] = []
    for path in paths or [root]:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FormatError(str(path), [(None, "", "no such file or folder")])
    loaded, errors = [], []
    for file in files:
        try:
            loaded.append(load_scenario(file, suite=_suite_of(file, root)))
        except FormatError as exc:
            errors.append(exc)
    seen: dict[str, Path] = {}
    for item in loaded:
        if item.id in seen:
            message = f"id {item.id!r} is also used by {seen[item.id]}"
            errors.append(FormatError(str(item.path), [(item.line("id"), "id", message)]))
        seen[item.id] = item.path
    if errors:
        raise FormatError.combine(errors)
    return sorted(loaded, key=lambda s: (s.suite, s.id))


def _suite_of(file: Path, root: Path) -> str:
    try:
        parent = file.resolve().parent.relative_to(root.resolve())
    except ValueError:
        return file.parent.name
    return parent.as_posix() if parent.parts else "default"


# ------------------------------------------------------------------------------------------- selection


def select(
    scenarios: Iterable[LoadedScenario],
    *,
    suites: Sequence[str] = (),
    tags: Sequence[str] = (),
    keyword: str | None = None,
) -> list[LoadedScenario]:
    """Filter by suite (folder, or a folder above it), tags and a ``-k`` expression.

    ``tags``: each entry may be comma-separated; ``T`` includes scenarios tagged T (any of them), ``!T``
    excludes those tagged T. ``keyword``: words joined by ``and``/``or``/``not`` and parentheses; a word
    matches a tag or the suite exactly, or a substring of the scenario's id or title.
    """
    wanted = [t.strip() for entry in tags for t in entry.split(",") if t.strip()]
    include = {t for t in wanted if not t.startswith("!")}
    exclude = {t[1:] for t in wanted if t.startswith("!")}
    matcher = _compile_keyword(keyword) if keyword else None
    out = []
    for item in scenarios:
        if suites and not any(item.suite == s or item.suite.startswith(s.rstrip("/") + "/") for s in suites):
            continue
        item_tags = set(item.scenario.tags)
        if include and not item_tags & include:
            continue
        if item_tags & exclude:
            continue
        if matcher is not None and not matcher(item):
            continue
        out.append(item)
    return out


_TOKEN: Final = re.compile(r"\s*(\(|\)|[^\s()]+)")


def _compile_keyword(expr: str) -> Any:
    tokens = _TOKEN.findall(expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise FormatError("-k", [(None, "", f"expression {expr!r} ends too early")])
        pos += 1
        return str(tokens[pos - 1])

    def expression() -> Any:
        left = term()
        while peek() == "or":
            take()
            right, prev = term(), left
            left = lambda s, a=prev, b=right: a(s) or b(s)  # noqa: E731
        return left

    def term() -> Any:
        left = factor()
        while peek() == "and":
            take()
            right, prev = factor(), left
            left = lambda s, a=prev, b=right: a(s) and b(s)  # noqa: E731
        return left

    def factor() -> Any:
        token = take()
        if token == "not":
            inner = factor()
            return lambda s: not inner(s)
        if token == "(":
            inner = expression()
            if take() != ")":
                raise FormatError("-k", [(None, "", f"expression {expr!r}: missing ')'")])
            return inner
        if token in ("and", "or", ")"):
            raise FormatError("-k", [(None, "", f"expression {expr!r}: unexpected {token!r}")])
        word = token.lower()

        def match(s: LoadedScenario) -> bool:
            sc = s.scenario
            return word in sc.id.lower() or word in sc.title.lower() or token in sc.tags or token == s.suite

        return match

    result = expression()
    if pos != len(tokens):
        raise FormatError("-k", [(None, "", f"expression {expr!r}: unexpected {tokens[pos]!r}")])
    return result
