"""bayesmixed.plots: each picture has the artists it promises, and the numbers behind them are right.

Posterior fits are represented by ``PosteriorLike``, a fit exposing the shared face
(``method="nuts"``, ``idata`` with ``beta``, ``b_<term>``, ``sigma`` draws), built from
the normal approximation at the REML estimate, so these tests do not sample.
"""

from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from scipy import special  # noqa: E402

import bayesmixed as bm  # noqa: E402
from bayesmixed.errors import DesignError, FitError  # noqa: E402
from bayesmixed.plots import (  # noqa: E402
    pooling_estimates, population_covariance, posterior_predictive, predict_curves, ranef_intervals,
)
from bayesmixed.results.base import MixedFit, varcorr_frame  # noqa: E402


class PosteriorLike(MixedFit):
    """The face of a posterior fit: point summaries are posterior means of ``idata``'s draws."""

    method = "nuts"

    def __init__(self, design, idata, varcorr, covs):
        self.design, self.idata, self._varcorr, self._covs = design, idata, varcorr, covs
        post = idata.posterior
        self._beta = post["beta"].mean(("chain", "draw")).values
        self._b = np.concatenate([post[f"b_{t.name}"].mean(("chain", "draw")).values.ravel()
                                  for t in design.reterms])

    fixef = property(lambda self: pd.Series(self._beta, index=list(self.design.fixef_names)))
    fixef_se = property(lambda self: pd.Series(
        self.idata.posterior["beta"].std(("chain", "draw")).values, index=list(self.design.fixef_names)))
    varcorr = property(lambda self: self._varcorr)

    def _b_vector(self):
        return self._b


@pytest.fixture(scope="module")
def sleep():
    return bm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def reml(sleep):
    return bm.Model("Reaction ~ Days + (Days | Subject)", sleep).fit()


@pytest.fixture(scope="module")
def posterior(reml):
    return PosteriorLike(reml.design, reml.idata, reml.varcorr, reml.covariances())


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _arrows(ax, gid="shrinkage-arrow"):
    return [p for p in ax.patches if p.get_gid() == gid]


def _collection(ax, gid):
    (c,) = [c for c in ax.collections if c.get_gid() == gid]
    return c.get_offsets()


# ---- pooling numbers ---------------------------------------------------------------------------
def test_no_pooling_is_lmlist_and_complete_pooling_is_lm(reml, sleep):
    est = pooling_estimates(reml)
    # lme4: coef(lmList(Reaction ~ Days | Subject, sleepstudy))["308", ] and coef(lm(Reaction ~ Days))
    assert est.no_pooling.loc["308"].to_numpy() == pytest.approx([244.19267, 21.764702], abs=1e-4)
    assert est.no_pooling.loc["335"].to_numpy() == pytest.approx([263.03468, -2.881034], abs=1e-4)
    assert est.complete_pooling.to_numpy() == pytest.approx([251.405105, 10.467286], abs=1e-5)
    for lev in ("309", "372"):
        rows = sleep[sleep["Subject"].astype(str) == lev]
        ols = np.polyfit(rows["Days"], rows["Reaction"], 1)[::-1]
        assert est.no_pooling.loc[lev].to_numpy() == pytest.approx(ols, rel=1e-10)
    assert est.partial_pooling.equals(reml.coef["Subject"][["Intercept", "Days"]])
    assert (est.size == 10).all()


def test_random_intercept_shrinkage_factor_is_exact(sleep):
    """Balanced random-intercept LMM: BLUP - beta0 = lambda (no-pooling - beta0), lambda = s_b^2/(s_b^2 + s^2/n)."""
    fit = bm.Model("Reaction ~ Days + (1 | Subject)", sleep).fit()
    est = pooling_estimates(fit)
    vc = fit.varcorr.set_index("grp")["vcov"]
    lam = vc["Subject"] / (vc["Subject"] + vc["Residual"] / 10)
    b0 = fit.fixef["Intercept"]
    got = est.partial_pooling["Intercept"] - b0
    want = lam * (est.no_pooling["Intercept"] - b0)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6)
    # lme4 VarCorr for this model: Subject sd 37.124, Residual sd 30.991
    assert lam == pytest.approx(37.124**2 / (37.124**2 + 30.991**2 / 10), abs=1e-4)
    ax = bm.plot_shrinkage(fit)
    assert len(_arrows(ax)) == 18
    assert ax.get_xlabel() == "Intercept"
    # the complete-pooling line is lm()'s intercept
    (cp,) = [ln for ln in ax.lines if ln.get_gid() == "complete-pooling"]
    assert cp.get_xdata()[0] == pytest.approx(251.405105, abs=1e-5)


