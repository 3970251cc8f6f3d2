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
# # Schools and smart classrooms: fixed school effects or a random school effect?
#
# Seed document `002_a02403a6f7dcde7d.txt` (lecture notes) studies smart classrooms in
# five schools: each school samples 50 students and puts a random half in smart rooms.
# It fits a two-way ANOVA `lm(marks ~ smart + school)` and then the mixed model
# `lme(marks ~ smart, random = ~1 | school)` by REML, and asks two exercises: the REML
# estimates for a three-observation model, and whether the ML estimate of σ² goes up or
# down when a factor's effects become random.
#
# The notes' data file `mix.txt` is not given, so we simulate a data set with the same
# design (5 × 50, balanced halves) and the notes' estimates as the truth. What we can
# check exactly is structural, and holds for *any* data with this balanced design:
#
# * the `smart` effect is the same in the two-way ANOVA and the mixed model (10.672 in
#   the notes for both), and the mixed-model intercept is the ANOVA intercept plus the
#   mean school effect (58.984 + 5.864 = 64.848 in the notes);
# * REML's variances are the ANOVA (method-of-moments) estimates;
# * the numbers on our simulated data equal R's (`nlme::lme` and `lme4::lmer`, run on the
#   same rows; printed below).

# %%
import numpy as np
import pandas as pd

import bayesmixed as bm

# %% simulate
# Same design as the notes' mix.txt: schools A-E, 50 students each, 25 in smart rooms.
# Truth = the notes' estimates: intercept 58.984, smart +10.672, school effects
# 0 / 9.68 / 20.58 / -5.22 / 4.28 relative to A, residual sd 4.87.
rng = np.random.default_rng(2002)
school_effect = {"A": 0.0, "B": 9.68, "C": 20.58, "D": -5.22, "E": 4.28}
rows = []
for s, eff in school_effect.items():
    smart = rng.permutation(np.repeat(["no", "yes"], 25))
    for sm in smart:
        mark = 58.984 + 10.672 * (sm == "yes") + eff + rng.normal(0, 4.87)
        rows.append({"marks": round(mark, 1), "smart": sm, "school": s})
dat = pd.DataFrame(rows)
dat.groupby(["school", "smart"])["marks"].agg(["size", "mean"]).unstack().round(2)

# %% [markdown]
# ## The two-way ANOVA: `lm(marks ~ smart + school)`

# %%
X = pd.get_dummies(dat[["smart", "school"]], drop_first=True).astype(float)
X.insert(0, "(Intercept)", 1.0)
coef_lm, *_ = np.linalg.lstsq(X.to_numpy(), dat["marks"].to_numpy(), rcond=None)
coef_lm = pd.Series(coef_lm, index=X.columns)
rss = float(((dat["marks"] - X.to_numpy() @ coef_lm) ** 2).sum())
coef_lm.round(3)

# %% [markdown]
# R on the same rows: `coef(lm(marks ~ ., data = dat))`.

# %%
R_lm = {"(Intercept)": 58.6356, "smart_yes": 11.7088, "school_B": 9.8740, "school_C": 20.7360,
        "school_D": -6.2260, "school_E": 4.6500}
assert np.allclose(coef_lm, pd.Series(R_lm), atol=1e-9)

# %% [markdown]
# ## The mixed model: `lme(marks ~ smart, random = ~1 | school)` by REML
# bayesmixed takes the nlme call as written (`random=`), or the lme4 formula
# `marks ~ smart + (1 | school)`; they build the same model.

# %%
reml = bm.Model("marks ~ smart", dat, random="~1 | school").fit()
same = bm.Model("marks ~ smart + (1 | school)", dat).fit()
assert np.allclose(reml.fixef, same.fixef) and abs(reml.reml_criterion - same.reml_criterion) < 1e-9
reml.summary()

# %% [markdown]
# nlme on the same rows prints: Log-restricted-likelihood -762.2602741, fixed effects
# 64.4424 and 11.7088, StdDev school 10.214423, residual 4.912735.

# %%
vc = reml.varcorr.set_index("grp")["sdcor"]
print(reml.loglik, reml.fixef.to_dict(), vc.to_dict())
assert abs(reml.loglik - (-762.2602741)) < 1e-6
assert np.allclose(reml.fixef, [64.4424, 11.7088], atol=1e-9)
assert abs(vc["school"] - 10.214423) < 1e-5 and abs(vc["Residual"] - 4.912735) < 1e-6

# %% [markdown]
# ### What is exactly the same as the ANOVA, and why
# Every school has 25 + 25 students, so `smart` is orthogonal to `school`: its estimate
# does not depend on how school differences are modelled. The mixed-model intercept is the
# average school's intercept, the ANOVA intercept (school A) plus the mean of the five
# school effects. In the notes: 10.672 in both fits, and 58.984 + (0 + 9.68 + 20.58 - 5.22
# + 4.28)/5 = 64.848.

