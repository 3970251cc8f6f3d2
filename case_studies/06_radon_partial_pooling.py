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
# The data are the real survey (`bm.load_dataset("radon")`; from R's rstanarm package, which
# took them from Gelman & Hill): county sizes range from 1 to 116 houses. With no truth to
# compare against, a later section holds one house per county out and ask which estimate
# predicts it best. lme4's numbers on the same rows are pasted below.

# %%
import warnings

import numpy as np
import pandas as pd

import bayesmixed as bm
from bayesmixed.plots import pooling_estimates

# %% data
radon = bm.load_dataset("radon")
size = radon["county"].value_counts()
print(len(radon), radon["county"].nunique(), np.percentile(size, [0, 25, 50, 75, 100]).tolist(),
      f"first floor: {radon['floor'].mean():.0%}")

# %%
assert len(radon) == 919 and radon["county"].nunique() == 85 and size.min() == 1 and size.max() == 116

# %% [markdown]
# ## Partial pooling by REML

# %%
fit = bm.Model("log_radon ~ floor + (1 | county)", radon).fit()
fit.summary()

# %% [markdown]
# lme4 on the same rows, `lmer(log_radon ~ floor + (1 | county))`:

# %%
R_lmer = {"fixef": [1.4923931747, -0.6628887262], "sd": [0.3154081367, 0.7257798111], "reml": 2097.52198428}
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
table.sort_values(("n", "")).head(8).round(3)

# %% [markdown]
# For a random-intercept model the amount of pooling has a closed form: county j's
# conditional mode is a fraction λ_j = σ²_county / (σ²_county + σ²/n_j) of its no-pooling
# deviation from the state mean. A county with one house keeps λ ≈ 0.16 of its own
# deviation; the largest county (116 houses) keeps λ ≈ 0.96.

# %%
vc = fit.varcorr.set_index("grp")["vcov"]
lam = vc["county"] / (vc["county"] + vc["Residual"] / est.size)
mu = fit.fixef["Intercept"]
assert np.allclose(est.partial_pooling["Intercept"] - mu, lam * (est.no_pooling["Intercept"] - mu), atol=1e-8)
assert np.all(np.diff(lam.to_numpy()[np.argsort(est.size.to_numpy())]) >= 0)          # more houses, less pooling
print(f"lambda: n=1 -> {lam[est.size == 1].iloc[0]:.2f}, n={est.size.max()} -> {lam.max():.2f}")

# %% [markdown]
# Which estimate predicts a new house best? Hold out one house in every county that has
# at least two, fit the three estimates on the rest, and predict the held-out log radon
# from the county's intercept plus the (REML) floor effect. Partial pooling wins: no
# pooling chases the noise of small counties, complete pooling ignores real differences.
# (It wins for every seed we tried; the margins vary.)

# %%
test = radon.groupby("county", observed=True).sample(1, random_state=1)
test = test[size.reindex(test["county"]).to_numpy() >= 2]
train = radon.drop(test.index)
tfit = bm.Model("log_radon ~ floor + (1 | county)", train).fit()
test_est = pooling_estimates(tfit)


def holdout_rmse(intercepts: dict) -> pd.Series:
    """RMSE of predicting the held-out houses from county intercepts + the REML floor effect."""
    floor_effect = tfit.fixef["floor"] * test["floor"].to_numpy()
    return pd.Series({k: float(np.sqrt(np.mean((v + floor_effect - test["log_radon"].to_numpy()) ** 2)))
                      for k, v in intercepts.items()})


intercepts = {"no pooling": test_est.no_pooling["Intercept"].reindex(test["county"]).to_numpy(),
              "partial pooling": test_est.partial_pooling["Intercept"].reindex(test["county"]).to_numpy(),
              "complete pooling": np.full(len(test), test_est.complete_pooling["Intercept"])}
rmse = holdout_rmse(intercepts)
print(len(test), "held-out houses; RMSE:", rmse.round(3).to_dict())
assert len(test) == 82
assert rmse["partial pooling"] < rmse["no pooling"] and rmse["partial pooling"] < rmse["complete pooling"]

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

# %%
ax = bm.plot_shrinkage(fit, compare=post)
assert sum(p.get_gid() == "shrinkage-arrow-compare" for p in ax.patches) == 30
