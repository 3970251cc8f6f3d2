"""One result contract for every fit: tidy's columns, covariances(), varcorr, summary, predict core.

Also the shape of the layers: results build fits from what engines return and import
no engine; no module here imports the package's own modules inside a function.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.model import FITTERS
from bayesmixed.results.base import TIDY_COLUMNS, MixedFit
from bayesmixed.results.posterior import PosteriorFit
from bayesmixed.results.predict import eta_draws

PKG = Path(bm.__file__).parent
SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def sleep_model():
    return bm.Model(SLEEP, bm.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def reml(sleep_model):
    return sleep_model.fit()


@pytest.fixture(scope="module")
def laplace():
    return bm.Model(CBPP, bm.load_dataset("cbpp"), family="binomial").fit()


@pytest.fixture(scope="module")
def map_fit(sleep_model):
    return sleep_model.fit(method="map")


@pytest.fixture(scope="module")
def posterior(reml):
    """A PosteriorFit from synthetic draws around the REML estimate (no sampling)."""
    import arviz as az

    d = reml.design
    t = d.reterms[0]
    rng = np.random.default_rng(0)
    C, D = 2, 50
    sd = np.sqrt(np.diag(reml.covariances()[0]))
    post = {
        "beta": reml.fixef.to_numpy() + 0.1 * rng.standard_normal((C, D, d.p)),
        f"b_{t.name}": reml.ranef["Subject"].to_numpy() + 0.1 * rng.standard_normal((C, D, t.n_levels, 2)),
        f"sd_{t.name}": sd * np.exp(0.05 * rng.standard_normal((C, D, 2))),
        "sigma": reml.sigma * np.exp(0.05 * rng.standard_normal((C, D))),
    }
    r = np.tanh(0.07 + 0.05 * rng.standard_normal((C, D)))
    post[f"cor_{t.name}"] = r[..., None]                      # one entry per pair: "Intercept:Days"
    coords = {"fixef": list(d.fixef_names), t.group_dim: list(t.levels), t.term_dim: list(t.cnames),
              f"{t.name}__pair": ["Intercept:Days"]}
    dims = {"beta": ["fixef"], f"b_{t.name}": [t.group_dim, t.term_dim], f"sd_{t.name}": [t.term_dim],
            f"cor_{t.name}": [f"{t.name}__pair"]}
    idata = az.from_dict({"posterior": post}, coords=coords, dims=dims)
    draws = SimpleNamespace(design=d, idata=idata, priors=None, sampler="test", timings={}, settings={"tune": 0},
                            diagnostics={"divergences": 0}, param_names=["beta"],
                            simulate=lambda mu, rng, trials=None: rng.normal(mu, reml.sigma))
    return PosteriorFit(draws)


# ---- tidy ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reml", "laplace", "map_fit", "posterior"])
def test_tidy_has_one_column_contract(name, request):
    fit = request.getfixturevalue(name)
    assert list(fit.tidy().columns) == TIDY_COLUMNS
    ci = fit.tidy(conf_int=True)
    assert list(ci.columns) == TIDY_COLUMNS + ["conf_low", "conf_high"]
    fixed = ci[ci["effect"] == "fixed"]
    assert list(fixed["term"]) == list(fit.fixef.index)
    np.testing.assert_allclose(fixed["estimate"].to_numpy(), fit.fixef.to_numpy())
    assert (fixed["conf_low"] < fixed["estimate"]).all() and (fixed["estimate"] < fixed["conf_high"]).all()
    ran = ci[ci["effect"] == "ran_pars"]
    np.testing.assert_allclose(ran["estimate"].to_numpy(), fit.varcorr["sdcor"].to_numpy())


def test_posterior_tidy_has_no_tests_and_draw_intervals(posterior):
    tab = posterior.tidy(conf_int=True, conf_method="eti", conf_level=0.5)
    assert tab[["statistic", "df", "p_value"]].isna().all().all()
    days = np.asarray(posterior.idata["posterior"]["beta"])[..., 1].ravel()
    assert tab["conf_low"].iloc[1] == pytest.approx(np.quantile(days, 0.25))
    assert tab["std_error"].iloc[1] == pytest.approx(days.std(ddof=1))


def test_map_tidy_is_wald_z_and_matches_reml(map_fit, reml):
    tab = map_fit.tidy()
    fixed = tab[tab["effect"] == "fixed"]
    np.testing.assert_allclose(fixed["statistic"].to_numpy(), (map_fit.fixef / map_fit.fixef_se).to_numpy())
    assert fixed["df"].isna().all() and (fixed["p_value"] < 1e-4).all()
    ref = reml.tidy()
    np.testing.assert_allclose(tab["estimate"].to_numpy(), ref["estimate"].to_numpy(), rtol=1e-3)
    assert list(tab["term"]) == list(ref["term"])


# ---- covariances and varcorr ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reml", "laplace", "map_fit", "posterior"])
def test_covariances_give_varcorr(name, request):
    fit = request.getfixturevalue(name)
    covs = fit.covariances()
    assert len(covs) == len(fit.design.reterms)
    for t, C in zip(fit.design.reterms, covs):
        assert C.shape == (t.n_cols, t.n_cols)
        np.testing.assert_allclose(C, C.T)
    vc = fit.varcorr
    var = vc[(vc["grp"] != "Residual") & vc["var2"].isna()]["vcov"].to_numpy()
    np.testing.assert_allclose(var, np.concatenate([np.diag(C) for C in covs]))
    covs[0][0, 0] = -1.0                                      # a copy: the fit is not changed
    assert fit.covariances()[0][0, 0] > 0


def test_posterior_varcorr_is_posterior_means(posterior):
    p = posterior.idata["posterior"]
    sd, cor, sig = (np.asarray(p[k]) for k in ("sd_Subject", "cor_Subject", "sigma"))
    vc = posterior.varcorr
    np.testing.assert_allclose(vc["sdcor"].to_numpy(),
                               [sd[..., 0].mean(), sd[..., 1].mean(), cor[..., 0].mean(), sig.mean()])
    np.testing.assert_allclose(vc["vcov"].iloc[2], (sd[..., 0] * sd[..., 1] * cor[..., 0]).mean())
    assert vc["vcov"].iloc[-1] == pytest.approx((sig**2).mean())
    assert posterior.sigma == pytest.approx(sig.mean())


def test_glmm_sigma_and_no_residual_row(laplace):
    assert laplace.sigma == 1.0                               # lme4's sigma() for binomial
    assert list(laplace.varcorr["grp"]) == ["herd"]


# ---- summary, residuals, predict --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reml", "laplace", "map_fit", "posterior"])
def test_one_summary(name, request):
    fit = request.getfixturevalue(name)
    text = str(fit.summary())
    assert "Random effects:" in text and "Fixed effects:" in text and "Number of obs:" in text
    assert "<table" in fit.summary()._repr_html_()


def test_residual_types_from_the_family(reml, laplace):
    r = reml.residuals()
    np.testing.assert_allclose(reml.residuals("pearson"), r)
    np.testing.assert_allclose(reml.residuals("deviance"), r, atol=1e-9)
    np.testing.assert_allclose(laplace.residuals(), laplace.residuals("deviance"))
    with pytest.raises(bm.DesignError, match="type must be"):
        reml.residuals("studentized")


def test_predict_core_over_draws(reml):
    d = reml.design
    beta = np.vstack([reml.fixef.to_numpy()] * 3)
    b = np.vstack([reml.b, np.zeros(d.q), reml.b])
    eta, index = eta_draws(d, beta, b)
    assert eta.shape == (3, d.n) and list(index) == list(d.index)
    np.testing.assert_allclose(eta[0], reml.predict(type="link").to_numpy())
    np.testing.assert_allclose(eta[1], reml.predict(include_random=False).to_numpy())
    new = pd.DataFrame({"Days": [1.0], "Subject": ["nobody"]})
    eta_new, _ = eta_draws(d, beta, b, new, allow_new_levels=True)
    np.testing.assert_allclose(eta_new[:, 0], reml.fixef @ np.array([1.0, 1.0]))


def test_posterior_predict_uses_every_draw(posterior):
    draws = posterior.predict(kind="draws")
    assert draws.shape == (2, 50, posterior.nobs)
    np.testing.assert_allclose(posterior.predict().to_numpy(), posterior._linear_predictor().to_numpy(),
                               rtol=1e-10)
    pp = posterior.predict(kind="predictive", random_seed=1)
    assert pp.shape == draws.shape


# ---- layers ------------------------------------------------------------------------------------------
def test_model_fit_is_a_table():
    assert set(FITTERS) == {"reml", "ml", "laplace", "agq", "nuts", "map"}
    assert all(issubclass(f.result, MixedFit) for f in FITTERS.values())


def _own_imports(path: Path):
    """(module imported, inside a function?) for each import of bayesmixed in ``path``."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, in_func):
        for child in ast.iter_child_nodes(node):
            inner = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("bayesmixed"):
                out.append((child.module, in_func))
            elif isinstance(child, ast.Import):
                out.extend((a.name, in_func) for a in child.names if a.name.startswith("bayesmixed"))
            visit(child, inner)

    visit(tree, False)
    return out


