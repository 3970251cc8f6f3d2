"""Fixed-effects model matrix via formulaic, with lme4's rank and scale checks."""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError, RankDeficiencyWarning, ScaleWarning

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def r_power(expr: str) -> str:
    """R's ``^`` inside a call (``I(x^2)``, ``log(x^2)``) is arithmetic power: Python's ``**``.

    Outside calls ``^`` stays the formula operator (``(a + b)^2``).
    """
    out, calls = [], []
    for i, ch in enumerate(expr):
        if ch == "(":
            calls.append(i > 0 and (expr[i - 1].isalnum() or expr[i - 1] in "_."))
        elif ch == ")" and calls:
            calls.pop()
        out.append("**" if ch == "^" and any(calls) else ch)
    return "".join(out)


def formula_context() -> dict:
    """Names available inside formulas besides the data columns (R spellings too)."""
    from scipy import special

    return {
        "np": np,
        "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs,
        "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "expm1": np.expm1,
        "plogis": special.expit, "qlogis": special.logit,
    }


@functools.cache
def formulaic_materializer():
    """formulaic's pandas materializer, reading boolean values as a factor (R's logical).

    A boolean term is a contrast of its TRUE level, as in R (``I(week > 2)TRUE``):
    ``I(week > 2)[T.True]``, named like the other factor contrasts. Registered with
    formulaic under the name ``"bayesmixed"`` (model specs refer to it by name) on the
    first call; formulaic is imported then, not when bayesmixed is.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"week": [1, 2, 3, 4]})
    >>> fixed_matrix("I(week > 2)", d)[1]
    ('Intercept', 'I(week > 2)[T.True]')
    """
    from formulaic.materializers import PandasMaterializer
    from interface_meta import override

    class BayesMixedMaterializer(PandasMaterializer):
        REGISTER_NAME = "bayesmixed"

        @override
        def _is_categorical(self, values) -> bool:
            if pd.api.types.is_bool_dtype(getattr(values, "dtype", None)):
                return True
            return super()._is_categorical(values)

    return BayesMixedMaterializer


def model_matrix_of(rhs: str, data: pd.DataFrame):
    """formulaic's model matrix (pandas) of ``rhs`` on ``data``: R's ``^`` power, the
    names of :func:`formula_context`, booleans as factors, missing values kept.

    Examples
    --------
    >>> import pandas as pd
    >>> list(model_matrix_of("0 + I(x ** 2)", pd.DataFrame({"x": [1.0, 2.0]})).iloc[:, 0])
    [1.0, 4.0]
    """
    from formulaic import model_matrix

    with np.errstate(divide="ignore", invalid="ignore"):  # inf/NaN are reported by column later
        return model_matrix(r_power(rhs), data, context=formula_context(), na_action="ignore",
                            output="pandas", materializer=formulaic_materializer())


def evaluate_expression(expr: str, data: pd.DataFrame) -> np.ndarray:
    """Value of a response, cbind() argument or offset expression on the data rows."""
    expr = expr.strip()
    if expr in data.columns:
        return data[expr].to_numpy()
    from formulaic import model_matrix

    try:
        mm = model_matrix(f"0 + I({r_power(expr)})", data, context=formula_context(), na_action="ignore",
                          output="pandas")
    except Exception as exc:  # formulaic raises many types
        raise DesignError(f"could not evaluate {expr!r} on the data: {exc}; check the columns and "
                          "functions it uses (arithmetic as in Python: x ** 2, np.log(x))") from exc
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
    try:
        mm = model_matrix_of(rhs, data)
    except Exception as exc:
        raise DesignError(f"could not build the fixed-effects matrix for '{rhs}': {exc}; check each "
                          "term of the fixed part (written as formulaic reads it: I(x ** 2), C(f), "
                          "np.log(x), scale(x))") from exc
    X = np.asarray(mm.to_numpy(dtype=float))
    return X, tuple(str(c) for c in mm.columns), mm.model_spec


def drop_aliased(X: np.ndarray, names: tuple[str, ...], tol: float = 1e-7, *, warn: bool = True):
    """Drop columns that are linear combinations of earlier ones, as lme4's chkRank.drop.cols.

    Columns are taken greedily in order (LINPACK's limited pivoting keeps the
    leading columns), so the later of two aliased columns is the one dropped.
    Returns ``(X_kept, names_kept, dropped_names)`` and, when ``warn``, issues a
    :class:`RankDeficiencyWarning` naming the dropped columns.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.column_stack([np.ones(4), np.arange(4.0), 2 * np.arange(4.0)])
    >>> drop_aliased(X, ("Intercept", "x", "x2"), warn=False)[2]
    ('x2',)
    """
    if X.shape[1] == 0:
        return X, names, ()
    R = np.linalg.qr(X, mode="r")                      # R only: Q is never formed
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
    if dropped and warn:
        warn_aliased(dropped, X.shape[0], X.shape[1])
    return X[:, keep], tuple(names[j] for j in keep), dropped


