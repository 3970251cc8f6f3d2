"""Out-of-memory data (issue 13 part 2): Parquet, DuckDB, polars and Dask sources fit as pandas does.

A Gaussian LMM on a path, a DuckDB relation, a polars LazyFrame or a Dask DataFrame is
fitted from cross-products accumulated chunk by chunk; every result must equal the
in-memory fit of the same rows to 1e-8 (relative), REML and ML: fixed effects, vcov,
theta, sigma, random effects and their conditional sds, the criterion, and the
residuals and fitted values recomputed chunk by chunk.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.design.sources import as_source
from bayesmixed.errors import DesignError, MissingDataWarning

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")
dd = pytest.importorskip("dask.dataframe")

FORMULA = "y ~ x + f + (1 + x | g) + (1 | h)"
RTOL = 1e-8


def _simulate(n: int = 2000, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 40, n)
    h = rng.integers(0, 15, n)
    x = rng.normal(size=n)
    f = rng.choice(["lo", "mid", "hi"], n)
    y = (10 + 0.8 * x + rng.normal(0, 1.0, 40)[g] + rng.normal(0, 0.6, 40)[g] * x
         + rng.normal(0, 0.8, 15)[h] + 0.5 * (f == "hi") + rng.normal(0, 1.0, n))
    df = pd.DataFrame({"y": y, "x": x, "f": f, "g": g, "h": np.array([f"h{i:02d}" for i in range(15)])[h],
                       "w": rng.uniform(0.5, 2.0, n)})
    df.loc[[3, 50], "x"] = np.nan                 # rows the NA policy drops
    df.loc[77, "h"] = None
    return df


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _simulate()


@pytest.fixture(scope="module")
def parquet(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("pq")
    data.to_parquet(root / "all.parquet")
    (root / "parts").mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(data)), 3)):
        data.iloc[part].to_parquet(root / "parts" / f"part{i}.parquet")
    return root


@pytest.fixture(scope="module")
def reference(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        model = bm.Model(FORMULA, data, weights="w")
    return {m: model.fit(method=m) for m in ("reml", "ml")}


def _close(a, b, what: str) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b))), 1e-300)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def assert_same_fit(fit, ref) -> None:
    assert type(fit).__name__ == "StreamedLikelihoodFit"
    assert fit.nobs == ref.nobs and fit.ngroups == ref.ngroups
    assert list(fit.fixef.index) == list(ref.fixef.index)
    _close(fit.fixef, ref.fixef, "fixef")
    _close(fit.vcov, ref.vcov, "vcov")
    _close(fit.theta, ref.theta, "theta")
    _close(fit.sigma, ref.sigma, "sigma")
    _close(fit.objective, ref.objective, "criterion")
    for g in ref.ranef:
        assert list(fit.ranef[g].index) == list(ref.ranef[g].index)
        _close(fit.ranef[g], ref.ranef[g], f"ranef {g}")
        _close(fit.ranef_condsd[g], ref.ranef_condsd[g], f"condsd {g}")


def _fit(source, method: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        return bm.Model(FORMULA, source, weights="w").fit(method=method)


SOURCES = {
    "parquet_file": lambda d, pq: str(pq / "all.parquet"),
    "parquet_dir": lambda d, pq: pq / "parts",
    "parquet_glob": lambda d, pq: str(pq / "parts" / "*.parquet"),
    "duckdb_relation": lambda d, pq: duckdb.from_df(d),
    "duckdb_chunks": lambda d, pq: as_source(duckdb.from_df(d), chunk_rows=300),
    "polars_lazy": lambda d, pq: pl.from_pandas(d).lazy(),
    "polars_lazy_chunks": lambda d, pq: as_source(pl.from_pandas(d).lazy(), chunk_rows=700),
    "dask": lambda d, pq: dd.from_pandas(d, npartitions=3),
}


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_source_fit_equals_pandas_fit(kind, method, data, parquet, reference):
    fit = _fit(SOURCES[kind](data, parquet), method)
    assert_same_fit(fit, reference[method])


def test_polars_dataframe_takes_the_in_memory_path(data, reference):
    fit = _fit(pl.from_pandas(data), "reml")
    assert type(fit).__name__ == "LikelihoodFit"
    _close(fit.theta, reference["reml"].theta, "theta")


def test_residuals_and_fitted_chunk_by_chunk(data, reference):
    fit = _fit(as_source(duckdb.from_df(data), chunk_rows=500), "reml")
    ref = reference["reml"]
    parts = list(fit.iter_residuals())
    assert len(parts) == 4 and all(isinstance(p, pd.Series) for p in parts)
    res = pd.concat(parts)
    assert list(res.index) == list(ref.residuals().index)          # positions of the kept rows
    _close(res, ref.residuals(), "residuals")
    _close(fit.fitted(), ref.fitted(), "fitted")
    _close(fit.residuals("pearson"), ref.residuals("pearson"), "pearson residuals")
    _close(fit.predict(include_random=False), ref.predict(include_random=False), "population predictions")
    new = data.iloc[:5].dropna()
    _close(fit.predict(new), ref.predict(new), "predict(newdata)")
    r2, r2_ref = fit.r2(), ref.r2()
    _close([r2["marginal"], r2["conditional"]], [r2_ref["marginal"], r2_ref["conditional"]], "r2")
    assert "Scaled residuals" in str(fit.summary())
    _close(fit.predictions(new)["estimate"], ref.predictions(new)["estimate"], "predictions(newdata)")
    with pytest.raises(DesignError, match=r"fit.predictions\(\) without newdata="):
        fit.predictions()


def test_missing_rows_dropped_and_counted(data):
    with pytest.warns(MissingDataWarning, match=r"dropped 3 of 2000 rows .*h \(1\), x \(2\).*rows kept: 1997"):
        m = bm.Model(FORMULA, duckdb.from_df(data), weights="w")
    assert m.design.n == 1997
    with pytest.raises(DesignError, match=r"missing values in h \(1\), x \(2\)"):
        bm.Model(FORMULA, duckdb.from_df(data), na_action="raise")


def test_glmm_and_other_methods_refused_with_what_to_do(data, parquet):
    path = str(parquet / "all.parquet")
    d = data.assign(b=(data["y"] > 10).astype(float))
    with pytest.raises(DesignError, match=r"family='binomial'.*not supported for out-of-memory data.*relation.df"):
        bm.Model("b ~ x + (1 | g)", duckdb.from_df(d), family="binomial")
    with pytest.raises(DesignError, match=r"family='poisson'.*not supported.*Collect the rows"):
        bm.Model("y ~ x + (1 | g)", path, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        m = bm.Model(FORMULA, path)
    with pytest.raises(DesignError, match=r"method='laplace' is not supported"):
        m.fit(method="laplace")
    with pytest.raises(DesignError, match=r"design.X .*not supported.*pd.read_parquet"):
        m.design.X


def test_stateful_transforms_and_bad_paths_refused(data, tmp_path):
    with pytest.raises(DesignError, match=r"scale\(x\).*every row"):
        bm.Model("y ~ scale(x) + (1 | g)", duckdb.from_df(data.dropna()))
    with pytest.raises(DesignError, match=r"no Parquet file"):
        bm.Model("y ~ x + (1 | g)", str(tmp_path / "missing.parquet"))
    with pytest.raises(DesignError, match=r"column\(s\) not in the data: 'z'"):
        bm.Model("y ~ z + (1 | g)", duckdb.from_df(data))


@pytest.mark.parametrize("processes", [
    False,                                           # threads in this process: no worker start-up
    pytest.param(True, marks=pytest.mark.slow),      # worker processes (~15 s here: they import bayesmixed)
])
def test_dask_local_cluster_gives_the_same_numbers(processes, data, reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as tasks:
            fit = _fit(dd.from_pandas(data, npartitions=4), "ml")
    assert len(tasks.data) >= 8                      # per-partition passes ran on the cluster's workers
    assert_same_fit(fit, reference["ml"])
