"""Predictions, comparisons and slopes for every fit (the marginaleffects vocabulary).

One engine serves both kinds of fit. A quantity (a prediction, a contrast, a slope,
averaged or not) is a function of the linear predictor on some rows. For a posterior
fit it is computed on every draw, and the draws give its mean, sd and interval. For a
likelihood fit it is computed at the estimates, and its standard error comes by the
delta method from the covariance of the fixed effects (the conditional modes of the
random effects held fixed, as ``marginaleffects`` and ``emmeans`` do with lme4 fits);
the Jacobian is taken by central differences in beta, exact for link-scale quantities,
which are linear in beta.

``by=None`` gives one row per row of ``newdata``; ``by=True`` averages over all rows;
``by="col"`` (or a list of columns) averages within the groups of those columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.design.columns import as_pandas
from bayesmixed.design.newdata import new_matrices
from bayesmixed.errors import DesignError

SCALES = ("response", "link")


@dataclass
class _Rows:
    """What a quantity needs of some rows: X, the fixed random-effect part, the frame."""

    frame: pd.DataFrame
    X: np.ndarray                    # (m, p)
    re_eta: np.ndarray               # (m,) or (S, m) draws: offset + random effects
    beta: np.ndarray                 # (p,) estimates or (S, p) draws


def _data(fit) -> pd.DataFrame:
    """The rows the fit used, as the user's data frame has them (``fit.data`` is that frame)."""
    data = getattr(fit, "data", None)
    if data is None:
        raise DesignError("this fit does not carry its data frame: pass newdata=")
    data = as_pandas(data)
    rows = fit.design.rows
    return (data.iloc[rows] if rows is not None else data.loc[fit.design.index]).reset_index(drop=True)


def _frame(fit, newdata) -> pd.DataFrame:
    if newdata is None:
        return _data(fit)
    if isinstance(newdata, dict):
        return datagrid(fit, **newdata)
    if not isinstance(newdata, pd.DataFrame):
        raise DesignError(f"newdata must be a pandas DataFrame or a dict of values, got {type(newdata).__name__}")
    return newdata.reset_index(drop=True)


def _rows(fit, frame: pd.DataFrame, include_random: bool, allow_new_levels: bool) -> _Rows:
    d = fit.design
    nd = new_matrices(d, frame, include_random=False, allow_new_levels=allow_new_levels)
    X = nd.X
    if fit.is_posterior:
        beta = np.asarray(fit.posterior["beta"]).reshape(-1, d.p)
        eta = np.asarray(fit.predict(frame, include_random=include_random, allow_new_levels=allow_new_levels,
                                     kind="draws", type="link")).reshape(beta.shape[0], -1)
        re_eta = eta - beta @ X.T
    else:
        beta = fit.fixef.to_numpy()
        eta = fit.predict(frame, include_random=include_random, allow_new_levels=allow_new_levels,
                          type="link").to_numpy()
        re_eta = eta - X @ beta
    return _Rows(frame=frame, X=X, re_eta=re_eta, beta=beta)


def _mean_by(values: np.ndarray, frame: pd.DataFrame, by) -> tuple[np.ndarray, pd.DataFrame]:
    """Average the last axis of ``values`` within groups of ``by`` (see the module notes)."""
    if by is None:
        return values, frame.reset_index(drop=True)
    if by is True:
        return values.mean(axis=-1, keepdims=True), pd.DataFrame(index=[0])
    cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DesignError(f"by= names column(s) {missing} that newdata does not have; columns are "
                          f"{list(frame.columns)}")
    keys = frame[cols].astype(object)
    groups = keys.drop_duplicates().reset_index(drop=True)
    out = []
    for _, g in groups.iterrows():
        mask = np.all([keys[c].to_numpy() == g[c] for c in cols], axis=0)
        out.append(values[..., mask].mean(axis=-1))
    return np.stack(out, axis=-1), groups


