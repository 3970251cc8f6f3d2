"""The PyMC engine: the only package importing pymc (lazily, inside functions)."""

from bayesmixed.bayes.build import build_pymc_model
from bayesmixed.bayes.priors import Prior, Priors, resolve_priors


def fit_bayes(model, method: str = "nuts", **kwargs):
    """Fit ``model`` by NUTS (``method="nuts"``) or the REML-equivalent MAP (``"map"``)."""
    from bayesmixed.bayes.sample import fit_bayes as _fit

    return _fit(model, method=method, **kwargs)


__all__ = ["build_pymc_model", "resolve_priors", "fit_bayes", "Prior", "Priors"]


def to_bambi(model, **kwargs):
    """The equivalent ``bambi.Model`` (see :func:`bayesmixed.bayes.bambi.to_bambi`)."""
    from bayesmixed.bayes.bambi import to_bambi as _to_bambi

    return _to_bambi(model, **kwargs)


__all__ += ["to_bambi"]
