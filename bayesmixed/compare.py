"""Model comparison: likelihood-ratio tables (``anova``) and LOO (``compare``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.errors import DesignError
from bayesmixed.inference import pb_test
from bayesmixed.likelihood.lmm import optimize_lmm
from bayesmixed.results.likelihood import LikelihoodFit


def _as_ml(fit):
    """REML fits are refitted by ML before a likelihood-ratio test, as R's anova does."""
    if getattr(fit, "method", None) == "reml":
        return LikelihoodFit(optimize_lmm(fit.design, reml=False, start=fit.theta))
    return fit


def anova(*fits, refit: bool = True, method: str = "lrt", nsim: int = 1000, seed=None, client=None,
          n_jobs=None, **named_fits) -> pd.DataFrame:
    """Likelihood-ratio table for nested fits, like R's ``anova(m1, m2, ...)`` on merMod objects.

    Models are sorted by number of parameters; each row is compared with the one
    above it. REML fits are refitted by ML (``refit=True``), as lme4 does.

    ``method="pb"`` is pbkrtest's ``PBmodcomp`` for two nested fits: the LRT's p value
    from ``nsim`` responses simulated under the smaller model and refitted by both
    (rows ``LRT`` and ``PBtest``, columns ``stat, df, p_value``; ``seed``, ``client``,
    ``n_jobs`` as in ``fit.bootstrap``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> d = bm.load_dataset("sleepstudy")
    >>> m1 = bm.Model("Reaction ~ Days + (1 | Subject)", d).fit()
    >>> m2 = bm.Model("Reaction ~ Days + (Days | Subject)", d).fit()
    >>> tab = bm.anova(m1, m2)
    >>> print(round(tab["Chisq"].iloc[1], 2))
    42.14
    """
    items = [(f"model{i + 1}", f) for i, f in enumerate(fits)] + list(named_fits.items())
    if len(items) < 2:
        raise DesignError("anova() needs at least two fits to compare")
    if method not in ("lrt", "pb"):
        raise DesignError(f"method must be 'lrt' or 'pb', got {method!r}")
    if method == "pb":
        if len(items) != 2:
            raise DesignError(f"anova(method='pb') compares exactly two nested fits, got {len(items)}")
        return pb_test(items[0][1], items[1][1], nsim=nsim, seed=seed, client=client, n_jobs=n_jobs)
    n = {f.nobs for _, f in items}
    if len(n) > 1:
        raise DesignError(f"models were fitted to different numbers of observations: {sorted(n)}")
    for name, f in items:
        if getattr(f, "method", None) in ("nuts", "map"):
            raise DesignError(f"{name} is a posterior fit; use bm.compare() for LOO comparison")
    rows = []
    for name, f in items:
        g = _as_ml(f) if refit else f
        rows.append({"model": name, "npar": g.n_params, "AIC": g.aic, "BIC": g.bic, "logLik": g.loglik,
                     "deviance": -2 * g.loglik, "formula": g.design.parsed.formula})
    tab = pd.DataFrame(rows).sort_values("npar", kind="stable").set_index("model")
    dev = tab["deviance"].to_numpy()
    npar = tab["npar"].to_numpy()
    chisq = np.concatenate([[np.nan], dev[:-1] - dev[1:]])
    df = np.concatenate([[np.nan], np.diff(npar)]).astype(float)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(np.maximum(chisq, 0), np.where(df > 0, df, 1)), np.nan)
    tab["Chisq"] = np.where(np.isfinite(chisq), np.maximum(chisq, 0), np.nan)
    tab["Df"] = df
    tab["Pr(>Chisq)"] = p
    return tab[["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)", "formula"]]


def compare(fits: dict, method: str = "stacking", **kwargs) -> pd.DataFrame:
    """Rank posterior fits by PSIS-LOO, with model weights (ArviZ's ``compare``).

    Parameters
    ----------
    fits : dict
        ``{"name": fit}`` of at least two ``method="nuts"`` fits to the same data.
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        How the ``weight`` column is computed: stacking of predictive distributions
        (Yao, Vehtari, Simpson & Gelman 2018; the default), or pseudo-BMA weights
        (with the Bayesian bootstrap for ``"BB-pseudo-BMA"``).
    **kwargs
        Passed to ``arviz.compare``.

    Returns
    -------
    pandas.DataFrame
        ArviZ's table, best model first: ``rank``, ``elpd``, ``elpd_diff``, ``dse``, ``weight``...
        High Pareto k values are reported per fit by a ``LooWarning`` naming the rows.

    Notes
    -----
    brms / loo: ``loo_compare(loo(fit1), loo(fit2))``, ``loo_model_weights(..., method = "stacking")``.
    For likelihood fits use :func:`anova`.

    Examples
    --------
    Sampling takes a minute or two, so this example is not run by the test suite; the
    output is from one run.

    >>> import bayesmixed as bm
    >>> d = bm.load_dataset("sleepstudy")
    >>> kw = dict(method="nuts", draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
    >>> p1 = bm.Model("Reaction ~ Days + (1 | Subject)", d).fit(**kw)      # doctest: +SKIP
    >>> p2 = bm.Model("Reaction ~ Days + (Days | Subject)", d).fit(**kw)   # doctest: +SKIP
    >>> tab = bm.compare({"intercept": p1, "slope": p2}, method="stacking")  # doctest: +SKIP
    >>> tab[["rank", "elpd", "elpd_diff", "dse", "weight"]]                # doctest: +SKIP
               rank   elpd  elpd_diff   dse  weight
    slope         0 -860.0        0.0   0.0    0.97
    intercept     1 -890.0      -20.0  11.0    0.03
    """
    import arviz as az

    if not isinstance(fits, dict) or len(fits) < 2:
        raise DesignError("compare() takes a dict of at least two posterior fits: {'name': fit, ...}")
    methods = ("stacking", "BB-pseudo-BMA", "pseudo-BMA")
    if method not in methods:
        raise DesignError(f"method must be one of {', '.join(methods)}; got {method!r}")
    for name, f in fits.items():
        if not getattr(f, "is_posterior", False):
            raise DesignError(f"{name!r} is not a posterior fit (method='nuts'); use bm.anova() for "
                              "likelihood fits")
    n = {f.nobs for f in fits.values()}
    if len(n) > 1:
        raise DesignError(f"models were fitted to different numbers of observations: {sorted(n)}")
    return az.compare({name: f.loo() for name, f in fits.items()}, method=method, **kwargs)
