"""Profiled deviance and REML criterion of a linear mixed model (lme4's mkLmerDevfun)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmixed.design.spec import MixedDesign
from bayesmixed.design.streamed import StreamedDesign
from bayesmixed.likelihood._blocked import BlockedFactor, BlockedSystem

LOG2PI = np.log(2 * np.pi)


@dataclass
class PLSState:
    """Penalized least-squares solution at one theta (JSS Sec. 3.4-3.6).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.likelihood.pls import ProfiledDeviance
    >>> dev = ProfiledDeviance(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design, reml=True)
    >>> state = dev.evaluate([1.0])
    >>> round(state.deviance, 6), round(state.pwrss, 3)
    (319.792389, 68222.917)
    """

    theta: np.ndarray
    deviance: float          # ML deviance or REML criterion, as the objective was built
    ldL2: float
    ldRX2: float
    pwrss: float             # r^2(theta): weighted residual SS + |u|^2
    factor: BlockedFactor


class ProfiledDeviance:
    """-2 log profiled likelihood (``reml=False``) or the REML criterion, a function of theta.

    The theta-free cross products are formed once in ``__init__``; each call
    refactors the blocked system (no n x n matrix is ever formed).

    Notes
    -----
    lme4: ``lmer(..., devFunOnly=TRUE)``. Bates et al. (2015, JSS), eqs. 34 and 41.
    With prior weights w the constant ``-sum(log w)`` is included, as lme4 does.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.likelihood.pls import ProfiledDeviance
    >>> m = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff"))
    >>> round(ProfiledDeviance(m.design, reml=True)([1.0]), 6)
    319.792389
    """

    def __init__(self, design: MixedDesign, *, reml: bool) -> None:
        self.design = design
        self.reml = reml
        self.system = (BlockedSystem.from_crossproducts(design) if isinstance(design, StreamedDesign)
                       else BlockedSystem(design))
        self.n_evals = 0

    def evaluate(self, theta: np.ndarray, v_rows: int = 0) -> PLSState:
        """Solve the penalized least-squares problem at ``theta``; the criterion and its pieces.

        ``v_rows``: passed to :meth:`BlockedSystem.factor` (the gradient's extra product).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> from bayesmixed.likelihood.pls import ProfiledDeviance
        >>> dev = ProfiledDeviance(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design, reml=True)
        >>> round(dev.evaluate([1.0]).deviance, 6)
        319.792389
        """
        theta = np.asarray(theta, dtype=float)
        F = self.system.factor(theta, v_rows=v_rows)
        n, p = self.design.n, self.design.p
        ldL2, pwrss = F.ldL2, F.pwrss
        ldRX2 = F.ldRX2 if p else 0.0
        if self.reml:
            nmp = n - p
            dev = ldL2 + ldRX2 + nmp * (1.0 + LOG2PI + np.log(pwrss / nmp)) - self.system.ldW
        else:
            dev = ldL2 + n * (1.0 + LOG2PI + np.log(pwrss / n)) - self.system.ldW
        self.n_evals += 1
        return PLSState(theta=theta, deviance=float(dev), ldL2=ldL2, ldRX2=ldRX2,
                        pwrss=pwrss, factor=F)

    def __call__(self, theta: np.ndarray) -> float:
        try:
            return self.evaluate(theta).deviance
        except np.linalg.LinAlgError:
            return np.inf

    def deviance_varpar(self, varpar: np.ndarray) -> float:
        """Deviance (or REML criterion) as a function of (theta, sigma), not profiled.

        This is lmerTest's ``devfun_vp``: the function whose Hessian gives the
        asymptotic covariance of the variance parameters for Satterthwaite's df.
        At the profiled sigma it equals the profiled criterion.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> from bayesmixed.likelihood.pls import ProfiledDeviance
        >>> dev = ProfiledDeviance(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design, reml=True)
        >>> sigma = dev.sigma(dev.evaluate([1.0]))
        >>> round(dev.deviance_varpar([1.0, sigma]), 6)
        319.792389
        """
        theta, sigma = np.asarray(varpar[:-1], dtype=float), float(varpar[-1])
        st = self.evaluate(theta)
        n, p = self.design.n, self.design.p
        s2 = sigma**2
        dev = st.ldL2 + st.pwrss / s2 + n * np.log(2 * np.pi * s2)
        if self.reml:
            dev += st.ldRX2 - p * np.log(2 * np.pi * s2)
        return float(dev)

    def sigma(self, state: PLSState) -> float:
        """Profiled residual SD at ``state``: ``sqrt(pwrss / (n - p))`` (REML) or ``sqrt(pwrss / n)`` (ML).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> from bayesmixed.likelihood.pls import ProfiledDeviance
        >>> dev = ProfiledDeviance(bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).design, reml=True)
        >>> round(dev.sigma(dev.evaluate([1.0])), 4)
        48.5027
        """
        dof = self.design.n - self.design.p if self.reml else self.design.n
        return float(np.sqrt(state.pwrss / dof))
