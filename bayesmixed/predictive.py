"""Prediction curves and posterior-predictive draws behind the prediction and PPC pictures.

Computation only (numpy / pandas / ArviZ data, no drawing): :func:`predict_curves`
(conditional, random-effects-at-zero and marginal predictions along a predictor, numeric
or categorical), :func:`predictions_at` (every level's prediction at chosen values),
:func:`posterior_predictive` (replicated responses of a posterior fit) and
:func:`ppc_frequencies` (the value counts a discrete posterior predictive check draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmixed.design.newdata import new_matrices
from bayesmixed.errors import DesignError, FitError
from bayesmixed.pooling import group_terms, is_posterior, term_covariances


# ---------------------------------------------------------------------------------------------
# new data along one predictor
# ---------------------------------------------------------------------------------------------
def is_categorical(series: pd.Series) -> bool:
    """A predictor drawn as categories (points per category) rather than along a line."""
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def typical_frame(data: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` copies of a typical row: numeric medians, the most frequent value otherwise."""
    row = {}
    for c in data.columns:
        s = data[c]
        if pd.api.types.is_bool_dtype(s):
            row[c] = bool(s.mode().iloc[0])
        elif pd.api.types.is_numeric_dtype(s):
            row[c] = float(s.median())
        else:
            row[c] = s.mode().iloc[0]
    out = pd.DataFrame({c: [v] * n for c, v in row.items()})
    for c in data.columns:
        if isinstance(data[c].dtype, pd.CategoricalDtype):
            out[c] = pd.Categorical(out[c], categories=data[c].cat.categories, ordered=data[c].cat.ordered)
    return out


def predictor_grid(data: pd.DataFrame, x: str, n_points: int = 50) -> np.ndarray:
    """Values of ``x`` to predict at: ``n_points`` over its range, or each category once."""
    if x not in data.columns:
        raise DesignError(f"x={x!r} is not a column of the data; columns are {list(data.columns)}")
    s = data[x]
    if not is_categorical(s):
        return np.linspace(float(s.min()), float(s.max()), n_points)
    if isinstance(s.dtype, pd.CategoricalDtype):
        used = set(s.dropna())
        return np.array([c for c in s.cat.categories if c in used], dtype=object)
    return np.array(sorted(s.dropna().unique(), key=str), dtype=object)


def frame_along(data: pd.DataFrame, x: str, values) -> pd.DataFrame:
    """Typical rows with ``x`` set to ``values`` (keeping a categorical column's categories)."""
    values = np.asarray(values, dtype=object if is_categorical(data[x]) else float)
    frame = typical_frame(data, len(values))
    s = data[x]
    if isinstance(s.dtype, pd.CategoricalDtype):
        frame[x] = pd.Categorical(values, categories=s.cat.categories, ordered=s.cat.ordered)
    else:
        frame[x] = pd.array(list(values), dtype=s.dtype) if is_categorical(s) else values
    return frame


def data_of(fit, data):
    """The data a fit was made from: ``data`` if given, else kept on the fit or its model."""
    if data is not None:
        return data
    for holder in (fit, getattr(fit, "model", None)):
        if holder is not None and isinstance(getattr(holder, "data", None), pd.DataFrame):
            return holder.data
    raise DesignError("plot_predictions needs the data the model was fitted to: pass data=")


# ---------------------------------------------------------------------------------------------
# linear predictors
# ---------------------------------------------------------------------------------------------
def random_effect_draws(fit, nd, n_draws: int, seed: int) -> np.ndarray:
    """(n_draws, m) linear-predictor contributions of all random terms, b ~ N(0, Sigma)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_draws, nd.X.shape[0]))
    for t, Xi, C in zip(fit.design.reterms, nd.Xis, term_covariances(fit)):
        w, V = np.linalg.eigh(C)
        b = rng.standard_normal((n_draws, t.n_cols)) * np.sqrt(np.clip(w, 0, None)) @ V.T
        out += b @ Xi.T
    return out


def level_effects(fit, group: str, nd, levels) -> np.ndarray:
    """(len(levels), m) linear-predictor contributions of ``group``'s random effects per level."""
    re = fit.ranef[group]
    keys = [str(v) for v in levels]
    out = np.zeros((len(keys), nd.X.shape[0]))
    j = 0
    for t, Xi in zip(fit.design.reterms, nd.Xis):
        if t.group != group:
            continue
        B = re.iloc[:, j:j + t.n_cols].reindex(keys).to_numpy(dtype=float)      # (L, k)
        j += t.n_cols
        out += B @ Xi.T
    return out


