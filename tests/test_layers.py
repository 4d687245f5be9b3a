"""Guard rails on the code's shape, read from its own imports (ast, nothing is imported to check it).

Layers, bottom to top: ``hl7wire`` (HL7 v2 + MLLP, imports nothing else of rhin) ← ``synthetic`` ←
``simulator`` ← ``harness`` ← ``loadtests``. A module may import its own layer and those below; ``tests``
and ``benchmarks`` may import anything and are not checked. A layer folder that does not exist yet is simply
absent.

Choices, tested below on a small tree of our own:

* the layer rule counts every import in a module, at any depth: top-level, under ``if TYPE_CHECKING:``
  and inside functions (a lazy import still runs up the layers when it runs);
* the circle rule counts the same imports: module-level ones, ``if TYPE_CHECKING:`` blocks and imports in
  function bodies. A lazy import does not deadlock, but it is how a circle is usually hidden (the
  validator's ``model`` imported ``rules`` in a function while ``rules`` imported ``model``), and two modules
  that need each other are one room. A circle is any set of two or more modules that reach each other, or
  a module that imports itself; the report marks the imports made in a function;
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg`` (its
  ``__init__``);
* importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``: that is an edge too, except to the
  importer's own enclosing packages (a submodule importing a sibling while its package's ``__init__``
  re-exports it is how packages are built, and it cannot deadlock). Without this rule ``harness.targets``
  → ``harness.scenarios.errors`` hid a real circle through ``harness/scenarios/__init__.py``, which imports
  the engine, which imported ``harness.targets`` (``import harness.targets`` alone failed).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Bottom to top; a module may import from its own rank and below.
LAYERS: tuple[str, ...] = ("hl7wire", "synthetic", "simulator", "harness", "loadtests")


@dataclass(frozen=True, slots=True)
class Edge:
    """One import statement: ``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int
    module_level: bool
    implicit: bool = False  # a parent package's __init__, run by importing one of its modules

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.source} → {self.target}"


def modules(root: Path) -> dict[str, Path]:
    """Every module of the layer packages under root, by dotted name (packages by their ``__init__``)."""
    found: dict[str, Path] = {}
    for top in LAYERS:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies in; None for the standard library and others."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _enclosing(module: str, known: dict[str, Path]) -> list[str]:
    """The packages whose ``__init__`` runs before ``module`` does (``a``, ``a.b`` for ``a.b.c``)."""
    parts = module.split(".")
    return [p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in known]


def _walk(node: ast.AST, module_level: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Import statements under node, with whether each runs at import time (not inside a def/lambda)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, module_level
        inner = module_level and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inner)


