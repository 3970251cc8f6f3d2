"""A subsample of a large design's levels, whose fit gives the full fit a starting theta (issue 13).

An evaluation of a large model's criterion with its gradient costs from 50 ms (InstEval)
to seconds (10 million rows, 200 000 x 5 000 levels: a 5 003 x 5 003 dense Schur
complement, its Cholesky factor and inverse). From lme4's start (theta = 1) L-BFGS-B
needs twenty-odd of them; from a point a few per cent from the optimum, Newton's method
needs five to seven, the convergence check's Hessian included (``optimize.minimize_newton``).
Such a point comes from the same model fitted to the rows of a random subset of the
levels of each term: few enough columns in the other terms that the dense part is small
(a third of them, at most 1 000), few enough levels of the first term that an eighth of
the rows remain (at most 400 000). The subsample's theta estimates the same relative
standard deviations (its sampling error is a few per cent); it only chooses where the
full fit starts, so the optimum is the full data's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bayesmixed.design.spec import MixedDesign
from bayesmixed.design.streamed import StreamedDesign

SUB_ROWS = 400_000          # rows the subsample aims at
SUB_REST_Q = 1_000          # most columns of the other terms (the dense Schur complement) in it
MIN_ROWS = 50_000           # smaller designs fit from lme4's start (too few rows to subsample)
MIN_LEVELS = 50             # a term keeps at least this many levels (else the subsample is not used)
SEED = 20261130             # the subsample is the same on every fit of a design


def worth_subsampling(design: MixedDesign) -> bool:
    """A design with rows in memory, large enough for a start from a subsample to pay.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> worth_subsampling(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design)
    False
    """
    return not isinstance(design, StreamedDesign) and bool(design.reterms) and design.n >= MIN_ROWS


def subsample_design(design: MixedDesign, rows: int | None = None, rest_q: int | None = None,
                     seed: int = SEED) -> MixedDesign | None:
    """The design restricted to the rows of a random subset of each term's levels, or None.

    The other terms keep a share of their levels such that they have about ``rest_q``
    columns together (terms with at most ``rest_q / 10`` columns are kept whole), the
    first term (most levels) a share such that about ``rows`` rows remain (defaults: a
    third of the columns up to ``SUB_REST_Q``, an eighth of the rows up to ``SUB_ROWS``); levels without rows are dropped. None when some term
    would keep fewer than ``MIN_LEVELS`` levels (of more), or the subsample would not be much
    smaller than the design.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesmixed as bm
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"y": rng.normal(size=20000), "g": rng.integers(0, 2000, 20000),
    ...                    "h": rng.integers(0, 400, 20000)})
    >>> sub = subsample_design(bm.Model("y ~ 1 + (1 | g) + (1 | h)", df).design, rows=5000, rest_q=100)
    >>> sub.n < 8000, [t.n_levels for t in sub.reterms][1] < 150
    (True, True)
    """
    terms = design.reterms
    rows = min(SUB_ROWS, design.n // 8) if rows is None else rows
    rest_q = min(SUB_REST_Q, sum(t.q for t in terms[1:]) // 3) if rest_q is None else rest_q
    rng = np.random.default_rng(seed)
    small = [t.q <= rest_q // 10 for t in terms[1:]]               # kept whole
    q_small = sum(t.q for t, sm in zip(terms[1:], small) if sm)
    q_big = sum(t.q for t, sm in zip(terms[1:], small) if not sm)
    share = min(1.0, max(rest_q - q_small, 0) / q_big) if q_big else 1.0
    keep_rows = np.ones(design.n, dtype=bool)
    for t, sm in zip(terms[1:], small):
        if not sm:
            keep_rows &= (rng.random(t.n_levels) < share)[t.codes]
    share1 = min(1.0, rows / max(int(keep_rows.sum()), 1))
    keep_rows &= (rng.random(terms[0].n_levels) < share1)[terms[0].codes]
    if keep_rows.sum() > design.n / 3:
        return None
    idx = np.flatnonzero(keep_rows)
    new_terms = []
    for t in terms:
        used = np.zeros(t.n_levels, dtype=bool)
        used[t.codes[idx]] = True
        if used.sum() < min(MIN_LEVELS, t.n_levels):
            return None
        recode = np.cumsum(used) - 1
        levels = np.asarray(t.levels, dtype=object)[used]
        new_terms.append(dataclasses.replace(t, levels=tuple(levels), codes=recode[t.codes[idx]],
                                             Xi=np.ascontiguousarray(t.Xi[idx])))
    return dataclasses.replace(
        design, y=design.y[idx], X=np.ascontiguousarray(design.X[idx]), reterms=tuple(new_terms),
        weights=design.weights[idx], offset=design.offset[idx], index=design.index[idx],
        trials=None if design.trials is None else design.trials[idx],
        prior_weights=None if design.prior_weights is None else design.prior_weights[idx], rows=None)
