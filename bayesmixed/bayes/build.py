"""MixedDesign + Priors -> ``pymc.Model`` with named coords (lme4 semantics for the bars).

Variables of the model (names are stable; ``PosteriorFit`` reads them):

- ``beta`` (dims ``fixef``): the fixed effects on the user's X. When X has an
  intercept, the sampler works on centred predictors (``Intercept_c`` is the
  intercept at the predictors' means, as rstanarm and bambi do), which removes
  most of the posterior correlation between intercept and slopes.
- per random-effects term ``t``: ``sd_<t>`` (dims ``<t>__term``), for correlated
  terms ``corr_<t>`` (dims ``<t>__term``, ``<t>__term_bis``) from an LKJ Cholesky
  covariance, and ``b_<t>`` (dims ``<group>``, ``<t>__term``), the random effects;
  non-centred ``z_<t>`` standard normals unless ``centered=True``.
- ``sigma`` / ``alpha`` / ``shape``: the family's auxiliary parameter.
- ``y`` (dims ``obs``): the likelihood; its pointwise log density is what LOO uses.
"""

from __future__ import annotations

import numpy as np

from bayesmixed.bayes.priors import Prior, Priors
from bayesmixed.errors import DesignError


def model_coords(design) -> dict[str, list]:
    """Coords shared by the PyMC model and the ``idata`` (labels from the design)."""
    coords: dict[str, list] = {"fixef": list(design.fixef_names), "obs": list(range(design.n))}
    for t in design.reterms:
        # terms on the same grouping factor share one level coord (group_dim)
        coords[t.group_dim] = list(t.levels)
        coords[t.term_dim] = list(t.cnames)
        if t.correlated and t.n_cols > 1:
            coords[f"{t.term_dim}_bis"] = list(t.cnames)
    return coords


def _vector_prior(name: str, priors: list[Prior], dims):
    """One vector random variable if the priors share a distribution, else stacked scalars."""
    import pymc as pm
    import pytensor.tensor as pt

    if len({(p.distribution, tuple(p.args)) for p in priors}) == 1:
        args = {k: np.array([float(p.args[k]) for p in priors]) for k in priors[0].args}
        return getattr(pm, priors[0].distribution)(name, **args, dims=dims)
    parts = [p.create(f"{name}_{i}") for i, p in enumerate(priors)]
    return pm.Deterministic(name, pt.stack(parts), dims=dims)


def _sd_dist(term, priors: Priors):
    """Unregistered sd distribution of a correlated term's columns (for LKJCholeskyCov)."""
    import pymc as pm

    ps = [priors.sd[term.name][c] for c in term.cnames]
    if len({(p.distribution, tuple(p.args)) for p in ps}) != 1:
        raise DesignError(f"the standard deviations of the correlated term {term.name!r} must share one "
                          f"prior distribution (arguments may differ); got {[str(p) for p in ps]}")
    args = {k: np.array([float(p.args[k]) for p in ps]) for k in ps[0].args}
    return getattr(pm, ps[0].distribution).dist(**args, shape=term.n_cols)


def linear_predictor_fixed(design, priors: Priors):
    """Create ``beta`` and return X @ beta (+ offset), centring X when there is an intercept."""
    import pymc as pm
    import pytensor.tensor as pt

    X = design.X
    names = list(design.fixef_names)
    if design.p == 0:
        return pt.as_tensor_variable(design.offset)
    if "Intercept" in names and priors.centered_intercept:
        i0 = names.index("Intercept")
        rest = [j for j in range(design.p) if j != i0]
        xbar = X[:, rest].mean(axis=0)                          # (p-1,)
        Xc = X[:, rest] - xbar                                  # (n, p-1)
        a = priors.fixef["Intercept"].create("Intercept_c")
        if rest:
            beta_rest = _vector_prior("beta_slopes", [priors.fixef[names[j]] for j in rest], dims=None) \
                if len(rest) > 1 else pt.atleast_1d(priors.fixef[names[rest[0]]].create("beta_slopes"))
            intercept = a - pt.dot(xbar, beta_rest)
            parts = [None] * design.p
            parts[i0] = intercept
            for k, j in enumerate(rest):
                parts[j] = beta_rest[k]
            pm.Deterministic("beta", pt.stack(parts), dims="fixef")
            return a + pt.dot(Xc, beta_rest) + design.offset
        pm.Deterministic("beta", pt.stack([a]), dims="fixef")
        return a + pt.zeros(design.n) + design.offset
    beta = _vector_prior("beta", [priors.fixef[n] for n in names], dims="fixef")
    return pt.dot(X, beta) + design.offset


