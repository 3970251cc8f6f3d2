"""The JAX route on the CPU: NumPyro and BlackJAX sample the joint model, chains vectorised, same names."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed.errors import SamplingWarning

pytest.importorskip("jax")


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_jax_samplers_agree_with_reml(sampler):
    model = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = model.fit(method="nuts", sampler=sampler, draws=300, tune=300, chains=2, random_seed=2,
                        progressbar=False)
    assert fit.sampler == sampler
    assert sorted(fit.idata["posterior"].data_vars) == ["b_Subject", "beta", "sd_Subject", "sigma"]
    assert fit.idata["posterior"].sizes["chain"] == 2
    reml = model.fit()
    z = (fit.fixef - reml.fixef) / fit.fixef_se
    assert (z.abs() < 3).all(), z
    assert np.isfinite(fit.idata["log_likelihood"]["Reaction"].values).all()


def test_blackjax_loop_vectorises_chains_on_a_known_density():
    """The hand-written BlackJAX loop (PyMC's route fails on current BlackJAX) on N(1, 2^2) x N(-1, 0.5^2)."""
    import jax.numpy as jnp

    from bayesmixed.bayes.jaxroute import _blackjax_chains

    mu, sd = jnp.array([1.0, -1.0]), jnp.array([2.0, 0.5])

    def logp(x):
        return -0.5 * jnp.sum(((x[0] - mu) / sd) ** 2)

    init = [np.zeros((3, 2))]
    pos, stats = _blackjax_chains(logp, init, draws=400, tune=300, chains=3, seed=1, target_accept=0.8)
    x = np.asarray(pos[0])
    assert x.shape == (3, 400, 2)
    np.testing.assert_allclose(x.reshape(-1, 2).mean(axis=0), [1.0, -1.0], atol=0.35)
    np.testing.assert_allclose(x.reshape(-1, 2).std(axis=0), [2.0, 0.5], rtol=0.25)
    assert not np.asarray(stats["diverging"]).any()
