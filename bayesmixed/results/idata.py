"""ArviZ data for point fits: draws from the normal approximation at the estimate.

So that the same ArviZ code runs on a REML/ML/Laplace/MAP fit as on a posterior fit,
the ``posterior`` group carries the same variables under the same names:

- ``beta`` (dims ``fixef``) from N(beta_hat, vcov);
- ``sd_<term>`` / ``cor_<term>`` (one entry per pair) and ``sigma`` from the
  approximate sampling distribution of the covariance parameters: a normal on
  (theta, log sigma) with the inverse Hessian of the deviance as covariance (for
  linear mixed models lmerTest's ``devfun_vp`` Hessian, the one Satterthwaite's df
  use; for GLMMs the theta block of the Hessian lme4's ``vcov`` comes from), drawn
  theta's diagonal entries reflected at zero;
- ``b_<term>`` (dims ``<group>``, ``<term>__term``) from N(b_hat, conditional covariance).

``observed_data`` and ``posterior_predictive`` (the response simulated from each
draw's mean) are there too, named as the response. GLMMs have no ``sigma`` unless
their family has a scale; family parameters without a sampling distribution here
(negative-binomial shape) are left out rather than stored as constants.
"""

from __future__ import annotations

import numpy as np

from bayesmixed.results.predict import eta_draws

# ORDER_NOTE: arviz_stats' ``summary`` (1.x) stacks each variable's dims in the order the dims
# first appear in the dataset but labels the rows in the variable's own dim order, so an
# ``sd_<g>`` (term) stored before ``b_<g>`` (group, term) mislabels every ``b_`` row. The
# posterior therefore lists ``beta``, then ``b_*``, then ``sd_*``, ``cor_*`` and ``sigma``.

# replicated responses are stored by default up to this many numbers (n x draws)
PPC_MAX_VALUES = 20_000_000


def _pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(k, 1)


def varpar_distribution(fit) -> tuple[np.ndarray, float | None, np.ndarray]:
    """(theta, sigma or None, covariance) of the normal approximation of the covariance parameters.

    Linear mixed models: (theta, sigma) with covariance 2 H^-1, H the Hessian of the
    deviance in (theta, sigma) (lmerTest's ``devfun_vp``, as for Satterthwaite's df).
    GLMMs: theta with the theta block of 2 H^-1, H the Hessian of the criterion in
    (theta, beta) that lme4's ``vcov`` comes from; no residual scale is drawn. A fit may
    give its own (``MapFit``: the REML criterion's Hessian at the mode).
    """
    own = getattr(fit, "_varpar_distribution", None)
    if own is not None:
        return own()
    o = fit._optimum
    if hasattr(o, "derivs"):                                  # a GLMM optimum
        H = np.asarray(o.derivs[1])
        try:
            cov = 2 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            cov = 2 * np.linalg.pinv(H)
        k = len(fit.theta)
        return fit.theta, None, cov[:k, :k]
    return fit.theta, fit.sigma, np.asarray(o.satterthwaite_pieces[0])


