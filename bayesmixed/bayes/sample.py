"""NUTS for the compiled model: sampler choice, compilation, diagnostics -> PosteriorDraws.

The engine returns the draws (ArviZ data with the pointwise log-likelihood) and the
diagnostics' findings; ``results`` builds the ``PosteriorFit`` from them.

Samplers:

- ``"nutpie"`` (``sampler="auto"`` when nutpie is installed). Two ways to give
  nutpie the log density and its gradient:

  * ``backend="c"``: PyTensor's C backend, called from nutpie through a Python
    callback. PyTensor caches compiled C ops on disk, so compiling a model takes
    a few seconds; every gradient pays a few tens of microseconds of Python.
  * ``backend="numba"``: nutpie's own route, the whole density JIT-compiled by
    numba. The fastest per gradient, but LLVM recompiles the whole density for
    every model (nutpie's cfunc cannot be cached): 20-40 s warm on 2 cores, and
    minutes the first time numba's own cache is empty.

  ``backend="auto"`` takes numba: measured on sleepstudy (4 x 2000 iterations, 2
  busy cores) the C route took 5 s to compile (27 s with a cold C cache) but 46-57 s
  to sample, about 220 microseconds per gradient (the Python callback and the GIL
  serialise the chains), while numba took 21-40 s to compile and 1.4-4 s to sample.
  The C route stays available for machines without numba.
  With ``backend="auto"``, models outside the collapsed Gaussian sampler (binomial,
  Poisson, negative binomial, gamma, gaussian with another link) are sampled through
  :mod:`bayesmixed.bayes.joint` instead: the same joint density and gradient written
  once in numba (cached per installation), so nothing is compiled per model.
  Compiled nutpie models are kept by model content (a few, in memory), so refits
  with other seeds or draws, or of an identical model built afresh, do not compile again.
- ``"pymc"``: PyMC's own NUTS (C backend).
- ``"numpyro"`` / ``"blackjax"``: PyMC's JAX route (needs jax installed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from bayesmixed.bayes.build import build_pymc_model
from bayesmixed.bayes.collapsed import sample_collapsed, unsupported_reason
from bayesmixed.bayes.idata import assemble_idata
from bayesmixed.bayes.joint import sample_joint
from bayesmixed.bayes.joint import unsupported_reason as joint_unsupported
from bayesmixed.bayes.jaxroute import JAX_SAMPLERS, sample_jax
from bayesmixed.bayes.loglik import simulate_response
from bayesmixed.bayes.options import BACKENDS, check_sampler_options
from bayesmixed.bayes.pyfunc import run_nutpie
from bayesmixed.errors import (
    DesignError, DivergenceWarning, LowESSWarning, RhatWarning, SamplingError, TreeDepthWarning,
)

# compiled nutpie models by model content (data, structure, priors, backend): an identical
# model, even built afresh, reuses its compiled density; a few are kept, oldest dropped
_COMPILED: "OrderedDict[str, object]" = OrderedDict()
_COMPILED_MAX = 8


def _has(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def _say(progressbar: bool, msg: str) -> None:
    if progressbar:
        print(msg, file=sys.stderr, flush=True)


def choose_backend(design, backend: str = "auto") -> str:
    """The nutpie gradient backend used for ``design`` (``"c"`` or ``"numba"``, or ``"jax"``)."""
    if backend not in BACKENDS:
        raise DesignError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "jax" and not _has("jax"):
        raise DesignError("backend='jax' needs jax: pip install jax")
    return "numba" if backend == "auto" else backend


def model_key(design, priors, *, centered: bool, backend: str) -> str:
    """Digest of everything the compiled density depends on."""
    h = hashlib.sha1()
    arrays = [design.X, design.y, design.weights, design.offset]
    for t in design.reterms:
        arrays += [t.codes, t.Xi]
        h.update(f"{t.name}|{t.group}|{t.cnames}|{t.correlated}|{t.n_levels}".encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(repr(priors.to_frame().to_dict("list")).encode())
    h.update(f"{design.fixef_names}|{design.family.name}|{design.family.link.name}|{design.has_user_weights}|"
             f"{design.trials is not None}|{centered}|{backend}".encode())
    return h.hexdigest()


class _LazyModel:
    """A ``pymc.Model`` of the design and priors, built on first use (not when nutpie's cache has it)."""

    def __init__(self, design, priors, centered: bool):
        self._args, self._model = (design, priors, centered), None

    def get(self):
        if self._model is None:
            design, priors, centered = self._args
            self._model = build_pymc_model(design, priors, centered=centered)
        return self._model


# ---- nutpie through PyTensor's C backend --------------------------------------------------
def _compile_nutpie_c(pm_model):
    """A nutpie model whose log density and gradient are PyTensor C functions."""
    import nutpie
    import pytensor
    from pymc.initial_point import make_initial_point_fn

    vg = pm_model.logp_dlogp_function(ravel_inputs=True, mode="CVM")
    vg.set_extra_values({})
    value_vars = list(pm_model.value_vars)
    ip = pm_model.initial_point()
    shapes_in = [np.shape(ip[v.name]) for v in value_vars]
    sizes = [int(np.prod(s)) for s in shapes_in]
    ndim = int(sum(sizes))
    # values to store per draw: free RVs on their own scale and the deterministics
    outs = [pm_model[v.name] for v in pm_model.free_RVs] + list(pm_model.deterministics)
    out_names = [o.name for o in outs]
    repl = pm_model.replace_rvs_by_values(outs)
    expand = pytensor.function(value_vars, repl, mode="CVM", on_unused_input="ignore")
    out_vals = expand(*[ip[v.name] for v in value_vars])
    out_shapes = [np.shape(o) for o in out_vals]
    offsets = np.cumsum([0, *sizes])

    def split(x):
        return [x[offsets[i]:offsets[i + 1]].reshape(shapes_in[i]) for i in range(len(value_vars))]

    # nutpie runs chains in threads and PyTensor functions own their output storage:
    # every chain gets its own copy of the compiled functions
    def make_logp():
        f = vg._pytensor_function.copy()

        def logp(x, **_):
            val, grad = f(x)
            return float(val), np.array(grad, dtype=np.float64)
        return logp

    def make_expand(seed1, seed2, chain):
        g = expand.copy()

        def ex(x, **_):
            return {n: np.array(o, dtype=np.float64).reshape(s)
                    for n, o, s in zip(out_names, g(*split(x)), out_shapes)}
        return ex

    init_fn = make_initial_point_fn(model=pm_model, jitter_rvs=set(pm_model.free_RVs), return_transformed=True)

    def make_init(seed):
        pt_ = init_fn(seed)
        return np.concatenate([np.asarray(pt_[v.name], dtype=np.float64).ravel() for v in value_vars])

    dims = {}
    for n in out_names:
        d = pm_model.named_vars_to_dims.get(n)
        if d:
            dims[n] = tuple(d)
    # nutpie takes string coords; "obs" belongs to the likelihood only, never to a stored variable
    coords = {k: [str(x) for x in v] for k, v in pm_model.coords.items() if v is not None and k != "obs"}
    return nutpie.compiled_pyfunc.from_pyfunc(
        ndim, make_logp, make_expand, [np.dtype("float64")] * len(out_names), out_shapes, out_names,
        coords=coords, dims=dims, make_initial_point_fn=make_init)


def _sample_nutpie(pm_model, design, *, draws, tune, chains, seed, progressbar, target_accept, backend,
                   timings, key, **kw):
    import nutpie

    backend = choose_backend(design, backend)
    key = f"{key}|{backend}"
    t0 = time.perf_counter()
    if key in _COMPILED:
        compiled = _COMPILED[key]
        _COMPILED.move_to_end(key)
    else:
        if backend == "c":
            _say(progressbar, "bayesmixed: compiling the log density with PyTensor's C backend for nutpie ...")
            compiled = _compile_nutpie_c(pm_model.get())
        else:
            _say(progressbar, f"bayesmixed: compiling the log density and its gradient with {backend} for "
                              "nutpie (numba: 5-30 s; minutes the first time, while numba's cache is empty) ...")
            compiled = nutpie.compile_pymc_model(pm_model.get(), backend=backend)
        _COMPILED[key] = compiled
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    timings["compile"] = time.perf_counter() - t0
    timings["backend"] = backend
    t0 = time.perf_counter()
    trace = run_nutpie(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progressbar=progressbar,
                       target_accept=target_accept, **kw)
    timings["sampling"] = time.perf_counter() - t0
    return trace


def jupyter_without_widgets() -> bool:
    """True in a Jupyter kernel where rich (PyMC's progress bar) cannot draw: ipywidgets is missing."""
    from rich.console import Console

    return bool(Console().is_jupyter) and not _has("ipywidgets")


class _TextProgress:
    """A one-line progress report on stderr, PyMC's ``callback``: where rich cannot draw its bar."""

    def __init__(self, total: int):
        self.total, self.done, self.shown = max(int(total), 1), 0, -1

    def __call__(self, trace=None, draw=None):
        self.done += 1
        pct = int(100 * self.done / self.total)
        if pct // 5 != self.shown // 5 or self.done == self.total:
            self.shown = pct
            end = "\n" if self.done >= self.total else ""
            print(f"\rsampling: {pct:3d}% ({self.done}/{self.total} iterations)", end=end, file=sys.stderr,
                  flush=True)


def _sample_pymc(pm_model, *, nuts_sampler, draws, tune, chains, seed, progressbar, target_accept, timings,
                 **kw):
    import pymc as pm

    if progressbar and nuts_sampler == "pymc" and "callback" not in kw and jupyter_without_widgets():
        # rich would only warn 'install "ipywidgets"' and draw nothing: a text line instead
        progressbar, kw["callback"] = False, _TextProgress((draws + tune) * chains)

    if nuts_sampler in ("numpyro", "blackjax") and not _has("jax"):
        raise DesignError(f"sampler={nuts_sampler!r} runs through PyMC's JAX route and needs jax and "
                          f"{nuts_sampler}: pip install jax {nuts_sampler}")
    if nuts_sampler in ("numpyro", "blackjax") and not _has(nuts_sampler):
        raise DesignError(f"sampler={nuts_sampler!r} needs the {nuts_sampler} package: pip install {nuts_sampler}")
    t0 = time.perf_counter()
    try:
        if nuts_sampler in JAX_SAMPLERS:
            idata = sample_jax(pm_model, sampler=nuts_sampler, draws=draws, tune=tune, chains=chains, seed=seed,
                               progressbar=progressbar, target_accept=target_accept)
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message='install "ipywidgets"')
                idata = pm.sample(model=pm_model, draws=draws, tune=tune, chains=chains, random_seed=seed,
                                  progressbar=progressbar, nuts_sampler=nuts_sampler, target_accept=target_accept,
                                  compute_convergence_checks=False, **kw)
    except KeyboardInterrupt:
        raise SamplingError("sampling was interrupted; nothing complete was drawn", partial=None) from None
    except (ValueError, RuntimeError, FloatingPointError) as exc:
        raise SamplingError(f"PyMC failed while sampling: {exc}") from exc
    timings["compile+sampling"] = time.perf_counter() - t0
    return idata


