"""Response families and link functions, shared by the likelihood and Bayesian engines.

Each family is a subclass of :class:`Family` that carries its behaviour: variance
function, unit deviance, R's ``aic``, starting values and IRLS pieces, pointwise log
density, simulation, its auxiliary parameters and its PyMC likelihood, plus small
integer ``code``\\ s (family and link) that the compiled kernels switch on. Adding a
family is one new class here (with its entry in ``_CLASSES``) and its tests; no other
module needs to branch on family names.
``get_family("binomial", link="probit")`` validates names and lists the valid choices
in its error.
"""

from __future__ import annotations

from bayesmixed.errors import DesignError
from bayesmixed.families.base import Family
from bayesmixed.families.distributions import Binomial, Gamma, Gaussian, NegativeBinomial, Poisson
from bayesmixed.links import LINKS, Link

_CLASSES: dict[str, type[Family]] = {"gaussian": Gaussian, "binomial": Binomial, "poisson": Poisson,
                                     "gamma": Gamma, "negativebinomial": NegativeBinomial}
# name: (canonical/default link, allowed links)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {n: (c.default_link, c.links) for n, c in _CLASSES.items()}
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
    return _CLASSES[name](name, LINKS[link], default, shape)


GAUSSIAN = get_family("gaussian")


__all__ = ["Family", "Gaussian", "Binomial", "Poisson", "NegativeBinomial", "Gamma", "Link", "LINKS", "FAMILIES",
           "get_family", "GAUSSIAN"]
