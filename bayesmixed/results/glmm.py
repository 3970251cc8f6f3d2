"""Results of Laplace / adaptive Gauss-Hermite GLMM fits (lme4's glmerMod), built from the optimum."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from bayesmixed.design.newdata import new_matrices
from bayesmixed.results.display import Summary, r_format, signif_stars
from bayesmixed.results.likelihood import LikelihoodFit
from bayesmixed.results.predict import check_type


def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to one) of the n-point Gauss-Hermite rule for N(0, 1).

    Examples
    --------
    >>> z, w = gauss_hermite(3)
    >>> np.round(z, 4).tolist(), round(float(w.sum()), 12)
    ([-1.7321, 0.0, 1.7321], 1.0)
    """
    z, w = np.polynomial.hermite_e.hermegauss(int(n))
    return z, w / w.sum()


class GlmmFit(LikelihoodFit):
    """A Laplace (nAGQ=1) or adaptive Gauss-Hermite (nAGQ > 1) fit of a GLMM.

    Attributes mirror lme4's glmerMod: ``theta``, ``fixef``, ``ranef`` (conditional
    modes ``b = Lambda u``), ``varcorr``, ``sigma`` (1 unless the family has a scale),
    ``loglik = -criterion / 2`` as glmer reports it, ``deviance`` (sum of the
    conditional deviance residuals, lme4's ``deviance()``), ``vcov`` from the
    Hessian of the criterion over (theta, beta) (lme4's default, ``use.hessian=TRUE``;
    central differences with converged PIRLS, ~1e-6 accurate), ``vcov_rx`` from the
    PIRLS factor (``use.hessian=FALSE``; ``fit(use_hessian=False)`` makes it ``vcov``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                bm.load_dataset("cbpp"), family="binomial").fit()
    >>> round(fit.loglik, 3), fit.n_params
    (-92.026, 5)
    """

    _residual_default = "deviance"

    @property
    def family(self):
        """The family at the optimum (negative binomial: with its estimated shape)."""
        return self._optimum.family

    @property
    def nAGQ(self) -> int:
        """Quadrature points (1: the Laplace approximation)."""
        return int(self._optimum.nAGQ)

    @property
    def shape_estimated(self) -> bool:
        """True when the negative-binomial shape was estimated with the other parameters."""
        return bool(self._optimum.shape_estimated)

    @property
    def _state(self):
        return self._optimum.state

    @property
    def shape(self) -> float | None:
        """Negative binomial size k (Var = mu + mu^2/k); ``glmer.nb``'s theta."""
        return self.family.shape

    @property
    def deviance_criterion(self) -> float:
        """The optimised criterion (glmer's ``-2 logLik``; AGQ omits the saturated log-likelihood)."""
        return self.objective

    @property
    def derivs(self) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of the criterion over (theta, beta) (central differences)."""
        return self._optimum.derivs

    @cached_property
    def vcov_rx(self) -> pd.DataFrame:
        """Covariance of beta from the PIRLS factor: sigma^2 (RX'RX)^{-1} (``use.hessian=FALSE``)."""
        names = list(self.design.fixef_names)
        return pd.DataFrame(self._optimum.vcov_rx(), index=names, columns=names)

    # ---- likelihood summaries -------------------------------------------------------------
    @property
    def n_params(self) -> int:
        # a residual scale (gaussian, Gamma) or an estimated negative-binomial shape count, as in lme4
        extra = 1 if (self.family.has_dispersion or self.shape_estimated) else 0
        return self.design.p + self.design.n_theta + extra

    @property
    def loglik(self) -> float:
        """-criterion / 2, as glmer's ``logLik`` (for nAGQ > 1 without the saturated term, as lme4)."""
        return -0.5 * self.objective

    @property
    def deviance(self) -> float:
        """Sum of the conditional deviance residuals at the modes (lme4's ``deviance()`` for glmer)."""
        return float(self._optimum.dev_resid.sum())

    @property
    def reml_criterion(self):
        return None

    @property
    def reml(self) -> bool:
        return False

    # ---- predictions ----------------------------------------------------------------------
    def predict(self, newdata=None, *, include_random: bool = True, allow_new_levels: bool = False,
                type: str = "response", marginal: bool = False, n_nodes: int = 40) -> pd.Series:
        """Conditional or marginal (population-averaged) predictions.

        Parameters
        ----------
        newdata : DataFrame, optional
        include_random : bool
            Conditional predictions at the estimated random effects (``False``: at b = 0,
            lme4's ``re.form=NA``).
        allow_new_levels : bool
            New levels get b = 0 (conditional) instead of an error.
        type : {"response", "link"}
        marginal : bool
            Average the response over the random-effects distribution instead:
            ``E[g^{-1}(x'beta + z'b)]``, b ~ N(0, Sigma). The random part of each row is
            normal with variance ``sum_t z_t' Sigma_t z_t``, so one Gauss-Hermite rule with
            ``n_nodes`` nodes integrates it exactly for any number of terms.
        """
        if not marginal:
            return super().predict(newdata, include_random=include_random, allow_new_levels=allow_new_levels,
                                   type=type)
        check_type(type)
        eta = self._linear_predictor(newdata, include_random=False, allow_new_levels=True)
        Xis = self._random_design(newdata)
        v = np.zeros(len(eta))
        for Xi, C in zip(Xis, self.covariances()):
            v += np.einsum("ij,jk,ik->i", Xi, C, Xi)
        z, w = gauss_hermite(n_nodes)
        e = eta.to_numpy()[:, None] + np.sqrt(v)[:, None] * z[None, :]
        mu = (self.family.link.linkinv(e) * w).sum(axis=1)
        out = mu if type == "response" else self.family.link.linkfun(mu)
        return pd.Series(out, index=eta.index)

    def _random_design(self, newdata) -> list[np.ndarray]:
        d = self.design
        if newdata is None:
            return [t.Xi for t in d.reterms]
        nd = new_matrices(d, newdata, include_random=True, allow_new_levels=True)
        return list(nd.Xis)

    def r2(self) -> dict[str, float]:
        """Nakagawa-Schielzeth R² on the latent scale (binomial: distribution variance pi²/3 for logit,
        1 for probit, pi²/6 for cloglog; poisson log: log(1 + 1/mean))."""
        return super().r2()

    def _r2_residual_variance(self, var_r: float) -> float:
        d, fam = self.design, self.family
        if fam.name == "binomial":
            return {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}[fam.link.name]
        if fam.name == "poisson" and fam.link.name == "log":
            lam = np.exp(np.mean(d.X @ self._beta + d.offset) + 0.5 * var_r)
            return float(np.log1p(1 / lam))
        raise NotImplementedError(f"R² is not implemented for {fam.name}({fam.link.name})")

    # ---- tables ---------------------------------------------------------------------------------
    def tidy(self, *, conf_int: bool = False, conf_level: float = 0.95, effects=("fixed", "ran_pars"),
             ddf: str = "z") -> pd.DataFrame:
        """broom.mixed-style table: fixed effects with Wald z tests, then variance parameters."""
        return self._tidy(conf_int, conf_level, effects, ddf="z")

    def _fixed_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        z = self.fixef / self.fixef_se
        p = 2 * stats.norm.sf(np.abs(z))
        tab = pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.fixef_se, "z value": z, "Pr(>|z|)": p})
        tab[""] = [signif_stars(v) for v in p]
        return tab

    def summary(self, *, conf_level: float = 0.95, correlation: bool | str | None = None) -> Summary:
        """glmer's ``summary(fit)``: family, criteria, random effects and Wald z tests.

        The criteria line is lme4's: its ``deviance`` column is -2 logLik, not
        ``fit.deviance``; ``correlation`` chooses the correlation block as in
        ``MixedFit.summary``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                bm.load_dataset("cbpp"), family="binomial").fit()
        >>> print("\\n".join(str(fit.summary()).splitlines()[3:6]))
        <BLANKLINE>
             AIC      BIC   logLik deviance df.resid
           194.1    204.2    -92.0    184.1       51
        """
        return super().summary(conf_level=conf_level, correlation=correlation)

    def _summary_title(self) -> str:
        how = ("Laplace Approximation" if self.nAGQ == 1
               else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ}")
        return f"Generalized linear mixed model fit by maximum likelihood ({how}) ['glmerMod']"

    def _summary_header(self) -> list[str]:
        d, fam = self.design, self.family
        famname = {"gamma": "Gamma"}.get(fam.name, fam.name)
        if fam.name == "negativebinomial":
            famname = f"Negative Binomial({r_format([round(fam.shape, 4)])[0]})"   # MASS's name, as glmer.nb
        header = [f" Family: {famname}  ( {fam.link.name} )", f"Formula: {self._formula_line()}"]
        if d.has_user_weights:
            header.append("Weights: (prior weights)")
        return header + self._criteria_lines()
