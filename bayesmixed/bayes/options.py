"""The options of ``fit(method="nuts")``, checked before anything compiles.

A misspelt option (``draw=200``) or an out-of-range one (``chains=0``,
``target_accept=1.2``) is refused at once, naming it, rather than by the sampler
after the model has compiled.
"""

from __future__ import annotations

import numpy as np

from bayesmixed.errors import DesignError

SAMPLERS = ("auto", "nutpie", "pymc", "numpyro", "blackjax")
BACKENDS = ("auto", "c", "numba", "jax")

# options sample_nuts passes to the samplers itself: a user's value would clash
_SET_HERE = {"nutpie": {"compiled_model", "draws", "tune", "chains", "seed", "progress_bar", "target_accept",
                        "save_warmup", "blocking", "kwargs"},
             "pymc": {"draws", "tune", "chains", "random_seed", "progressbar", "nuts_sampler", "target_accept",
                      "compute_convergence_checks", "model", "kwargs", "self", "vars"}}


def _sampler_kwargs(sampler: str) -> set[str]:
    """Names of the extra options ``sampler`` takes (beyond those of :func:`sample_nuts`)."""
    import inspect

    if sampler == "nutpie":
        import nutpie

        names = set(inspect.signature(nutpie.sample).parameters)
    else:
        import pymc as pm
        from pymc.step_methods.hmc.base_hmc import BaseHMC

        names = set(inspect.signature(pm.sample).parameters) | set(inspect.signature(pm.NUTS.__init__).parameters)
        names |= set(inspect.signature(BaseHMC.__init__).parameters)
    return names - _SET_HERE["nutpie" if sampler == "nutpie" else "pymc"]


def _unknown_option(name: str, known) -> DesignError:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return DesignError(f"fit(method='nuts') got an unknown option {name!r}{hint}; the options are draws, "
                       "tune, chains, random_seed, sampler, progressbar, target_accept, centered, backend, "
                       "and the sampler's own (e.g. maxdepth for nutpie, max_treedepth for PyMC)")


def check_sampler_options(sampler: str, opts: dict, kwargs: dict) -> None:
    """Refuse a misspelt or out-of-range sampler option before anything is compiled.

    Examples
    --------
    >>> check_sampler_options("nutpie", {"draws": 200}, {"draw": 200})
    Traceback (most recent call last):
    ...
    bayesmixed.errors.DesignError: fit(method='nuts') got an unknown option 'draw' (did you mean 'draws'?); ...
    >>> check_sampler_options("nutpie", {"draws": 0}, {})
    Traceback (most recent call last):
    ...
    bayesmixed.errors.DesignError: draws must be a whole number >= 1, got 0
    """
    if sampler not in SAMPLERS:
        raise DesignError(f"unknown sampler {sampler!r}; valid samplers are: {', '.join(SAMPLERS)}")
    for name, low in (("draws", 1), ("tune", 0), ("chains", 1)):
        v = opts.get(name, low)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise DesignError(f"{name} must be a whole number >= {low}, got {v!r}")
    ta = opts.get("target_accept", 0.8)
    if isinstance(ta, bool) or not isinstance(ta, (int, float, np.floating)) or not 0 < ta < 1:
        raise DesignError(f"target_accept must be a number strictly between 0 and 1, got {ta!r}")
    seed = opts.get("random_seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise DesignError(f"random_seed must be None or a whole number >= 0, got {seed!r}")
    for name in ("progressbar", "centered"):
        if not isinstance(opts.get(name, False), (bool, np.bool_)):
            raise DesignError(f"{name} must be True or False, got {opts[name]!r}")
    if opts.get("backend", "auto") not in BACKENDS:
        raise DesignError(f"unknown backend {opts['backend']!r}; valid: {', '.join(BACKENDS)}")
    if not kwargs:
        return
    known = _sampler_kwargs(sampler)
    if sampler != "nutpie":
        for name in kwargs:
            if name not in known:
                raise _unknown_option(name, known | set(opts))
        return
    from nutpie import _lib

    for name in kwargs:
        if name in _SET_HERE["nutpie"] | {"random_seed", "progressbar"}:
            raise DesignError(f"fit(method='nuts'): {name!r} is not a nutpie option here; use "
                              "draws=, tune=, chains=, random_seed=, progressbar=, target_accept=")
    rest = {k: v for k, v in kwargs.items() if k not in known}
    for name, value in rest.items():            # nutpie's settings: checked by nutpie itself, on a blank copy
        try:
            _lib.PyNutsSettings.Diag(0).update({name: value})
        except AttributeError:
            raise _unknown_option(name, known | set(opts) | {"maxdepth", "mindepth"}) from None
        except (TypeError, ValueError) as exc:
            raise DesignError(f"fit(method='nuts'): bad value {value!r} for option {name!r}: {exc}") from None
