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
# # Random intercepts, uncorrelated slopes, correlated slopes, and groups of different sizes
#
# Seed document `003_ce73113554d17ee8.txt` (a blog post, "Mixed Models Part 2") fits three
# nested models to `df_test`, a data set of x, y and 21 labs ("Group") of very different
# sizes:
#
# ```r
# lmm1 <- lmer(y ~ x + (1 | Group), REML = FALSE)
# lmm2 <- lmer(y ~ x + (1 | Group) + (0 + x | Group), REML = FALSE)
# lmm3 <- lmer(y ~ x + (1 + x | Group), REML = TRUE)
# anova(lmm1, lmm2, lmm3)
# ```
#
# and shows R² (marginal / conditional), a broom.mixed `tidy()` table with lmerTest's
# Satterthwaite df, per-group coefficients, and a plot of each lab's intercept ± 2 SE
# against log(group size): small labs have wide intervals and sit further from the fixed
# intercept in the no-pooling fit, but are pulled towards it by partial pooling.
#
# `df_test` is not published. We simulate data with the same shape (21 groups, sizes from
# 3 to about 150, y ≈ 0.43 + 0.047 x, intercept sd ≈ 0.2, residual sd ≈ 0.26, a small slope
# sd with a negative intercept-slope correlation), run the same R code on the same rows,
# and assert that bayesmixed gives R's numbers.

# %%
import numpy as np
import pandas as pd

import bayesmixed as bm

# %% simulate
rng = np.random.default_rng(3003)
n_groups = 21
sizes = np.round(np.exp(rng.uniform(np.log(3), np.log(150), n_groups))).astype(int)
cov = np.array([[0.2**2, -0.8 * 0.2 * 0.002], [-0.8 * 0.2 * 0.002, 0.002**2]])
b = rng.multivariate_normal([0, 0], cov, size=n_groups)
frames = []
for g, (n_g, (b0, b1)) in enumerate(zip(sizes, b), start=1):
    x = rng.uniform(0, 100, n_g)
    y = 0.43 + b0 + (0.047 + b1) * x + rng.normal(0, 0.26, n_g)
    frames.append(pd.DataFrame({"x": x.round(3), "y": y.round(4), "Group": g}))
df_test = pd.concat(frames, ignore_index=True)
print(len(df_test), sorted(sizes.tolist()))

# %% [markdown]
# ## The three models

# %%
lmm1 = bm.Model("y ~ x + (1 | Group)", df_test).fit(method="ml")
lmm2 = bm.Model("y ~ x + (1 | Group) + (0 + x | Group)", df_test).fit(method="ml")
lmm3 = bm.Model("y ~ x + (1 + x | Group)", df_test).fit(method="reml")
lmm3.summary()

# %% [markdown]
# ### `tidy()` with Satterthwaite df (broom.mixed + lmerTest)
# R on the same rows (`broom.mixed::tidy(lmm)` with lmerTest loaded) gives the numbers in
# `R_tidy`; the seed's optimizers (Nelder-Mead, bobyqa) reach the same optimum as
# bayesmixed's BOBYQA.

# %%
R_tidy = {  # term: (estimate, std.error, df) from R, for lmm1 / lmm2 / lmm3
    "lmm1": {"(Intercept)": (0.43800518279, 0.0446316144423, 26.27005182),
             "x": (0.04707416211, 0.0003198197492, 800.27851294),
             "sd_Group": 0.1772816005, "sigma": 0.2546942325},
    "lmm2": {"(Intercept)": (0.41397147950, 0.0508656917458, 22.15925864),
             "x": (0.04754680425, 0.0005723656856, 16.64078623),
             "sd_Group": 0.202185577225, "sd_x": 0.001803656423, "sigma": 0.249181722818},
    "lmm3": {"(Intercept)": (0.40450726998, 0.0644088988867, 17.43379130),
             "x": (0.04772810019, 0.0007160190959, 13.06687405),
             "sd_Group": 0.263606565571, "sd_x": 0.002526594112, "cor": -0.790936444945,
             "sigma": 0.248273719251},
}
fits = {"lmm1": lmm1, "lmm2": lmm2, "lmm3": lmm3}
for name, fit in fits.items():
    tab = fit.tidy()
    fixed = tab[tab["effect"] == "fixed"].set_index("term")
    for term, rname in (("Intercept", "(Intercept)"), ("x", "x")):
        est, se, df = R_tidy[name][rname]
        assert abs(fixed.loc[term, "estimate"] - est) < 1e-5 * abs(est) + 1e-8, (name, term)
        assert abs(fixed.loc[term, "std_error"] - se) < 1e-4 * se, (name, term)
        assert abs(fixed.loc[term, "df"] - df) < 1e-2 * df, (name, term, fixed.loc[term, "df"], df)
    vc = fit.varcorr
    assert abs(vc.loc[(vc.grp == "Group") & (vc.var1 == "Intercept") & vc.var2.isna(), "sdcor"].iloc[0]
               - R_tidy[name]["sd_Group"]) < 1e-4 * R_tidy[name]["sd_Group"]
    assert abs(vc.loc[vc.grp == "Residual", "sdcor"].iloc[0] - R_tidy[name]["sigma"]) < 1e-5
    if "sd_x" in R_tidy[name]:
        sd_x = vc.loc[(vc.var1 == "x") & vc.var2.isna(), "sdcor"].iloc[0]
        assert abs(sd_x - R_tidy[name]["sd_x"]) < 1e-3 * R_tidy[name]["sd_x"], (name, sd_x)
    if "cor" in R_tidy[name]:
        assert abs(vc.loc[vc.var2.notna(), "sdcor"].iloc[0] - R_tidy[name]["cor"]) < 1e-3
