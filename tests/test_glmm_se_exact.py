"""GLMM fixed-effect standard errors against exact Hessians (tests/reference/glmm_hessian.json).

The reference (``make_reference_round2.R``, part "hessian") differentiates glmmTMB's
exact (automatic-differentiation) gradient by Richardson extrapolation at a
Newton-polished optimum (``reference == "tmb"``), or, for AGQ, Gamma and non-canonical
links, glmer's own deviance function recomputed with converged PIRLS (``"exact"``).
Every SE must agree to 1e-4 relative.

glmmTMB's Laplace approximation takes the log-determinant with the *observed*
information of the conditional density; glmer's (and bayesmixed's) with the *expected*
(Fisher) weights. For canonical links (logit, log) the two coincide; for probit and
cloglog they are different objectives, with different optima (cbpp probit: -2 logLik
185.1667 vs 185.2424) and SEs ~2e-3 apart. The Hessian code is also checked on
glmmTMB's own objective, rebuilt here with observed weights: it reproduces glmmTMB's
-2 logLik and exact-Hessian SEs at glmmTMB's optimum, the Contraception probit model
included.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.likelihood.hessian import central_hessian, glmm_derivs
from conftest import load_reference

REF = load_reference("glmm_hessian")
CASES = [c for c in REF["cases"] if "se_exact" in c]
GLMER = {c["id"]: c for c in load_reference("glmer")["cases"]}
SE_RTOL = 1e-4
NONCANONICAL = {"probit", "cloglog"}


def _data(case) -> pd.DataFrame:
    g = GLMER.get(case["id"])
    if g is not None and g["extra_data"] is not None:
        data = pd.DataFrame(g["extra_data"])
        data["g"] = pd.Categorical(data["g"], categories=sorted(data["g"].unique(), key=int))
        return data
    return bm.load_dataset(case["dataset"])


@lru_cache(maxsize=None)
def _fit(case_id: str):
    case = next(c for c in CASES if c["id"] == case_id)
    model = bm.Model(case["formula"], _data(case), family=case["family"], link=case["link"],
                     weights=case["weights"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(method="laplace" if case["nAGQ"] == 1 else "agq", nAGQ=case["nAGQ"])


def _pars(fit) -> np.ndarray:
    return np.concatenate([fit.theta, fit.fixef.to_numpy()])


def _beta_se(H: np.ndarray, n_theta: int) -> np.ndarray:
    return np.sqrt(np.diag(2 * np.linalg.inv(H))[n_theta:])


def _hessian_se(fit, **kw) -> np.ndarray:
    res = glmm_derivs(fit._optimum.devfun, _pars(fit), nAGQ=fit.nAGQ, f0=fit.objective, u=fit.u, **kw)
    return _beta_se(res.hessian, fit.design.n_theta)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_fixef_se_match_exact_hessian(case):
    fit = _fit(case["id"])
    assert case["se_exact_accuracy"] < 1e-6          # the reference is far more accurate than the tolerance
    np.testing.assert_allclose(fit.fixef_se.to_numpy(), case["se_exact"], rtol=SE_RTOL)


@pytest.mark.parametrize("case", [c for c in CASES if c["id"] in
                                  ("contraception_urban_slope_probit", "verbagg_binomial", "cbpp_cloglog_agq1")],
                         ids=lambda c: c["id"])
def test_hessian_is_converged_in_the_step(case):
    """One stencil at 1% of each standard error against Richardson extrapolation at 3%."""
    fit = _fit(case["id"])
    b = _hessian_se(fit, step=3e-2, levels=2)
    np.testing.assert_allclose(fit.fixef_se.to_numpy(), b, rtol=1e-5)


def _observed_laplace(dev, n_theta):
    """glmmTMB's Laplace objective: the log-determinant with observed-information weights."""
    def crit(p):
        st = dev.pirls(p[:n_theta], p[n_theta:])
        dev.zsystem.reweight(dev.family.newton_weights(dev.y, st.eta, st.mu, dev.wt), None)
        F = dev.zsystem.factor(p[:n_theta], z_only=True)
        return dev.aic(st.mu, st.dev_resid) + st.sqrL + F.ldL2
    return crit


def _theta_from_tmb(tpar: np.ndarray) -> np.ndarray:
    """glmmTMB's (log-SDs, correlation parameter) to lme4's Cholesky theta."""
    if tpar.size == 1:
        return np.exp(tpar)
    s1, s2 = np.exp(tpar[:2])
    rho = tpar[2] / np.sqrt(1 + tpar[2] ** 2)
    return np.array([s1, s2 * rho, s2 * np.sqrt(1 - rho**2)])


@pytest.mark.parametrize("case", [c for c in CASES if c["tmb"] and c["link"] in NONCANONICAL],
                         ids=lambda c: c["id"])
def test_observed_information_laplace_reproduces_glmmTMB(case):
    fit = _fit(case["id"])
    dev, nth = fit._optimum.devfun, fit.design.n_theta
    tmb = case["tmb"]
    par, names = np.asarray(tmb["par"]), np.asarray(tmb["par_names"])
    x = np.concatenate([_theta_from_tmb(par[names == "theta"]), par[names == "beta"]])
    crit = _observed_laplace(dev, nth)
    u_save = dev._u_start.copy()
    try:
        dev._u_start = fit.u.copy()
        assert crit(x) == pytest.approx(tmb["minus2loglik"], rel=1e-11)
        res = central_hessian(crit, x, warm=(lambda: dev._u_start, lambda v: setattr(dev, "_u_start", v)))
    finally:
        dev._u_start = u_save
    np.testing.assert_allclose(_beta_se(res.hessian, nth), tmb["se_exact"], rtol=1e-5)
    # the objectives differ: glmer's SEs are not glmmTMB's for these links
    assert np.max(np.abs(fit.fixef_se.to_numpy() / np.asarray(tmb["se_exact"]) - 1)) > 1e-3


def test_evaluation_count():
    """Pilot over theta only (beta's scales from RX, its pairs reused when their step fits),
    then 2k + k(k - 1) evaluations."""
    fit = _fit("verbagg_binomial")
    V = fit.vcov_rx.to_numpy()
    scales = 1 / np.sqrt(np.diag(np.linalg.inv(V)))
    res = glmm_derivs(fit._optimum.devfun, _pars(fit), f0=fit.objective, u=fit.u, beta_scales=scales)
    k, nth = res.steps.size, fit.design.n_theta
    assert 2 * k + k * (k - 1) <= res.n_evals <= 2 * nth + 2 * k + k * (k - 1)
    np.testing.assert_allclose(_beta_se(res.hessian, nth), next(c for c in CASES if c["id"] == "verbagg_binomial")
                               ["se_exact"], rtol=SE_RTOL)


def test_use_hessian_false_gives_rx_based_se():
    """glmer's ``vcov(fit, use.hessian = FALSE)``: sigma^2 (RX'RX)^{-1} from the PIRLS factor."""
    case = next(c for c in CASES if c["id"] == "cbpp_logit_agq1")
    model = bm.Model(case["formula"], _data(case), family="binomial")
    rx = model.fit(use_hessian=False)
    np.testing.assert_allclose(rx.vcov.to_numpy(), rx.vcov_rx.to_numpy(), rtol=1e-14)
    np.testing.assert_allclose(rx.fixef_se.to_numpy(), case["glmer_tight"]["se_rx"], rtol=1e-4)
    hess = _fit(case["id"])
    assert np.max(np.abs(rx.fixef_se.to_numpy() / hess.fixef_se.to_numpy() - 1)) > 1e-2
