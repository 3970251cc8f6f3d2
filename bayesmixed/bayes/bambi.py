"""``to_bambi``: the equivalent bambi model, where bambi's semantics coincide with lme4's."""

from __future__ import annotations

import warnings

import numpy as np

from bayesmixed.design.columns import as_pandas
from bayesmixed.errors import BayesMixedWarning, DesignError

def bambi_formula(model) -> tuple[str, bool]:
    """(bambi formula, whether it drops correlations bambi cannot express)."""
    parsed = model.parsed
    d = model.design
    rhs = parsed.fixed_rhs
    bars = [f"({b.expr} | {b.group})" for b in parsed.bars]
    lossy = any(t.correlated and t.n_cols > 1 for t in d.reterms)
    if d.family.uses_trials and (d.trials is not None or d.has_user_weights):
        lhs = "p(bm_successes__, bm_trials__)"
    else:
        lhs = parsed.response
    offs = "".join(f" + offset({o})" for o in parsed.offsets)
    return f"{lhs} ~ {' + '.join([rhs, *bars])}{offs}", lossy


def to_bambi(model, *, allow_uncorrelated: bool = False, **kwargs):
    """Build the bambi model equivalent to ``model`` (bambi's own default priors).

    bambi (0.17-0.21) has no correlated random effects: ``(x | g)`` becomes
    independent intercept and slope, i.e. lme4's ``(x || g)``. Such models are
    refused unless ``allow_uncorrelated=True`` (then a warning says so).
    Binomial ``cbind(s, f)`` responses become bambi's ``p(s, n)``.

    Parameters
    ----------
    model : bayesmixed.Model
    allow_uncorrelated : bool
        Accept dropping the correlations of ``(x | g)`` terms.
    **kwargs
        Passed to ``bambi.Model`` (e.g. ``priors=``).

    Returns
    -------
    bambi.Model

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    >>> bmodel = to_bambi(m)                                      # doctest: +SKIP
    >>> bmodel.formula                                            # doctest: +SKIP
    Formula('Reaction ~ Days + (1 | Subject)')
    """
    try:
        import bambi as bmb
    except ImportError:
        raise DesignError("to_bambi() needs bambi: pip install bambi") from None
    d = model.design
    formula, lossy = bambi_formula(model)
    family = d.family.bambi_family("bm_trials__" in formula)      # raises where bambi has none
    if d.has_user_weights and not d.family.uses_trials:
        raise DesignError("bambi models have no prior weights; this model uses weights=")
    if lossy:
        if not allow_uncorrelated:
            raise DesignError("bambi cannot express correlated random effects: its '(x | g)' is lme4's "
                              "'(x || g)'. Pass allow_uncorrelated=True to build that model anyway.")
        warnings.warn("the bambi model has uncorrelated random effects ((x || g) in lme4 terms)",
                      BayesMixedWarning, stacklevel=2)

    data = as_pandas(model.data).iloc[d.rows].copy()   # positions: safe with duplicated labels
    if "bm_trials__" in formula:
        n = np.round(d.weights).astype(int)
        data["bm_trials__"] = n
        data["bm_successes__"] = np.round(d.y * n).astype(int)
    return bmb.Model(formula, data, family=family, link=d.family.link.name, **kwargs)
