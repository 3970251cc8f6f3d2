"""Running nutpie on the package's compiled densities (its pyfunc interface): shared by the
collapsed Gaussian sampler, the compiled joint GLMM density and the PyMC route."""

from __future__ import annotations

import time

import numpy as np

from bayesmixed.bayes.priors import resolve_priors
from bayesmixed.errors import SamplingError


def run_nutpie(compiled, *, draws, tune, chains, seed, progressbar, target_accept, **kw):
    """Sample a compiled nutpie model; an interrupt or a failed chain raises :class:`SamplingError`."""
    import nutpie

    sampler = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progressbar,
                            target_accept=target_accept, save_warmup=False, blocking=False, **kw)
    try:
        return sampler.wait()
    except KeyboardInterrupt:
        partial = None
        try:
            partial = sampler.abort()
        except Exception:  # nothing usable was drawn
            pass
        raise SamplingError("sampling was interrupted; the draws made so far are in .partial (not a "
                            "complete fit: do not use them for inference)", partial=partial) from None
    except BaseException as exc:  # nutpie reports failures in a chain as a pyo3 PanicException
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        try:
            sampler.cancel()
        except Exception:
            pass
        raise SamplingError(f"nutpie failed while sampling: {exc}") from exc


def run_pyfunc(model_or_design, priors, build, *, draws, tune, chains, random_seed, progressbar, target_accept,
               timings: dict, **kwargs):
    """What the pyfunc samplers (collapsed, joint) share: design and priors, the seed, the set-up, the run.

    ``build(design, priors)`` returns ``(state, compiled nutpie model)``; ``timings`` gets
    ``setup`` and ``sampling``. Returns ``(design, state, seed, trace)``.
    """
    design = getattr(model_or_design, "design", model_or_design)
    if priors is None:
        priors = getattr(model_or_design, "priors", None) or resolve_priors(design)
    seed = int(np.random.default_rng(random_seed).integers(2**31)) if random_seed is None else int(random_seed)
    t0 = time.perf_counter()
    state, compiled = build(design, priors)
    timings["setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trace = run_nutpie(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progressbar=progressbar,
                       target_accept=target_accept, **kwargs)
    timings["sampling"] = time.perf_counter() - t0
    return design, state, seed, trace
