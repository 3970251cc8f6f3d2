"""The package's import graph: no cycles, layers import one way (docs/architecture.md).

Every ``import`` of the package's own modules counts, at module level or inside a
function: an import placed inside a function hides a cycle without removing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "bayesmixed"

# Lower layers never import higher ones (equal ranks may import each other only if no cycle).
LAYERS = {
    "bayesmixed.errors": 0,
    "bayesmixed.links": 1,
    "bayesmixed.families": 1,
    "bayesmixed.datasets": 1,
    "bayesmixed.formula": 2,
    "bayesmixed.design": 3,
    "bayesmixed.likelihood": 4,
    "bayesmixed.bayes": 5,          # may read the likelihood engine's factor; never the reverse
    "bayesmixed.inference": 5,      # profiles, bootstrap, Kenward-Roger: engines only, results build fits
    "bayesmixed.results": 6,
    "bayesmixed.interpret": 7,
    "bayesmixed.pooling": 7,
    "bayesmixed.predictive": 7,
    "bayesmixed.plots": 8,
    "bayesmixed.compare": 8,
    "bayesmixed.model": 9,
    "bayesmixed.demo": 10,
    "bayesmixed": 10,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(mod: str) -> int:
    best = None
    for prefix, rank in LAYERS.items():
        if (mod == prefix or mod.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rank)
    if best is None:
        raise AssertionError(f"module {mod} has no layer in tests/test_architecture.py: add it")
    return best[1]


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Edges module -> imported package modules, and the imports found inside functions."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    inner: list[tuple[str, int, str]] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        in_func = {id(n) for f in funcs for n in ast.walk(f)}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                # `from pkg import submodule` imports the submodule
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                if t == "bayesmixed" or t.startswith("bayesmixed."):
                    while t not in modules and "." in t:
                        t = t.rsplit(".", 1)[0]
                    if t != mod:
                        edges[mod].add(t)
                        if id(node) in in_func:
                            inner.append((mod, node.lineno, t))
    return edges, inner


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between modules, ignoring a package ``__init__`` re-exporting its own children."""
    return {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}


def test_no_import_cycles_between_modules() -> None:
    edges, _ = _imports()
    cycles = _cycles(_package_edges(edges))
    assert cycles == [], f"import cycles (imports inside functions count too): {cycles}"


def test_layers_import_one_way() -> None:
    edges, _ = _imports()
    bad = sorted((m, t) for m, ts in _package_edges(edges).items() for t in ts if _layer(t) > _layer(m))
    assert bad == [], f"lower layers importing higher ones: {bad}"


def test_no_package_imports_inside_functions() -> None:
    """Imports inside functions are for optional dependencies (pymc, nutpie, jax, matplotlib) only."""
    _, inner = _imports()
    assert inner == [], "imports of the package's own modules inside functions: " + "; ".join(
        f"{m}:{line} -> {t}" for m, line, t in inner)


@pytest.mark.parametrize("limit", [500])
def test_files_are_small(limit: int) -> None:
    big = {str(p.relative_to(PKG.parent)): n for p in PKG.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit}
    assert big == {}, f"files over {limit} lines: {big}"


def test_import_graph_checker_finds_a_cycle(tmp_path) -> None:
    """The checker itself: a two-module cycle through a function-level import is found."""
    edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(edges) == [["a", "b"]]