def check_diagnostics(idata, var_names, *, chains: int, target_accept: float, maxdepth: int = 10,
                      stacklevel: int = 3) -> dict:
    """Warn about divergences, R-hat > 1.01, low bulk/tail ESS and saturated trees; return the counts."""
    import arviz as az

    stats = idata["sample_stats"]
    out = {}
    div = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
    out["divergences"] = div
    if div:
        warnings.warn(
            f"{div} divergent transition(s) after tuning: the posterior has regions the sampler could not "
            f"follow and estimates may be biased. Raise target_accept (now {target_accept}; try 0.95 or "
            "0.99), and if they persist switch the parameterization (centered=True when groups carry "
            "much data each, the default non-centred otherwise) or use more informative priors.",
            DivergenceWarning, stacklevel=stacklevel)
    if chains > 1:
        rhat = az.rhat(idata, var_names=var_names)
        mx = max(float(np.nanmax(np.asarray(rhat[v]))) for v in rhat.data_vars)
        out["max_rhat"] = mx
        if mx > 1.01:
            worst = max(rhat.data_vars, key=lambda v: float(np.nanmax(np.asarray(rhat[v]))))
            warnings.warn(f"R-hat up to {mx:.3f} (> 1.01, worst: {worst!r}): chains disagree. Run longer "
                          "(more tune and draws), and check divergences and the priors.",
                          RhatWarning, stacklevel=stacklevel)
    ess = az.ess(idata, var_names=var_names, method="bulk")
    mn = min(float(np.nanmin(np.asarray(ess[v]))) for v in ess.data_vars)
    out["min_ess_bulk"] = mn
    need = 100 * chains
    if mn < need:
        worst = min(ess.data_vars, key=lambda v: float(np.nanmin(np.asarray(ess[v]))))
        warnings.warn(f"bulk ESS as low as {mn:.0f} (< {need} = 100 per chain, worst: {worst!r}): "
                      "posterior means and intervals are imprecise. Draw more (draws=, tune=), or "
                      "reparameterize (centered=True/False) if the sampler mixes slowly.",
                      LowESSWarning, stacklevel=stacklevel)
    depth_key = "maxdepth_reached" if "maxdepth_reached" in stats else "reached_max_treedepth"
    if depth_key in stats:
        frac = float(np.asarray(stats[depth_key]).mean())
        out["treedepth_saturation"] = frac
        if frac > 0.01:
            warnings.warn(f"{100 * frac:.1f}% of draws hit the maximum tree depth ({maxdepth}): sampling is "
                          "slow and may be incomplete. Usually a sign of strong posterior correlations: "
                          "rescale predictors, switch centered=True/False, or raise maxdepth.",
                          TreeDepthWarning, stacklevel=stacklevel)
    return out


