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
# # Writing random-effects formulas, and a first GLMM
#
# Seed document `001_f214181766b3c7a9.txt` (UW-Madison SSCC, "Mixed Models: Models")
# explains lme4's `( effect expression | groups )` syntax on variables A (15 levels),
# B (25 levels), C (numeric), Y, fits a binomial `glmer(bin ~ x1 + x2 + (1 | g1))` on
# `pbDat` (100 rows, 12 groups), and ends with two sleepstudy exercises.
#
# Neither the A/B/C/Y data nor `pbDat` (from the `pbnm` package) is available, so we
# simulate both with the stated structure and a fixed seed, fit them with bayesmixed,
# and compare with lme4 run on the very same rows (R's numbers are pasted below). The
# sleepstudy exercises use the real data shipped with the package.

# %%
import numpy as np
import pandas as pd
from scipy import special

import bayesmixed as bm

# %% simulate
# A: 15 levels, B: 25 levels, crossed, two rows per cell; C numeric.
rng = np.random.default_rng(1001)
A = np.repeat(np.arange(15), 50)
B = np.tile(np.repeat(np.arange(25), 2), 15)
C = rng.normal(0, 1, A.size)
a_int, a_slope, b_int = rng.normal(0, 1.0, 15), rng.normal(0, 0.5, 15), rng.normal(0, 0.7, 25)
Y = 2 + 0.5 * C + a_int[A] + a_slope[A] * C + b_int[B] + rng.normal(0, 1, A.size)
abc = pd.DataFrame({"Y": Y.round(4), "C": C.round(4), "A": [f"a{i:02d}" for i in A],
                    "B": [f"b{j:02d}" for j in B]})
abc.head()

# %% [markdown]
# ## The three formulas of the article
# The number of parameters each formula implies, as the article lists them:
#
# | formula | fixed effects | variance parameters |
# |---|---|---|
# | `Y ~ C + (1 \| B)` | intercept, C | var(B intercept), σ² |
# | `Y ~ C + A + (1 \| B)` | intercept, C, 14 for A | var(B intercept), σ² |
# | `Y ~ C + (1 \| A) + (0 + C \| A)` | intercept, C | var(A intercept), var(A slope), σ² (no correlation) |

# %%
f1 = bm.Model("Y ~ C + (1 | B)", abc).fit()
f2 = bm.Model("Y ~ C + A + (1 | B)", abc).fit()
f3 = bm.Model("Y ~ C + (1 | A) + (0 + C | A)", abc).fit()
assert [len(f.fixef) for f in (f1, f2, f3)] == [2, 16, 2]
assert [len(f.varcorr) for f in (f1, f2, f3)] == [2, 2, 3]
assert f3.varcorr["var2"].isna().all()                       # two separate terms: no correlation
f3.varcorr

# %% [markdown]
# The exercises: C fixed with random intercepts for both A and B; and a random slope for
# C with a *correlated* random intercept, sampled as A (three variance parameters for A).

# %%
ex1 = bm.Model("Y ~ C + (1 | A) + (1 | B)", abc).fit()
ex3 = bm.Model("Y ~ C + (C | A)", abc).fit()
assert set(ex1.varcorr["grp"]) == {"A", "B", "Residual"}
assert len(ex3.varcorr[ex3.varcorr["grp"] == "A"]) == 3

# %% [markdown]
# lme4 on the same rows (`as.data.frame(VarCorr())` and `fixef()`), and the claim of the
# article that the unconditional variance of Y (given C) is θ₁ + θ₂ + σ² for
# `Y ~ C + (1|A) + (0+C|A)` (at C = 1 here, θ₂ multiplies C²):

# %%
R = {"f1": ([1.3131272358, 0.5405204424], [0.6981853047, 1.3107014309]),
     "f3": ([1.3337987078, 0.4870943163], [0.7314221660, 0.5426637285, 1.1956806633]),
     "ex1": ([1.311636744, 0.495113871], [0.7096709719, 0.7367921475, 1.0933029605]),
     "ex3": ([1.333366363, 0.487039735], [0.7316902283, 0.5429427710, 0.1331350038, 1.1956674433])}
for name, fit in {"f1": f1, "f3": f3, "ex1": ex1, "ex3": ex3}.items():
    fe, sd = R[name]
    assert np.allclose(fit.fixef, fe, rtol=1e-5), name
    assert np.allclose(np.sort(fit.varcorr["sdcor"]), np.sort(sd), rtol=1e-4, atol=1e-5), name
vc3 = f3.varcorr["vcov"].to_numpy()
print("Var(Y | C=1) =", vc3[0] + vc3[1] * 1**2 + vc3[2])