# ---- plot_shrinkage ---------------------------------------------------------------------------
def test_shrinkage_2d_artists(reml):
    ax = bm.plot_shrinkage(reml)
    arrows = _arrows(ax)
    assert len(arrows) == 18
    nop = _collection(ax, "no-pooling")
    part = _collection(ax, "partial-pooling")
    assert nop.shape == part.shape == (18, 2)
    assert np.allclose(part, reml.coef["Subject"][["Intercept", "Days"]].to_numpy())
    # each arrow starts at a no-pooling point and ends at the matching partial-pooling point
    starts = np.array([a._posA_posB[0] for a in arrows])
    ends = np.array([a._posA_posB[1] for a in arrows])
    assert np.allclose(starts, nop) and np.allclose(ends, part)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse) and p.get_gid() == "population-ellipse"]
    assert len(ellipses) == 2
    # the ellipse is the population N(fixef, Sigma): centre and the 95% contour's axes
    cov = population_covariance(reml, "Subject", ["Intercept", "Days"])
    assert cov[0, 1] == pytest.approx(0.06555124 * 24.74065 * 5.922137, rel=1e-3)   # lme4 VarCorr
    e95 = ellipses[1]
    assert np.allclose(e95.center, reml.fixef.to_numpy())
    w = np.linalg.eigvalsh(cov)
    r = np.sqrt(-2 * np.log(0.05))
    assert sorted([e95.width, e95.height]) == pytest.approx(sorted(2 * r * np.sqrt(w)), rel=1e-9)
    # point area grows with group size; sleepstudy is balanced so all equal
    (coll,) = [c for c in ax.collections if c.get_gid() == "partial-pooling"]
    assert np.ptp(coll.get_sizes()) == 0


def test_shrinkage_uncorrelated_ellipse_is_axis_aligned(sleep):
    fit = bm.Model("Reaction ~ Days + (Days || Subject)", sleep).fit()
    cov = population_covariance(fit, "Subject", ["Intercept", "Days"])
    assert cov[0, 1] == 0
    ax = bm.plot_shrinkage(fit)
    (e,) = [p for p in ax.patches if p.get_gid() == "population-ellipse"][1:]
    assert e.angle % 90 == pytest.approx(0, abs=1e-9)
    assert len(_arrows(ax)) == 18


def test_shrinkage_compare_overlay_and_posterior(reml, posterior):
    ax = bm.plot_shrinkage(reml, compare=posterior)
    assert len(_arrows(ax)) == 18
    assert len(_arrows(ax, "shrinkage-arrow-compare")) == 18
    assert _collection(ax, "partial-pooling-compare").shape == (18, 2)
    assert sum(p.get_gid() == "population-ellipse-compare" for p in ax.patches) == 2
    labels = ax.get_legend_handles_labels()[1]
    assert "partial pooling (REML)" in labels and "partial pooling (NUTS)" in labels
    # a posterior fit alone: partial pooling = posterior means
    ax = bm.plot_shrinkage(posterior, params="Days")
    assert len(_arrows(ax)) == 18
    y = _collection(ax, "partial-pooling")[:, 0]
    assert np.allclose(np.sort(y), np.sort(posterior.coef["Subject"]["Days"]))


def test_shrinkage_unbalanced_sizes_and_missing_groups(sleep):
    # drop rows so that groups differ in size; one subject keeps a single row (no separate slope)
    keep = sleep[~((sleep["Subject"].astype(str) == "308") & (sleep["Days"] > 0))]
    keep = keep[~((keep["Subject"].astype(str) == "309") & (keep["Days"] > 4))]
    fit = bm.Model("Reaction ~ Days + (Days | Subject)", keep).fit()
    est = pooling_estimates(fit)
    assert est.size["308"] == 1 and est.size["309"] == 5
    assert est.no_pooling.loc["308"].isna().all()
    ax = bm.plot_shrinkage(fit)
    assert len(_arrows(ax)) == 17                    # no separate fit for 308: no arrow
    assert "1 level(s)" in ax.get_title()
    (coll,) = [c for c in ax.collections if c.get_gid() == "partial-pooling"]
    sizes = pd.Series(coll.get_sizes(), index=est.size.index)
    assert sizes["308"] < sizes["309"] < sizes["310"]


