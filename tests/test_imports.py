"""The package's import structure, read from every module's source (ast), so nothing is imported to check it.

Every import counts: at module level, inside functions (lazy imports) and under ``TYPE_CHECKING``,
because each is a dependency a reader has to follow, and a cycle waiting for the day it runs. Importing
``untrainable.a.b`` also runs ``untrainable/a/__init__.py``, so an import from outside a package
depends on that package's ``__init__`` too.

Three rules:

* no import cycle;
* no upward import: the foundations (the library a reader can use in their own training loop) import
  no chapter, analysis, benchmark or command line, and the analysis imports no chapter or benchmark;
* no ``_private`` name of one module used in another, or in a notebook (``from untrainable.x import _name``,
  or ``x._name`` on a name imported from ``untrainable``): what another module needs is public.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The bottom layer: modules that know nothing of chapters, pages or the command line.
FOUNDATIONS = ("paths", "profiles", "files", "runtime", "precision", "record_keys", "similarity", "synthetic",
               "data", "models", "recording", "train", "guidance", "mimic", "transfer")

#: What each layer must not import: packages and modules of ``untrainable``.
FORBIDDEN = {
    "foundations": ("experiments", "analysis", "benchmarks", "reproduce", "cli"),
    "analysis": ("experiments", "benchmarks", "reproduce", "cli"),
}

#: Known offenders in modules other engineers are changing now: (rule, importing module, what it uses).
#: Each must still occur (a test says when one is gone), so that the list only ever shrinks.
ALLOWED_FOR_NOW: frozenset[tuple[str, str, str]] = frozenset()


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__``)."""
    found = {}
    for path in sorted((SRC / "untrainable").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


@dataclass(frozen=True)
class Import:
    """One name ``source`` imports from the package at ``line``: bound as ``name``, it is ``target``
    (a module, or a name in one), which comes from ``module``."""

    source: str
    line: int
    name: str
    target: str
    module: str


def _absolute(source: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, a relative import resolved against ``source``."""
    if not node.level:
        return node.module or ""
    package = source.split(".") if MODULES[source].name == "__init__.py" else source.split(".")[:-1]
    return ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))


def imports(source: str, tree: ast.Module) -> Iterator[Import]:
    """Every import of ``untrainable`` anywhere in ``tree`` (the source of module ``source``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "untrainable":
                    name = alias.asname or "untrainable"
                    yield Import(source, node.lineno, name, alias.name if alias.asname else name, alias.name)
        elif isinstance(node, ast.ImportFrom) and _absolute(source, node).split(".")[0] == "untrainable":
            base = _absolute(source, node)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                yield Import(source, node.lineno, alias.asname or alias.name, target,
                             target if target in MODULES else base)


def edges(found: Iterator[Import]) -> Iterator[tuple[str, str, int]]:
    """``(source, target module, line)`` of each import, with every package whose ``__init__`` it runs
    (not the importer's own packages: a package's modules are imported while it is)."""
    for i in found:
        parts = i.module.split(".")
        for n in range(2, len(parts) + 1):
            target = ".".join(parts[:n])
            if n == len(parts) or not f"{i.source}.".startswith(f"{target}."):
                yield i.source, target, i.line


def graph() -> dict[str, dict[str, int]]:
    """``source -> {imported module: line of its first import}`` over the whole package."""
    out: dict[str, dict[str, int]] = {}
    for source, tree in TREES.items():
        for _, target, line in edges(imports(source, tree)):
            out.setdefault(source, {}).setdefault(target, line)
    return out


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = {stack.pop()}
            while v not in group:
                group.add(stack.pop())
            groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [closed_path(graph, g) for g in groups if len(g) > 1 or min(g) in graph.get(min(g), {})]


def closed_path(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """The shortest path inside ``group`` from its first module back to that module (breadth first)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while start not in came_from:
        reached = []
        for v in frontier:
            for w in sorted(set(graph[v]) & group - set(came_from)):
                came_from[w] = v
                reached.append(w)
        frontier = reached
    path = [start]
    while len(path) == 1 or path[-1] != start:
        path.append(came_from[path[-1]])
    return path[::-1]


def layer(module: str) -> str | None:
    """``"foundations"``, ``"analysis"``, or None for a module no layer rule covers."""
    if module.removeprefix("untrainable.") in FOUNDATIONS:
        return "foundations"
    return "analysis" if module.split(".")[:2] == ["untrainable", "analysis"] else None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, tree: ast.Module) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of each ``_private`` name ``source`` takes from another module of the package."""
    bound = {}
    for i in imports(source, tree):
        bound[i.name] = i.target
        if _is_private(i.target.rsplit(".", 1)[-1]):
            yield i.line, i.target
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                yield node.lineno, ".".join([bound[value.id], *reversed(chain)])


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(SRC)}:{line}"


def _check(rule: str, found: list[tuple[str, str, int]], what: str) -> None:
    """Fail on each ``(source, target, line)`` not in :data:`ALLOWED_FOR_NOW`, and on an allowed one gone."""
    new = sorted({f"{_where(s, line)}: {s} -> {t}" for s, t, line in found if (rule, s, t) not in ALLOWED_FOR_NOW})
    assert not new, f"{what}:\n" + "\n".join(new)
    gone = {(r, s, t) for r, s, t in ALLOWED_FOR_NOW if r == rule} - {(rule, s, t) for s, t, _ in found}
    assert not gone, f"fixed, so remove from ALLOWED_FOR_NOW: {sorted(gone)}"


def test_the_package_has_no_import_cycle():
    g = graph()
    found = [" -> ".join([*(f"{a} ({_where(a, g[a][b])})" for a, b in zip(c, c[1:])), c[-1]]) for c in cycles(g)]
    assert not found, "import cycles (each module with the line of its import of the next):\n" + "\n".join(found)


def test_no_layer_imports_a_layer_above_it():
    upward = [(i.source, i.module, i.line) for s, tree in TREES.items() for i in imports(s, tree)
              if layer(s) and f"{i.module}.".split(".")[1] in FORBIDDEN[layer(s)]]
    _check("upward", upward, "upward imports (foundations -> experiments, analysis, ...; analysis -> experiments, ...)")


def test_no_module_uses_another_modules_private_names():
    uses = [(s, name, line) for s, tree in TREES.items() for line, name in private_uses(s, tree)]
    _check("private", uses, "private names used from another module (make them public, or move them)")


def test_the_walker_sees_lazy_and_type_checking_imports_and_private_uses():
    source = "untrainable.models"
    tree = ast.parse("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from untrainable.experiments import image_guides as G\n"
                     "def f():\n    import untrainable.analysis.selection\n    return G._x, untrainable.analysis.y\n")
    assert sorted(edges(imports(source, tree))) == [
        (source, "untrainable.analysis", 5), (source, "untrainable.analysis.selection", 5),
        (source, "untrainable.experiments", 3), (source, "untrainable.experiments.image_guides", 3)]
    assert list(private_uses(source, tree)) == [(6, "untrainable.experiments.image_guides._x")]
    assert cycles({"a": {"b": 1}, "b": {"c": 1, "a": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "a"]]
    assert graph()["untrainable.plotting"]["untrainable.analysis.layer_comparison"]  # under TYPE_CHECKING


def notebook_code(path: Path) -> str:
    """A notebook's code cells as one module (IPython's ``%`` and ``!`` lines left out)."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    return "\n".join(line for c in cells for line in "".join(c["source"]).splitlines()
                     if not line.lstrip().startswith(("%", "!")))


def test_no_notebook_uses_a_private_name():
    """What a chapter shows or calls is the package's public API (a reader may copy it)."""
    uses = [f"{path.name}: {name}" for path in sorted((SRC.parent / "notebooks").glob("*.ipynb"))
            for _, name in private_uses("notebook", ast.parse(notebook_code(path)))]
    assert not uses, "private names used by notebooks:\n" + "\n".join(uses)
