"""Link functions g(mu) = eta for the response families (see :mod:`bayesmixed.families`).

Each :class:`Link` carries g, its inverse, the first and second derivatives of the
inverse (NumPy), the inverse on PyTensor tensors (for the PyMC likelihood; pytensor
is imported only when it is called) and the small integer ``code`` the compiled
kernels switch on. Links are singletons: they pickle by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import special

Array = np.ndarray
_EPS = np.finfo(float).eps
_TINY = np.finfo(float).tiny


@dataclass(frozen=True)
class Link:
    """A link function g: g, its inverse, d mu / d eta and d2 mu / d eta2 (NumPy), the
    inverse on PyTensor tensors (``tensor_linkinv``) and the ``code`` compiled kernels use.

    Examples
    --------
    >>> import numpy as np
    >>> lk = get_link("log")
    >>> lk.name, lk.code, float(lk.linkinv(np.array([0.0]))[0])
    ('log', 3, 1.0)
    """

    name: str
    linkfun: Callable[[Array], Array]
    linkinv: Callable[[Array], Array]
    mu_eta: Callable[[Array], Array]
    mu_eta2: Callable[[Array], Array]
    code: int
    tensor_linkinv: Callable[[Any], Any]

    def __reduce__(self):
        # links are singletons named in LINKS: pickle the name (the lambdas do not pickle)
        return (get_link, (self.name,))


def get_link(name: str) -> Link:
    """The :class:`Link` called ``name`` (``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``,
    ``"inverse"``, ``"identity"``, ``"sqrt"``).

    Examples
    --------
    >>> get_link("probit").code
    1
    """
    return LINKS[name]


def _clip_prob(p: Array) -> Array:
    return np.clip(p, _EPS, 1 - _EPS)


def _exp_tiny(eta: Array) -> Array:
    return np.maximum(np.exp(eta), _TINY)


def _logit_mu_eta(eta: Array) -> Array:
    return np.maximum(special.expit(eta) * special.expit(-eta), _EPS)


def _probit_mu_eta(eta: Array) -> Array:
    return np.maximum(np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi), _EPS)


def _cloglog_mu_eta(eta: Array) -> Array:
    return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


def _pt():
    import pytensor.tensor as pt

    return pt


def _pm_math():
    import pymc as pm

    return pm.math


LINKS: dict[str, Link] = {link.name: link for link in (
    Link("logit", special.logit, lambda eta: _clip_prob(special.expit(eta)), _logit_mu_eta,
         lambda eta: _logit_mu_eta(eta) * (1 - 2 * _clip_prob(special.expit(eta))), 0,
         lambda eta: _pm_math().invlogit(eta)),
    Link("probit", special.ndtri, lambda eta: _clip_prob(special.ndtr(eta)), _probit_mu_eta,
         lambda eta: -eta * _probit_mu_eta(eta), 1, lambda eta: _pm_math().invprobit(eta)),
    Link("cloglog", lambda mu: np.log(-np.log1p(-mu)), lambda eta: _clip_prob(-np.expm1(-np.exp(eta))),
         _cloglog_mu_eta, lambda eta: _cloglog_mu_eta(eta) * (1 - np.exp(eta)), 2,
         lambda eta: -_pt().expm1(-_pt().exp(eta))),
    Link("log", np.log, _exp_tiny, _exp_tiny, _exp_tiny, 3, lambda eta: _pt().exp(eta)),
    Link("inverse", lambda mu: 1 / mu, lambda eta: 1 / eta, lambda eta: -1 / eta**2,
         lambda eta: 2 / eta**3, 4, lambda eta: 1.0 / eta),
    Link("identity", lambda mu: mu, lambda eta: eta, lambda eta: np.ones_like(eta),
         lambda eta: np.zeros_like(eta), 5, lambda eta: eta),
    Link("sqrt", np.sqrt, lambda eta: eta**2, lambda eta: 2 * eta, lambda eta: np.full_like(eta, 2.0), 6,
         lambda eta: eta**2),
)}
