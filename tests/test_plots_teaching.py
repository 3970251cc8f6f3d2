"""Teaching plots for a real class (issue 11): every factor, subsets, labels, size legend, overlays, categories.

And the split of computation from drawing (issue 9): the numbers live in
``bayesmixed.pooling`` / ``bayesmixed.predictive``, the plots only draw.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import inspect  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from scipy import special  # noqa: E402

import bayesmixed as bm  # noqa: E402
import bayesmixed.plots  # noqa: E402
from bayesmixed.errors import DesignError  # noqa: E402
from bayesmixed.plots import pooling_estimates, predict_curves  # noqa: E402
from bayesmixed.results.base import MixedFit  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sleep():
    return bm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def reml(sleep):
    return bm.Model("Reaction ~ Days + (Days | Subject)", sleep).fit()


@pytest.fixture(scope="module")
def penicillin():
    return bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", bm.load_dataset("Penicillin")).fit()


@pytest.fixture(scope="module")
def cbpp():
    data = bm.load_dataset("cbpp")
    fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial").fit()
    return data, fit


@pytest.fixture(scope="module")
def many():
    """85 groups of very unequal size (as the radon case study): a random-intercept LMM."""
    rng = np.random.default_rng(6006)
    size = 1 + rng.multinomial(919 - 85, rng.dirichlet(np.full(85, 0.6)))
    g = np.repeat(np.arange(85), size)
    y = rng.normal(1.46, 0.33, 85)[g] + rng.normal(0, 0.76, g.size)
    data = pd.DataFrame({"y": y, "g": [f"C{j:02d}" for j in g]})
    return bm.Model("y ~ 1 + (1 | g)", data).fit()


def _gid(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def _offsets(ax, gid):
    (c,) = [c for c in ax.collections if c.get_gid() == gid]
    return c


def _segments(ax):
    return ax.containers[0].lines[2][0].get_segments()


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# ---- plot_ranef: every grouping factor ---------------------------------------------------------
def test_ranef_crossed_draws_every_factor(penicillin):
    fig = bm.plot_ranef(penicillin)
    assert [a.get_title() for a in fig.axes] == ["plate: Intercept", "sample: Intercept"]
    assert [len(_segments(a)) for a in fig.axes] == [24, 6]
    assert "plate, sample" in fig._suptitle.get_text()
    # the estimates of each panel are that factor's conditional modes
    for a, g in zip(fig.axes, ["plate", "sample"]):
        est = np.array([(s[0][0] + s[1][0]) / 2 for s in _segments(a)])
        assert np.allclose(np.sort(est), np.sort(penicillin.ranef[g]["Intercept"]))
        assert {t.get_text() for t in a.get_yticklabels()} == set(penicillin.ranef[g].index.astype(str))


def test_ranef_one_factor_on_request(penicillin):
    fig = bm.plot_ranef(penicillin, group="sample")
    assert len(fig.axes) == 1 and len(_segments(fig.axes[0])) == 6
    fig = bm.plot_ranef(penicillin, kind="size")
    assert len(fig.axes) == 2
    with pytest.raises(DesignError, match="unknown random-effect column"):
        bm.plot_ranef(penicillin, params="Days")


def test_ranef_many_levels_bounded_and_labelled(many):
    fig = bm.plot_ranef(many)
    assert fig.get_figheight() <= 9
    (a,) = fig.axes
    assert len(_segments(a)) == 85
    names = [t.get_text() for t in a.get_yticklabels()]
    assert names and all(n.startswith("C") for n in names)          # level names, not 0..84


# ---- plot_shrinkage: subsets, labels, sizes ----------------------------------------------------
def test_shrinkage_levels_subset(reml):
    ax = bm.plot_shrinkage(reml, params="Days", levels=["308", "309", "310"])
    assert len(_gid(ax, "shrinkage-arrow")) == 3
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == ["308", "309", "310"]
    x = _offsets(ax, "partial-pooling").get_offsets()[:, 0]
    assert np.allclose(np.sort(x), np.sort(reml.coef["Subject"].loc[["308", "309", "310"], "Days"]))
    assert "showing 3 of 18 levels" in ax.get_title()
    ax = bm.plot_shrinkage(reml, levels=["308", "335"])                  # 2-D: the subset, labelled
    assert len(_gid(ax, "shrinkage-arrow")) == 2
    assert sorted(t.get_text() for t in ax.texts if t.get_gid() == "level-label") == ["308", "335"]
    with pytest.raises(DesignError, match="unknown level"):
        bm.plot_shrinkage(reml, levels=["308", "999"])


def test_shrinkage_many_groups_shows_a_readable_subset(many):
    ax = bm.plot_shrinkage(many)
    est = pooling_estimates(many)
    assert len(_gid(ax, "shrinkage-arrow")) <= 30
    assert len(_offsets(ax, "partial-pooling").get_offsets()) == 30
    assert ax.figure.get_figheight() <= 9
    assert "showing 30 of 85 levels" in ax.get_title()
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert len(shown) == 30 and all(s.startswith("C") for s in shown)
    # the subset holds the most-shrunk, the largest and the smallest levels
    assert est.shrinkage("Intercept").idxmax() in shown
    assert est.size.idxmax() in shown and est.size.idxmin() in shown
    # all of them on request, still named on the axis and bounded in height
    ax = bm.plot_shrinkage(many, max_levels=None)
    assert len(_offsets(ax, "partial-pooling").get_offsets()) == 85
    assert ax.figure.get_figheight() <= 14
    assert all(t.get_text().startswith("C") for t in ax.get_yticklabels())


def test_shrinkage_size_legend(sleep, reml):
    keep = sleep[~((sleep["Subject"].astype(str) == "308") & (sleep["Days"] > 2))]
    fit = bm.Model("Reaction ~ Days + (Days | Subject)", keep).fit()
    for ax in (bm.plot_shrinkage(fit), bm.plot_shrinkage(fit, params="Intercept")):
        texts = _legend_texts(ax)
        assert "3 rows per Subject" in texts and "10 rows per Subject" in texts
        leg = ax.get_legend()
        keys = [h for h, t in zip(leg.legend_handles, texts) if t.endswith("per Subject")]
        assert [round(h.get_markersize() ** 2) for h in keys] == [15, 160]      # the plotted areas
    # balanced data: every point has the same size, so no size entries
    assert not any("per Subject" in t for t in _legend_texts(bm.plot_shrinkage(reml)))


def test_shrinkage_binomial_size_legend_counts_trials(cbpp):
    _, fit = cbpp
    texts = _legend_texts(bm.plot_shrinkage(fit))
    assert any(t.endswith("trials per herd") for t in texts)


def _overlaps(ax, artist) -> bool:
    ax.figure.canvas.draw()
    r = ax.figure.canvas.get_renderer()
    a, b = ax.get_window_extent(r), artist.get_window_extent(r)
    return not (b.x0 >= a.x1 or b.x1 <= a.x0 or b.y0 >= a.y1 or b.y1 <= a.y0)


def test_compare_overlay_readable(reml):
    post = _PosteriorMeans(reml)
    for ax in (bm.plot_shrinkage(reml, compare=post), bm.plot_shrinkage(reml, params="Days", compare=post)):
        main, over = _offsets(ax, "partial-pooling"), _offsets(ax, "partial-pooling-compare")
        # the compared fit's markers are open, on top: the filled REML markers stay visible underneath
        assert np.all(over.get_facecolors()[:, 3] == 0) and over.get_zorder() > main.get_zorder()
        assert np.all(main.get_facecolors()[:, 3] == 1)
        # the legend sits outside the data area
        assert not _overlaps(ax, ax.get_legend())
        assert "partial pooling (NUTS)" in _legend_texts(ax)


class _PosteriorMeans(MixedFit):
    """A posterior-looking fit: the REML estimates, marked as a posterior fit."""

    method = "nuts"
    is_posterior = True

    def __init__(self, fit):
        self.design, self._fit = fit.design, fit

    fixef = property(lambda self: self._fit.fixef)
    varcorr = property(lambda self: self._fit.varcorr)
    idata = property(lambda self: self._fit.idata)

    def covariances(self):
        return self._fit.covariances()

    def _b_vector(self):
        return self._fit.b


# ---- plot_predictions: categorical predictor ---------------------------------------------------
def test_predictions_categorical_predictor(cbpp):
    data, fit = cbpp
    ax = bm.plot_predictions(fit, "period", data=data, levels=["1", "2"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    cur = predict_curves(fit, "period", data=data, levels=["1", "2"])
    beta = fit.fixef.to_numpy()
    eta = beta[0] + np.r_[0.0, beta[1:]]
    assert np.allclose(cur["at_zero"], special.expit(eta))
    b1 = fit.ranef["herd"].loc["1", "Intercept"]
    assert np.allclose(cur["1"], special.expit(eta + b1))
    assert np.all(cur["lower"] < cur["marginal"]) and np.all(cur["marginal"] < cur["upper"])
    # one point per category and level, and the marginal with its interval per category
    assert [ln.get_gid() for ln in ax.lines].count("conditional") == 2
    (bars,) = ax.containers
    y = bars.lines[0].get_ydata()
    assert np.allclose(y, cur["marginal"])
    segs = bars.lines[2][0].get_segments()
    assert np.allclose([s[0][1] for s in segs], cur["lower"]) and np.allclose([s[1][1] for s in segs], cur["upper"])
    # the distribution view takes every category
    ax = bm.plot_predictions(fit, "period", data=data, kind="distribution")
    for k in range(4):
        assert sum(p.get_height() for p in _gid(ax, f"distribution-{k}")) == 15
    assert "period = 1" in _legend_texts(ax)


def test_predictions_string_and_boolean_predictors(sleep):
    data = sleep.copy()
    data["phase"] = np.where(data["Days"] > 4, "late", "early")          # pandas' default str dtype
    data["late"] = data["Days"] > 4
    for x, names in (("phase", ["early", "late"]), ("late", ["False", "True"])):
        fit = bm.Model(f"Reaction ~ {x} + (1 | Subject)", data).fit()
        ax = bm.plot_predictions(fit, x, data=data)
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        (bars,) = ax.containers
        b = fit.fixef.to_numpy()
        assert bars.lines[0].get_ydata()[1] - bars.lines[0].get_ydata()[0] == pytest.approx(b[1], abs=1.0)
        ax = bm.plot_predictions(fit, x, data=data, kind="distribution")
        assert _legend_texts(ax) == [f"{x} = {n}" for n in names]


# ---- computation lives outside the plots ---------------------------------------------------------
def test_plots_read_no_strings():
    """No plot parses varcorr, or branches on family names or method strings."""
    src = "\n".join(Path(m.__file__).read_text() for m in _plot_modules())
    for needle in ("varcorr", "family.name", "method ==", "method in", "POSTERIOR_METHODS", "def _glm_fit",
                   "linkinv("):
        assert needle not in src, needle
    # the compute modules: no family-name branches; covariances from fit.covariances(), never varcorr
    import bayesmixed.pooling
    import bayesmixed.predictive

    for mod in (bayesmixed.pooling, bayesmixed.predictive):
        text = Path(mod.__file__).read_text()
        assert "family.name" not in text and ".method ==" not in text and "method in" not in text
    for mod in (bayesmixed.pooling, bayesmixed.predictive):
        assert "varcorr" not in Path(mod.__file__).read_text()
    assert "fit.covariances()" in inspect.getsource(bayesmixed.pooling.term_covariances)


def _plot_modules():
    pkg = Path(bayesmixed.plots.__file__).parent
    import importlib

    return [importlib.import_module(f"bayesmixed.plots.{p.stem}") for p in sorted(pkg.glob("*.py"))
            if p.stem != "__init__"] + [bayesmixed.plots]


def test_plot_modules_are_small():
    for m in _plot_modules():
        src = inspect.getsource(m)
        assert src.count("\n") < 500, m.__name__
        for name, fn in inspect.getmembers(m, inspect.isfunction):
            if fn.__module__ == m.__name__:
                assert len(inspect.getsource(fn).splitlines()) <= 80, f"{m.__name__}.{name}"