def _varpar_draws(fit, draws: int, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """(S, n_theta) theta draws and (S,) sigma draws (None: no residual scale drawn)."""
    theta, sigma, cov = varpar_distribution(fit)
    has_sigma = sigma is not None
    mean = np.concatenate([theta, [np.log(sigma)]]) if has_sigma else np.asarray(theta, dtype=float)
    if has_sigma:                                    # (theta, sigma) -> (theta, log sigma): delta method
        J = np.ones(len(mean))
        J[-1] = 1.0 / sigma
        cov = cov * np.outer(J, J)
    w, V = np.linalg.eigh(0.5 * (cov + cov.T))
    w = np.clip(w, 0.0, None)                        # a non-positive-definite Hessian: keep what is curved
    z = rng.standard_normal((draws, len(mean)))
    x = mean + (z * np.sqrt(w)) @ V.T
    th = x[:, :len(theta)]
    lower = np.asarray(fit.design.lower)
    diag = lower == 0
    th[:, diag] = np.abs(th[:, diag])                # theta's diagonal is >= 0: reflect at the boundary
    return th, (np.exp(x[:, -1]) if has_sigma else None)


def _b_draws(fit, t, mean: np.ndarray, C, draws: int, rng) -> np.ndarray:
    if C is None:
        return np.broadcast_to(mean, (draws, *mean.shape)).copy()
    chol = np.linalg.cholesky(C + 1e-12 * np.eye(t.n_cols))
    z = rng.standard_normal((draws, t.n_levels, t.n_cols))
    return mean + np.einsum("lij,dlj->dli", chol, z)


def approximate_draws(fit, draws: int = 1000, seed: int = 0) -> tuple[dict, dict, dict]:
    """(posterior arrays with a leading chain axis, coords, dims) of the normal approximation."""
    rng = np.random.default_rng(seed)
    d = fit.design
    beta = rng.multivariate_normal(fit.fixef.to_numpy(), fit.vcov.to_numpy(), size=draws, method="cholesky")
    post = {}
    coords: dict = {"fixef": list(d.fixef_names)}
    dims: dict = {"beta": ["fixef"]}
    theta, sigma = _varpar_draws(fit, draws, rng) if d.reterms else (None, None)
    scale = sigma if sigma is not None else np.full(draws, float(fit.sigma if fit.sigma is not None else 1.0))
    ranef = {}
    b = fit._b_vector()
    condvar = getattr(fit, "_condvar_blocks", None)
    for i, (t, ts, bs) in enumerate(zip(d.reterms, d.theta_slices, d.b_slices)):
        covs = np.stack([t.covariance(theta[s, ts], scale[s]) for s in range(draws)])    # (S, k, k)
        sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
        post[f"sd_{t.name}"] = sd
        coords[t.term_dim] = list(t.cnames)
        dims[f"sd_{t.name}"] = [t.term_dim]
        if t.correlated and t.n_cols > 1:
            pi, pj = _pairs(t.n_cols)
            with np.errstate(invalid="ignore", divide="ignore"):
                cor = covs[:, pi, pj] / (sd[:, pi] * sd[:, pj])
            post[f"cor_{t.name}"] = np.nan_to_num(cor)
            coords[f"{t.name}__pair"] = [f"{t.cnames[a]}:{t.cnames[c]}" for a, c in zip(pi, pj)]
            dims[f"cor_{t.name}"] = [f"{t.name}__pair"]
        coords[t.group_dim] = list(t.levels)
        ranef[f"b_{t.name}"] = _b_draws(fit, t, b[bs].reshape(t.n_levels, t.n_cols),
                                        None if condvar is None else condvar[i], draws, rng)
        dims[f"b_{t.name}"] = [t.group_dim, t.term_dim]
    if sigma is not None:
        post["sigma"] = sigma
    # b_* before sd_*: ArviZ's summary labels rows in the order the dims first appear (see ORDER_NOTE)
    post = {"beta": beta, **ranef, **post}
    return {k: np.asarray(v)[None] for k, v in post.items()}, coords, dims


def response_var(design) -> str:
    """Name of the response in ``observed_data`` / ``posterior_predictive`` (``cbind(s, f)``: ``s``)."""
    name = str(getattr(design, "response_name", "") or "y").strip()
    if name.startswith("cbind(") and name.endswith(")"):
        name = name[len("cbind("):-1].split(",")[0].strip()
    return name or "y"


def observed_and_replicates(fit, post: dict, rng, predictive: bool = True):
    """(name, observed response, (1, S, n) replicates or None) on the scale compared (``cbind``: successes).

    Each draw's mean from its ``beta`` and ``b_*``; the family's scale from the ``sigma``
    draws (gaussian), else at the estimate (gamma: shape 1/sigma², negative binomial:
    the fitted size).
    """
    d = fit.design
    fam = getattr(fit, "family", d.family)
    observed = np.asarray(fam.observed_values(d.y, d.trials), dtype=float)
    S = post["beta"].shape[1]
    if not predictive or d.n * S > PPC_MAX_VALUES:
        return response_var(d), observed, None
    b = [post[f"b_{t.name}"][0].reshape(S, -1) for t in d.reterms]
    eta, _ = eta_draws(d, post["beta"][0], np.concatenate(b, axis=1) if b else np.zeros((S, 0)))
    mu = fam.link.linkinv(eta)
    dispersion = None
    if fam.dispersion_name == "sigma":
        dispersion = post["sigma"][0][:, None] if "sigma" in post else float(fit.sigma)
    elif fam.dispersion_name == "shape":
        dispersion = 1.0 / float(fit.sigma) ** 2
    rep = fam.simulate(mu, rng, trials=d.trials, dispersion=dispersion, wt=d.weights)
    return response_var(d), observed, np.asarray(fam.observed_values(rep, d.trials), dtype=float)[None]


def normal_approximation_idata(fit, draws: int = 1000, seed: int = 0, *, predictive: bool = True):
    """ArviZ data of ``draws`` draws from the normal approximation at a point fit's estimate.

    Groups ``posterior`` (``beta``, ``b_*``, ``sd_*``, ``cor_*``, ``sigma``),
    ``observed_data`` and ``posterior_predictive`` (replicated responses, named as
    the response).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> idata = normal_approximation_idata(fit, draws=200)
    >>> list(idata.posterior.data_vars)
    ['beta', 'b_Subject', 'sd_Subject', 'cor_Subject', 'sigma']
    >>> idata.posterior["cor_Subject"].coords["Subject__pair"].values.tolist()
    ['Intercept:Days']
    >>> bool(abs(float(idata.posterior["sigma"].mean()) - fit.sigma) < 1)
    True
    """
    import arviz as az

    post, coords, dims = approximate_draws(fit, draws, seed)
    groups = {"posterior": post}
    name, observed, rep = observed_and_replicates(fit, post, np.random.default_rng(seed + 1), predictive)
    groups["observed_data"] = {name: observed}
    dims[name] = ["obs"]
    coords["obs"] = np.arange(len(observed))
    if rep is not None:
        groups["posterior_predictive"] = {name: rep}
    dt = az.from_dict(groups, coords=coords, dims=dims)
    dt["posterior"].attrs["approximation"] = f"normal approximation at the {fit.method} estimate"
    return dt
