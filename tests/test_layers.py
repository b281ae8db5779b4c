"""Layers point down: no sub-package (or top-level module) of mambajepa imports one that imports it
back, lazy imports inside functions included, and ``core`` imports nothing else of the package."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import mambajepa

ROOT = Path(mambajepa.__file__).resolve().parent


def _unit(module: str) -> str:
    """``encoders.vit`` -> ``encoders``; ``config`` -> ``config``."""
    return module.split(".", 1)[0]


def _imported_modules(path: Path) -> set[str]:
    """Modules of mambajepa (relative dotted names) that a file imports anywhere, except under
    ``if TYPE_CHECKING:``."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    package = list(rel[:-1])
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, ast.If)
                and getattr(child.test, "id", getattr(child.test, "attr", "")) == "TYPE_CHECKING"
            ):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(
                    a.name[len("mambajepa.") :] for a in child.names if a.name.startswith("mambajepa.")
                )
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - (child.level - 1)]
                    found.add(
                        ".".join(base + ([child.module] if child.module else [])) or child.names[0].name
                    )
                elif child.module and child.module.startswith("mambajepa."):
                    found.add(child.module[len("mambajepa.") :])
                elif child.module == "mambajepa":
                    found.update(a.name for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        here = _unit(".".join(rel.with_suffix("").parts))
        if here == "__init__" or here == "__main__":
            continue
        for module in _imported_modules(path):
            there = _unit(module)
            if there != here and ((ROOT / there).is_dir() or (ROOT / f"{there}.py").is_file()):
                graph[here].add(there)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle_between_sub_packages():
    graph = _graph()
    assert graph["train"] and "methods" in graph["train"]  # the graph sees real imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_core_is_the_bottom_layer():
    assert _graph().get("core", set()) == set()