lmm3.tidy()

# %% [markdown]
# ## R², marginal and conditional
# Nakagawa & Schielzeth's R² (with Johnson's extension for random slopes): the share of
# variance explained by the fixed effects alone, and by fixed plus random effects. The
# post used the `rsq` package, whose definitions differ slightly; R's numbers below are
# Nakagawa's, computed by hand in R from the fitted model on the same rows.

# %%
R_r2 = {"lmm1": (0.9479295856, 0.9649238146), "lmm2": (0.9401024008, 0.9673616556),
        "lmm3": (0.9478715677, 0.9675790335)}
for name, fit in fits.items():
    r2 = fit.r2()
    assert np.allclose([r2["marginal"], r2["conditional"]], R_r2[name], atol=1e-5), (name, r2)
    assert r2["conditional"] > r2["marginal"]
pd.DataFrame({k: f.r2() for k, f in fits.items()}).round(4)

# %% [markdown]
# ## `anova(lmm1, lmm2, lmm3)`
# lmm3 was fitted by REML; like R, `bm.anova` refits it by ML before the likelihood-ratio
# tests.

# %%
tab = bm.anova(lmm1=lmm1, lmm2=lmm2, lmm3=lmm3)
R_anova = {"npar": [4, 5, 6], "logLik": [-68.02748495, -61.93612364, -57.43396390]}
assert list(tab["npar"]) == R_anova["npar"]
assert np.allclose(tab["logLik"], R_anova["logLik"], atol=1e-4)
assert np.allclose(tab["Chisq"].iloc[1:], 2 * np.diff(R_anova["logLik"]), atol=2e-4)
tab.drop(columns="formula").round(4)

# %% [markdown]
# ## Per-group coefficients and the effect of group size
# `coef()` per lab: fixed effects plus the lab's conditional modes. The plot the post
# draws, each lab's intercept ± 2 conditional SE against its size, is
# `plot_ranef(kind="size")`: small labs have the widest intervals, and (open circles)
# their separate no-pooling estimates lie furthest from the fixed intercept, because
# they are the ones partial pooling pulls hardest.

# %%
lmm1.coef["Group"].head()

# %%
fig = bm.plot_ranef(lmm1, kind="size")
from bayesmixed.plots import pooling_estimates, ranef_intervals  # noqa: E402

ints = ranef_intervals(lmm1)["Intercept"]
size = pooling_estimates(lmm1).size
width = ints["upper"] - ints["lower"]
# interval width falls with group size (conditional SD = 1 / sqrt(n/s^2 + 1/s_b^2) for (1 | g))
vc1 = lmm1.varcorr.set_index("grp")["vcov"]
expected = 4 / np.sqrt(size / vc1["Residual"] + 1 / vc1["Group"])
assert np.allclose(width, expected, rtol=1e-6)
assert np.corrcoef(np.log(size), width)[0, 1] < -0.9

# %% [markdown]
# The shrinkage picture for the correlated model: each lab's (intercept, slope) pair from
# its own regression moves towards the population ellipse; the small labs move most.

# %%
ax = bm.plot_shrinkage(lmm3)
est = pooling_estimates(lmm3)
move = np.hypot(*(((est.no_pooling - est.partial_pooling) / est.no_pooling.std()).to_numpy().T))
ok = np.isfinite(move)
assert np.corrcoef(np.log(est.size[ok]), move[ok])[0, 1] < 0
assert sum(p.get_gid() == "shrinkage-arrow" for p in ax.patches) == ok.sum()