def posterior_param_names(design, posterior) -> list[str]:
    """Model parameters (not per-level effects) whose R-hat and ESS are checked."""
    names = ["beta"]
    for t in design.reterms:
        names.append(f"sd_{t.name}")
        if t.correlated and t.n_cols > 1:
            names.append(f"cor_{t.name}")
    return names + [a for a in design.family.extra_params if a in posterior]


@dataclass(eq=False)
class PosteriorDraws:
    """What NUTS returns: the draws and what the sampler and its checks found.

    ``results`` builds a :class:`~bayesmixed.results.posterior.PosteriorFit` from it.
    """

    design: object
    idata: object
    priors: object = None
    sampler: str = ""
    timings: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    param_names: list = field(default_factory=list)

    def simulate(self, mu: np.ndarray, rng, trials=None) -> np.ndarray:
        """Posterior predictive draws of the response given (chain, draw, m) means."""
        return simulate_response(self.design, self.idata["posterior"], mu, rng, trials=trials)


def sample_nuts(model, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
                random_seed: int | None = None, sampler: str = "auto", progressbar: bool = True,
                target_accept: float = 0.8, centered: bool = False, backend: str = "auto",
                collapsed: bool | None = None, **kwargs) -> PosteriorDraws:
    """Sample the posterior of ``model`` by NUTS (``Model.fit(method="nuts")`` makes the fit of it).

    Parameters
    ----------
    model : bayesmixed.Model
    draws, tune, chains : int
        Draws kept per chain, tuning iterations per chain, number of chains.
    random_seed : int, optional
        Same seed, same draws (for a given sampler and backend).
    sampler : {"auto", "nutpie", "pymc", "numpyro", "blackjax"}
        ``"auto"``: nutpie when installed, else PyMC's NUTS.
    progressbar : bool
        Progress bar, and a line saying what is compiling.
    target_accept : float
        NUTS target acceptance rate; raise it (0.95, 0.99) after divergences.
    centered : bool
        Centred random effects (default non-centred).
    backend : {"auto", "c", "numba", "jax"}
        How nutpie evaluates the density (see module notes); ignored by other samplers.
    collapsed : bool, optional
        Gaussian identity-link models: ``True`` integrates the random and fixed
        effects out and samples only the covariance parameters and sigma (then
        draws b and beta exactly from their conditional normal, per draw: no
        per-model compilation); ``False`` samples the joint PyMC model; ``None``
        (default) collapses whenever the model allows it (Gaussian, identity link,
        normal fixed-effect priors, non-centred, sampler "auto" or "nutpie").
    **kwargs
        Passed to the sampler (e.g. ``maxdepth`` for nutpie).

    Returns
    -------
    PosteriorDraws

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    >>> fit = m.fit(method="nuts", draws=200, tune=300, chains=2, random_seed=1,
    ...             progressbar=False)  # doctest: +SKIP
    >>> abs(fit.fixef["Days"] - 10.47) < 1  # doctest: +SKIP
    True
    """
    if sampler == "auto":
        sampler = "nutpie" if _has("nutpie") else "pymc"
    check_sampler_options(sampler, dict(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                                        progressbar=progressbar, target_accept=target_accept, centered=centered,
                                        backend=backend), kwargs)
    design = model.design
    priors = model.priors
    # a model of its own, never ``model.pymc_model``: what a user adds to that one stays out of the fit
    pm_model = _LazyModel(design, priors, centered)
    seed = int(np.random.default_rng(random_seed).integers(2**31)) if random_seed is None else int(random_seed)
    timings: dict = {}
    use_collapsed = _use_collapsed(collapsed, design, priors, sampler=sampler, centered=centered)
    run = dict(draws=draws, tune=tune, chains=chains, progressbar=progressbar, target_accept=target_accept,
               timings=timings)
    if use_collapsed:
        trace = sample_collapsed(design, priors, random_seed=seed, **run, **kwargs)
        sampler = "nutpie (collapsed)"
    elif sampler == "nutpie" and _use_joint(design, priors, backend=backend, centered=centered):
        trace = sample_joint(design, priors, random_seed=seed, **run, **kwargs)
    elif sampler == "nutpie":
        if not _has("nutpie"):
            raise DesignError("sampler='nutpie' needs nutpie: pip install nutpie")
        key = model_key(design, priors, centered=centered, backend=backend)
        trace = _sample_nutpie(pm_model, design, seed=seed, backend=backend, key=key, **run, **kwargs)
    else:
        trace = _sample_pymc(pm_model.get(), nuts_sampler=sampler, seed=seed, **run, **kwargs)
    idata = assemble_idata(trace, design, rng=np.random.default_rng(seed))
    names = posterior_param_names(design, idata["posterior"])
    diagnostics = check_diagnostics(idata, names, chains=chains, target_accept=target_accept,
                                    maxdepth=int(kwargs.get("maxdepth", 10)), stacklevel=4)   # the caller of fit()
    return PosteriorDraws(design=design, idata=idata, priors=priors, sampler=sampler, timings=timings,
                          settings=dict(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                                        target_accept=target_accept, centered=centered,
                                        collapsed=use_collapsed),
                          diagnostics=diagnostics, param_names=names)


def _use_joint(design, priors, *, backend: str, centered: bool) -> bool:
    """Whether nutpie samples the joint model through the compiled density (no per-model compile).

    The default for every model the collapsed sampler does not take (``backend="auto"``,
    non-centred effects); ``backend="numba"|"c"|"jax"`` compiles the PyMC model instead.
    """
    return (backend == "auto" and not centered and _has("nutpie") and not design.family.is_gaussian_identity
            and joint_unsupported(design, priors) is None)


def _use_collapsed(collapsed, design, priors, *, sampler: str, centered: bool) -> bool:
    """Whether to sample the collapsed Gaussian model (see ``sample_nuts(collapsed=)``)."""
    if collapsed not in (None, True, False):
        raise DesignError(f"collapsed must be None, True or False, got {collapsed!r}")
    if collapsed is False:
        return False
    reason = unsupported_reason(design, priors)
    if reason is None and (centered or sampler not in ("nutpie",)):
        reason = (f"the collapsed sampler runs on nutpie with non-centred effects (got sampler={sampler!r}, "
                  f"centered={centered})")
    if collapsed is True and reason is not None:
        raise DesignError(f"collapsed=True is not available for this model: {reason}; use collapsed=False")
    return reason is None
