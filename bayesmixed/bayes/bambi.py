"""``to_bambi``: the equivalent bambi model, where bambi's semantics coincide with lme4's."""

from __future__ import annotations

import warnings

import numpy as np

from bayesmixed.bayes.priors import Prior
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
    """Build the bambi model equivalent to ``model``, with the same priors.

    Every prior in ``model.priors`` (defaults and the user's overrides) is set on the
    bambi term that plays its part (:func:`bambi_priors`): the intercept (both
    packages put it at the predictors' means), the slopes, the standard deviation of
    each group-specific term (bambi's ``Normal(0, sigma=<sd prior>)``) and the
    family's parameter; a warning names any prior bambi cannot carry. Priors given
    here as ``priors=`` (bambi's own) take precedence.

    bambi (0.17-0.21) has no correlated random effects: ``(x | g)`` becomes
    independent intercept and slope, i.e. lme4's ``(x || g)``. Such models are
    refused unless ``allow_uncorrelated=True`` (then a warning says so, and the
    LKJ prior is dropped). Binomial ``cbind(s, f)`` responses become bambi's ``p(s, n)``.

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
    user = dict(kwargs.pop("priors", None) or {})
    bmodel = bmb.Model(formula, data, family=family, link=d.family.link.name, **kwargs)
    ours, dropped = bambi_priors(model, bmodel)
    if dropped:
        warnings.warn(f"bambi cannot carry these priors, so its model uses its own defaults for them: "
                      f"{', '.join(dropped)}", BayesMixedWarning, stacklevel=2)
    bmodel.set_priors(priors={**ours, **user})
    return bmodel


def _as_bambi(bmb, priors: list[Prior]):
    """One ``bmb.Prior`` for the columns of a term (vector arguments), or None if they differ in kind."""
    if len({(p.distribution, tuple(sorted(p.args))) for p in priors}) != 1:
        return None
    first = priors[0]
    if len(priors) == 1:
        args = {k: float(v) for k, v in first.args.items()}
    else:
        args = {k: np.array([float(p.args[k]) for p in priors]) for k in first.args}
    return bmb.Prior(first.distribution, **args)


def _match_columns(columns: np.ndarray, candidates: dict[str, np.ndarray]) -> list[str] | None:
    """Names of the ``candidates`` equal to each column of ``columns`` (n, k), or None if one has none."""
    out = []
    for j in range(columns.shape[1]):
        hit = [k for k, v in candidates.items() if k not in out and np.allclose(v, columns[:, j])]
        if not hit:
            return None
        out.append(hit[0])
    return out


def bambi_priors(model, bmodel) -> tuple[dict, list[str]]:
    """Our priors as ``bmb.Prior`` objects keyed by the bambi model's term names.

    Terms are matched by their columns (a bambi term's data against the model's
    fixed-effect and random-effect columns), not by name, so factor codings and
    interactions line up whatever each package calls them.

    Returns
    -------
    (dict, list of str)
        ``{bambi term or parameter name: bmb.Prior}``, and the names of our priors
        bambi cannot carry (e.g. ``lkj_eta_<term>``, or columns of one term with
        different distributions).
    """
    import bambi as bmb

    d, pri = model.design, model.priors
    comp = bmodel.parameters[bmodel.family.likelihood.parent]
    out: dict = {}
    used: set[str] = set()
    if comp.intercept_term is not None and "Intercept" in pri.fixef:
        out["Intercept"] = _as_bambi(bmb, [pri.fixef["Intercept"]])
        used.add("Intercept")
    fixed = {n: d.X[:, j] for j, n in enumerate(d.fixef_names) if n != "Intercept"}
    for name, term in comp.common_terms.items():
        cols = _match_columns(np.asarray(term.data, dtype=float).reshape(d.n, -1), fixed)
        prior = None if cols is None else _as_bambi(bmb, [pri.fixef[c] for c in cols])
        if prior is not None:
            out[name] = prior
            used.update(cols)
    for name, term in comp.group_specific_terms.items():
        group = name.split("|", 1)[1].replace(" ", "")
        cand = {(t.name, c): t.Xi[:, j] for t in d.reterms if t.group.replace(" ", "") == group
                for j, c in enumerate(t.cnames)}
        cols = _match_columns(np.asarray(term.predictor, dtype=float).reshape(d.n, -1), cand)
        hyper = None if cols is None else _as_bambi(bmb, [pri.sd[t][c] for t, c in cols])
        if hyper is not None:
            out[name] = bmb.Prior("Normal", mu=0.0, sigma=hyper)
            used.update(f"sd_{t}[{c}]" for t, c in cols)
    aux = getattr(bmodel, "marginal_parameters", None)
    theirs = list(bmodel.constant_components if aux is None else aux)
    if len(pri.aux) == 1 and len(theirs) == 1:             # sigma / alpha / shape: one each
        (ours_name, p), = pri.aux.items()
        out[theirs[0]] = _as_bambi(bmb, [p])
        used.add(ours_name)
    dropped = [n for n in pri.names if n not in used]
    return out, dropped
