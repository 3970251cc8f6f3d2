"""Variance parameters on lme4's profile scale: standard deviations, correlations, sigma.

lme4 profiles and bootstraps the variance components on the ``sdcor`` scale
(``.sig01``, ``.sig02``, ..., ``.sigma``), term by term in theta's order (the
column-major lower triangle of each term's covariance: a standard deviation on the
diagonal, a correlation below it). :class:`VarParMap` converts between that scale and
(theta, sigma).
"""

from __future__ import annotations

import numpy as np

from bayesmixed.design.spec import MixedDesign


def _cname(name: str) -> str:
    """lme4 spells the intercept column ``(Intercept)``."""
    return "(Intercept)" if name == "Intercept" else name


def psd_cholesky(C: np.ndarray, tol: float = 1e-12) -> np.ndarray | None:
    """Lower Cholesky factor of a positive semi-definite matrix (zero pivots allowed).

    Returns None when ``C`` is not positive semi-definite.

    Examples
    --------
    >>> import numpy as np
    >>> psd_cholesky(np.array([[4.0, 2.0], [2.0, 1.0]])).tolist()
    [[2.0, 0.0], [1.0, 0.0]]
    >>> psd_cholesky(np.array([[1.0, 2.0], [2.0, 1.0]])) is None
    True
    """
    k = C.shape[0]
    L = np.zeros_like(C, dtype=float)
    scale = max(float(np.max(np.abs(np.diag(C)))), 1e-300)
    for j in range(k):
        d = C[j, j] - L[j, :j] @ L[j, :j]
        if d < -tol * scale:
            return None
        if d <= tol * scale:
            rest = C[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-8 * np.sqrt(scale)):
                return None
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (C[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


class VarParMap:
    """Map between (theta, sigma) and lme4's sd / correlation / sigma parameters.

    Parameters
    ----------
    design : MixedDesign
        The model's design.
    use_sigma : bool
        Include the residual standard deviation (LMMs and GLMMs with a scale).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> vp = VarParMap(fit.design)
    >>> vp.names
    ('sd_(Intercept)|Subject', 'cor_(Intercept).Days|Subject', 'sd_Days|Subject', 'sigma')
    >>> pars = vp.from_theta(fit.theta, fit.sigma)
    >>> pars.round(3).tolist()
    [24.741, 0.066, 5.922, 25.592]
    >>> vp.to_theta(pars).round(4).tolist() == fit.theta.round(4).tolist()
    True
    """

    def __init__(self, design: MixedDesign, use_sigma: bool = True) -> None:
        self.design = design
        self.use_sigma = use_sigma
        names, lower, upper, diag = [], [], [], []
        for t in design.reterms:
            if t.correlated:
                rows, cols = t._tril
            else:
                rows = cols = np.arange(t.n_cols)
            for r, c in zip(rows, cols):
                if r == c:
                    names.append(f"sd_{_cname(t.cnames[r])}|{t.group}")
                    lower.append(0.0)
                    upper.append(np.inf)
                else:
                    names.append(f"cor_{_cname(t.cnames[c])}.{_cname(t.cnames[r])}|{t.group}")
                    lower.append(-1.0)
                    upper.append(1.0)
                diag.append(r == c)
        if use_sigma:
            names.append("sigma")
            lower.append(0.0)
            upper.append(np.inf)
            diag.append(True)
        self.names = tuple(names)
        self.lower = np.array(lower)
        self.upper = np.array(upper)
        self.is_sd = np.array(diag)

    def from_theta(self, theta: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        """sd / cor (and sigma) from theta and the residual sd."""
        out = []
        for t, s in zip(self.design.reterms, self.design.theta_slices):
            C = t.covariance(np.asarray(theta)[s], sigma)
            sd = np.sqrt(np.clip(np.diag(C), 0, None))
            if not t.correlated:
                out.extend(sd)
                continue
            rows, cols = t._tril
            for r, c in zip(rows, cols):
                if r == c:
                    out.append(sd[r])
                else:
                    den = sd[r] * sd[c]
                    out.append(C[r, c] / den if den > 0 else 0.0)
        if self.use_sigma:
            out.append(sigma)
        return np.array(out, dtype=float)

    def to_theta(self, pars: np.ndarray) -> np.ndarray | None:
        """theta from sd / cor (/ sigma) parameters; None if a correlation matrix is not PSD."""
        pars = np.asarray(pars, dtype=float)
        sigma = pars[-1] if self.use_sigma else 1.0
        if sigma <= 0:
            return None
        out, pos = [], 0
        for t in self.design.reterms:
            k = t.n_theta
            p = pars[pos:pos + k]
            pos += k
            if not t.correlated:
                out.extend(p / sigma)
                continue
            rows, cols = t._tril
            sd = np.zeros(t.n_cols)
            R = np.eye(t.n_cols)
            for v, r, c in zip(p, rows, cols):
                if r == c:
                    sd[r] = v
                else:
                    R[r, c] = R[c, r] = v
            L = psd_cholesky(R * np.outer(sd, sd) / sigma**2)
            if L is None:
                return None
            out.extend(L[rows, cols])
        return np.array(out, dtype=float)
