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
    shape: float | None = None   # negative binomial size k (Var = mu + mu^2 / k)

    @property
    def is_gaussian_identity(self) -> bool:
        return self.name == "gaussian" and self.link.name == "identity"

    @property
    def has_dispersion(self) -> bool:
        """True where lme4 reports a residual scale (gaussian, Gamma): ``useSc`` in merMod."""
        return self.name in ("gaussian", "gamma")

    def with_shape(self, shape: float) -> "Family":
        """The same family with the negative-binomial shape (size) fixed at ``shape``."""
        return Family(self.name, self.link, self.canonical, float(shape))

    def variance(self, mu: Array) -> Array:
        if self.name == "gaussian":
            return np.ones_like(mu)
        if self.name == "binomial":
            return mu * (1 - mu)
        if self.name == "poisson":
            return mu
        if self.name == "gamma":
            return mu**2
        if self.name == "negativebinomial":
            return mu + mu**2 / self._shape()
        raise NotImplementedError(self.name)

    def _shape(self) -> float:
        if self.shape is None:
            raise ValueError("the negative binomial shape is not set: use family.with_shape(k)")
        return self.shape

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
        if self.name == "negativebinomial":
            k = self._shape()
            # MASS::negative.binomial(theta)$dev.resids
            return 2 * wt * (_ylogy(y, mu) - (y + k) * np.log((y + k) / (mu + k)))
        raise NotImplementedError(self.name)

    def aic(self, y: Array, n: Array, mu: Array, wt: Array, dev: float) -> float:
        """-2 log-likelihood as R's ``family$aic(y, n, mu, wt, dev)`` (which glmer's logLik uses).

        ``n`` is the number of trials (binomial), ``wt`` the prior weights times trials,
        ``dev`` the sum of the deviance residuals (the Gamma and gaussian dispersion
        estimates come from it, as in R; Gamma and gaussian include R's ``+ 2``).
        """
        if self.name == "binomial":
            m = n if np.any(n > 1) else wt
            k = np.round(m * y)
            m = np.round(m)
            with np.errstate(divide="ignore", invalid="ignore"):
                ll = (special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
                      + special.xlogy(k, mu) + special.xlog1py(m - k, -mu))
                terms = np.where(m > 0, wt / np.where(m > 0, m, 1) * ll, 0.0)
            return float(-2 * terms.sum())
        if self.name == "poisson":
            ll = special.xlogy(y, mu) - mu - special.gammaln(y + 1)
            return float(-2 * np.sum(ll * wt))
        if self.name == "negativebinomial":
            k = self._shape()
            ll = (special.gammaln(k + y) - special.gammaln(k) - special.gammaln(y + 1) + k * np.log(k)
                  + special.xlogy(y, mu + (y == 0)) - (k + y) * np.log(k + mu))
            return float(-2 * np.sum(ll * wt))
        if self.name == "gamma":
            disp = dev / np.sum(wt)
            a = 1 / disp
            ll = (a - 1) * np.log(y) - y / (mu * disp) - special.gammaln(a) - a * np.log(mu * disp)
            return float(-2 * np.sum(ll * wt) + 2)
        if self.name == "gaussian":
            nobs = y.size
            return float(nobs * (np.log(2 * np.pi * dev / nobs) + 1) + 2 - np.sum(np.log(wt[wt > 0])))
        raise NotImplementedError(self.name)

    def check_response(self, y: Array, column: str) -> None:
        """Raise :class:`DesignError` naming ``column`` if ``y`` is outside the family's support."""
        bad = None
        if self.name == "binomial" and np.any((y < 0) | (y > 1)):
            bad, what = y[(y < 0) | (y > 1)], "0/1 (or proportions with weights=trials)"
        elif self.name in ("poisson", "negativebinomial") and np.any((y < 0) | (y != np.round(y))):
            bad, what = y[(y < 0) | (y != np.round(y))], "non-negative whole counts"
        elif self.name == "gamma" and np.any(y <= 0):
            bad, what = y[y <= 0], "positive"
        if bad is not None:
            raise DesignError(f"{self.name} response {column!r} must be {what}; found values such as "
                              f"{bad[:3].tolist()}")


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


def get_family(family: str | Family = "gaussian", link: str | None = None, *,
               shape: float | None = None) -> Family:
    """Return the :class:`Family` for a name such as ``"binomial"`` and an optional link.

    ``shape`` fixes the negative-binomial size k (otherwise the GLMM engine estimates
    it, as ``glmer.nb`` does).

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
    return Family(name, _LINKS[link], default, shape)


GAUSSIAN = get_family("gaussian")
