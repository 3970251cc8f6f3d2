"""MixedDesign + Priors -> ``pymc.Model`` with named coords (lme4 semantics for the bars).

Variables of the model (names are stable; ``PosteriorFit`` reads them):

- ``beta`` (dims ``fixef``): the fixed effects on the user's X. When X has an
  intercept, the sampler works on centred predictors (``Intercept_c`` is the
  intercept at the predictors' means, as rstanarm and bambi do), which removes
  most of the posterior correlation between intercept and slopes.
- per random-effects term ``t``: ``sd_<t>`` (dims ``<t>__term``), for correlated
  terms ``cor_<t>`` (dims ``<t>__pair``: one entry per pair of terms, labelled
  ``"Intercept:Days"``, in the order of the upper triangle row by row) from an LKJ
  prior written through its canonical partial correlations ``cpc_<t>`` (see
  :func:`lkj_cholesky_corr`), and ``b_<t>`` (dims ``<group>``, ``<t>__term``), the
  random effects; non-centred ``z_<t>`` standard normals unless ``centered=True``.

``beta``, ``sd_*``, ``cor_*``, ``b_*`` and the family's parameters are the model's
quantities (:func:`user_variable_names`); everything else (``Intercept_c``,
``beta_slopes``, ``z_*``, ``cpc_*``) is how the sampler gets at them.
- ``sigma`` / ``alpha`` / ``shape``: the family's auxiliary parameter.
- ``y`` (dims ``obs``): the likelihood; its pointwise log density is what LOO uses.
"""

from __future__ import annotations

import numpy as np

from bayesmixed.bayes.priors import Prior, Priors, resolve_priors
from bayesmixed.errors import DesignError


def user_variable_names(design) -> list[str]:
    """The model's named quantities, in the order the fit's ``posterior`` lists them.

    ``beta``, ``b_<term>``, ``sd_<term>``, ``cor_<term>`` (correlated terms) and the
    family's parameter; everything else in the PyMC model (``Intercept_c``,
    ``beta_slopes``, ``z_*``, ``cpc_*``, per-column ``sd_<term>_<i>``) is how the
    sampler gets at them. ``b_*`` come before ``sd_*``: ArviZ's summary labels rows in the
    order dims first appear in a dataset, (group, term) before (term).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> user_variable_names(bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design)
    ['beta', 'b_Subject', 'sd_Subject', 'cor_Subject', 'sigma']
    """
    names = ["beta"] + [f"b_{t.name}" for t in design.reterms] + [f"sd_{t.name}" for t in design.reterms]
    names += [f"cor_{t.name}" for t in design.reterms if t.correlated and t.n_cols > 1]
    return names + list(design.family.extra_params)


