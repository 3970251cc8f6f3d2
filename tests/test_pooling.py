"""bayesmixed.pooling and bayesmixed.predictive: the numbers behind the plots, computed without drawing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import bayesmixed as bm
from bayesmixed.families import get_family
from bayesmixed.pooling import (
    glm_fit, is_posterior, pooling_estimates, population_covariance, select_levels, term_covariances,
)
from bayesmixed.predictive import (
    is_discrete, posterior_predictive, ppc_frequencies, predict_curves, predictions_at, predictor_grid,
)
from bayesmixed.results.base import MixedFit


@pytest.fixture(scope="module")
def sleep():
    return bm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def reml(sleep):
    return bm.Model("Reaction ~ Days + (Days | Subject)", sleep).fit()


@pytest.fixture(scope="module")
def cbpp():
    data = bm.load_dataset("cbpp")
    return data, bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", data,
                          family="binomial").fit()


class _Face(MixedFit):
    """A fit face with chosen pieces: fixef/ranef from ``fit``, plus what is passed."""

    method = "nuts"

    def __init__(self, fit, **attrs):
        self.design, self._fit = fit.design, fit
        for k, v in attrs.items():
            setattr(self, k, v)

    fixef = property(lambda self: self._fit.fixef)
    varcorr = property(lambda self: self._fit.varcorr)

    def _b_vector(self):
        return self._fit.b


# ---- the two accessors -------------------------------------------------------------------------
def test_term_covariances_from_varcorr_and_from_the_fit(reml):
    (C,) = term_covariances(reml)
    t = reml.design.reterms[0]
    assert np.allclose(C, t.covariance(reml.theta, reml.sigma), rtol=1e-10)
    # lme4 VarCorr(fm1): sd 24.741, 5.922, corr 0.066
    assert np.sqrt(np.diag(C)) == pytest.approx([24.74065, 5.922137], rel=1e-5)
    # a fit that has covariances() is read through it, not through varcorr
    own = np.array([[4.0, 1.0], [1.0, 9.0]])
    face = _Face(reml, covariances=lambda: [own])
    assert np.array_equal(term_covariances(face)[0], own)
    assert np.array_equal(population_covariance(face, "Subject", ["Days", "Intercept"]), own[::-1, ::-1])


def test_is_posterior_is_structural(reml):
    assert not is_posterior(reml)
    assert is_posterior(_Face(reml, idata=reml.idata))             # draws and no theta
    assert not is_posterior(_Face(reml))                            # neither theta nor draws
    assert not is_posterior(_Face(reml, idata=reml.idata, is_posterior=False))
    assert is_posterior(_Face(reml, is_posterior=lambda: True))


# ---- GLM fits by IRLS ----------------------------------------------------------------------------
def test_glm_fit_closed_forms():
    X = np.ones((5, 1))
    y = np.array([0.0, 2, 3, 1, 4])
    # intercept-only Poisson: log(mean y); binomial with trials: logit(successes / trials)
    assert glm_fit(X, y, get_family("poisson"), np.ones(5), np.zeros(5))[0] == pytest.approx(np.log(2.0))
    n = np.array([4.0, 5, 6, 5, 4])
    got = glm_fit(X, y / n, get_family("binomial"), n, np.zeros(5))[0]
    assert got == pytest.approx(special.logit(10 / 24), abs=1e-10)
    # an offset shifts the intercept
    off = np.full(5, 0.5)
    assert glm_fit(X, y, get_family("poisson"), np.ones(5), off)[0] == pytest.approx(np.log(2.0) - 0.5)
    # MLE at infinity (no successes, all zero counts, separation) and too few rows: not estimable
    assert np.isnan(glm_fit(X, np.zeros(5), get_family("binomial"), n, np.zeros(5))).all()
    assert np.isnan(glm_fit(X, np.zeros(5), get_family("poisson"), np.ones(5), np.zeros(5))).all()
    Xs = np.column_stack([np.ones(4), [0.0, 1, 2, 3]])
    assert np.isnan(glm_fit(Xs, np.array([0.0, 0, 1, 1]), get_family("binomial"), np.ones(4), np.zeros(4))).all()
    assert np.isnan(glm_fit(Xs[:1], y[:1], get_family("gaussian"), np.ones(1), np.zeros(1))).all()


def test_no_pooling_glmm_matches_per_herd_glm(cbpp):
    data, fit = cbpp
    est = pooling_estimates(fit)
    beta = fit.fixef
    for herd in ("1", "5", "13"):
        rows = data[data["herd"].astype(str) == herd]
        off = np.array([beta.get(f"period[T.{p}]", 0.0) for p in rows["period"]])
        s, n = rows["incidence"].to_numpy(), rows["size"].to_numpy()
        # the per-herd MLE solves sum(s) = sum(n expit(a + offset)); check the score is zero
        a = est.no_pooling.loc[herd, "Intercept"]
        assert np.sum(s - n * special.expit(a + off)) == pytest.approx(0.0, abs=1e-8)


# ---- which levels to show ------------------------------------------------------------------------
def test_select_levels(reml):
    est = pooling_estimates(reml)
    levels, note = select_levels(est, "Days", max_levels=9)
    assert len(levels) == len(set(levels)) == 9
    assert est.shrinkage("Days").idxmax() in levels
    assert note == "showing 9 of 18 levels: the 3 most shrunk, 3 largest, 3 smallest"
    assert select_levels(est, "Days", None) == (list(est.partial_pooling.index), "")
    assert select_levels(est, "Days", 18)[1] == ""


# ---- predictions ---------------------------------------------------------------------------------
def test_predictor_grid(cbpp, sleep):
    data, _ = cbpp
    assert predictor_grid(data, "period").tolist() == ["1", "2", "3", "4"]
    g = predictor_grid(sleep, "Days", n_points=10)
    assert g[0] == 0 and g[-1] == 9 and len(g) == 10


def test_predictions_at_categories(cbpp):
    data, fit = cbpp
    p = predictions_at(fit, "period", data=data, n_draws=2000)
    assert list(p.by_level.columns) == ["1", "2", "3", "4"] and p.by_level.shape == (15, 4)
    beta = fit.fixef.to_numpy()
    b = fit.ranef["herd"]["Intercept"]
    assert np.allclose(p.by_level["3"], special.expit(beta[0] + beta[2] + b.reindex(p.by_level.index)))
    cur = predict_curves(fit, "period", data=data, n_draws=2000)
    assert np.allclose(p.marginal.to_numpy(), cur["marginal"].to_numpy())


# ---- posterior predictive ------------------------------------------------------------------------
def test_posterior_predictive_binomial_counts(cbpp):
    data, fit = cbpp
    post = _Face(fit, idata=fit.idata)
    dt = posterior_predictive(post, num_samples=40, seed=1)
    rep = dt["posterior_predictive"]["y"].values.reshape(40, -1)
    yobs = dt["observed_data"]["y"].values
    assert np.array_equal(yobs, data["incidence"].to_numpy())          # successes, not proportions
    assert is_discrete(rep, yobs) and np.all(rep <= data["size"].to_numpy()[None])
    # replicated totals scatter around the observed total
    assert abs(rep.sum(axis=1).mean() / yobs.sum() - 1) < 0.2
    f = ppc_frequencies(rep, yobs)
    assert f["observed"].sum() == len(yobs) and f["value"].iloc[0] == 0
    assert not is_discrete(np.array([0.5, 1.0]))


def test_posterior_predictive_gaussian_uses_sigma_draws(reml):
    post = _Face(reml, idata=reml.idata)
    rep = posterior_predictive(post, num_samples=30)["posterior_predictive"]["y"].values.reshape(30, -1)
    resid = rep - reml.fitted().to_numpy()[None]
    # the residual sd, plus the spread of the coefficient draws
    assert np.all(np.abs(np.std(resid, axis=1) / reml.sigma - 1) < 0.25)