def test_shrinkage_bad_params(reml):
    with pytest.raises(DesignError, match="random-effect columns"):
        bm.plot_shrinkage(reml, params=("Intercept", "Nope"))
    with pytest.raises(DesignError, match="unknown grouping factor"):
        bm.plot_shrinkage(reml, group="Nope")


def test_shrinkage_laplace_glmm():
    """A real Laplace fit (cbpp): no pooling per herd is a binomial GLM with period as offset."""
    cbpp = bm.load_dataset("cbpp")
    fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial").fit()
    est = pooling_estimates(fit)
    # herd 8 has one row (period 1: incidence 12 of 34): its own intercept is logit(12/34)
    assert est.no_pooling.loc["8", "Intercept"] == pytest.approx(special.logit(12 / 34), abs=1e-8)
    # complete pooling = glm(cbind(incidence, size - incidence) ~ period, binomial) in R
    assert est.complete_pooling["Intercept"] == pytest.approx(-1.2690228, abs=1e-6)
    # point size follows the number of trials per herd
    assert est.size.loc["8"] == 34 and est.size.sum() == cbpp["size"].sum()
    ax = bm.plot_shrinkage(fit)
    assert len(_arrows(ax)) == 15
    assert "partial pooling (Laplace)" in ax.get_legend_handles_labels()[1]
    fig = bm.plot_ranef(fit)
    assert len(fig.axes[0].containers[0].lines[2][0].get_segments()) == 15


# ---- plot_ranef --------------------------------------------------------------------------------
def test_caterpillar_reml(reml):
    fig = bm.plot_ranef(reml)
    assert len(fig.axes) == 2
    sd = reml.ranef_condsd["Subject"]
    for ax, col in zip(fig.axes, ["Intercept", "Days"]):
        (cont,) = ax.containers
        segs = cont.lines[2][0].get_segments()
        assert len(segs) == 18
        est = np.array([s[0][0] + s[1][0] for s in segs]) / 2
        half = np.array([s[1][0] - s[0][0] for s in segs]) / 2
        assert np.all(np.diff(est) >= 0)                                  # sorted
        assert np.allclose(np.sort(est), np.sort(reml.ranef["Subject"][col]))
        assert np.allclose(np.sort(half), np.sort(2 * sd[col]))
    # lme4: attr(ranef(fm1, condVar=TRUE)$Subject, "postVar")[1,1,1]^0.5 = 12.07 (balanced: all equal)
    assert sd["Intercept"].to_numpy() == pytest.approx(12.0709, abs=1e-3)


def test_caterpillar_posterior_uses_hdi(reml, posterior):
    ints = ranef_intervals(posterior, prob=0.95)
    sd = reml.ranef_condsd["Subject"]
    width = (ints["Days"]["upper"] - ints["Days"]["lower"]).to_numpy()
    # 1000 normal draws: the 95% HDI is about 2 * 1.96 conditional SD wide
    assert np.allclose(width, 2 * 1.96 * sd["Days"].to_numpy(), rtol=0.15)
    assert (ints["Days"]["lower"] < ints["Days"]["estimate"]).all()
    fig = bm.plot_ranef(posterior, params="Days")
    assert len(fig.axes) == 1
    assert len(fig.axes[0].containers[0].lines[2][0].get_segments()) == 18
    assert "HDI" in fig._suptitle.get_text()


def test_ranef_size_view(sleep):
    keep = sleep[~((sleep["Subject"].astype(str).isin(["308", "309", "310"])) & (sleep["Days"] > 2))]
    fit = bm.Model("Reaction ~ Days + (1 | Subject)", keep).fit()
    fig = bm.plot_ranef(fit, kind="size")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    (cont,) = ax.containers
    x = cont.lines[0].get_xdata()
    assert sorted(x) == sorted([3] * 3 + [10] * 15)
    segs = cont.lines[2][0].get_segments()
    half = np.array([(s[1][1] - s[0][1]) / 2 for s in segs])
    # small groups have wider intervals (less information) ...
    assert half[np.asarray(x) == 3].min() > half[np.asarray(x) == 10].max()
    # ... and are pulled harder: shrinkage factor lambda_g = s_b^2 / (s_b^2 + s^2 / n_g)
    est = pooling_estimates(fit)
    b0 = fit.fixef["Intercept"]
    ratio = (est.partial_pooling["Intercept"] - b0) / (est.no_pooling["Intercept"] - b0)
    assert ratio[est.size == 3].max() < ratio[est.size == 10].min()
    (h,) = [ln for ln in ax.lines if ln.get_gid() == "fixef"]
    assert h.get_ydata()[0] == pytest.approx(b0)


