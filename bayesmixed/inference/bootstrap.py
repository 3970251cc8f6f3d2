"""Parametric bootstrap of likelihood fits (lme4's ``bootMer``), sequential, joblib or Dask.

Each replicate simulates a response from the fitted model (fixed effects, new
random effects, residual noise or the family's distribution, as lme4's
``simulate(fit, use.u = FALSE)``) and refits the same model from the fitted
parameters. Replicate ``i`` draws from ``np.random.SeedSequence(seed).spawn(nsim)[i]``,
so the same seed gives the same replicates whether they run in one process,
through joblib or on a Dask cluster. A refit that raises is kept as a row of NaN
with ``status == "failed"``; refits with a singular or non-converged optimum have
``status == "warning"``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from functools import cached_property

import cloudpickle
import numpy as np
import pandas as pd
from scipy.stats import norm

from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import DesignError
from bayesmixed.families import Family
from bayesmixed.inference.varpar import VarParMap
from bayesmixed.likelihood.glmm import optimize_glmm
from bayesmixed.likelihood.lmm import optimize_lmm


@dataclass
class FitSpec:
    """What a worker needs to simulate from a fit and to refit it (picklable with cloudpickle).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> spec = FitSpec.from_fit(fit)
    >>> spec.kind, spec.method, round(spec.sigma, 2)
    ('lmm', 'reml', 49.51)
    """

    design: MixedDesign
    kind: str                  # "lmm" or "glmm"
    method: str                # "reml", "ml", "laplace", "agq"
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    family: Family
    nAGQ: int = 1
    shape_estimated: bool = False
    result: type | None = None   # the fit class that builds a refit's result (the fit's own)

    @classmethod
    def from_fit(cls, fit, method: str | None = None) -> "FitSpec":
        d = fit.design
        if d.family.is_gaussian_identity and fit.method in ("reml", "ml"):
            return cls(design=d, kind="lmm", method=method or fit.method, theta=np.asarray(fit.theta),
                       beta=fit.fixef.to_numpy(), sigma=float(fit.sigma), family=d.family, result=type(fit))
        if fit.method in ("laplace", "agq"):
            return cls(design=d, kind="glmm", method=fit.method, theta=np.asarray(fit.theta),
                       beta=fit.fixef.to_numpy(), sigma=float(fit.sigma), family=fit.family,
                       nAGQ=int(fit.nAGQ), shape_estimated=bool(getattr(fit, "shape_estimated", False)),
                       result=type(fit))
        raise DesignError(f"the parametric bootstrap needs a likelihood fit (reml, ml, laplace, agq), "
                          f"not method={fit.method!r}")

    @cached_property
    def _ZLambda(self):
        return (self.design.Z @ self.design.Lambda(self.theta)).tocsr()

    @cached_property
    def _fixed(self) -> np.ndarray:
        return self.design.X @ self.beta + self.design.offset

    @property
    def varpar(self) -> VarParMap:
        return VarParMap(self.design, use_sigma=self.family.has_dispersion)

    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        """One response vector on the scale of ``design.y`` (proportions for binomial)."""
        d = self.design
        u = rng.standard_normal(d.q)
        eta = self._fixed + self.sigma * (self._ZLambda @ u)     # b ~ N(0, sigma^2 Lambda Lambda')
        if self.kind == "lmm":
            return eta + self.sigma * rng.standard_normal(d.n) / np.sqrt(d.weights)
        fam = self.family
        trials = np.rint(d.trials if d.trials is not None else d.weights) if fam.uses_trials else None
        return fam.simulate(fam.link.linkinv(eta), rng, trials=trials,
                            dispersion=fam.dispersion_from_sigma(self.sigma))

    def refit(self, y: np.ndarray):
        """Refit the model to response ``y``, starting from the fitted parameters."""
        d2 = dataclasses.replace(self.design, y=np.asarray(y, dtype=float))
        if self.kind == "lmm":
            return self.result(optimize_lmm(d2, reml=self.method == "reml", start=self.theta))
        method = "laplace" if self.nAGQ == 1 else "agq"
        return self.result(optimize_glmm(d2, method=method, nAGQ=self.nAGQ if self.nAGQ > 1 else None,
                                         start={"theta": self.theta, "beta": self.beta}))

    def values(self, fit) -> np.ndarray:
        """Fixed effects then lme4's sd / cor (/ sigma) parameters of a fit."""
        return np.concatenate([fit.fixef.to_numpy(), self.varpar.from_theta(fit.theta, float(fit.sigma))])

    @property
    def columns(self) -> list[str]:
        return list(self.design.fixef_names) + list(self.varpar.names)


def run_replicate(spec: FitSpec, seed: np.random.SeedSequence) -> tuple[np.ndarray, str]:
    """Simulate and refit once; the values and a status (``ok``, ``warning``, ``failed``)."""
    rng = np.random.default_rng(seed)
    y = spec.simulate(rng)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = spec.refit(y)
        except Exception:  # noqa: BLE001 - a failed refit is counted, not raised
            return np.full(len(spec.columns), np.nan), "failed"
    status = "warning" if (caught or fit.is_singular) else "ok"
    return spec.values(fit), status


def _run_chunk(payload: bytes, seeds: list, fn_bytes: bytes | None = None) -> list:
    """Worker entry point: unpickle the spec once, run a chunk of replicates."""
    spec = cloudpickle.loads(payload)
    fn = run_replicate if fn_bytes is None else cloudpickle.loads(fn_bytes)
    return [fn(spec, s) for s in seeds]


