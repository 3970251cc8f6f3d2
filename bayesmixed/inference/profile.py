"""Profile-likelihood confidence intervals of linear mixed models (lme4's ``confint(fit)``).

Follows lme4's ``profile.merMod`` and ``confint.thpr``: the fit is refitted by
maximum likelihood (lme4's ``refitML``, also for REML fits); each variance parameter
(standard deviations, correlations, residual sigma, on lme4's ``.sig01`` scale) is
held at a grid of values while the others are re-optimised, and each fixed effect is
held through an offset while theta is re-optimised. The signed square root of the
deviance increase, zeta, is recorded; the grid is stepped by lme4's rule (steps of
``delta = cutoff / 8`` in zeta, up to ``cutoff = sqrt(qchisq(0.99, n_par))``), and
the interval ends are read off the inverse interpolating spline at
``zeta = +-qnorm((1 + level) / 2)``. GLMM fits (binomial, Poisson, negative binomial)
are profiled on their Laplace / AGQ criterion over sd / cor and the fixed effects jointly.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.errors import DesignError
from bayesmixed.inference.spline import BackSpline, linear_inverse
from bayesmixed.inference.varpar import VarParMap
from bayesmixed.likelihood.lmm import optimize_lmm
from bayesmixed.likelihood.optimize import minimize_bobyqa
from bayesmixed.likelihood.pirls import LaplaceDeviance
from bayesmixed.likelihood.pls import ProfiledDeviance

MAXPTS = 100          # lme4: maxpts
MAXMULT = 10          # lme4: maxmult
MINSTEP = 1e-6        # lme4: nextpar(minstep)
DEVTOL = 1e-9         # lme4: devtol
OPT_TOL = dict(xtol_abs=1e-8, ftol_rel=1e-12)


def ml_refit(fit):
    """The fit itself if it is ML, else the ML refit from its theta (lme4's ``refitML``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> round(ml_refit(fit).deviance, 4)
    327.3271
    """
    if not fit.reml:
        return fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return type(fit)(optimize_lmm(fit.design, reml=False, start=fit.theta, check_conv=False))


def varpar_deviance(design, vp: VarParMap):
    """ML deviance as a function of lme4's sd / cor / sigma parameters (beta profiled out).

    lme4's ``devfun2``: ``ldL2 - ldW + pwrss / sigma^2 + n log(2 pi sigma^2)``.
    """
    dev = ProfiledDeviance(design, reml=False)
    n = design.n

    def f(pars: np.ndarray) -> float:
        theta = vp.to_theta(pars)
        if theta is None:
            return np.inf
        try:
            st = dev.evaluate(theta)
        except np.linalg.LinAlgError:
            return np.inf
        s2 = pars[-1] ** 2
        return float(st.ldL2 - dev.system.ldW + st.pwrss / s2 + n * np.log(2 * np.pi * s2))

    return f


def _nextpar(rows, delta, lowcut, upcut):
    """lme4's ``nextpar``: the next grid value from the last two profile rows."""
    (z1, x1), (z2, x2) = (rows[-2][0], rows[-2][1]), (rows[-1][0], rows[-1][1])
    num, denom = x2 - x1, z2 - z1
    if not np.isfinite(denom) or denom == 0:
        step = MINSTEP
    else:
        step = delta * num / denom
        if step < 0:
            step = MINSTEP
        elif abs(step) > abs(MAXMULT * num):
            step = np.sign(step) * abs(MAXMULT * num)
    return min(upcut, max(lowcut, x2 + np.sign(num) * step))


def _fill(rows, zeta_fn, delta, lowcut, upcut, cutoff):
    """lme4's ``fillmat``: extend the profile until |zeta| passes the cutoff or a bound."""
    rows = list(rows)
    while len(rows) < MAXPTS:
        z, x = rows[-1][0], rows[-1][1]
        if not (np.isfinite(x) and lowcut < x < upcut and np.isfinite(z) and abs(z) <= cutoff):
            break
        xn = _nextpar(rows, delta, lowcut, upcut)
        rows.append(zeta_fn(xn, rows[-1][2]))
    return rows


def _walk(zeta_fn, opt_row, shift, delta, lowcut, upcut, cutoff):
    """Profile one parameter both ways from the optimum; rows (zeta, x) sorted by x."""
    shift_row = zeta_fn(shift, opt_row[2])
    up = _fill([opt_row, shift_row], zeta_fn, delta, lowcut, upcut, cutoff)
    down = (_fill([shift_row, opt_row], zeta_fn, delta, lowcut, upcut, cutoff)
            if opt_row[1] > lowcut else [])
    pts = {}
    for z, x, _ in up + down:
        if np.isfinite(z) and np.isfinite(x):
            pts.setdefault(float(x), float(z))
    xs = np.array(sorted(pts))
    return xs, np.array([pts[x] for x in xs])


def _varpar_zeta(f, base, opt, w, vp, restarts: bool = False):
    """zeta(x, start) for variance parameter ``w`` (others re-optimised from ``start``).

    With ``restarts`` (terms of 3 or more correlated columns, where the correlations
    meet the positive-definiteness wall) BOBYQA is restarted from its answer and from
    the optimum, and the best value is kept: from the previous grid point alone it can
    stall short of the profile.
    """
    others = np.arange(opt.size) != w
    lo, hi = vp.lower[others], vp.upper[others]

    def zeta(x, start):
        def g(y):
            pars = np.empty(opt.size)
            pars[w], pars[others] = x, y
            return f(pars)

        res = minimize_bobyqa(g, np.clip(start, lo, hi), lo, upper=hi, **OPT_TOL)
        for x0 in ((res.x, np.delete(opt, w)) if restarts else ()):
            again = minimize_bobyqa(g, np.clip(x0, lo, hi), lo, upper=hi, **OPT_TOL)
            if again.fun < res.fun:
                res = again
        if not np.isfinite(res.fun) or res.fun >= 1e299:
            return (np.nan, np.nan, start)
        d = res.fun - base
        if d <= 0:
            d = DEVTOL
        return (np.sign(x - opt[w]) * np.sqrt(d), x, res.x)

    return zeta


def _fixef_zeta(ml, base, j):
    """zeta(beta_j) with beta_j held through an offset and theta re-optimised (lme4's fe.zeta)."""
    d = ml.design
    keep = [i for i in range(d.p) if i != j]
    est = float(ml.fixef.iloc[j])

    def zeta(x, start):
        d2 = dataclasses.replace(d, X=d.X[:, keep], fixef_names=tuple(d.fixef_names[i] for i in keep),
                                 offset=d.offset + d.X[:, j] * x)
        dev = ProfiledDeviance(d2, reml=False)
        res = minimize_bobyqa(dev, ml.theta, d.lower, **OPT_TOL)
        return (np.sign(x - est) * np.sqrt(max(res.fun - base, 0.0)), x, start)

    return zeta


def profile(fit, parm=None) -> dict[str, pd.DataFrame]:
    """Likelihood profiles of the parameters of an LMM or GLMM fit (lme4's ``profile(fit)``).

    Parameters
    ----------
    fit : LikelihoodFit or GlmmFit
        A REML or ML fit (profiles are of the ML deviance, as in lme4), or a Laplace /
        AGQ fit of a GLMM without a scale parameter (the criterion over sd / cor and
        the fixed effects jointly, as lme4 profiles glmer fits).
    parm : list of str, optional
        Parameter names (``sd_(Intercept)|Subject``, ``sigma``, fixed-effect names),
        or ``"theta_"`` / ``"beta_"`` for all variance / fixed-effect parameters.

    Returns
    -------
    dict
        Name -> DataFrame with columns ``value`` and ``zeta`` (sorted by value).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> pr = profile(fit, parm=["sigma"])
    >>> bool(pr["sigma"]["zeta"].abs().max() > 2.0)
    True
    """
    if fit.method in ("laplace", "agq"):
        return _profile_glmm(fit, parm)
    if fit.method not in ("reml", "ml"):
        raise DesignError(f"profile intervals need a likelihood fit, not method={fit.method!r}")
    ml = ml_refit(fit)
    d = ml.design
    vp = VarParMap(d)
    names = list(vp.names) + list(d.fixef_names)
    which = _which(parm, vp.names, d.fixef_names)
    opt = vp.from_theta(ml.theta, ml.sigma)
    f = varpar_deviance(d, vp)
    base = -2.0 * ml.loglik
    cutoff = float(np.sqrt(stats.chi2.ppf(0.99, len(names))))
    delta = cutoff / 8
    out = {}
    for w, name in enumerate(vp.names):
        if name not in which:
            continue
        zfun = _varpar_zeta(f, base, opt, w, vp, restarts=_needs_restarts(d))
        pw = opt[w]
        shift = 1e-3 if pw == 0 else pw * 1.01
        others = np.delete(opt, w)
        xs, zs = _walk(zfun, (0.0, pw, others), shift, delta, vp.lower[w], vp.upper[w], cutoff)
        out[name] = pd.DataFrame({"value": xs, "zeta": zs})
    se = ml.fixef_se.to_numpy()
    for j, name in enumerate(d.fixef_names):
        if name not in which:
            continue
        est = float(ml.fixef.iloc[j])
        zfun = _fixef_zeta(ml, base, j)
        xs, zs = _walk(zfun, (0.0, est, None), est + delta * se[j], delta, -np.inf, np.inf, cutoff)
        out[name] = pd.DataFrame({"value": xs, "zeta": zs})
    return {n: out[n] for n in names if n in out}


def _profile_glmm(fit, parm) -> dict[str, pd.DataFrame]:
    """GLMM profiles (lme4's profile.merMod for glmer): every parameter, the others (sd/cor and
    beta) re-optimised jointly on the Laplace or AGQ criterion."""
    d = fit.design
    if fit.family.has_dispersion:
        raise DesignError("profiles of GLMMs with a scale parameter are not available (nor in lme4); "
                          "use the parametric bootstrap (confint(method='boot'))")
    vp = VarParMap(d, use_sigma=False)
    names = list(vp.names) + list(d.fixef_names)
    which = _which(parm, vp.names, d.fixef_names)
    dev = LaplaceDeviance(d, family=fit.family)
    nv = len(vp.names)

    def f(pars: np.ndarray) -> float:
        theta = vp.to_theta(pars[:nv])
        if theta is None:
            return np.inf
        full = np.concatenate([theta, pars[nv:]])
        try:
            val = dev(full) if fit.nAGQ == 1 else dev.agq(full, fit.nAGQ)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return np.inf
        return float(val) if np.isfinite(val) else np.inf

    opt = np.concatenate([vp.from_theta(fit.theta), fit.fixef.to_numpy()])
    lower = np.concatenate([vp.lower, np.full(d.p, -np.inf)])
    upper = np.concatenate([vp.upper, np.full(d.p, np.inf)])
    jvp = _JointBounds(lower, upper)
    base = float(fit.objective)
    cutoff = float(np.sqrt(stats.chi2.ppf(0.99, len(names))))
    delta = cutoff / 8
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for w, name in enumerate(names):
            if name not in which:
                continue
            zfun = _varpar_zeta(f, base, opt, w, jvp, restarts=_needs_restarts(d))
            pw = opt[w]
            shift = 1e-3 if pw == 0 else pw * 1.01
            xs, zs = _walk(zfun, (0.0, pw, np.delete(opt, w)), shift, delta, lower[w], upper[w], cutoff)
            out[name] = pd.DataFrame({"value": xs, "zeta": zs})
    return out


def _needs_restarts(design) -> bool:
    return any(t.correlated and t.n_cols >= 3 for t in design.reterms)


class _JointBounds:
    """Bounds of the joint (sd / cor, beta) vector, in the shape ``_varpar_zeta`` reads."""

    def __init__(self, lower, upper) -> None:
        self.lower, self.upper = lower, upper


def _which(parm, vnames, fnames) -> list[str]:
    allnames = list(vnames) + list(fnames)
    if parm is None:
        return allnames
    if isinstance(parm, str):
        parm = [parm]
    out = []
    for p in parm:
        if p == "theta_":
            out += list(vnames)
        elif p == "beta_":
            out += list(fnames)
        elif p in allnames:
            out.append(p)
        else:
            raise DesignError(f"unknown parameter {p!r}; parameters are: {', '.join(allnames)}")
    return out


def profile_confint(fit, level: float = 0.95, parm=None, profiles=None) -> pd.DataFrame:
    """Profile-likelihood confidence intervals (lme4's default ``confint(fit)``).

    Parameters
    ----------
    fit : LikelihoodFit or GlmmFit
        A REML or ML fit of a linear mixed model, or a Laplace / AGQ GLMM fit.
    level : float
        Confidence level.
    parm : list of str, optional
        As in :func:`profile`.
    profiles : dict, optional
        Reuse the output of :func:`profile` (for several levels).

    Returns
    -------
    pandas.DataFrame
        Rows ``sd_(Intercept)|Subject``, ``cor_(Intercept).Days|Subject``, ...,
        ``sigma``, then the fixed effects; columns ``2.5 %`` and ``97.5 %``. An
        end beyond the profiled range is the parameter's bound (0 for a standard
        deviation, -1 or 1 for a correlation), as in lme4.

    Notes
    -----
    lme4: ``confint(fit, method = "profile", signames = FALSE)``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> profile_confint(fit).round(2)
                            2.5 %   97.5 %
    sd_(Intercept)|Batch    12.20    84.06
    sigma                   38.23    67.66
    Intercept             1486.45  1568.55
    """
    prof = profile(fit, parm) if profiles is None else profiles
    vp = VarParMap(fit.design)
    a = (1 - level) / 2
    zq = stats.norm.ppf([a, 1 - a])
    rows = {}
    for name, tab in prof.items():
        x, z = tab["value"].to_numpy(), tab["zeta"].to_numpy()
        try:
            ci = BackSpline(x, z)(zq)
        except ValueError:
            warnings.warn(f"bad spline fit for {name}: falling back to linear interpolation", UserWarning,
                          stacklevel=2)
            ci = linear_inverse(x, z, zq) if x.size >= 2 else np.full(2, np.nan)
        if name in vp.names:
            w = vp.names.index(name)
            ci = np.where(np.isnan(ci), [vp.lower[w], vp.upper[w]], ci)
        rows[name] = ci
    cols = [_pct(a), _pct(1 - a)]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def _pct(p: float) -> str:
    """R's ``format.perc(p, 3)``: ``2.5 %``, ``97.5 %``."""
    return f"{100 * p:.3g} %"
