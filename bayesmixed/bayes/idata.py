"""A NUTS trace -> the fit's ArviZ data: the model's quantities under the user's names.

``posterior`` keeps ``beta``, ``sd_<term>``, ``cor_<term>`` (one entry per pair),
the family's parameter (``sigma``, ``alpha``, ``shape``) and ``b_<term>``; the
sampler's internals (``Intercept_c``, ``beta_slopes``, ``z_*``, ``cpc_*``) are
dropped, being functions of those. ``log_likelihood``, ``observed_data`` and
``posterior_predictive`` hold the response under its own name.
"""

from __future__ import annotations

import numpy as np

from bayesmixed.bayes.build import cor_pairs, pair_dim, user_variable_names
from bayesmixed.bayes.loglik import eta_draws, pointwise_loglik, simulate_response

# posterior predictive draws are stored by default up to this many numbers (n x chains x draws);
# beyond it ``fit.predict(kind="predictive")`` draws them on request
PPC_MAX_VALUES = 20_000_000


def response_var(design) -> str:
    """Name of the observed variable in ``observed_data``, ``posterior_predictive`` and ``log_likelihood``.

    The response's name (``cbind(s, f)``: ``s``, the successes that are compared).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> response_var(bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).design)
    'Reaction'
    """
    name = str(getattr(design, "response_name", "") or "y").strip()
    if name.startswith("cbind(") and name.endswith(")"):
        name = name[len("cbind("):-1].split(",")[0].strip()
    return name or "y"


def observed_and_replicates(design, post, rng, *, predictive: bool = True):
    """(observed response, (chain, draw, n) replicated responses or None) on the scale compared.

    Binomial ``cbind`` responses as successes, as :func:`bayesmixed.predictive.observed_response`.
    The replicates use each draw's mean and the family's parameter (``Family.simulate``).
    """
    fam = design.family
    observed = np.asarray(fam.observed_values(design.y, design.trials), dtype=float)
    C, D = post.sizes["chain"], post.sizes["draw"]
    if not predictive or design.n * C * D > PPC_MAX_VALUES:
        return observed, None
    mu = fam.link.linkinv(eta_draws(design, post))
    rep = simulate_response(design, post, mu, rng, trials=design.trials, weights=design.weights)
    return observed, np.asarray(fam.observed_values(rep, design.trials), dtype=float)


def user_posterior(post, design):
    """The model's named quantities only (sampler internals dropped), in :func:`user_variable_names` order."""
    return post[[v for v in user_variable_names(design) if v in post.data_vars]]


def pairs_as_in_the_contract(post, design):
    """``cor_<term>`` on the dim ``<term>__pair`` labelled ``"a:b"``, whatever engine made the draws."""
    for t in design.reterms:
        name = f"cor_{t.name}"
        if name not in post or not (t.correlated and t.n_cols > 1):
            continue
        dim = [d for d in post[name].dims if d not in ("chain", "draw")][0]
        labels = cor_pairs(t.cnames)[2]
        if dim != pair_dim(t):
            post = post.rename({dim: pair_dim(t)}) if dim not in post[[v for v in post.data_vars if v != name]].dims \
                else post.assign({name: post[name].rename({dim: pair_dim(t)})})
        post = post.assign_coords({pair_dim(t): labels})
    return post


def assemble_idata(trace, design, rng=None, *, predictive: bool = True):
    """ArviZ data of a fit: posterior (the model's quantities), sample_stats, log_likelihood,
    observed_data, and posterior_predictive (replicates from each draw; skipped when very large)."""
    import xarray as xr

    post = pairs_as_in_the_contract(user_posterior(trace["posterior"].to_dataset(), design), design)
    stats = trace["sample_stats"].to_dataset() if "sample_stats" in trace.children else None
    rng = np.random.default_rng(0) if rng is None else rng
    name = response_var(design)
    obs = xr.DataArray(np.arange(design.n), dims="obs")
    cdo = {"chain": post["chain"], "draw": post["draw"], "obs": obs}
    ll = pointwise_loglik(design, post)                                  # (chain, draw, obs)
    observed, rep = observed_and_replicates(design, post, rng, predictive=predictive)
    groups = {"posterior": post,
              "log_likelihood": xr.Dataset({name: xr.DataArray(ll, dims=("chain", "draw", "obs"), coords=cdo)}),
              "observed_data": xr.Dataset({name: xr.DataArray(observed, dims="obs", coords={"obs": obs})})}
    if rep is not None:
        groups["posterior_predictive"] = xr.Dataset(
            {name: xr.DataArray(rep, dims=("chain", "draw", "obs"), coords=cdo)})
    if stats is not None:
        groups["sample_stats"] = stats
    return xr.DataTree.from_dict(groups)