def _summarise(fit, func: Callable[[np.ndarray], np.ndarray], rows: _Rows, conf_level: float) -> pd.DataFrame:
    """estimate, std_error, (statistic, p_value,) conf_low, conf_high of ``func(beta)``."""
    if not 0 < conf_level < 1:
        raise DesignError(f"conf_level must be between 0 and 1, got {conf_level!r}")
    if rows.beta.ndim == 2:                                     # draws
        draws = np.stack([func(b, i) for i, b in enumerate(rows.beta)])
        a = (1 - conf_level) / 2
        return pd.DataFrame({"estimate": draws.mean(axis=0), "std_error": draws.std(axis=0, ddof=1),
                             "conf_low": np.quantile(draws, a, axis=0),
                             "conf_high": np.quantile(draws, 1 - a, axis=0)})
    beta = rows.beta
    est = func(beta, None)
    J = np.empty((est.size, beta.size))
    for j in range(beta.size):
        h = 1e-6 * max(1.0, abs(beta[j]))
        up, down = beta.copy(), beta.copy()
        up[j] += h
        down[j] -= h
        J[:, j] = (func(up, None) - func(down, None)) / (2 * h)
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", J, fit.vcov.to_numpy(), J), 0, None))
    z = stats.norm.ppf(0.5 + conf_level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = est / se
    return pd.DataFrame({"estimate": est, "std_error": se, "statistic": statistic,
                         "p_value": 2 * stats.norm.sf(np.abs(statistic)),
                         "conf_low": est - z * se, "conf_high": est + z * se})


def _eta(rows: _Rows, X: np.ndarray, beta: np.ndarray, i: int | None) -> np.ndarray:
    re = rows.re_eta if i is None else rows.re_eta[i]
    return X @ beta + re


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise DesignError(f"scale must be 'response' or 'link', got {scale!r}")


def _transform(fit, eta: np.ndarray, scale: str) -> np.ndarray:
    return eta if scale == "link" else fit.design.family.link.linkinv(eta)


def predictions(fit, newdata=None, *, by=None, scale: str = "response", include_random: bool = True,
                allow_new_levels: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
    """Predictions with uncertainty, per row of ``newdata`` or averaged ``by`` groups.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> p = fit.predictions({"Days": [0, 9]}, include_random=False)
    >>> p[["Days", "estimate", "std_error"]].round(2)
       Days  estimate  std_error
    0     0    251.41       6.82
    1     9    345.61      14.63
    """
    _check_scale(scale)
    frame = _frame(fit, newdata)
    rows = _rows(fit, frame, include_random, allow_new_levels)

    def func(beta, i):
        values, _ = _mean_by(_transform(fit, _eta(rows, rows.X, beta, i), scale), frame, by)
        return values

    _, keys = _mean_by(np.zeros(len(frame)), frame, by)
    return pd.concat([keys, _summarise(fit, func, rows, conf_level)], axis=1)


def _levels(fit, variable: str) -> list:
    """The reference level and the other levels of a categorical predictor, as in the fit."""
    col = _data(fit)[variable]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.cat.categories)
    return sorted(pd.unique(col.dropna()))


def _is_numeric(frame: pd.DataFrame, variable: str) -> bool:
    col = frame[variable]
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _check_variable(frame: pd.DataFrame, variable: str) -> None:
    if variable not in frame.columns:
        raise DesignError(f"variable {variable!r} is not a column of newdata; columns are {list(frame.columns)}")


def comparisons(fit, variable: str, newdata=None, *, by=None, scale: str = "response",
                include_random: bool = True, allow_new_levels: bool = False,
                conf_level: float = 0.95) -> pd.DataFrame:
    """Contrasts: ``variable`` + 1 minus ``variable`` (numeric), or each level minus the reference.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> fit.comparisons("Days", by=True)[["contrast", "estimate", "std_error"]].round(3)
      contrast  estimate  std_error
    0       +1    10.467      1.546
    """
    _check_scale(scale)
    frame = _frame(fit, newdata)
    _check_variable(frame, variable)
    if _is_numeric(frame, variable):
        pairs = [("+1", frame[variable], frame[variable] + 1)]
    else:
        levels = _levels(fit, variable)
        ref = levels[0]
        pairs = [(f"{lev} - {ref}", _as_level(frame[variable], ref), _as_level(frame[variable], lev))
                 for lev in levels[1:]]
    out = []
    for label, lo, hi in pairs:
        r0 = _rows(fit, frame.assign(**{variable: lo}), include_random, allow_new_levels)
        r1 = _rows(fit, frame.assign(**{variable: hi}), include_random, allow_new_levels)

        def func(beta, i, r0=r0, r1=r1):
            diff = (_transform(fit, _eta(r1, r1.X, beta, i), scale)
                    - _transform(fit, _eta(r0, r0.X, beta, i), scale))
            return _mean_by(diff, frame, by)[0]

        _, keys = _mean_by(np.zeros(len(frame)), frame, by)
        res = _summarise(fit, func, r0, conf_level)
        out.append(pd.concat([pd.DataFrame({"term": variable, "contrast": label}, index=keys.index), keys, res],
                             axis=1))
    return pd.concat(out, ignore_index=True)


def _as_level(col: pd.Series, level) -> pd.Series:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical([level] * len(col), categories=col.cat.categories), index=col.index)
    return pd.Series([level] * len(col), index=col.index, dtype=col.dtype)


