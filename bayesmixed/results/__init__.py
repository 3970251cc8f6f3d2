"""Fit results: one face for every method (lme4's merMod and its accessors).

Engines return plain optimum states (``likelihood``) or draws (``bayes``); the classes
here build the fits from them, and import no engine.
"""

from bayesmixed.results.base import MixedFit, varcorr_frame
from bayesmixed.results.glmm import GlmmFit
from bayesmixed.results.likelihood import LikelihoodFit
from bayesmixed.results.map import MapFit
from bayesmixed.results.posterior import PosteriorFit

__all__ = ["MixedFit", "LikelihoodFit", "GlmmFit", "PosteriorFit", "MapFit", "varcorr_frame"]
