"""Run the doctest Examples of every public module in bayesmixed, one test per module.

Docstring examples are part of the documentation (they are rendered by mkdocstrings in
``docs/api.md``), so they must stay true: each module's examples run here with
``NORMALIZE_WHITESPACE | ELLIPSIS``, as ``python -m doctest`` would.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import warnings

import pytest

import bayesmixed

OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS

# Modules whose examples would run NUTS are skipped: sampling takes minutes, and the
# posterior engine has its own (slow-marked) tests. Their examples use MAP/"map" or
# mock sampling where they can, so only modules that sample for real are listed.
SAMPLING_MODULES: frozenset[str] = frozenset()


def _walk(path: str, prefix: str):
    """``pkgutil.walk_packages`` plus implicit namespace packages (folders without
    ``__init__.py``, which ``walk_packages`` passes over although they import fine)."""
    yield from (info.name for info in pkgutil.walk_packages([path], prefix=prefix))
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if (entry.is_dir() and entry.name.isidentifier()
                and not os.path.exists(os.path.join(entry.path, "__init__.py"))
                and any(f.endswith(".py") for f in os.listdir(entry.path))):
            yield from _walk(entry.path, f"{prefix}{entry.name}.")


def _public_modules() -> list[str]:
    """Every module of the package whose dotted path has no ``_private`` part."""
    names = {"bayesmixed"}
    for name in _walk(bayesmixed.__path__[0], "bayesmixed."):
        if not any(part.startswith("_") for part in name.split(".")[1:]):
            names.add(name)
    return sorted(names)


MODULES = _public_modules()


def _doctests_of(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    # Only objects defined in this module: re-exports are tested where they live.
    return [t for t in finder.find(module, name) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str) -> None:
    if name in SAMPLING_MODULES:
        pytest.skip(f"{name}: examples run NUTS sampling (covered by slow tests)")
    try:
        tests = _doctests_of(name)
    except ImportError as exc:  # an optional dependency of that module is missing
        pytest.skip(f"{name} cannot be imported here: {exc}")
    if not tests:
        pytest.skip(f"{name} has no doctest examples")
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    with warnings.catch_warnings():
        # Examples show results, not the library's advisory warnings (singular fits...),
        # which have their own tests; a warning must not be printed into the doctest output.
        warnings.simplefilter("ignore")
        for t in tests:
            runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"


def test_walk_finds_the_public_modules() -> None:
    # The collection itself must not silently miss the modules that carry examples.
    for expected in ("bayesmixed.model", "bayesmixed.compare", "bayesmixed.datasets",
                     "bayesmixed.results.likelihood", "bayesmixed.errors"):
        assert expected in MODULES
    assert not [m for m in MODULES if "._" in m]