def slopes(fit, variable: str, newdata=None, *, by=None, scale: str = "response", include_random: bool = True,
           allow_new_levels: bool = False, conf_level: float = 0.95, eps: float | None = None) -> pd.DataFrame:
    """Derivative of the prediction with respect to a numeric ``variable`` (central differences).

    The step is ``eps`` (default: 1e-4 times the range of the variable in ``newdata``,
    as marginaleffects uses), so a linear term's slope on the link scale is its coefficient.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> fit.slopes("Days", by=True)[["estimate", "std_error"]].round(3)
       estimate  std_error
    0    10.467      1.546
    """
    _check_scale(scale)
    frame = _frame(fit, newdata)
    _check_variable(frame, variable)
    if not _is_numeric(frame, variable):
        raise DesignError(f"slopes() needs a numeric variable; {variable!r} is categorical: use comparisons()")
    x = frame[variable].astype(float)
    if eps is None:
        span = float(x.max() - x.min())
        eps = 1e-4 * (span if span > 0 else 1.0)
    r0 = _rows(fit, frame.assign(**{variable: x - eps / 2}), include_random, allow_new_levels)
    r1 = _rows(fit, frame.assign(**{variable: x + eps / 2}), include_random, allow_new_levels)

    def func(beta, i):
        diff = (_transform(fit, _eta(r1, r1.X, beta, i), scale)
                - _transform(fit, _eta(r0, r0.X, beta, i), scale)) / eps
        return _mean_by(diff, frame, by)[0]

    _, keys = _mean_by(np.zeros(len(frame)), frame, by)
    res = _summarise(fit, func, r0, conf_level)
    return pd.concat([pd.DataFrame({"term": variable}, index=keys.index), keys, res], axis=1)


def datagrid(fit, **values) -> pd.DataFrame:
    """A grid of predictor values: the named ones crossed, the others at their mean or mode.

    Columns are the fit's fixed-effect and grouping variables (marginaleffects'
    ``datagrid``); grouping factors not given are set to their most frequent level.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> bm.datagrid(fit, Days=[0, 5])
       Days Subject
    0     0     308
    1     5     308
    """
    data = _data(fit)
    columns = _predictor_columns(fit, data)
    unknown = [k for k in values if k not in columns]
    if unknown:
        raise DesignError(f"datagrid() got {unknown}, which the model does not use; its variables are {columns}")
    base = {}
    for c in columns:
        col = data[c]
        if c in values:
            base[c] = list(np.atleast_1d(values[c]))
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            base[c] = [float(col.mean())]
        else:
            base[c] = [col.mode(dropna=True).iloc[0]]
    index = pd.MultiIndex.from_product(list(base.values()), names=list(base))
    grid = index.to_frame(index=False)
    for c in columns:
        if isinstance(data[c].dtype, pd.CategoricalDtype):
            grid[c] = pd.Categorical(grid[c], categories=data[c].cat.categories)
    return grid


def _predictor_columns(fit, data: pd.DataFrame) -> list[str]:
    """Columns of the data that the fixed part or a grouping factor uses (not the response)."""
    parsed = fit.design.parsed
    response = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", parsed.response or "")) - {"cbind", "I", "log"}
    used = set(parsed.variables) - response
    for t in fit.design.reterms:
        used.update(t.group.split(":"))
    return [c for c in data.columns if c in used]


class InterpretMixin:
    """``fit.predictions()``, ``fit.comparisons()``, ``fit.slopes()`` (see the module notes)."""

    def predictions(self, newdata=None, *, by=None, scale: str = "response", include_random: bool = True,
                    allow_new_levels: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
        """Predictions with uncertainty (:func:`bayesmixed.results.interpret.predictions`)."""
        return predictions(self, newdata, by=by, scale=scale, include_random=include_random,
                           allow_new_levels=allow_new_levels, conf_level=conf_level)

    def comparisons(self, variable: str, newdata=None, *, by=None, scale: str = "response",
                    include_random: bool = True, allow_new_levels: bool = False,
                    conf_level: float = 0.95) -> pd.DataFrame:
        """Contrasts of ``variable`` (:func:`bayesmixed.results.interpret.comparisons`)."""
        return comparisons(self, variable, newdata, by=by, scale=scale, include_random=include_random,
                           allow_new_levels=allow_new_levels, conf_level=conf_level)

    def slopes(self, variable: str, newdata=None, *, by=None, scale: str = "response",
               include_random: bool = True, allow_new_levels: bool = False, conf_level: float = 0.95,
               eps: float | None = None) -> pd.DataFrame:
        """Derivatives with respect to ``variable`` (:func:`bayesmixed.results.interpret.slopes`)."""
        return slopes(self, variable, newdata, by=by, scale=scale, include_random=include_random,
                      allow_new_levels=allow_new_levels, conf_level=conf_level, eps=eps)