def map_replicates(spec, seeds: list, fn=None, client=None, n_jobs: int | None = None) -> list:
    """Run ``fn(spec, seed)`` for every seed, sequentially, with joblib or on a Dask client.

    The results come back in the order of ``seeds`` whatever the mode.
    """
    fn_bytes = None if fn is None else cloudpickle.dumps(fn)
    payload = cloudpickle.dumps(spec)
    if client is None and (n_jobs is None or n_jobs == 1):
        return _run_chunk(payload, seeds, fn_bytes)
    if client is not None:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        chunks = _chunks(seeds, 4 * n_workers)
        fut = client.scatter(payload, broadcast=True)
        futures = [client.submit(_run_chunk, fut, c, fn_bytes, pure=False) for c in chunks]
        parts = client.gather(futures)
    else:
        from joblib import Parallel, delayed, effective_n_jobs

        chunks = _chunks(seeds, 4 * effective_n_jobs(n_jobs))
        parts = Parallel(n_jobs=n_jobs)(delayed(_run_chunk)(payload, c, fn_bytes) for c in chunks)
    return [r for part in parts for r in part]


def _chunks(items: list, k: int) -> list[list]:
    k = max(1, min(k, len(items)))
    bounds = np.linspace(0, len(items), k + 1).round().astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def bootstrap(fit, nsim: int, seed=None, client=None, n_jobs: int | None = None) -> pd.DataFrame:
    """Parametric bootstrap replicates of a likelihood fit (lme4's ``bootMer``).

    Parameters
    ----------
    fit : LikelihoodFit or GlmmFit
        A REML / ML fit of an LMM or a Laplace / AGQ fit of a GLMM.
    nsim : int
        Number of replicates.
    seed : int or numpy.random.SeedSequence, optional
        Replicate ``i`` uses ``SeedSequence(seed).spawn(nsim)[i]``.
    client : dask.distributed.Client, optional
        Run the replicates on this Dask cluster.
    n_jobs : int, optional
        Run the replicates in joblib worker processes (ignored with ``client``).

    Returns
    -------
    pandas.DataFrame
        One row per replicate: the fixed effects, then the variance parameters named
        as in profile intervals (``sd_(Intercept)|Subject``, ``cor_...``, ``sigma``),
        and ``status`` (``ok``, ``warning`` or ``failed``). ``attrs`` holds ``n_failed``,
        ``n_warning``, ``seed`` and the estimates of the original fit (``t0``).

    Notes
    -----
    lme4: ``bootMer(fit, FUN, nsim, type = "parametric", use.u = FALSE)``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> bt = bootstrap(fit, nsim=20, seed=1)
    >>> bt.shape, list(bt.columns), bt.attrs["n_failed"]
    ((20, 4), ['Intercept', 'sd_(Intercept)|Batch', 'sigma', 'status'], 0)
    """
    nsim = int(nsim)
    if nsim < 1:
        raise DesignError("nsim must be a positive number of replicates")
    spec = FitSpec.from_fit(fit)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = ss.spawn(nsim)
    res = map_replicates(spec, seeds, client=client, n_jobs=n_jobs)
    vals = np.array([r[0] for r in res])
    out = pd.DataFrame(vals, columns=spec.columns)
    out["status"] = [r[1] for r in res]
    out.attrs.update(n_failed=int((out["status"] == "failed").sum()),
                     n_warning=int((out["status"] == "warning").sum()),
                     seed=ss.entropy, t0=pd.Series(spec.values(fit), index=spec.columns))
    return out


def boot_confint(fit=None, level: float = 0.95, nsim: int = 500, seed=None, client=None,
                 n_jobs: int | None = None, replicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """Percentile bootstrap intervals (lme4's ``confint(fit, method = "boot")``).

    Failed refits are left out (their count is in ``attrs["n_failed"]``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.load_dataset("Dyestuff")).fit()
    >>> ci = boot_confint(fit, nsim=40, seed=1)
    >>> list(ci.index), list(ci.columns)
    (['sd_(Intercept)|Batch', 'sigma', 'Intercept'], ['2.5 %', '97.5 %'])
    """
    bt = bootstrap(fit, nsim, seed=seed, client=client, n_jobs=n_jobs) if replicates is None else replicates
    ok = bt[bt["status"] != "failed"]
    cols = [c for c in bt.columns if c != "status"]
    p = len([c for c in cols if not (c.startswith(("sd_", "cor_")) or c == "sigma")])
    order = cols[p:] + cols[:p]                       # lme4: variance parameters first
    a = (1 - level) / 2
    rows = {c: norm_inter(ok[c].to_numpy(), np.array([a, 1 - a])) for c in order}
    q = pd.DataFrame.from_dict(rows, orient="index", columns=[f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"])
    q.attrs["n_failed"] = int(len(bt) - len(ok))
    return q


def norm_inter(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Percentile interval ends by normal-scale interpolation of order statistics (boot's ``norm.inter``).

    Examples
    --------
    >>> import numpy as np
    >>> norm_inter(np.arange(1.0, 100.0), np.array([0.025, 0.975])).round(4).tolist()   # R: boot:::norm.inter
    [2.5422, 97.4578]
    """
    t = np.sort(t[np.isfinite(t)])
    R = t.size
    out = np.full(alpha.size, np.nan)
    if R == 0:
        return out
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    for i in range(alpha.size):
        if k[i] == rk[i] and 0 < k[i] <= R:
            out[i] = t[k[i] - 1]
        elif k[i] <= 0:
            out[i] = t[0]
        elif k[i] >= R:
            out[i] = t[-1]
        else:
            z1, z2, z3 = norm.ppf(alpha[i]), norm.ppf(k[i] / (R + 1)), norm.ppf((k[i] + 1) / (R + 1))
            tk, tk1 = t[k[i] - 1], t[k[i]]
            out[i] = tk + (z1 - z2) / (z3 - z2) * (tk1 - tk)
    return out
