"""Fixed-effects model matrix via formulaic, with lme4's rank and scale checks."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError, RankDeficiencyWarning, ScaleWarning

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _r_scale(x, center=True, scale=True):
    """R's ``scale()``: centre and divide by the sd with n - 1."""
    from formulaic.transforms import scale as fscale  # stateful: remembers mean and sd

    return fscale(x, center=center, scale=scale)


def formula_context() -> dict:
    """Names available inside formulas besides the data columns (R spellings too)."""
    from scipy import special

    return {
        "np": np,
        "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs,
        "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "expm1": np.expm1,
        "plogis": special.expit, "qlogis": special.logit,
    }


def evaluate_expression(expr: str, data: pd.DataFrame) -> np.ndarray:
    """Value of a response, cbind() argument or offset expression on the data rows."""
    expr = expr.strip()
    if expr in data.columns:
        return data[expr].to_numpy()
    from formulaic import model_matrix

    try:
        mm = model_matrix(f"0 + I({expr})", data, context=formula_context(), na_action="ignore",
                          output="pandas")
    except Exception as exc:  # formulaic raises many types
        raise DesignError(f"could not evaluate {expr!r} on the data: {exc}") from exc
    return np.asarray(mm.iloc[:, 0].to_numpy(), dtype=float)


def is_simple_numeric_rhs(rhs: str, data: pd.DataFrame) -> list[str] | None:
    """Fast path: ``1 + a + b`` with numeric columns, no transforms. Returns columns or None."""
    terms = [t.strip() for t in rhs.split("+")]
    cols = [t for t in terms if t != "1"]
    if not all(_IDENT.match(t) and t in data.columns for t in cols):
        return None
    if len(cols) + (1 if "1" in terms else 0) != len(terms):
        return None
    for c in cols:
        dt = data[c].dtype
        if not (pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)):
            return None
    return cols


def fixed_matrix(rhs: str, data: pd.DataFrame):
    """(X, names, spec) for the fixed part ``rhs`` evaluated on ``data``."""
    simple = is_simple_numeric_rhs(rhs, data)
    if simple is not None:
        X = np.empty((len(data), len(simple) + 1))
        X[:, 0] = 1.0
        for j, c in enumerate(simple):
            X[:, j + 1] = data[c].to_numpy(dtype=float)
        return X, ("Intercept", *simple), None
    from formulaic import model_matrix

    try:
        mm = model_matrix(rhs, data, context=formula_context(), na_action="ignore",
                          output="pandas")
    except Exception as exc:
        raise DesignError(f"could not build the fixed-effects matrix for '{rhs}': {exc}") from exc
    X = np.asarray(mm.to_numpy(dtype=float))
    return X, tuple(str(c) for c in mm.columns), mm.model_spec


def drop_aliased(X: np.ndarray, names: tuple[str, ...], tol: float = 1e-7):
    """Drop columns that are linear combinations of earlier ones, as lme4's chkRank.drop.cols.

    Columns are taken greedily in order (LINPACK's limited pivoting keeps the
    leading columns), so the later of two aliased columns is the one dropped.
    """
    if X.shape[1] == 0:
        return X, names, ()
    Q, R = np.linalg.qr(X)
    diag = np.abs(np.diag(R))
    scale = np.linalg.norm(X, axis=0)
    if np.all(diag > tol * np.maximum(scale, 1e-300)) and X.shape[0] >= X.shape[1]:
        return X, names, ()
    keep: list[int] = []
    basis = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        x = X[:, j]
        nrm = np.linalg.norm(x)
        resid = x - basis @ (basis.T @ x) if basis.shape[1] else x
        if nrm > 0 and np.linalg.norm(resid) > tol * nrm and len(keep) < X.shape[0]:
            keep.append(j)
            basis = np.column_stack([basis, resid / np.linalg.norm(resid)])
    dropped = tuple(names[j] for j in range(X.shape[1]) if j not in keep)
    if dropped:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column(s): {', '.join(dropped)} (aliased with earlier columns)",
            RankDeficiencyWarning, stacklevel=4,
        )
    return X[:, keep], tuple(names[j] for j in keep), dropped


def check_scale(X: np.ndarray, names: tuple[str, ...]) -> None:
    """Warn as lme4's check.scaleX does when column scales differ by more than 1e3."""
    if X.shape[1] < 2:
        return
    sd = X.std(axis=0)
    nonconst = sd > 0
    if nonconst.sum() < 1:
        return
    # lme4 compares column sds of X including the intercept column's 0 sd excluded
    s = sd[nonconst]
    if s.max() / s.min() > 1e3:
        big, small = names[int(np.argmax(np.where(nonconst, sd, -np.inf)))], \
            names[int(np.argmin(np.where(nonconst, sd, np.inf)))]
        warnings.warn(
            f"Some predictor variables are on very different scales (sd of {big!r} is "
            f"{s.max() / s.min():.3g} times that of {small!r}): consider rescaling, "
            "e.g. with scale(x) in the formula",
            ScaleWarning, stacklevel=4,
        )