def cor_pairs(cnames) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row and column indices of the off-diagonal pairs (upper triangle, row by row) and their labels.

    Examples
    --------
    >>> cor_pairs(["Intercept", "Days"])[2]
    ['Intercept:Days']
    """
    i, j = np.triu_indices(len(cnames), 1)
    return i, j, [f"{cnames[a]}:{cnames[b]}" for a, b in zip(i, j)]


def pair_dim(t) -> str:
    """The dim of ``cor_<t>``."""
    return f"{t.name}__pair"


def quiet_blas_check() -> None:
    """Let PyTensor look for a BLAS library now, without its "could not link to a BLAS" warning.

    PyTensor looks once, on its first compile, and warns when pip installed it
    without a BLAS to link. Nothing here depends on it (nutpie's default numba
    route does its own linear algebra; the C route and ``method="map"`` work on
    small matrices), so the warning says nothing the user can act on.
    """
    import warnings

    import pytensor

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        pytensor.config.blas__ldflags  # noqa: B018 - evaluated (and cached) for its side effect


def model_coords(design) -> dict[str, list]:
    """Coords shared by the PyMC model and the ``idata`` (labels from the design)."""
    coords: dict[str, list] = {"fixef": list(design.fixef_names), "obs": list(range(design.n))}
    for t in design.reterms:
        # terms on the same grouping factor share one level coord (group_dim)
        coords[t.group_dim] = list(t.levels)
        coords[t.term_dim] = list(t.cnames)
        if t.correlated and t.n_cols > 1:
            coords[pair_dim(t)] = cor_pairs(t.cnames)[2]
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


def lkj_cholesky_corr(name: str, k: int, eta: float):
    """Cholesky factor of an LKJ(eta) correlation matrix from its canonical partial correlations.

    C-vine construction (Lewandowski, Kurowicka & Joe 2009, Sec. 2.4): the partial
    correlations of column j (0-based) are independent ``2 * Beta(b_j, b_j) - 1`` with
    ``b_j = eta + (k - 2 - j) / 2``, and then the correlation matrix is LKJ(eta). The
    factor follows Stan's ``cholesky_corr_constrain``: ``L[i, j] = z_ij * sqrt(1 -
    sum_{m<j} L[i, m]^2)``, ``L[i, i] = sqrt(1 - sum_{m<i} L[i, m]^2)``. Written with
    stacks of scalars rather than ``pm.LKJCholeskyCov``'s packed-triangle indexing, which
    costs numba most of its compile time; PyMC's Beta transform supplies the Jacobian.
    """
    import pymc as pm
    import pytensor.tensor as pt

    rows, cols = np.tril_indices(k, -1)                      # C-vine order: column j of row i
    beta = eta + (k - 2 - cols) / 2.0
    u = pm.Beta(name, alpha=beta, beta=beta, shape=len(rows))
    zc = 2.0 * u - 1.0
    entries = {}
    for n, (i, j) in enumerate(zip(rows, cols)):
        left = sum((entries[(i, m)] ** 2 for m in range(j)), pt.constant(0.0))
        entries[(i, j)] = zc[n] * pt.sqrt(1.0 - left) if j else zc[n]
    zero, one = pt.constant(0.0), pt.constant(1.0)
    out = []
    for i in range(k):
        row = []
        for j in range(k):
            if j < i:
                row.append(entries[(i, j)])
            elif j == i:
                row.append(one if i == 0 else pt.sqrt(1.0 - sum((entries[(i, m)] ** 2 for m in range(i)),
                                                                 pt.constant(0.0))))
            else:
                row.append(zero)
        out.append(pt.stack(row))
    return pt.stack(out)


# numba (nutpie's backend) spends most of a model's compile time on BLAS dot products
# (measured on sleepstudy: 25-30 s warm with pt.dot, 9 s without); below this many
# columns an elementwise product and a row sum is as fast to run and far faster to compile
ELEMENTWISE_MAX_COLS = 32


def _matvec(X: np.ndarray, v):
    """(n, p) @ (p,) -> (n,): elementwise for narrow X (compile time), BLAS otherwise."""
    import pytensor.tensor as pt

    if X.shape[1] <= ELEMENTWISE_MAX_COLS:
        return (X * v[None, :]).sum(axis=1)
    return pt.dot(X, v)


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
            return a + _matvec(Xc, beta_rest) + design.offset
        pm.Deterministic("beta", pt.stack([a]), dims="fixef")
        return a + pt.zeros(design.n) + design.offset
    beta = _vector_prior("beta", [priors.fixef[n] for n in names], dims="fixef")
    return _matvec(X, beta) + design.offset


def random_effects(design, priors: Priors, *, centered: bool = False) -> list:
    """Create sds, correlations and ``b_<term>`` for every term; return their (n,) contributions."""
    import pymc as pm
    import pytensor.tensor as pt

    contribs = []
    for t in design.reterms:
        gdim, tdim = t.group_dim, t.term_dim
        if t.correlated and t.n_cols > 1:
            sd = _vector_prior(f"sd_{t.name}", [priors.sd[t.name][c] for c in t.cnames], dims=tdim)
            L = lkj_cholesky_corr(f"cpc_{t.name}", t.n_cols, priors.lkj_eta[t.name])     # (k, k)
            C = (L[:, None, :] * L[None, :, :]).sum(axis=-1)                                  # L @ L.T
            pi, pj, _ = cor_pairs(t.cnames)
            pm.Deterministic(f"cor_{t.name}", pt.stack([C[a, b] for a, b in zip(pi, pj)]), dims=pair_dim(t))
            if centered:
                chol = sd[:, None] * L
                b = pm.MvNormal(f"b_{t.name}", mu=np.zeros(t.n_cols), chol=chol, dims=(gdim, tdim))
            else:
                z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=(gdim, tdim))
                # (L, 1, k) * (1, k, k) -> sum over the last axis: z @ L.T without a BLAS dot,
                # which numba compiles much more slowly than an elementwise product
                b = pm.Deterministic(f"b_{t.name}", (z[:, None, :] * L[None, :, :]).sum(axis=-1) * sd,
                                     dims=(gdim, tdim))
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


def binomial_counts(design) -> tuple[np.ndarray, np.ndarray] | None:
    """(successes, trials) for a binomial design, or None for a 0/1 (Bernoulli) response."""
    if design.trials is None and not design.has_user_weights:
        return None
    n = np.asarray(design.weights, dtype=float)               # trials x prior weights (glm's convention)
    if not np.allclose(n, np.round(n)):
        raise DesignError("binomial weights x trials must be whole numbers for method='nuts'")
    n = np.round(n).astype(np.int64)
    return np.round(design.y * n).astype(np.int64), n


def likelihood(design, priors: Priors, eta, *, data_container: bool = False) -> None:
    """Add the observed ``y`` with the family's likelihood and link (``Family.pymc_likelihood``).

    The family's auxiliary parameters (``extra_params``: ``sigma``, ``alpha``,
    ``shape``) are created first from ``priors.aux``. ``data_container=True`` puts
    the observed values in ``pm.Data("y_obs")`` so that a compiled model can be
    re-run on new responses (simulation-based calibration).
    """
    import pymc as pm

    fam = design.family
    params = {k: priors.aux[k].create(k) for k in fam.extra_params}
    counts = binomial_counts(design) if fam.uses_trials else None
    trials = None if counts is None else counts[1]
    observed = fam.observed_values(design.y, trials)
    if data_container:
        observed = pm.Data("y_obs", observed, dims="obs")
    # prior weights: inside the trials for binomial, precision weights otherwise (refused where unsupported)
    weights = design.weights if design.has_user_weights and not fam.uses_trials else None
    fam.pymc_likelihood("y", observed=observed, eta=eta, trials=trials, weights=weights, params=params,
                        dims="obs")


def build_pymc_model(design, priors: Priors | None = None, *, centered: bool = False,
                     data_container: bool = False):
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
    data_container : bool
        Observed values in ``pm.Data("y_obs")`` (swap responses without recompiling).

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

    priors = resolve_priors(design) if priors is None else priors
    quiet_blas_check()
    with pm.Model(coords=model_coords(design)) as model:
        eta = linear_predictor_fixed(design, priors)
        for c in random_effects(design, priors, centered=centered):
            eta = eta + c
        likelihood(design, priors, eta, data_container=data_container)
    return model