# ---- plot_design -------------------------------------------------------------------------------
def test_design_spy_counts(sleep, reml):
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleep)
    fig = bm.plot_design(model)
    counts = [len(a.lines[0].get_xdata()) for a in fig.axes]
    assert counts == [180 * 2, 18 * 4]                  # Z: 2 per row; A: a 2x2 block per subject
    fig = bm.plot_design(reml, which="A")
    assert len(fig.axes) == 1 and "θ̂" in fig.axes[0].get_title()


def test_design_crossed_fill_in():
    pen = bm.load_dataset("Penicillin")
    fit = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", pen).fit()
    fig = bm.plot_design(fit)
    nz, na = (len(a.lines[0].get_xdata()) for a in fig.axes)
    assert nz == 144 * 2
    # A: 24 + 6 diagonal entries plus the full 24 x 6 plate-sample block on both sides
    assert na == 24 + 6 + 2 * 24 * 6
    # the term boundary is drawn on A in both directions
    assert len(fig.axes[1].lines) == 3


# ---- predictions -------------------------------------------------------------------------------
class FixedGLMM(MixedFit):
    """A binomial random-intercept model with known parameters (no fitting)."""

    method = "laplace"

    def __init__(self, design, beta, b, sd):
        self.design, self._beta, self._b, self._sd = design, np.asarray(beta), np.asarray(b), sd
        self._covs = [np.array([[sd**2]])]

    fixef = property(lambda self: pd.Series(self._beta, index=list(self.design.fixef_names)))
    varcorr = property(lambda self: varcorr_frame(self.design, [np.array([[self._sd**2]])], None))

    def _b_vector(self):
        return self._b


@pytest.fixture(scope="module")
def glmm_data():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(40), 12)
    x = rng.normal(size=g.size)
    b = rng.normal(0, 2.0, 40)
    y = rng.binomial(1, special.expit(-0.5 + 1.5 * x + b[g]))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]}), b


def test_predictions_conditional_vs_marginal(glmm_data):
    data, b = glmm_data
    model = bm.Model("y ~ x + (1 | g)", data, family="binomial")
    fit = FixedGLMM(model.design, [-0.5, 1.5], b, 2.0)
    cur = predict_curves(fit, "x", data=data, levels=["g00", "g01"], n_draws=20000)
    # marginal = E[expit(eta + 2 z)], z ~ N(0,1): Gauss-Hermite check
    z, w = np.polynomial.hermite_e.hermegauss(40)
    eta = -0.5 + 1.5 * cur["x"].to_numpy()
    exact = (special.expit(eta[:, None] + 2.0 * z[None]) * w).sum(1) / w.sum()
    assert np.allclose(cur["marginal"], exact, atol=0.01)
    assert np.allclose(cur["at_zero"], special.expit(eta))
    assert np.allclose(cur["g01"], special.expit(eta + b[1]))
    # the marginal curve is flatter: its largest slope is smaller than the conditional one's
    slope = lambda v: np.max(np.diff(v) / np.diff(cur["x"]))  # noqa: E731
    assert slope(cur["marginal"]) < 0.75 * slope(cur["at_zero"])
    ax = bm.plot_predictions(fit, "x", data=data, n_levels=5)
    gids = [ln.get_gid() for ln in ax.lines]
    assert gids.count("conditional") == 5 and gids.count("marginal") == 1 and gids.count("at-zero") == 1
    assert ax.get_ylabel() == "predicted probability"
    ax = bm.plot_predictions(fit, "x", data=data, kind="distribution", at=[-1.0, 1.0])
    hists = [p for p in ax.patches if p.get_gid() == "distribution-0"]
    assert sum(p.get_height() for p in hists) == 40          # one prediction per level of g
    assert sum(ln.get_gid() in ("marginal-0", "marginal-1") for ln in ax.lines) == 2


def test_predictions_identity_link_marginal_equals_zero_curve(reml, sleep):
    cur = predict_curves(reml, "Days", data=sleep, levels=["308"])
    assert np.allclose(cur["marginal"], cur["at_zero"], atol=0.5)     # MC error only, identity link
    assert cur["at_zero"].iloc[0] == pytest.approx(reml.fixef["Intercept"])
    assert cur["308"].iloc[-1] == pytest.approx(reml.coef["Subject"].loc["308"] @ [1, 9])
    ax = bm.plot_predictions(reml, "Days")             # the fit carries its data frame
    assert [ln.get_gid() for ln in ax.lines].count("at-zero") == 1
    bare = copy.copy(reml)
    bare.data = None
    with pytest.raises(DesignError, match="data="):
        bm.plot_predictions(bare, "Days")


