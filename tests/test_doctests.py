"""Run the doctest Examples of every public module in bayesmixed, one test per module.

Docstring examples are part of the documentation (they are rendered by mkdocstrings in
``docs/api.md``), so they must stay true: each module's examples run here with
``NORMALIZE_WHITESPACE | ELLIPSIS``, as ``python -m doctest`` would.
"""

from __future__ import annotations

import doctest
import functools
import inspect
import importlib
import os
import pkgutil
import re
import warnings

import pytest

import bayesmixed

OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS

# Examples that run NUTS (minutes) carry ``# doctest: +SKIP`` where they are written;
# the posterior engine has its own slow-marked tests. A module whose examples all
# sample could be listed here instead, to skip it with a reason.
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


# ---- which public objects have a runnable example ------------------------------------------

def _has_example(obj) -> bool:
    doc = inspect.getdoc(obj) or ""
    return ">>>" in doc


def public_objects():
    """(dotted name, object) for public functions, classes and their public members.

    Public: defined in a public module (not re-exported), name without a leading
    underscore, and listed in the module's ``__all__`` when it has one. Members are the
    methods and properties a class defines itself (inherited ones are checked where defined).
    """
    for modname in MODULES:
        try:
            module = importlib.import_module(modname)
        except ImportError:
            continue
        exported = getattr(module, "__all__", None)
        for name, obj in vars(module).items():
            if name.startswith("_") or (exported is not None and name not in exported):
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != modname:
                continue
            yield f"{modname}.{name}", obj
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for mname, member in vars(obj).items():
                    if mname.startswith("_"):
                        continue
                    if isinstance(member, (property, functools.cached_property)) or inspect.isfunction(member):
                        yield f"{modname}.{name}.{mname}", member


def _example_source(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return "\n".join(line for line in doc.splitlines() if line.lstrip().startswith((">>>", "...")))


def missing_examples() -> list[str]:
    """Public objects no example exercises.

    A function or class needs a ``>>>`` example in its own docstring. A method or
    property also counts as covered when an example of its class (in the class
    docstring or a sibling member's) uses it, e.g. ``fit.aic`` shown next to ``fit.loglik``.
    """
    objects = list(public_objects())
    class_examples: dict[str, str] = {}
    for name, obj in objects:
        target = obj.fget if isinstance(obj, property) else getattr(obj, "func", obj)
        # a class's own examples count for its members; a member's for its siblings
        owner = name if inspect.isclass(obj) else name.rsplit(".", 1)[0]
        class_examples[owner] = class_examples.get(owner, "") + "\n" + _example_source(target)
    out = []
    for name, obj in objects:
        target = obj.fget if isinstance(obj, property) else getattr(obj, "func", obj)
        if _has_example(target):
            continue
        owner, attr = name.rsplit(".", 1)
        is_member = owner in class_examples and inspect.isclass(dict(objects).get(owner))
        if is_member and re.search(rf"\.{re.escape(attr)}\b", class_examples[owner]):
            continue
        out.append(name)
    return out


# The public contract (API.md) that the documentation shows: each must carry a runnable
# example. Other public objects are listed by ``python tests/test_doctests.py``.
CONTRACT = [
    "bayesmixed.model.Model", "bayesmixed.model.Model.fit", "bayesmixed.compare.anova",
    "bayesmixed.datasets.load_dataset", "bayesmixed.datasets.list_datasets",
    "bayesmixed.datasets.describe_dataset", "bayesmixed.results.likelihood.LikelihoodFit",
    "bayesmixed.results.likelihood.LikelihoodFit.fixef", "bayesmixed.results.likelihood.LikelihoodFit.fixef_se",
    "bayesmixed.results.likelihood.LikelihoodFit.vcov", "bayesmixed.results.likelihood.LikelihoodFit.varcorr",
    "bayesmixed.results.likelihood.LikelihoodFit.tidy", "bayesmixed.results.likelihood.LikelihoodFit.summary",
    "bayesmixed.results.likelihood.LikelihoodFit.confint", "bayesmixed.results.base.MixedFit.ranef",
    "bayesmixed.results.base.MixedFit.coef", "bayesmixed.results.base.MixedFit.predict",
]


def test_public_contract_has_examples() -> None:
    names = dict(public_objects())
    missing = [n for n in CONTRACT if n not in names]
    assert not missing, f"not found (renamed or not public?): {missing}"
    lacking = [n for n in CONTRACT if n in missing_examples()]
    assert not lacking, f"public objects without a runnable >>> example: {lacking}"


if __name__ == "__main__":  # a report for humans: what still lacks an example
    for item in missing_examples():
        print(item)