# %%
assert abs(58.984 + np.mean([0, 9.68, 20.58, -5.22, 4.28]) - 64.848) < 1e-9      # the notes' numbers
assert abs(reml.fixef["smart[T.yes]"] - coef_lm["smart_yes"]) < 1e-8
school_means = np.r_[0.0, coef_lm[["school_B", "school_C", "school_D", "school_E"]]]
assert abs(reml.fixef["Intercept"] - (coef_lm["(Intercept)"] + school_means.mean())) < 1e-8

# %% [markdown]
# In a balanced one-way layout REML's variance estimates are the ANOVA ones (when the
# between-school estimate is positive): σ² = residual mean square of the two-way ANOVA,
# σ²_b = (MS_school − MS_error) / 50.

# %%
n_per, k = 50, 5
ms_error = rss / (len(dat) - 1 - 1 - (k - 1))
school_mean = dat.groupby("school")["marks"].mean()
ms_school = n_per * ((school_mean - school_mean.mean()) ** 2).sum() / (k - 1)
vcv = reml.varcorr.set_index("grp")["vcov"]
assert abs(vcv["Residual"] - ms_error) < 1e-6 * ms_error
assert abs(vcv["school"] - (ms_school - ms_error) / n_per) < 1e-6 * vcv["school"]

# %% [markdown]
# ## ML vs REML
# ML treats the fixed effects as known, so it does not give back the degrees of freedom
# spent on them: both variances come out smaller. In this balanced design the formulas are
# explicit: REML's residual variance is RSS/(n − k − 1) (the two-way ANOVA's mean square),
# ML's is RSS/(n − k), one fewer degree of freedom subtracted for `smart`; the school
# variance drops from (MS_school − σ²)/50 to ((1 − 1/k) MS_school − σ²)/50.
#
# Exercise 5 of the notes: with the school effects *fixed*, the ML estimate of σ² is
# RSS/n; with them *random* it is RSS/(n − k): **it increases**.

# %%
ml = bm.Model("marks ~ smart + (1 | school)", dat).fit(method="ml")
vml = ml.varcorr.set_index("grp")["vcov"]
n = len(dat)
assert abs(vml["Residual"] - rss / (n - k)) < 1e-6 * vml["Residual"]
assert abs(vcv["Residual"] - rss / (n - k - 1)) < 1e-6 * vcv["Residual"]
assert abs(vml["school"] - ((1 - 1 / k) * ms_school - vml["Residual"]) / n_per) < 1e-5 * vml["school"]
assert vml["Residual"] < vcv["Residual"] and vml["school"] < vcv["school"]
sigma2_fixed_ml = rss / n                      # lm with school fixed, ML divisor n
assert vml["Residual"] > sigma2_fixed_ml
# lme4 on the same rows, lmer(marks ~ smart + (1 | school), REML = FALSE): 83.37297441, 24.03645616
assert np.allclose([vml["school"], vml["Residual"]], [83.37297441, 24.03645616], rtol=1e-6)
pd.DataFrame({"REML": vcv, "ML": vml, "school fixed, ML": [np.nan, sigma2_fixed_ml]}).round(3)

# %% [markdown]
# ## Shrinkage of the school intercepts
# With 50 students per school the school means are estimated precisely, so partial pooling
# moves them only a little (shrinkage factor σ²_b / (σ²_b + σ²/50) ≈ 0.995).

# %%
ax = bm.plot_shrinkage(reml)
lam = vcv["school"] / (vcv["school"] + vcv["Residual"] / n_per)
from bayesmixed.plots import pooling_estimates  # noqa: E402

est = pooling_estimates(reml)
b0 = reml.fixef["Intercept"]
assert np.allclose(est.partial_pooling["Intercept"] - b0, lam * (est.no_pooling["Intercept"] - b0))
print(f"shrinkage factor {lam:.4f}")

# %% [markdown]
# ## Exercise 2: REML by hand for three observations
# y₁₁ = 2.3, y₁₂ = 2.5 (group 1), y₂₁ = 3.0 (group 2), y = μ + a_i + ε. REML is ML on
# error contrasts; two orthogonal ones are y₁₁ − y₁₂ (variance 2σ²_ε) and
# (y₁₁ + y₁₂)/2 − y₂₁ (variance 2σ²_a + 1.5σ²_ε), and they are independent, so
# σ²_ε = 0.2²/2 = 0.02 and 2σ²_a + 0.03 = 0.6², σ²_a = 0.165. Numerically:

# %%
three = pd.DataFrame({"y": [2.3, 2.5, 3.0], "a": ["1", "1", "2"]})
tiny = bm.Model("y ~ 1 + (1 | a)", three).fit()
v3 = tiny.varcorr.set_index("grp")["vcov"]
print(v3.round(6).to_dict())
assert abs(v3["Residual"] - 0.02) < 1e-6 and abs(v3["a"] - 0.165) < 1e-6