# ---- posterior predictive ----------------------------------------------------------------------
def test_ppc_needs_posterior(reml):
    with pytest.raises(FitError, match="method='nuts'"):
        bm.plot_ppc(reml)


def test_ppc_gaussian(posterior, reml):
    ax = bm.plot_ppc(posterior, num_samples=20)
    gids = [ln.get_gid() for ln in ax.lines]
    assert gids.count("ppc-replicate") == 20 and gids.count("ppc-observed") == 1
    dt = posterior_predictive(posterior, num_samples=20)
    rep = dt["posterior_predictive"]["y"].values.reshape(20, -1)
    assert rep.shape == (20, 180)
    # replicates scatter around the data with the residual sd (plus the coefficient uncertainty)
    resid_sd = np.std(rep - reml.fitted().to_numpy()[None], axis=1)
    assert np.all(np.abs(resid_sd / reml.sigma - 1) < 0.25)


def test_ppc_binomial_counts(glmm_data):
    import arviz as az

    data, b = glmm_data
    model = bm.Model("y ~ x + (1 | g)", data, family="binomial")
    rng = np.random.default_rng(0)
    idata = az.from_dict({"posterior": {
        "beta": np.array([-0.5, 1.5]) + 0.05 * rng.standard_normal((1, 200, 2)),
        "b_g": (b[:, None] + 0.1 * rng.standard_normal((1, 200, 40, 1))),
    }}, coords={"fixef": ["Intercept", "x"], "g": [f"g{k:02d}" for k in range(40)], "g__term": ["Intercept"]},
        dims={"beta": ["fixef"], "b_g": ["g", "g__term"]})
    post = PosteriorLike(model.design, idata, varcorr_frame(model.design, [np.array([[4.0]])], None),
                         [np.array([[4.0]])])
    ax = bm.plot_ppc(post, num_samples=50)
    bars = [p for p in ax.patches]
    assert len(bars) == 2 and sum(p.get_height() for p in bars) == 480
    (cont,) = ax.containers[1:]
    med = cont.lines[0].get_ydata()
    assert med[1] == pytest.approx(data["y"].sum(), rel=0.15)


@pytest.mark.slow
def test_plots_on_a_real_nuts_fit(sleep, reml):
    """The same pictures from the Bayesian engine's PosteriorFit (short NUTS run)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = bm.Model("Reaction ~ Days + (Days | Subject)", sleep).fit(
            method="nuts", draws=300, tune=300, chains=2, random_seed=3, progressbar=False)
    ax = bm.plot_shrinkage(reml, compare=post)
    assert len(_arrows(ax, "shrinkage-arrow-compare")) == 18
    # posterior means of the subjects' coefficients are close to REML's conditional modes
    part = pooling_estimates(post).partial_pooling
    assert np.corrcoef(part["Days"], reml.coef["Subject"]["Days"])[0, 1] > 0.95
    ints = ranef_intervals(post)
    draws = post.idata.posterior["b_Subject"].sel(Subject__term="Days").values.reshape(-1, 18)
    assert ints["Days"]["estimate"].to_numpy() == pytest.approx(draws.mean(0))
    assert ((ints["Days"]["upper"] - ints["Days"]["lower"]) > 2 * reml.ranef_condsd["Subject"]["Days"]).all()
    ax = bm.plot_ppc(post, num_samples=30)
    assert [ln.get_gid() for ln in ax.lines].count("ppc-replicate") == 30
    fig = bm.plot_design(post)
    assert [len(a.lines[0].get_xdata()) for a in fig.axes] == [360, 72]


def test_demo_writes_the_pictures(tmp_path, capsys):
    """``python -m bayesmixed.demo`` (REML part): lme4's summary, the side-by-side table, four PNGs."""
    from bayesmixed.demo import main

    assert main(["--out", str(tmp_path), "--no-nuts"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6283" in out
    assert "Subject: cor(Intercept, Days)" in out and "0.06556" in out
    names = ["shrinkage.png", "shrinkage_2d.png", "caterpillar.png", "design.png"]
    for name in names:
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert str(png) in out