OWN = ["results/base.py", "results/display.py", "results/glmm.py", "results/idata.py", "results/likelihood.py",
       "results/map.py", "results/posterior.py", "results/predict.py", "likelihood/lmm.py", "likelihood/glmm.py",
       "results/posterior_stats.py", "bayes/map.py", "bayes/sample.py", "bayes/idata.py", "bayes/options.py",
       "bayes/__init__.py", "model.py", "compare.py", "__init__.py",
       "demo.py"]


@pytest.mark.parametrize("rel", OWN)
def test_no_imports_of_the_package_inside_functions(rel):
    assert [m for m, inside in _own_imports(PKG / rel) if inside] == []


@pytest.mark.parametrize("rel", [p for p in OWN if p.startswith("results/")])
def test_results_import_no_engine(rel):
    bad = [m for m, _ in _own_imports(PKG / rel)
           if m.startswith(("bayesmixed.likelihood", "bayesmixed.bayes", "bayesmixed.model", "bayesmixed.plots",
                            "bayesmixed.compare"))]
    assert bad == []


def test_engines_import_no_results():
    for rel in ("likelihood/lmm.py", "likelihood/glmm.py", "bayes/map.py", "bayes/sample.py", "bayes/idata.py"):
        assert not [m for m, _ in _own_imports(PKG / rel) if m.startswith("bayesmixed.results")], rel


def test_fits_warn_as_before(sleep_model):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sleep_model.fit()
    assert not [w for w in rec if issubclass(w.category, bm.SingularFitWarning)]


def test_fits_say_whether_they_are_posteriors(reml, laplace, map_fit, posterior):
    assert (reml.is_posterior, laplace.is_posterior, map_fit.is_posterior, posterior.is_posterior) == \
        (False, False, False, True)
    with pytest.raises(bm.DesignError, match="not a posterior fit"):
        bm.compare({"a": reml, "b": posterior})
