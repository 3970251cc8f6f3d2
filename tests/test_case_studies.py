"""Execute every case-study notebook in ``case_studies/`` (jupytext percent files).

Each notebook reproduces the numbers of one seed document and ``assert``s them, so a
notebook that runs to the end has checked its numbers. Notebooks are converted with
jupytext and executed with nbclient on the ``python3`` kernel of this interpreter,
with the repository root as working directory. Notebooks listed in ``SLOW`` run only
with ``--runslow``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "case_studies").glob("[0-9][0-9]_*.py"))
SLOW: set[str] = set()          # stems of notebooks that only run with --runslow
TIMEOUT = 300          # per cell, seconds


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
                                  for p in NOTEBOOKS])
def test_case_study_executes(path: Path, monkeypatch) -> None:
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    # the kernel inherits the environment: import this checkout, draw off-screen
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(path)
    assert sum(c.cell_type == "code" and "assert" in c.source for c in nb.cells) >= 3, \
        f"{path.name} must assert the numbers it reproduces"
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()      # raises CellExecutionError (with the failing cell) on any failed assert


def test_there_is_a_notebook_per_seed() -> None:
    stems = [p.stem for p in NOTEBOOKS]
    assert len(stems) >= 6, stems
    assert sys.version_info >= (3, 10)
