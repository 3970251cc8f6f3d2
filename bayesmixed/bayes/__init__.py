"""The PyMC engine: the only package importing pymc (lazily, inside functions)."""

from bayesmixed.bayes.build import build_pymc_model
from bayesmixed.bayes.priors import Prior, Priors, resolve_priors


from bayesmixed.bayes.sample import fit_bayes


__all__ = ["build_pymc_model", "resolve_priors", "fit_bayes", "Prior", "Priors"]


def to_bambi(model, **kwargs):
    """The equivalent ``bambi.Model`` (see :func:`bayesmixed.bayes.bambi.to_bambi`)."""
    from bayesmixed.bayes.bambi import to_bambi as _to_bambi

    return _to_bambi(model, **kwargs)


__all__ += ["to_bambi"]
