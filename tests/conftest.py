"""Shared test configuration: ``--runslow`` enables tests marked ``slow``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

REFERENCE = Path(__file__).parent / "reference"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run slow tests (long NUTS runs, SBC, large data)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def load_reference(name: str) -> dict:
    """Reference numbers written by tests/reference/make_reference.R."""
    return json.loads((REFERENCE / f"{name}.json").read_text())
