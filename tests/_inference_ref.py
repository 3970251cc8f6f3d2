"""Shared helpers of the tests of bayesmixed.inference: the local R fixture and name mapping."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

import bayesmixed as bm

REF_PATH = Path(__file__).parent / "reference" / "inference_local.json"


@lru_cache(maxsize=1)
def reference() -> dict:
    """Numbers written by tests/reference/make_inference_reference.R."""
    return json.loads(REF_PATH.read_text())


def lme4_name(name: str) -> str:
    """lme4's ``confint(..., oldNames = FALSE)`` row name of a bayesmixed row name."""
    if name == "Intercept":
        return "(Intercept)"
    if name.startswith("cor_"):
        body, grp = name[4:].rsplit("|", 1)
        a, b = body.split(".", 1)
        return f"cor_{b}.{a}|{grp}"
    return re.sub(r"(\w+)\[T\.([^\]]+)\]", r"\1\2", name)      # formulaic Sex[T.Female] -> R SexFemale


def sleep_unbalanced():
    """sleepstudy without the rows whose 0-based index is 3 modulo 7 (as the R script)."""
    d = bm.load_dataset("sleepstudy")
    return d[np.arange(len(d)) % 7 != 3]


def orthodont_unbalanced():
    """Orthodont without the rows whose 0-based index is 0 modulo 5 (as the R script)."""
    d = bm.load_dataset("Orthodont")
    return d[np.arange(len(d)) % 5 != 0]
