# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Radon: no pooling, complete pooling, partial pooling
#
# The classic partial-pooling example (Gelman & Hill 2007, ch. 12): log radon levels in
# 919 Minnesota houses in 85 counties, measured in the basement (`floor = 0`) or on the
# first floor (`floor = 1`). Some counties have one or two houses, a few have dozens:
#
# * **complete pooling** ignores counties: one intercept for the state;
# * **no pooling** fits each county separately: small counties get wild estimates;
# * **partial pooling** (`log_radon ~ floor + (1 | county)`) pulls each county's estimate
#   towards the state mean, the more the fewer houses it has.
#
# The radon data do not ship with bayesmixed, so this notebook **simulates a radon-like
# data set** with the same shape (85 counties, 919 houses, very unequal county sizes, 17%
# first-floor measurements) and Gelman & Hill's estimates as the truth: county intercepts
# N(1.46, 0.33²), floor effect -0.69, residual sd 0.76. Because the truth is known we can
# check that partial pooling is closer to it than either extreme. lme4's numbers on the same
# rows are pasted below.

# %%
import warnings

import numpy as np
import pandas as pd

import bayesmixed as bm
from bayesmixed.plots import pooling_estimates

# %% simulate
rng = np.random.default_rng(6006)
n_county, n_house = 85, 919
share = rng.dirichlet(np.full(n_county, 0.6))               # very unequal county sizes
size = 1 + rng.multinomial(n_house - n_county, share)
county = np.repeat(np.arange(n_county), size)
alpha = rng.normal(1.46, 0.33, n_county)                   # true county intercepts
floor = rng.binomial(1, 0.17, n_house)
log_radon = alpha[county] - 0.69 * floor + rng.normal(0, 0.76, n_house)
radon = pd.DataFrame({"log_radon": log_radon.round(4), "floor": floor,
                      "county": [f"C{j:02d}" for j in county]})
true_alpha = pd.Series(alpha, index=[f"C{j:02d}" for j in range(n_county)])
print(len(radon), radon["county"].nunique(), np.percentile(size, [0, 25, 50, 75, 100]).tolist())

# %%
assert len(radon) == 919 and radon["county"].nunique() == 85 and size.min() >= 1

# %% [markdown]
# ## Partial pooling by REML

# %%
fit = bm.Model("log_radon ~ floor + (1 | county)", radon).fit()
fit.summary()

# %% [markdown]
# lme4 on the same rows, `lmer(log_radon ~ floor + (1 | county))`:

# %%
R_lmer = {"fixef": [1.4167638967, -0.7155529333], "sd": [0.2900033797, 0.7661427516], "reml": 2189.38897472}
assert np.allclose(fit.fixef, R_lmer["fixef"], atol=1e-6)
assert np.allclose(fit.varcorr["sdcor"], R_lmer["sd"], atol=1e-6)
assert abs(fit.reml_criterion - R_lmer["reml"]) < 1e-5

# %% [markdown]
# ## The three estimates side by side
# `pooling_estimates` returns them per county (the numbers behind `plot_shrinkage`):
# no pooling is each county's own mean of log radon after removing the floor effect,
# complete pooling is `lm(log_radon ~ floor)`.

# %%
est = pooling_estimates(fit)
table = est.table()
table[("truth", "")] = true_alpha
table.sort_values(("n", "")).head(8).round(3)

# %% [markdown]
# For a random-intercept model the amount of pooling has a closed form: county j's
# conditional mode is a fraction λ_j = σ²_county / (σ²_county + σ²/n_j) of its no-pooling
# deviation from the state mean. A county with one house keeps λ ≈ 0.13 of its own
# deviation; the largest county (65 houses) keeps λ ≈ 0.90.

# %%
vc = fit.varcorr.set_index("grp")["vcov"]
lam = vc["county"] / (vc["county"] + vc["Residual"] / est.size)
mu = fit.fixef["Intercept"]
assert np.allclose(est.partial_pooling["Intercept"] - mu, lam * (est.no_pooling["Intercept"] - mu), atol=1e-8)
assert np.all(np.diff(lam.to_numpy()[np.argsort(est.size.to_numpy())]) >= 0)          # more houses, less pooling
print(f"lambda: n=1 -> {lam[est.size == 1].iloc[0]:.2f}, n={est.size.max()} -> {lam.max():.2f}")

# %% [markdown]
# Which estimate is closest to the truth? Partial pooling wins, in total and especially
# in small counties, where no pooling chases noise and complete pooling ignores real
# differences.

# %%
err = pd.DataFrame({
    "no pooling": est.no_pooling["Intercept"] - true_alpha,
    "partial pooling": est.partial_pooling["Intercept"] - true_alpha,
    "complete pooling": est.complete_pooling["Intercept"] - true_alpha,
})
rmse = np.sqrt((err**2).mean())
small = est.size <= 3
rmse_small = np.sqrt((err[small] ** 2).mean())
print(pd.DataFrame({"all counties": rmse, "counties with <= 3 houses": rmse_small}).round(3))
assert rmse["partial pooling"] < rmse["no pooling"] and rmse["partial pooling"] < rmse["complete pooling"]
assert rmse_small["partial pooling"] < rmse_small["no pooling"]

# %% [markdown]
# ## Pictures
# The shrinkage plot (open: no pooling, filled: partial pooling, dotted line: complete
# pooling) and the estimate-vs-size view: the small counties are the ones with long arrows.

# %%
ax = bm.plot_shrinkage(fit)                  # 30 of the 85 counties: the most shrunk, largest, smallest
assert sum(p.get_gid() == "shrinkage-arrow" for p in ax.patches) == 30 and "30 of 85" in ax.get_title()

# %%
fig = bm.plot_ranef(fit, kind="size")

# %% [markdown]
# ## REML vs Bayesian shrinkage
# The same model by NUTS (a short run, 2 chains × 300 draws): the county intercepts are now
# posterior means, and the county sd has a posterior instead of a point estimate. With 85
# counties the variance is well determined, so the two kinds of shrinkage nearly coincide;
# the posterior pools very slightly differently because it averages over σ_county instead
# of plugging in its estimate.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")          # short demonstration run
    post = bm.Model("log_radon ~ floor + (1 | county)", radon).fit(
        method="nuts", draws=300, tune=300, chains=2, random_seed=11, progressbar=False)
side = pd.DataFrame({"REML": fit.fixef, "NUTS mean": post.fixef, "NUTS sd": post.fixef_se, "REML SE": fit.fixef_se})
print(side.round(3))
sd_post = post.idata.posterior["sd_county"].values.ravel()
print(f"sd(county): REML {fit.varcorr['sdcor'].iloc[0]:.3f}, posterior 90% interval "
      f"{np.quantile(sd_post, 0.05):.3f}-{np.quantile(sd_post, 0.95):.3f}")
assert np.allclose(post.fixef, fit.fixef, atol=3 * fit.fixef_se)
assert np.quantile(sd_post, 0.02) < fit.varcorr["sdcor"].iloc[0] < np.quantile(sd_post, 0.98)
pp = pooling_estimates(post)
assert np.corrcoef(pp.partial_pooling["Intercept"], est.partial_pooling["Intercept"])[0, 1] > 0.98
err_post = pp.partial_pooling["Intercept"] - true_alpha
assert np.sqrt((err_post**2).mean()) < rmse["no pooling"]

# %%
ax = bm.plot_shrinkage(fit, compare=post)
assert sum(p.get_gid() == "shrinkage-arrow-compare" for p in ax.patches) == 30