# %% [markdown]
# ## A binomial GLMM on pbDat-like data
# `pbDat`: 100 rows, 12 groups `g1`, predictors `x1`, `x2`, binary `bin`. We simulate
# with the article's estimates as truth (intercept 0.165, x1 0.5, x2 -1.5, sd(g1) 2.06).

# %% simulate
rng = np.random.default_rng(1003)
g1 = rng.integers(0, 12, 100)
x1, x2 = rng.normal(0, 1.5, 100).round(3), rng.normal(0, 1, 100).round(3)
u = rng.normal(0, 2.06, 12)
pbdat = pd.DataFrame({"bin": rng.binomial(1, special.expit(0.165 + 0.5 * x1 - 1.5 * x2 + u[g1])),
                      "x1": x1, "x2": x2, "g1": [f"G{k + 1}" for k in g1]})
pbdat.describe().round(2)

# %%
gmm = bm.Model("bin ~ x1 + x2 + (1 | g1)", pbdat, family="binomial").fit()
gmm.summary()

# %% [markdown]
# `glmer(bin ~ x1 + x2 + (1 | g1), family = binomial, data = pbdat)` on the same rows:

# %%
R_gmm = {"fixef": [0.2387029530, 0.3965030221, -1.2298495705], "se": [0.5321847262, 0.2028271126, 0.3748043325],
         "sd": 1.583688765, "loglik": -55.7795895, "aic": 119.559179}
assert np.allclose(gmm.fixef, R_gmm["fixef"], atol=2e-4)
assert np.allclose(gmm.fixef_se, R_gmm["se"], rtol=2e-3)
assert abs(gmm.varcorr["sdcor"].iloc[0] - R_gmm["sd"]) < 1e-3
assert abs(gmm.loglik - R_gmm["loglik"]) < 1e-4 and abs(gmm.aic - R_gmm["aic"]) < 2e-4

# %% [markdown]
# Partial pooling of the twelve group intercepts on the logit scale: groups where every
# response is 0 (or 1) have no finite no-pooling estimate (complete separation), so they
# get a point but no arrow.

# %%
ax = bm.plot_shrinkage(gmm)
from bayesmixed.plots import pooling_estimates  # noqa: E402

est = pooling_estimates(gmm)
all_same = pbdat.groupby("g1")["bin"].agg(lambda s: s.nunique() == 1).reindex(est.size.index)
assert (est.no_pooling["Intercept"].isna() == all_same).all()
assert sum(p.get_gid() == "shrinkage-arrow" for p in ax.patches) == (~all_same).sum()

# %% [markdown]
# ## Sleepstudy exercises
# 1. Reaction time regressed on Days with a random Subject effect. lme4:
#    fixed effects 251.4051, 10.4673; sd(Subject) 37.124, residual sd 30.991.

# %%
sleep = bm.load_dataset("sleepstudy")
ex_1 = bm.Model("Reaction ~ Days + (1 | Subject)", sleep).fit()
assert np.allclose(ex_1.fixef, [251.4051, 10.4673], atol=1e-4)
assert np.allclose(ex_1.varcorr["sdcor"], [37.1238, 30.9912], atol=1e-3)

# %% [markdown]
# 2. The article says the median reaction time is 288.7 and asks for a model of the
#    dichotomous `aboveAve`. lme4: `glmer(aboveAve ~ Days + (1 | Subject), binomial)`.

# %%
assert round(float(sleep["Reaction"].median()), 1) == 288.7
sleep["aboveAve"] = (sleep["Reaction"] > 288.7).astype(int)
ex_2 = bm.Model("aboveAve ~ Days + (1 | Subject)", sleep, family="binomial").fit()
R_ex2 = {"fixef": [-3.4600593773, 0.7425722737], "sd": 2.819668469}
assert np.allclose(ex_2.fixef, R_ex2["fixef"], atol=2e-4)
assert abs(ex_2.varcorr["sdcor"].iloc[0] - R_ex2["sd"]) < 1e-3
ex_2.summary()

# %% [markdown]
# On the probability scale, each subject has its own S-curve; the population-averaged
# (marginal) curve is flatter than the curve of the "average subject" (random effect 0),
# because averaging S-curves that are shifted left and right smears them out.

# %%
ax = bm.plot_predictions(ex_2, "Days", data=sleep)
from bayesmixed.plots import predict_curves  # noqa: E402

cur = predict_curves(ex_2, "Days", data=sleep)
steep = lambda p: np.max(np.diff(p) / np.diff(cur["Days"]))  # noqa: E731
assert steep(cur["marginal"]) < steep(cur["at_zero"])
assert cur["marginal"].iloc[0] > cur["at_zero"].iloc[0] and cur["marginal"].iloc[-1] < cur["at_zero"].iloc[-1]