def warn_aliased(dropped: tuple[str, ...], nrows: int, ncols: int, stacklevel: int = 6) -> None:
    """The :class:`RankDeficiencyWarning` naming the dropped columns (lme4's message)."""
    why = ("all zero or a linear combination of the columns before it" if len(dropped) == 1
           else "each all zero or a linear combination of the columns before it")
    more = f" (only {nrows} rows for {ncols} columns)" if nrows < ncols else ""
    warnings.warn(
        f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
        f"column(s): {', '.join(dropped)} ({why}){more}. Its coefficient is not estimable: "
        "remove the redundant term(s) from the formula, or pass "
        "control={'check_rank_x': 'stop.deficient'} to make this an error",
        RankDeficiencyWarning, stacklevel=stacklevel,
    )


def aliased_from_gram(G: np.ndarray, nrows: int, tol: float = 1e-7) -> np.ndarray:
    """Columns kept by :func:`drop_aliased`'s greedy rule, from the Gram matrix ``X'X`` alone.

    Column j is kept when its residual on the kept columns before it has norm above
    ``tol`` times its own norm (the residual's squared norm is the Schur complement
    ``G_jj - G_jK G_KK^{-1} G_Kj``). Used when X is never held (out-of-memory data).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.column_stack([np.ones(4), np.arange(4.0), 2 * np.arange(4.0)])
    >>> aliased_from_gram(X.T @ X, 4).tolist()
    [0, 1]
    """
    keep: list[int] = []
    for j in range(G.shape[0]):
        gjj = G[j, j]
        if gjj <= 0 or len(keep) >= nrows:
            continue
        if keep:
            K = np.asarray(keep)
            g = G[K, j]
            res2 = gjj - g @ np.linalg.solve(G[np.ix_(K, K)], g)
        else:
            res2 = gjj
        if res2 > (tol * tol) * gjj:
            keep.append(j)
    return np.asarray(keep, dtype=np.int64)


def check_scale(X: np.ndarray, names: tuple[str, ...], tol: float = 1e3, *, stop: bool = False) -> None:
    """Warn (or raise) as lme4's checkScaleX when continuous columns are on very different scales.

    As lme4: columns that are not all 0/1 are "continuous"; their sds are compared
    with each other and with 1, and a ratio beyond ``tol`` (1e3) triggers the
    warning. The fit is still computed on the data as given.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.column_stack([np.ones(3), [1.0, 2.0, 3.0]])
    >>> check_scale(X, ("Intercept", "x"))    # sd 1: no warning
    """
    if X.shape[1] == 0:
        return
    cont = ~((X == 0) | (X == 1)).all(axis=0)
    sd = X[:, cont].std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(int(cont.sum()))
    check_scale_sd(sd, [n for n, c in zip(names, cont) if c], tol, stop=stop)


def check_scale_sd(sd: np.ndarray, cnames: list[str], tol: float = 1e3, *, stop: bool = False,
                   stacklevel: int = 6) -> None:
    """:func:`check_scale` from the sds of the continuous columns ``cnames`` (no X needed).

    Examples
    --------
    >>> import numpy as np
    >>> check_scale_sd(np.array([1.0, 2.0]), ["x", "z"])     # comparable scales: no warning
    """
    sd = np.asarray(sd, dtype=float)
    live = sd > 0                      # constant columns are aliased with the intercept: not a scale
    sd = sd[live]
    if sd.size == 0:
        return
    cnames = [n for n, ok in zip(cnames, live) if ok]
    lo, hi = float(sd.min()), float(sd.max())
    if max(hi / lo, hi, 1 / lo) <= tol:
        return
    detail = ", ".join(f"{n!r} sd {s:.3g}" for n, s in zip(cnames, sd))
    msg = (f"Some predictor variables are on very different scales: consider rescaling ({detail}). "
           "Estimates are still computed on the data as given, but the optimizer and the standard "
           "errors are more accurate on comparable scales: use scale(x) in the formula, or change "
           "units (e.g. x / 1000)")
    if stop:
        raise DesignError(msg)
    warnings.warn(msg, ScaleWarning, stacklevel=stacklevel)
