"""Response families and link functions, shared by the likelihood and Bayesian engines.

Each :class:`Family` carries what glm()/glmer() need (link, inverse link, its
derivative, variance function, unit deviance) and its name, so both engines read
one object. ``get_family("binomial", link="probit")`` validates names and lists
the valid choices in its error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

from bayesmixed.errors import DesignError

Array = np.ndarray


@dataclass(frozen=True)
class Link:
    """A link function g with inverse and derivative d mu / d eta."""

    name: str
    linkfun: Callable[[Array], Array]
    linkinv: Callable[[Array], Array]
    mu_eta: Callable[[Array], Array]


def _clip_prob(p: Array) -> Array:
    eps = np.finfo(float).eps
    return np.clip(p, eps, 1 - eps)


_LINKS: dict[str, Link] = {
    "identity": Link("identity", lambda mu: mu, lambda eta: eta, lambda eta: np.ones_like(eta)),
    "log": Link(
        "log",
        np.log,
        lambda eta: np.maximum(np.exp(eta), np.finfo(float).tiny),
        lambda eta: np.maximum(np.exp(eta), np.finfo(float).tiny),
    ),
    "logit": Link(
        "logit",
        special.logit,
        lambda eta: _clip_prob(special.expit(eta)),
        lambda eta: np.maximum(special.expit(eta) * special.expit(-eta), np.finfo(float).eps),
    ),
    "probit": Link(
        "probit",
        special.ndtri,
        lambda eta: _clip_prob(special.ndtr(eta)),
        lambda eta: np.maximum(np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi), np.finfo(float).eps),
    ),
    "cloglog": Link(
        "cloglog",
        lambda mu: np.log(-np.log1p(-mu)),
        lambda eta: _clip_prob(-np.expm1(-np.exp(eta))),
        lambda eta: np.maximum(np.exp(eta - np.exp(eta)), np.finfo(float).eps),
    ),
    "inverse": Link("inverse", lambda mu: 1 / mu, lambda eta: 1 / eta, lambda eta: -1 / eta**2),
    "sqrt": Link("sqrt", np.sqrt, lambda eta: eta**2, lambda eta: 2 * eta),
}


def _ylogy(y: Array, mu: Array) -> Array:
    """y * log(y / mu) with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0)


@dataclass(frozen=True)
class Family:
    """A GLM family: name, link, variance function and unit deviance."""

    name: str
    link: Link
    canonical: str

    @property
    def is_gaussian_identity(self) -> bool:
        return self.name == "gaussian" and self.link.name == "identity"

    def variance(self, mu: Array) -> Array:
        if self.name == "gaussian":
            return np.ones_like(mu)
        if self.name == "binomial":
            return mu * (1 - mu)
        if self.name == "poisson":
            return mu
        if self.name == "gamma":
            return mu**2
        raise NotImplementedError(self.name)  # negativebinomial needs its shape: see GLMM engine

    def dev_resids(self, y: Array, mu: Array, wt: Array) -> Array:
        """Unit deviances times prior weights (R's ``family$dev.resids``)."""
        if self.name == "gaussian":
            return wt * (y - mu) ** 2
        if self.name == "binomial":
            return 2 * wt * (_ylogy(y, mu) + _ylogy(1 - y, 1 - mu))
        if self.name == "poisson":
            return 2 * wt * (_ylogy(y, mu) - (y - mu))
        if self.name == "gamma":
            return -2 * wt * (np.log(y / mu) - (y - mu) / mu)
        raise NotImplementedError(self.name)


FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (canonical/default link, allowed links)
    "gaussian": ("identity", ("identity", "log", "inverse")),
    "binomial": ("logit", ("logit", "probit", "cloglog")),
    "poisson": ("log", ("log", "identity", "sqrt")),
    "gamma": ("inverse", ("log", "inverse", "identity")),
    "negativebinomial": ("log", ("log",)),
}
_ALIASES = {"normal": "gaussian", "bernoulli": "binomial", "negbinomial": "negativebinomial",
            "negative_binomial": "negativebinomial", "nb": "negativebinomial", "Gamma": "gamma"}


def get_family(family: str | Family = "gaussian", link: str | None = None) -> Family:
    """Return the :class:`Family` for a name such as ``"binomial"`` and an optional link.

    Examples
    --------
    >>> get_family("binomial", link="probit").link.name
    'probit'
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str):
        raise DesignError(f"family must be a string such as 'binomial', got {family!r}")
    name = _ALIASES.get(family, family.lower())
    name = _ALIASES.get(name, name)
    if name not in FAMILIES:
        raise DesignError(
            f"unknown family {family!r}; valid families are: {', '.join(FAMILIES)}"
        )
    default, allowed = FAMILIES[name]
    link = default if link is None else link
    if link not in allowed:
        raise DesignError(
            f"link {link!r} is not available for family {name!r}; valid links are: "
            f"{', '.join(allowed)}"
        )
    return Family(name, _LINKS[link], default)


GAUSSIAN = get_family("gaussian")
