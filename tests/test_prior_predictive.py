"""Priors you can see (issue 11): prior and prior-predictive draws with the user's names, prior densities,
the prior-predictive check and the priors' picture."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import integrate, stats  # noqa: E402

import bayesmixed as bm  # noqa: E402
from bayesmixed.bayes.prior_predictive import (  # noqa: E402
    lkj_marginal, pair_labels, prior_curves, prior_distribution, sample_prior_predictive,
)
from bayesmixed.bayes.priors import Prior  # noqa: E402
from bayesmixed.plots.priors import plot_prior_predictive, plot_priors  # noqa: E402


@pytest.fixture(scope="module")
def sleep_model():
    return bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"),
                    priors={"sd_Subject[Days]": ("Exponential", {"lam": 0.1})})


@pytest.fixture(scope="module")
def sleep_pp(sleep_model):
    return sample_prior_predictive(sleep_model, draws=200, random_seed=3)


@pytest.fixture(scope="module")
def cbpp_model():
    return bm.Model("p(incidence, size) ~ period + (1 | herd)", bm.load_dataset("cbpp"), family="binomial")


def test_prior_group_has_the_users_names_only(sleep_model, sleep_pp):
    prior = sleep_pp["prior"]
    assert sorted(prior.data_vars) == ["b_Subject", "beta", "cor_Subject", "sd_Subject", "sigma"]
    assert prior["beta"].dims == ("chain", "draw", "fixef")
    assert prior["beta"].coords["fixef"].values.tolist() == ["Intercept", "Days"]
    assert prior["sd_Subject"].coords["Subject__term"].values.tolist() == ["Intercept", "Days"]
    assert prior["cor_Subject"].coords["Subject__pair"].values.tolist() == ["Intercept:Days"]
    assert prior["b_Subject"].dims == ("chain", "draw", "Subject", "Subject__term")
    assert prior.sizes["draw"] == 200 and prior.sizes["chain"] == 1
    assert float(np.abs(prior["cor_Subject"]).max()) < 1


def test_prior_draws_follow_the_priors(sleep_model, sleep_pp):
    prior = sleep_pp["prior"]
    pr = sleep_model.priors
    sd_days = prior["sd_Subject"].sel(Subject__term="Days").values.ravel()
    assert stats.kstest(sd_days, stats.expon(scale=10).cdf).pvalue > 1e-3
    sigma = prior["sigma"].values.ravel()
    assert stats.kstest(sigma, stats.expon(scale=1 / pr.aux["sigma"].args["lam"]).cdf).pvalue > 1e-3
    slope = prior["beta"].sel(fixef="Days").values.ravel()
    assert stats.kstest(slope, stats.norm(0, pr.fixef["Days"].args["sigma"]).cdf).pvalue > 1e-3


def test_prior_predictive_and_observed_data(sleep_model, sleep_pp):
    y = sleep_pp["prior_predictive"]["y"]
    assert y.dims == ("chain", "draw", "obs") and y.shape == (1, 200, 180)
    np.testing.assert_array_equal(sleep_pp["observed_data"]["y"].values, sleep_model.design.y)
    # the cached pymc model is only sampled from
    assert "corr_Subject" not in sleep_model.pymc_model.named_vars


def test_prior_predictive_is_reproducible(sleep_model):
    a = sample_prior_predictive(sleep_model, draws=5, random_seed=11)
    b = sample_prior_predictive(sleep_model, draws=5, random_seed=11)
    np.testing.assert_array_equal(a["prior_predictive"]["y"].values, b["prior_predictive"]["y"].values)


def test_binomial_prior_predictive_counts_with_trials(cbpp_model):
    pp = sample_prior_predictive(cbpp_model, draws=30, random_seed=0)
    y = pp["prior_predictive"]["y"].values
    trials = pp["constant_data"]["trials"].values
    assert np.issubdtype(y.dtype, np.integer) and (y >= 0).all() and (y <= trials).all()
    np.testing.assert_array_equal(pp["observed_data"]["y"].values, bm.load_dataset("cbpp")["incidence"].values)
    assert sorted(pp["prior"].data_vars) == ["b_herd", "beta", "sd_herd"]


def test_flat_priors_and_bad_draws_are_refused(sleep_model):
    m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"), priors={"Days": ("Flat", {})})
    with pytest.raises(bm.DesignError, match="improper.*Days"):
        sample_prior_predictive(m, draws=10)
    with pytest.raises(bm.DesignError, match="draws must be a positive"):
        sample_prior_predictive(sleep_model, draws=0)


# ---- densities -----------------------------------------------------------------------------------

@pytest.mark.parametrize("prior, lo, hi", [
    (Prior("Normal", {"mu": 1, "sigma": 2}), -30, 30), (Prior("StudentT", {"nu": 3, "sigma": 2}), -400, 400),
    (Prior("HalfNormal", {"sigma": 3}), 0, 40), (Prior("HalfStudentT", {"nu": 4, "sigma": 2}), 0, 500),
    (Prior("Exponential", {"lam": 0.5}), 0, 80), (Prior("Gamma", {"alpha": 2, "beta": 3}), 0, 30),
    (Prior("InverseGamma", {"alpha": 3, "beta": 2}), 0, 200), (Prior("LogNormal", {"mu": 0, "sigma": 0.5}), 0, 40),
    (Prior("Uniform", {"lower": 1, "upper": 3}), 0, 4), (Prior("HalfCauchy", {"beta": 1}), 0, 2e4),
])
def test_prior_densities_integrate_to_one(prior, lo, hi):
    dist = prior_distribution(prior)
    total = integrate.quad(dist.pdf, lo, hi, limit=500, points=[0.0, 1.0, 3.0])[0]
    assert total == pytest.approx(1.0, abs=2e-3)


def test_half_student_t_is_twice_the_t_on_the_positive_side():
    d = prior_distribution(Prior("HalfStudentT", {"nu": 3, "sigma": 2}))
    assert d.pdf(1.5) == pytest.approx(2 * stats.t(3, 0, 2).pdf(1.5))
    assert d.pdf(-1.0) == 0
    assert d.ppf(0.5) == pytest.approx(stats.t(3, 0, 2).ppf(0.75))


def test_lkj_marginal_matches_the_2x2_density():
    # 2 x 2: density proportional to (1 - r^2)^(eta - 1)
    r = np.array([-0.5, 0.0, 0.7])
    const = integrate.quad(lambda x: (1 - x * x) ** 2, -1, 1)[0]
    np.testing.assert_allclose(lkj_marginal(3.0, 2).pdf(r), (1 - r * r) ** 2 / const)


def test_prior_curves_follow_the_priors_table(sleep_model):
    curves = prior_curves(sleep_model.priors, {"Subject": 2})
    assert [c.parameter for c in curves] == sleep_model.priors.names
    sd = next(c for c in curves if c.parameter == "sd_Subject[Days]")
    assert sd.x[0] == 0 and sd.density[0] == pytest.approx(0.1)
    assert pair_labels(["a", "b"]) == ["a:b"]


# ---- pictures ------------------------------------------------------------------------------------

def test_plot_priors_one_panel_per_prior(sleep_model):
    m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"), priors={"Days": ("Flat", {})})
    fig = plot_priors(m, ncols=4)
    visible = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title().split("\n")[0] for a in visible] == m.priors.names
    assert [a.get_title().split("\n")[1] for a in visible] == \
        [f"{d}({a})" if d != "LKJCorr" else f"LKJ({a}): one correlation"
         for d, a in zip(m.priors.to_frame()["distribution"], m.priors.to_frame()["args"])]
    lines = [ln for a in visible for ln in a.get_lines() if ln.get_gid() == "prior-density"]
    assert len(lines) == len(visible) - 1
    assert any(t.get_gid() == "prior-improper" for a in visible for t in a.texts)
    plt.close("all")


def test_plot_prior_predictive_continuous(sleep_model, sleep_pp):
    ax = plot_prior_predictive(sleep_pp, num_samples=20)
    assert len([ln for ln in ax.get_lines() if ln.get_gid() == "prior-predictive-replicate"]) == 20
    assert len([ln for ln in ax.get_lines() if ln.get_gid() == "prior-predictive-observed"]) == 1
    assert ax.get_title() == "Prior predictive check"
    ax = plot_prior_predictive(sleep_model, draws=10, random_seed=0)
    assert ax.get_xlabel() == "Reaction"
    plt.close("all")


def test_plot_prior_predictive_binomial_as_proportions(cbpp_model):
    ax = plot_prior_predictive(cbpp_model, draws=40, random_seed=2)
    assert ax.get_xlabel().startswith("proportion")
    bars = [p for p in ax.patches if p.get_gid() == "prior-predictive-observed"]
    assert len(bars) == 25 and sum(b.get_height() for b in bars) == pytest.approx(1.0)
    plt.close("all")


def test_plot_prior_predictive_needs_the_groups():
    with pytest.raises(bm.DesignError, match="prior_predictive"):
        plot_prior_predictive(object())


def test_arviz_runs_on_the_prior_groups_without_warnings(sleep_pp):
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = az.summary(sleep_pp, group="prior", kind="stats")
        az.plot_ppc_dist(sleep_pp, group="prior_predictive")
    assert "cor_Subject[Intercept:Days]" in summary.index and "sigma" in summary.index
    plt.close("all")
