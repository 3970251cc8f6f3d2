"""The JAX route: NumPyro's or BlackJAX's NUTS on the PyMC model, chains vectorised.

This is how a user with a GPU goes further: the same ``model.pymc_model`` is turned
into a JAX log density by PyMC and sampled with every chain in one vectorised program
(``jax.vmap``), which runs on whatever device JAX has (CPU here, a GPU where one is
installed with ``pip install "jax[cuda12]"``).

NumPyro runs through PyMC's own route (``chain_method="vectorized"``). BlackJAX runs
through a short loop written here (window adaptation, then NUTS steps in a
``lax.scan``), vmapped over chains, because PyMC's BlackJAX route passes a
``progress_bar`` keyword that current BlackJAX releases refuse.
"""

from __future__ import annotations

import numpy as np

JAX_SAMPLERS = ("numpyro", "blackjax")


def sample_jax(pm_model, *, sampler: str, draws: int, tune: int, chains: int, seed: int,
               progressbar: bool, target_accept: float):
    """Posterior draws of ``pm_model`` with NumPyro or BlackJAX as an ArviZ ``DataTree``.

    The returned tree has the ``posterior`` (constrained values of every free variable
    and deterministic, as ``pm.sample`` gives) and ``sample_stats`` (``diverging``,
    ``energy``, ``tree_depth``, ``acceptance_rate``, ``lp``) groups.
    """
    import pymc.sampling.jax as pmjax

    if sampler == "numpyro":
        return pmjax.sample_jax_nuts(
            draws=draws, tune=tune, chains=chains, target_accept=target_accept, random_seed=seed,
            model=pm_model, progressbar=progressbar, chain_method="vectorized", nuts_sampler="numpyro",
            compute_convergence_checks=False)
    if sampler == "blackjax":
        return _sample_blackjax(pm_model, draws=draws, tune=tune, chains=chains, seed=seed,
                                target_accept=target_accept)
    raise ValueError(f"sampler must be one of {JAX_SAMPLERS}, got {sampler!r}")


def _blackjax_chains(logp_fn, init, *, draws: int, tune: int, chains: int, seed: int,
                     target_accept: float):
    """Window adaptation and ``draws`` NUTS steps per chain, every chain in one ``vmap``."""
    import blackjax
    import jax

    def one_chain(key, position):
        k_adapt, k_draw = jax.random.split(key)
        adapt = blackjax.window_adaptation(blackjax.nuts, logp_fn, target_acceptance_rate=target_accept)
        (state, params), _ = adapt.run(k_adapt, position, num_steps=tune)
        kernel = blackjax.nuts(logp_fn, **params).step

        def step(state, key):
            state, info = kernel(key, state)
            stats = {"diverging": info.is_divergent, "energy": info.energy,
                     "tree_depth": info.num_trajectory_expansions, "n_steps": info.num_integration_steps,
                     "acceptance_rate": info.acceptance_rate, "lp": state.logdensity}
            return state, (state.position, stats)

        _, (positions, stats) = jax.lax.scan(step, state, jax.random.split(k_draw, draws))
        return positions, stats

    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    return jax.jit(jax.vmap(one_chain))(keys, init)


def _sample_blackjax(pm_model, *, draws: int, tune: int, chains: int, seed: int, target_accept: float):
    import pymc.sampling.jax as pmjax
    from arviz_base import from_dict
    from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_observations
    from pymc.util import get_default_varnames

    logp_fn = pmjax.get_jaxified_logp(pm_model)
    init = pmjax._get_batched_jittered_initial_points(
        model=pm_model, chains=chains, initvals=None, random_seed=seed, jitter=True, logp_fn=logp_fn)
    if chains == 1:
        init = [np.asarray(x)[None] for x in init]
    raw, stats = _blackjax_chains(logp_fn, list(init), draws=draws, tune=tune, chains=chains, seed=seed,
                                  target_accept=target_accept)
    names = list(get_default_varnames(pm_model.unobserved_value_vars, include_transformed=False))
    jax_fn = pmjax.get_jaxified_graph(inputs=pm_model.value_vars, outputs=names)
    values = pmjax._postprocess_samples(jax_fn, raw, postprocessing_backend=None,
                                        postprocessing_vectorize="vmap", donate_samples=True)
    posterior = {v.name: np.asarray(r) for v, r in zip(names, values)}
    coords, dims = coords_and_dims_for_inferencedata(pm_model)
    groups = {"posterior": posterior, "sample_stats": {k: np.asarray(v) for k, v in stats.items()}}
    observed = find_observations(pm_model)
    if observed is not None:
        groups["observed_data"] = observed
    return from_dict(groups, coords=coords, dims=dims, sample_dims=["chain", "draw"],
                     attrs={"posterior": {"inference_library": "blackjax"}})
