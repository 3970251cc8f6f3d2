"""A notebook's ArviZ cells, unchanged, on a REML fit, a Laplace fit and a NUTS fit.

No ``var_names`` and every warning an error: the same ArviZ code runs on every kind of fit
(issue 11: the constant correlation diagonal made arviz_stats divide by zero and
``plot_trace_dist`` fail with "Too many bins for data range"; likelihood fits had no
``sd_*``/``cor_*``; no ``posterior_predictive`` group was attached).
"""

from __future__ import annotations

import warnings

import pytest

import bayesmixed as bm
from bayesmixed.errors import SamplingWarning

pytest.importorskip("nutpie")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
az = pytest.importorskip("arviz")

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def fits():
    sleep = bm.Model(SLEEP, bm.load_dataset("sleepstudy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        nuts = sleep.fit(method="nuts", draws=200, tune=200, chains=2, random_seed=3, progressbar=False)
    return {"reml": sleep.fit(),
            "laplace": bm.Model(CBPP, bm.load_dataset("cbpp"), family="binomial").fit(),
            "nuts": nuts}


@pytest.mark.parametrize("kind", ["reml", "laplace", "nuts"])
def test_arviz_cells_run_without_warnings(fits, kind):
    import matplotlib.pyplot as plt

    idata = fits[kind].idata
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = az.summary(idata)
        az.plot_trace_dist(idata)
        plt.close("all")
        az.plot_forest(idata)
        plt.close("all")
        az.plot_ppc_dist(idata)
        plt.close("all")
    assert not table.isna().all(axis=1).any()
    rows = list(table.index)
    assert rows[0].startswith("beta[") and not any(r.startswith(("z_", "cpc_", "Intercept_c", "beta_slopes"))
                                                   for r in rows)
    if kind != "laplace":
        assert "cor_Subject[Intercept:Days]" in rows and "sigma" in rows
        # the row labels follow the values (ArviZ stacks dims in dataset order: b_* is stored first)
        mean = table.loc["b_Subject[309, Intercept]", "mean"]
        b = idata["posterior"]["b_Subject"].sel(Subject="309", Subject__term="Intercept")
        assert float(mean) == pytest.approx(float(b.mean()), abs=0.5)