def predict_curves(fit, x: str, *, group: str | None = None, levels=None, data=None, n_points: int = 50,
                   n_draws: int = 4000, seed: int = 0, prob: float = 0.95) -> pd.DataFrame:
    """Predicted response along ``x`` with other predictors at typical values.

    Columns: ``x``, ``marginal`` (population average, the random effects
    integrated out by Monte Carlo over N(0, Sigma)), ``at_zero`` (random effects
    set to 0, lme4's ``re.form=NA``), ``lower`` / ``upper`` (the central ``prob``
    interval of the predictions over the random-effects distribution: where the
    prediction of a new level falls), and one column per requested level of
    ``group`` (that level's random effects added). Other numeric predictors are
    held at their medians, others at their most frequent value. A categorical
    ``x`` gives one row per category.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> cbpp = bm.load_dataset("cbpp")
    >>> fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                family="binomial").fit()
    >>> cur = predict_curves(fit, "period", data=cbpp, levels=["1"])
    >>> cur["period"].tolist(), bool((cur["lower"] < cur["at_zero"]).all())
    (['1', '2', '3', '4'], True)
    """
    d = fit.design
    group, _ = group_terms(d, group)
    data = data_of(fit, data)
    grid = predictor_grid(data, x, n_points)
    nd = new_matrices(d, frame_along(data, x, grid), include_random=True, allow_new_levels=True)
    eta0 = nd.X @ fit.fixef.to_numpy() + nd.offset
    inv = d.family.link.linkinv
    pop = inv(eta0[None, :] + random_effect_draws(fit, nd, n_draws, seed))
    out = pd.DataFrame({x: grid, "at_zero": inv(eta0), "marginal": pop.mean(axis=0),
                        "lower": np.quantile(pop, (1 - prob) / 2, axis=0),
                        "upper": np.quantile(pop, (1 + prob) / 2, axis=0)})
    if levels is not None:
        effects = level_effects(fit, group, nd, levels)
        for lev, e in zip(levels, effects):
            out[str(lev)] = inv(eta0 + e)
    return out


def spread_levels(fit, group: str, n_levels: int) -> list:
    """``n_levels`` levels of ``group`` spread over the range of its first random-effect column."""
    re = fit.ranef[group].iloc[:, 0].sort_values(kind="stable")
    idx = np.unique(np.linspace(0, len(re) - 1, min(n_levels, len(re))).round().astype(int))
    return list(re.index[idx])


@dataclass(frozen=True)
class LevelPredictions:
    """Every level's prediction at chosen values of one predictor (``by_level``: levels x values)."""

    x: str
    group: str
    by_level: pd.DataFrame
    marginal: pd.Series


def predictions_at(fit, x: str, at=None, *, group: str | None = None, data=None, n_draws: int = 4000,
                   seed: int = 0) -> LevelPredictions:
    """Each level's predicted response (and the marginal one) at values ``at`` of ``x``.

    ``at`` defaults to the 20/40/60/80th percentiles of a numeric ``x`` and to every
    category of a categorical one.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> d = bm.load_dataset("sleepstudy")
    >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", d).fit()
    >>> p = predictions_at(fit, "Days", at=[0.0], data=d)
    >>> p.by_level.shape, bool(abs(p.by_level[0.0].mean() - fit.fixef["Intercept"]) < 1e-6)
    ((18, 1), True)
    """
    d = fit.design
    group, terms = group_terms(d, group)
    data = data_of(fit, data)
    if at is None:
        at = predictor_grid(data, x) if is_categorical(data[x]) else \
            np.quantile(data[x].astype(float), [0.2, 0.4, 0.6, 0.8])
    at = list(np.atleast_1d(at))
    nd = new_matrices(d, frame_along(data, x, at), include_random=True, allow_new_levels=True)
    eta0 = nd.X @ fit.fixef.to_numpy() + nd.offset
    inv = d.family.link.linkinv
    levels = [str(v) for v in terms[0].levels]
    preds = inv(eta0[None, :] + level_effects(fit, group, nd, levels))          # (L, len(at))
    marg = inv(eta0[None, :] + random_effect_draws(fit, nd, n_draws, seed)).mean(axis=0)
    return LevelPredictions(x=x, group=group,
                            by_level=pd.DataFrame(preds, index=pd.Index(levels, name=group), columns=at),
                            marginal=pd.Series(marg, index=at, name="marginal"))


# ---------------------------------------------------------------------------------------------
# posterior predictive
# ---------------------------------------------------------------------------------------------
def observed_response(design) -> np.ndarray:
    """The response on the scale replicates are drawn on (successes for ``cbind`` binomials)."""
    return np.asarray(design.family.observed_values(design.y, design.trials), dtype=float)


