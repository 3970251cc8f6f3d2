"""The compiled response pass and the single GLM fit against the families' NumPy members."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from bayesmixed.families import FAMILIES, get_family
from bayesmixed.likelihood._pirls_kernel import response_pass
from bayesmixed.likelihood.glm import GlmResponse, glm_fit

ALL = [(name, link) for name, (default, links) in FAMILIES.items() for link in links]


def _data(fam, rng, n=200):
    lo, hi = (0.05, 0.95) if fam.name == "binomial" else (0.5, 3.0)
    mu = rng.uniform(lo, hi, n)
    y = {"gaussian": lambda: mu + rng.normal(size=n), "binomial": lambda: rng.integers(0, 5, n) / 4.0,
         "poisson": lambda: rng.poisson(mu).astype(float),
         "negativebinomial": lambda: rng.poisson(mu).astype(float),
         "gamma": lambda: rng.gamma(2.0, mu / 2.0)}[fam.name]()
    return y, fam.link.linkfun(mu), rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("name,link", ALL)
def test_response_pass_equals_family_members(name, link):
    fam = get_family(name, link, shape=2.5) if name == "negativebinomial" else get_family(name, link)
    y, eta, wt = _data(fam, np.random.default_rng(0))
    mu, mu_eta, var, dev = response_pass(fam.code, fam.link.code, float(fam.shape or 1.0), y, wt, eta)
    assert_allclose(mu, fam.link.linkinv(eta), rtol=1e-12)
    assert_allclose(mu_eta, fam.link.mu_eta(eta), rtol=1e-12)
    assert_allclose(var, fam.variance(fam.link.linkinv(eta)), rtol=1e-12)
    assert_allclose(dev, fam.dev_resids(y, fam.link.linkinv(eta), wt), rtol=1e-9, atol=1e-12)


def test_logit_deviance_is_stable_in_eta():
    fam = get_family("binomial")
    resp = GlmResponse(fam, np.array([0.25, 0.75]), np.array([4.0, 4.0]))
    dev = resp.devres(None, np.array([60.0, -60.0]))
    # 2 wt [y log y + (1-y) log(1-y) + log(1 + e^eta) - y eta], with no clipping of mu
    sat = 0.25 * np.log(0.25) + 0.75 * np.log(0.75)
    assert_allclose(dev, 8 * (sat + np.array([60 - 15, 45.0])), rtol=1e-12)


def test_glm_fit_is_the_maximum_likelihood_fit():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(300), rng.normal(size=300)])
    y = rng.poisson(np.exp(0.3 + 0.5 * X[:, 1])).astype(float)
    fam = get_family("poisson")
    beta = glm_fit(X, y, fam)
    mu = np.exp(X @ beta)
    assert_allclose(X.T @ (y - mu), 0, atol=1e-8)          # the score equations


@pytest.mark.parametrize("name,link", [("binomial", "logit"), ("poisson", "log"), ("gamma", "log")])
def test_fused_compiled_and_numpy_paths_agree(name, link):
    """Fused NumPy (canonical binomial / poisson), the compiled pass, and the plain Family
    members (what a family the kernels do not know gets) give the same response."""
    fam = get_family(name, link)
    y, eta, wt = _data(fam, np.random.default_rng(2))

    class Unknown(type(fam)):            # a family with a code the kernels were not written for
        code = 99

    new = Unknown(fam.name, fam.link, fam.canonical, fam.shape)
    base = GlmResponse(fam, y, wt)
    other = GlmResponse(new, y, wt)
    assert not other.compiled and other._fused is None
    compiled = response_pass(fam.code, fam.link.code, 1.0, y, wt, eta)
    for got in (base.evaluate(eta), other.evaluate(eta)):
        for a, b in zip(got, compiled):
            assert_allclose(a, b, rtol=1e-9, atol=1e-12)
