"""Imports run one way through the layers, counting imports placed inside functions.

errors/families -> formula -> design -> {likelihood, bayes} -> results -> plots/compare -> model.
A module may import its own package or any lower layer; siblings of one layer (likelihood
and bayes) may import each other one way only; nothing imports upwards (an import inside a
function included), so no cycle between layers can hide there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bayesmixed

ROOT = Path(bayesmixed.__file__).parent

# top-level module or subpackage of bayesmixed -> layer
LAYERS = {
    "errors": 0, "families": 0, "links": 0, "datasets": 0,
    "formula": 1,
    "design": 2,
    "likelihood": 3, "bayes": 3,
    "results": 4,
    "plots": 5, "compare": 5, "pooling": 5, "predictive": 5,
    "model": 6,
    "demo": 7,
    "": 8,                     # bayesmixed/__init__.py
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges():
    """(importing module, imported module, inside a function?) for every import of the package."""
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(("bayesmixed", *rel.parts)).removesuffix(".__init__")
        out = []

        def visit(node, inside):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("bayesmixed"):
                    out.append((module, child.module, inside))
                elif isinstance(child, ast.Import):
                    out.extend((module, a.name, inside) for a in child.names if a.name.startswith("bayesmixed"))
                visit(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

        visit(ast.parse(path.read_text()), False)
        yield from out


def test_every_module_has_a_layer():
    unknown = sorted({_part(m) for m, _, _ in _edges()} - set(LAYERS))
    assert not unknown, f"place these modules in a layer in LAYERS: {unknown}"


def test_no_import_goes_up_a_layer():
    edges = list(_edges())
    across = {(_part(a), _part(b)) for a, b, _ in edges}
    bad = []
    for src, dst, inside in edges:
        a, b = _part(src), _part(dst)
        if a == b or a not in LAYERS or b not in LAYERS:
            continue
        la, lb = LAYERS[a], LAYERS[b]
        if lb > la or (lb == la and (b, a) in across):
            bad.append(f"{src} -> {dst}{' (inside a function)' if inside else ''}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)