def random_effects(design, priors: Priors, *, centered: bool = False) -> list:
    """Create sds, correlations and ``b_<term>`` for every term; return their (n,) contributions."""
    import pymc as pm
    import pytensor.tensor as pt

    contribs = []
    for t in design.reterms:
        gdim, tdim = t.group_dim, t.term_dim
        if t.correlated and t.n_cols > 1:
            chol, corr, sds = pm.LKJCholeskyCov(f"chol_{t.name}", n=t.n_cols, eta=priors.lkj_eta[t.name],
                                                sd_dist=_sd_dist(t, priors), compute_corr=True,
                                                store_in_trace=False)
            pm.Deterministic(f"sd_{t.name}", sds, dims=tdim)
            pm.Deterministic(f"corr_{t.name}", corr, dims=(tdim, f"{tdim}_bis"))
            if centered:
                b = pm.MvNormal(f"b_{t.name}", mu=np.zeros(t.n_cols), chol=chol, dims=(gdim, tdim))
            else:
                z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=(gdim, tdim))
                b = pm.Deterministic(f"b_{t.name}", pt.dot(z, chol.T), dims=(gdim, tdim))
        else:
            sd = _vector_prior(f"sd_{t.name}", [priors.sd[t.name][c] for c in t.cnames], dims=tdim)
            if centered:
                b = pm.Normal(f"b_{t.name}", 0.0, sd, dims=(gdim, tdim))
            else:
                z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=(gdim, tdim))
                b = pm.Deterministic(f"b_{t.name}", z * sd, dims=(gdim, tdim))
        if t.n_cols == 1:
            contribs.append(b[t.codes, 0] * t.Xi[:, 0])                # (n,)
        else:
            contribs.append((b[t.codes] * t.Xi).sum(axis=-1))           # (n, k) * (n, k) -> (n,)
    return contribs


def _inverse_link(design, eta):
    import pymc as pm
    import pytensor.tensor as pt

    link = design.family.link.name
    if link == "identity":
        return eta
    if link == "log":
        return pt.exp(eta)
    if link == "logit":
        return pm.math.invlogit(eta)
    if link == "probit":
        return pm.math.invprobit(eta)
    if link == "cloglog":
        return -pt.expm1(-pt.exp(eta))
    if link == "inverse":
        return 1.0 / eta
    if link == "sqrt":
        return eta**2
    raise DesignError(f"link {link!r} is not supported by the PyMC engine")


def binomial_counts(design) -> tuple[np.ndarray, np.ndarray] | None:
    """(successes, trials) for a binomial design, or None for a 0/1 (Bernoulli) response."""
    if design.trials is None and not design.has_user_weights:
        return None
    n = np.asarray(design.weights, dtype=float)               # trials x prior weights (glm's convention)
    if not np.allclose(n, np.round(n)):
        raise DesignError("binomial weights x trials must be whole numbers for method='nuts'")
    n = np.round(n).astype(np.int64)
    return np.round(design.y * n).astype(np.int64), n


def likelihood(design, priors: Priors, eta) -> None:
    """Add the observed ``y`` with the family's likelihood and link."""
    import pymc as pm
    import pytensor.tensor as pt

    fam = design.family.name
    if design.has_user_weights and fam not in ("gaussian", "binomial"):
        raise DesignError(f"prior weights are supported by method='nuts' for gaussian and binomial "
                          f"models only, not {fam!r}")
    if fam == "gaussian":
        sigma = priors.aux["sigma"].create("sigma")
        scale = sigma / np.sqrt(design.weights) if design.has_user_weights else sigma
        pm.Normal("y", mu=_inverse_link(design, eta), sigma=scale, observed=design.y, dims="obs")
    elif fam == "binomial":
        counts = binomial_counts(design)
        logit = design.family.link.name == "logit"
        kw = {"logit_p": eta} if logit else {"p": _inverse_link(design, eta)}
        if counts is None:
            pm.Bernoulli("y", **kw, observed=design.y.astype(np.int64), dims="obs")
        else:
            s, n = counts
            pm.Binomial("y", n=n, **kw, observed=s, dims="obs")
    elif fam == "poisson":
        y = design.y.astype(np.int64)
        pm.Poisson("y", mu=_inverse_link(design, eta), observed=y, dims="obs")
    elif fam == "negativebinomial":
        alpha = priors.aux["alpha"].create("alpha")
        pm.NegativeBinomial("y", mu=_inverse_link(design, eta), alpha=alpha,
                            observed=design.y.astype(np.int64), dims="obs")
    elif fam == "gamma":
        shape = priors.aux["shape"].create("shape")
        mu = _inverse_link(design, eta)
        pm.Gamma("y", alpha=shape, beta=shape / mu, observed=design.y, dims="obs")
    else:
        raise DesignError(f"family {fam!r} is not supported by the PyMC engine")
    del pt


def build_pymc_model(design, priors: Priors | None = None, *, centered: bool = False):
    """Compile a :class:`MixedDesign` into a ``pymc.Model`` with named coords.

    ``(x | g)`` terms get a correlated intercept and slope (``pm.LKJCholeskyCov``),
    ``(x || g)`` independent standard deviations; random effects are
    non-centred by default (``b = z @ chol.T`` with ``z ~ N(0, 1)``).

    Parameters
    ----------
    design : MixedDesign
        The model description (``model.design``); the formula is not re-read.
    priors : Priors, optional
        From :func:`resolve_priors`; the defaults when omitted.
    centered : bool
        Sample the random effects themselves instead of standardised ones
        (better when groups carry a lot of data each).

    Returns
    -------
    pymc.Model

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> pm_model = build_pymc_model(m.design)
    >>> list(pm_model.coords["Subject__term"]), len(pm_model.coords["Subject"])
    (['Intercept', 'Days'], 18)
    """
    import pymc as pm

    from bayesmixed.bayes.priors import resolve_priors

    priors = resolve_priors(design) if priors is None else priors
    with pm.Model(coords=model_coords(design)) as model:
        eta = linear_predictor_fixed(design, priors)
        for c in random_effects(design, priors, centered=centered):
            eta = eta + c
        likelihood(design, priors, eta)
    return model