@functools.cache
def edges(root: Path) -> list[Edge]:
    """Every import between the layer packages' modules, read from their source."""
    known = modules(root)
    out: list[Edge] = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = str(path.relative_to(root))
        for node, module_level in _walk(tree, True):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    # relative: drop one component per level beyond the module's own package
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, base] if base else package)
                targets = [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"] or [base]
                targets = [t if t in known else base for t in targets]
            for target in dict.fromkeys(targets):
                resolved = _resolve(target, known)
                if resolved is not None and (resolved != name or target == name):  # target == name: itself
                    out.append(Edge(name, resolved, rel, node.lineno, module_level))
                    for parent in _enclosing(resolved, known):
                        if not (name == parent or name.startswith(parent + ".")):
                            out.append(Edge(name, parent, rel, node.lineno, module_level, implicit=True))
    return out


def layer_violations(root: Path) -> list[str]:
    """Imports that run up the layers, one line each."""
    rank = {top: i for i, top in enumerate(LAYERS)}
    bad: list[str] = []
    for e in edges(root):
        if e.implicit:  # same layer as the explicit import beside it, reported there
            continue
        src, dst = e.source.split(".")[0], e.target.split(".")[0]
        if rank[dst] > rank[src]:
            bad.append(f"{e}: {dst} is above {src}")
    return bad


def circles(root: Path) -> list[list[Edge]]:
    """Import circles: each as the import statements inside one strongly connected set of modules."""
    graph: dict[str, set[str]] = {}
    found: dict[tuple[str, str], list[Edge]] = {}
    for e in edges(root):
        graph.setdefault(e.source, set()).add(e.target)
        found.setdefault((e.source, e.target), []).append(e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [
        sorted((e for (s, t), es in found.items() if s in g and t in g for e in es), key=str)
        for g in sorted(groups, key=sorted)
    ]


def _report(groups: list[list[Edge]]) -> str:
    return "\n".join(
        f"circle {i}: "
        + " ↔ ".join(sorted({e.source for e in group}))
        + "".join(f"\n    {e}{'' if e.module_level else ' (in a function)'}" for e in group)
        for i, group in enumerate(groups, 1)
    )


# -- the checker, on a tree of our own ----------------------------------------------------------------------


TYPING = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_finds_upward_imports_at_any_depth(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "hl7wire/__init__.py": "import json\n",
            "hl7wire/frame.py": "from synthetic import clock\n",  # the wire package imports nothing of rhin
            "synthetic/__init__.py": "",
            "synthetic/clock.py": "import hl7wire.frame\n",  # down: allowed
            "synthetic/typed.py": f"{TYPING}    import simulator\n",
            "simulator/__init__.py": "from synthetic import clock\n",
            "simulator/lazy.py": "def f():\n    from harness.cli import app\n",
            "harness/cli.py": "from . import helpers\nfrom ..simulator import lazy\n",
            "harness/helpers.py": "import loadtests\n",
            "loadtests/__init__.py": "import harness.cli, simulator, synthetic.clock, hl7wire\n",
        },
    )
    bad = layer_violations(root)
    assert len(bad) == 4, bad
    assert any("hl7wire/frame.py:1 hl7wire.frame → synthetic.clock" in b for b in bad)
    assert any("synthetic/typed.py:3 synthetic.typed → simulator" in b for b in bad)
    assert any("simulator/lazy.py:2 simulator.lazy → harness.cli" in b for b in bad)
    assert any("harness/helpers.py:1 harness.helpers → loadtests" in b for b in bad)


def test_checker_finds_circles_also_through_lazy_imports_but_not_reexports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "synthetic/__init__.py": "from synthetic.a import A\n",  # re-export: no edge back from a
            "synthetic/a.py": "from synthetic.b import B\nA = 1\n",
            "synthetic/b.py": f"{TYPING}    from synthetic import a\nB = 2\n",
            "synthetic/c.py": "def f():\n    from synthetic import d\n",  # lazy, still a circle
            "synthetic/d.py": "import synthetic.c\n",
            "synthetic/e.py": "import synthetic.d\n",  # imports into a circle: not part of it
            "synthetic/pkg/__init__.py": "from .x import X\n",
            "synthetic/pkg/x.py": "from . import y\nX = 1\n",
            "synthetic/pkg/y.py": "from .x import X\n",
        },
    )
    groups = circles(root)
    assert [sorted({e.source for e in g}) for g in groups] == [
        ["synthetic.a", "synthetic.b"],
        ["synthetic.c", "synthetic.d"],
        ["synthetic.pkg.x", "synthetic.pkg.y"],
    ], _report(groups)
    assert "synthetic/b.py:3 synthetic.b → synthetic.a\n" in _report(groups)
    assert "synthetic/c.py:2 synthetic.c → synthetic.d (in a function)" in _report(groups)


def test_checker_follows_the_parent_package_init_that_an_import_runs(tmp_path: Path) -> None:
    """``harness.targets`` importing ``harness.scenarios.errors`` runs ``harness/scenarios/__init__.py``."""
    root = _tree(
        tmp_path,
        {
            "harness/__init__.py": "",
            "harness/targets.py": "from harness.scenarios.errors import E\n",
            "harness/scenarios/__init__.py": "from .engine import run\n",
            "harness/scenarios/errors.py": "E = 1\n",
            "harness/scenarios/engine.py": "from . import errors\nfrom harness.targets import T\n",
        },
    )
    groups = circles(root)
    assert [sorted({e.source for e in g}) for g in groups] == [
        ["harness.scenarios", "harness.scenarios.engine", "harness.targets"]
    ], _report(groups)
    assert _report(groups).endswith("harness/targets.py:1 harness.targets → harness.scenarios")
    # the package's own modules importing a sibling: no edge to their own __init__, no circle
    (root / "harness/scenarios/engine.py").write_text("from . import errors\n")
    edges.cache_clear()
    assert circles(root) == []


# -- the code itself ----------------------------------------------------------------------------------------


def test_the_layer_packages_are_where_this_test_looks() -> None:
    found = modules(ROOT)
    assert {"synthetic", "simulator", "harness"} <= set(found)
    assert len(edges(ROOT)) > 100  # the checker reads real imports, not an empty tree


def test_no_import_runs_up_the_layers() -> None:
    bad = layer_violations(ROOT)
    assert not bad, "imports that run up the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize("top", LAYERS)
def test_no_import_circles(top: str) -> None:
    groups = [g for g in circles(ROOT) if g[0].source.split(".")[0] == top]
    assert not groups, f"import circles in {top}:\n{_report(groups)}"


def class_names(root: Path) -> dict[str, list[str]]:
    """Every top-level class of the layer packages, by name, with the modules defining it."""
    found: dict[str, list[str]] = {}
    for name, path in modules(root).items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(name)
    return found


def test_no_class_name_is_defined_twice() -> None:
    """One name, one thing: a reader (or a grep) never has to ask which ``Demographics`` a line means.
    Private names (``_Pending``) are a module's own business and may repeat."""
    found = class_names(ROOT).items()
    twice = {name: where for name, where in found if len(where) > 1 and not name.startswith("_")}
    assert not twice, "\n".join(f"{name}: {', '.join(where)}" for name, where in sorted(twice.items()))