def _posterior_mean_draws(fit, pick) -> np.ndarray:
    """(len(pick), n) mean of the response at the posterior draws ``pick`` (flattened chain x draw)."""
    d = fit.design
    post = fit.idata.posterior
    beta = np.asarray(post["beta"].transpose("chain", "draw", ...).values).reshape(-1, d.p)
    S = beta.shape[0]
    eta = beta[pick] @ d.X.T + d.offset
    for t in d.reterms:
        b = np.asarray(post[f"b_{t.name}"].transpose("chain", "draw", t.group_dim, t.term_dim).values)
        b = b.reshape(S, t.n_levels, t.n_cols)[pick]                    # (s, levels, cols)
        eta += np.einsum("snk,nk->sn", b[:, t.codes, :], t.Xi)
    return d.family.link.linkinv(eta)


def replicate_draws(fit, num_samples: int = 100, seed: int = 0) -> np.ndarray:
    """(num_samples, n) replicated responses from posterior draws (the fit's own group if it has one)."""
    d = fit.design
    idata = fit.idata
    if "posterior_predictive" in idata.children:
        pp = idata["posterior_predictive"].to_dataset()
        name = "y" if "y" in pp else list(pp.data_vars)[0]
        return np.asarray(pp[name].values).reshape(-1, d.n)[:num_samples]
    post = idata.posterior
    S = post.sizes["chain"] * post.sizes["draw"]
    rng = np.random.default_rng(seed)
    pick = rng.choice(S, size=min(num_samples, S), replace=False)
    mu = _posterior_mean_draws(fit, pick)
    fam = d.family
    dispersion = None
    if fam.dispersion_name is not None:
        if fam.dispersion_name not in post:
            raise FitError(f"posterior_predictive: the posterior has no draws of {fam.dispersion_name!r}")
        dispersion = np.asarray(post[fam.dispersion_name].values).reshape(-1)[pick][:, None]
    rep = fam.simulate(mu, rng, trials=d.trials, dispersion=dispersion, wt=d.weights)
    return np.asarray(fam.observed_values(rep, d.trials), dtype=float)[:num_samples]


def posterior_predictive(fit, num_samples: int = 100, seed: int = 0):
    """ArviZ DataTree with ``posterior_predictive`` and ``observed_data`` groups (variable ``y``).

    Uses the fit's own ``posterior_predictive`` group when it has one; otherwise
    draws replicated responses from ``num_samples`` posterior draws of ``beta``,
    ``b_<term>`` and the family's parameter (``sigma``...), drawn by ``Family.simulate``. Any ArviZ PPC plot
    (``arviz_plots.plot_ppc_dist``, ``plot_ppc_rootogram``...) takes the result.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> posterior_predictive(fit)
    Traceback (most recent call last):
    ...
    bayesmixed.errors.FitError: posterior predictive checks need a posterior fit (method='nuts'); ...
    """
    import arviz as az

    if not is_posterior(fit):
        raise FitError(f"posterior predictive checks need a posterior fit (method='nuts'); this fit is "
                       f"{getattr(fit, 'method', '?')!r}. Refit with model.fit(method='nuts').")
    rep = replicate_draws(fit, num_samples, seed)
    return az.from_dict({"posterior_predictive": {"y": rep[None]},
                         "observed_data": {"y": observed_response(fit.design)}}, dims={"y": ["obs"]})


def is_discrete(*arrays) -> bool:
    """All values integers: a check draws bars of value counts rather than densities."""
    return all(np.all(np.isfinite(a)) and np.all(a == np.round(a)) for a in arrays)


def ppc_frequencies(rep: np.ndarray, yobs: np.ndarray, probs=(0.05, 0.5, 0.95)) -> pd.DataFrame:
    """Count of each response value: observed, and quantiles over the replicated data sets.

    Examples
    --------
    >>> import numpy as np
    >>> ppc_frequencies(np.array([[0, 1, 1], [1, 1, 1]]), np.array([0, 0, 1]))["observed"].tolist()
    [2, 1]
    """
    vals = np.arange(int(min(rep.min(), yobs.min())), int(max(rep.max(), yobs.max())) + 1)
    obs_f = np.array([(yobs == v).sum() for v in vals])
    rep_f = np.array([[(r == v).sum() for v in vals] for r in rep])
    q = np.quantile(rep_f, probs, axis=0)
    out = pd.DataFrame({"value": vals, "observed": obs_f})
    for p, row in zip(probs, q):
        out[f"q{p:g}"] = row
    return out



__all__ = ["predict_curves", "predictions_at", "posterior_predictive", "replicate_draws", "ppc_frequencies",
           "typical_frame", "predictor_grid", "frame_along", "random_effect_draws", "level_effects",
           "LevelPredictions", "spread_levels", "observed_response", "is_discrete", "is_categorical", "data_of"]
