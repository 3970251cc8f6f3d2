"""ArviZ data with the user's names only, on posterior and likelihood fits alike; sampler defects.

The posterior group holds ``beta``, ``b_<group>``, ``sd_<group>``, ``cor_<group>`` (one entry
per pair), ``sigma`` and family parameters; likelihood fits' normal approximation carries
the same variables, none of them constant. Also: options checked before compiling,
warnings pointing at the caller, ``model.pymc_model`` edits kept out of fits, PyTensor's
BLAS warning and rich's ipywidgets message kept out of the output.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed.bayes import sample as sample_mod
from bayesmixed.errors import DesignError, LowESSWarning, SamplingWarning

pytest.importorskip("nutpie")
RUN = dict(draws=200, tune=200, chains=2, progressbar=False)
SLEEP = "Reaction ~ Days + (Days | Subject)"
USER_VARS = ["beta", "b_Subject", "sd_Subject", "cor_Subject", "sigma"]


@pytest.fixture(scope="module")
def model():
    return bm.Model(SLEEP, bm.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def nuts(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return model.fit(method="nuts", random_seed=3, **RUN)


@pytest.fixture(scope="module")
def reml(model):
    return model.fit()


@pytest.fixture(scope="module")
def laplace():
    return bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                    family="binomial").fit()


# ---- the posterior group --------------------------------------------------------------------
def test_posterior_holds_the_model_quantities_only(nuts):
    post = nuts.idata["posterior"]
    assert list(post.data_vars) == USER_VARS
    assert list(post["cor_Subject"].coords["Subject__pair"].values) == ["Intercept:Days"]
    assert post["cor_Subject"].shape == (2, 200, 1)                # no constant diagonal
    cor = np.asarray(post["cor_Subject"])
    assert (np.abs(cor) < 1).all() and cor.std() > 0


def test_groups_named_as_the_response(nuts, model):
    dt = nuts.idata
    for g in ("posterior", "posterior_predictive", "observed_data", "log_likelihood", "sample_stats"):
        assert g in dt.children, g
    for g in ("posterior_predictive", "observed_data", "log_likelihood"):
        assert list(dt[g].data_vars) == ["Reaction"], g
    np.testing.assert_array_equal(dt["observed_data"]["Reaction"].values, model.design.y)
    rep = np.asarray(dt["posterior_predictive"]["Reaction"])
    assert rep.shape == (2, 200, 180)
    # replicates scatter around the observations by about sigma
    resid_sd = (rep - nuts.predict(kind="draws").values).std()
    assert resid_sd == pytest.approx(nuts.sigma, rel=0.15)


def test_varcorr_reads_cor_pairs(nuts):
    cor = np.asarray(nuts.idata["posterior"]["cor_Subject"])[..., 0]
    vc = nuts.varcorr
    assert vc["sdcor"].iloc[2] == pytest.approx(cor.mean())
    tid = nuts.tidy()
    assert tid.loc[tid["term"] == "cor__Intercept.Days", "estimate"].iloc[0] == pytest.approx(cor.mean())


# ---- likelihood fits carry the same variables ---------------------------------------------------
def test_reml_idata_has_the_posterior_variables_none_constant(reml):
    post = reml.idata["posterior"]
    assert list(post.data_vars) == USER_VARS
    for v in post.data_vars:
        x = np.asarray(post[v]).reshape(1000, -1)
        assert (x.std(axis=0) > 0).all(), v
    sd = np.asarray(post["sd_Subject"]).reshape(-1, 2)
    np.testing.assert_allclose(np.median(sd, axis=0), np.sqrt(np.diag(reml.covariances()[0])), rtol=0.1)
    assert np.median(np.asarray(post["sigma"])) == pytest.approx(reml.sigma, rel=0.02)
    # the spread of sigma is the one Satterthwaite's df use: sqrt of A's last diagonal entry
    A = reml._optimum.satterthwaite_pieces[0]
    assert np.asarray(post["sigma"]).std() == pytest.approx(np.sqrt(A[-1, -1]), rel=0.1)
    assert "posterior_predictive" in reml.idata.children and "observed_data" in reml.idata.children


def test_map_idata_matches_reml_idata(model, reml):
    mp = model.fit(method="map")
    post, ref = mp.idata["posterior"], reml.idata["posterior"]
    assert list(post.data_vars) == USER_VARS
    for v in ("sd_Subject", "cor_Subject", "sigma"):
        np.testing.assert_allclose(np.asarray(post[v]).std(axis=(0, 1)), np.asarray(ref[v]).std(axis=(0, 1)),
                                   rtol=0.15, err_msg=v)
    b = np.asarray(post["b_Subject"]).reshape(1000, -1)
    assert (b.std(axis=0) > 0).all()                      # conditional variances, not the point estimate


def test_laplace_idata_counts_and_sd(laplace):
    dt = laplace.idata
    post = dt["posterior"]
    assert list(post.data_vars) == ["beta", "b_herd", "sd_herd"]     # no scale for binomial
    assert np.asarray(post["sd_herd"]).std() > 0
    obs = dt["observed_data"]["incidence"].values
    np.testing.assert_array_equal(obs, bm.load_dataset("cbpp")["incidence"].to_numpy())
    rep = np.asarray(dt["posterior_predictive"]["incidence"])
    assert rep.shape == (1, 1000, 56) and np.all(rep == np.round(rep))


# ---- sampler options are checked before anything compiles ------------------------------------------
def test_misspelt_option_fails_at_once_naming_it():
    m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy").iloc[:120])
    n = len(sample_mod._COMPILED)
    t0 = time.perf_counter()
    with pytest.raises(DesignError, match=r"'draw' \(did you mean 'draws'\?\)"):
        m.fit(method="nuts", draw=200)
    assert time.perf_counter() - t0 < 1.0
    assert len(sample_mod._COMPILED) == n and "pymc_model" not in m.__dict__      # nothing was built


@pytest.mark.parametrize("opts, match", [
    ({"draws": 0}, "draws must be a whole number >= 1"),
    ({"chains": 0}, "chains must be a whole number >= 1"),
    ({"tune": -1}, "tune must be a whole number >= 0"),
    ({"draws": 2.5}, "draws must be a whole number"),
    ({"target_accept": 1.0}, "target_accept must be a number strictly between 0 and 1"),
    ({"target_accept": 0}, "target_accept"),
    ({"random_seed": -1}, "random_seed"),
    ({"maxdepth": "deep"}, "bad value 'deep' for option 'maxdepth'"),
    ({"seed": 1}, "'seed' is not a nutpie option here"),
    ({"sampler": "pymc", "max_treedept": 5}, r"did you mean 'max_treedepth'"),
])
def test_sampler_options_validated(model, opts, match):
    with pytest.raises(DesignError, match=match):
        model.fit(method="nuts", **opts)


# ---- warnings point at the caller -----------------------------------------------------------
def test_sampling_warnings_point_at_the_users_line(model, nuts):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        model.fit(method="nuts", draws=15, tune=5, chains=2, random_seed=3, progressbar=False)
    ours = [w for w in rec if issubclass(w.category, SamplingWarning)]
    assert any(issubclass(w.category, LowESSWarning) for w in ours)
    assert all(w.filename == __file__ for w in ours), [(w.filename, w.lineno) for w in ours]


# ---- model.pymc_model edits stay out of fits ------------------------------------------------------
def test_editing_pymc_model_does_not_leak_into_fits():
    import pymc as pm

    d = bm.load_dataset("sleepstudy")
    m = bm.Model("Reaction ~ Days + (1 | Subject)", d[d["Days"] >= 1])    # a model not compiled before
    with m.pymc_model:
        pm.Deterministic("my_quantity", 2 * m.pymc_model["sigma"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = m.fit(method="nuts", random_seed=1, **RUN)
    assert "my_quantity" not in fit.idata["posterior"]
    assert list(fit.idata["posterior"].data_vars) == ["beta", "b_Subject", "sd_Subject", "sigma"]
    assert "my_quantity" in m.pymc_model.named_vars                  # the user's model is left as it was


# ---- output: no BLAS warning for MAP, no ipywidgets message from PyMC's sampler ------------------------
@pytest.mark.slow
def test_map_does_not_print_the_blas_warning():
    code = ("import bayesmixed as bm\n"
            "bm.Model('Reaction ~ Days + (Days | Subject)', bm.load_dataset('sleepstudy')).fit(method='map')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "BLAS" not in out.stderr, out.stderr


@pytest.mark.slow
def test_pymc_sampler_in_jupyter_without_ipywidgets(monkeypatch, capsys):
    import rich.console

    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    real_has = sample_mod._has
    monkeypatch.setattr(sample_mod, "_has", lambda mod: False if mod == "ipywidgets" else real_has(mod))
    m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = m.fit(method="nuts", sampler="pymc", draws=50, tune=50, chains=1, cores=1, random_seed=1)
    err = capsys.readouterr().err
    assert not [w for w in rec if "ipywidgets" in str(w.message)]
    assert "ipywidgets" not in err
    assert "sampling: 100% (100/100 iterations)" in err            # a text progress line instead
    assert list(fit.idata["posterior"].data_vars) == ["beta", "b_Subject", "sd_Subject", "sigma"]


def test_cor_pairs_normalised_whatever_the_engine(model):
    """Draws from another engine (e.g. the collapsed sampler) end on the contract's dim and labels."""
    import xarray as xr

    from bayesmixed.bayes.idata import pairs_as_in_the_contract, user_posterior

    ds = xr.Dataset({"beta": (("chain", "draw", "fixef"), np.zeros((1, 3, 2))),
                     "cor_Subject": (("chain", "draw", "Subject__cor"), np.full((1, 3, 1), 0.3)),
                     "corr_Subject": (("chain", "draw", "a", "b"), np.ones((1, 3, 2, 2)))},
                    coords={"Subject__cor": ["Intercept.Days"]})
    out = pairs_as_in_the_contract(user_posterior(ds, model.design), model.design)
    assert list(out.data_vars) == ["beta", "cor_Subject"]                   # the matrix is dropped
    assert out["cor_Subject"].dims == ("chain", "draw", "Subject__pair")
    assert list(out["Subject__pair"].values) == ["Intercept:Days"]


def test_per_column_sd_priors_stay_internal():
    """Different priors per column make scalar ``sd_<term>_<i>`` variables: internals, not in the posterior."""
    import xarray as xr

    from bayesmixed.bayes.build import user_variable_names
    from bayesmixed.bayes.idata import user_posterior

    m = bm.Model(SLEEP, bm.load_dataset("sleepstudy"))
    ds = xr.Dataset({n: (("chain", "draw"), np.zeros((1, 2))) for n in ("sd_Subject_0", "sigma", "Intercept_c")})
    assert list(user_posterior(ds, m.design).data_vars) == ["sigma"]
    assert user_variable_names(m.design) == USER_VARS
