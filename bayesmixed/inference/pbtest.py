"""Parametric-bootstrap likelihood-ratio test of nested mixed models (pbkrtest's ``PBmodcomp``).

The reference distribution of ``LRT = 2 (logLik(large) - logLik(small))`` comes from
responses simulated from the small model (ML fit) and refitted by both models from
their estimates. As pbkrtest: LMM fits are refitted by ML first, the p-value is
``(1 + #{ref > LRT}) / (1 + #{ref > 0})`` over the positive simulated statistics.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.errors import DesignError
from bayesmixed.inference.bootstrap import FitSpec, map_replicates
from bayesmixed.inference.profile import ml_refit


def _ml(fit):
    return ml_refit(fit) if fit.method in ("reml", "ml") else fit


def lrt_replicate(pair: tuple[FitSpec, FitSpec], seed: np.random.SeedSequence) -> float:
    """One simulated LRT statistic: simulate from the small model, refit both (NaN if a refit fails)."""
    small, large = pair
    y = small.simulate(np.random.default_rng(seed))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f0 = small.refit(y)
            f1 = large.refit(y)
    except Exception:  # noqa: BLE001 - counted as failed
        return np.nan
    return float(2 * (f1.loglik - f0.loglik))


def pb_test(m0, m1, nsim: int = 1000, seed=None, client=None, n_jobs: int | None = None) -> pd.DataFrame:
    """Parametric-bootstrap LRT of two nested fits (pbkrtest's ``PBmodcomp(m1, m0)``).

    Parameters
    ----------
    m0, m1 : LikelihoodFit or GlmmFit
        Nested fits on the same rows (either order: the one with fewer parameters is
        the null model).
    nsim : int
        Simulated responses.
    seed, client, n_jobs
        As in :func:`~bayesmixed.inference.bootstrap.bootstrap`.

    Returns
    -------
    pandas.DataFrame
        Rows ``LRT`` (chi-square reference) and ``PBtest`` (bootstrap reference), columns
        ``stat``, ``df``, ``p_value``; ``attrs`` holds ``ref`` (the simulated statistics),
        ``nsim``, ``npos``, ``n_extreme`` and ``n_failed``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> d = bm.load_dataset("sleepstudy")
    >>> m0 = bm.Model("Reaction ~ 1 + (1 | Subject)", d).fit(method="ml")
    >>> m1 = bm.Model("Reaction ~ Days + (1 | Subject)", d).fit(method="ml")
    >>> res = pb_test(m0, m1, nsim=20, seed=1)
    >>> res.round(4)
                stat   df  p_value
    LRT     116.4624  1.0   0.0000
    PBtest  116.4624  NaN   0.0476
    """
    if m0.n_params > m1.n_params:
        m0, m1 = m1, m0
    if m0.design.n != m1.design.n:
        raise DesignError(f"the models were fitted to different rows ({m0.design.n} and {m1.design.n}); "
                          "fit both to the same data")
    s0, s1 = _ml(m0), _ml(m1)
    tobs = float(2 * (s1.loglik - s0.loglik))
    df = m1.n_params - m0.n_params
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    pair = (FitSpec.from_fit(s0), FitSpec.from_fit(s1))
    ref = np.array(map_replicates(pair, ss.spawn(int(nsim)), fn=lrt_replicate, client=client, n_jobs=n_jobs))
    ok = ref[np.isfinite(ref)]
    refpos = ok[ok > 0]
    n_extreme = int(np.sum(tobs < refpos))
    p_pb = (1 + n_extreme) / (1 + refpos.size)
    out = pd.DataFrame({"stat": [tobs, tobs], "df": [float(df), np.nan],
                        "p_value": [float(stats.chi2.sf(tobs, df)), p_pb]}, index=["LRT", "PBtest"])
    out.attrs.update(ref=ref, nsim=int(nsim), npos=int(refpos.size), n_extreme=n_extreme,
                     n_failed=int(np.sum(~np.isfinite(ref))))
    return out
