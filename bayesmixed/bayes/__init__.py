"""The PyMC engine: the only package importing pymc (lazily, inside functions)."""

from bayesmixed.bayes.bambi import to_bambi
from bayesmixed.bayes.build import build_pymc_model
from bayesmixed.bayes.map import MapOptimum, fit_map, reml_pymc_model
from bayesmixed.bayes.priors import Prior, Priors, resolve_priors
from bayesmixed.bayes.sample import PosteriorDraws, sample_nuts

__all__ = ["build_pymc_model", "resolve_priors", "sample_nuts", "fit_map", "reml_pymc_model", "Prior", "Priors",
           "PosteriorDraws", "MapOptimum", "to_bambi"]
