## Reference numbers for bayesmixed.inference (profile, Kenward-Roger, PB test).
## Run from the repository root:  Rscript tests/reference/make_inference_reference.R
## Writes tests/reference/inference_local.json.
suppressPackageStartupMessages({
  library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite); library(nlme)
})
data("sleepstudy", package = "lme4"); data("Dyestuff", package = "lme4")
data("Penicillin", package = "lme4"); data("Orthodont", package = "nlme")
Orthodont <- as.data.frame(Orthodont)
Orthodont$Subject <- factor(as.character(Orthodont$Subject))
## unbalanced subsets (0-based row index, as the Python tests build them)
sleep_unb <- sleepstudy[(seq_len(nrow(sleepstudy)) - 1) %% 7 != 3, ]
orth_unb <- Orthodont[(seq_len(nrow(Orthodont)) - 1) %% 5 != 0, ]

ci_list <- function(ci) lapply(split(ci, seq_len(nrow(ci))), function(r) unname(r))
prof <- function(formula, data, REML = TRUE) {
  fit <- lme4::lmer(formula, data, REML = REML)
  ci <- suppressMessages(confint(fit, method = "profile", oldNames = FALSE))
  list(formula = deparse(formula), REML = REML, rows = rownames(ci),
       lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}
profile_ref <- list(
  sleepstudy = prof(Reaction ~ Days + (Days | Subject), sleepstudy),
  sleepstudy_ml = prof(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE),
  Dyestuff = prof(Yield ~ 1 + (1 | Batch), Dyestuff),
  Penicillin = prof(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
  sleepstudy_uncor = prof(Reaction ~ Days + (Days || Subject), sleepstudy)
)
## 3 x 3 covariance (correlations at the positive-definiteness wall); a boundary-heavy Orthodont fit
sleep3 <- sleepstudy; sleep3$D2 <- (sleep3$Days - 4.5)^2 / 10
f3 <- lme4::lmer(Reaction ~ Days + (Days + D2 | Subject), sleep3)
ci3 <- suppressWarnings(suppressMessages(confint(f3, parm = "theta_", oldNames = FALSE)))
profile_ref$sleepstudy_3x3 <- list(formula = "Reaction ~ Days + (Days + D2 | Subject)", REML = TRUE,
                                   rows = rownames(ci3), lower = unname(ci3[, 1]), upper = unname(ci3[, 2]))
profile_ref$orthodont_interaction <- suppressWarnings(prof(distance ~ age * Sex + (age | Subject), Orthodont))
gm <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
gci <- suppressMessages(confint(gm, method = "profile", oldNames = FALSE))
profile_ref$cbpp_glmer <- list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                               family = "binomial", rows = rownames(gci),
                               lower = unname(gci[, 1]), upper = unname(gci[, 2]))

kr <- function(formula, data) {
  fit <- lmerTest::lmer(formula, data, REML = TRUE)
  s <- summary(fit, ddf = "Kenward-Roger")$coefficients
  s2 <- summary(fit, ddf = "Satterthwaite")$coefficients
  Va <- as.matrix(pbkrtest::vcovAdj(fit))
  list(formula = deparse(formula), terms = rownames(s), df = unname(s[, "df"]),
       se = unname(s[, "Std. Error"]), satterthwaite_df = unname(s2[, "df"]),
       vcov_adj = unname(Va), vcov = unname(as.matrix(vcov(fit))))
}
kr_ref <- list(
  sleepstudy_unbalanced = kr(Reaction ~ Days + (Days | Subject), sleep_unb),
  orthodont_unbalanced = kr(distance ~ age + Sex + (age | Subject), orth_unb),
  penicillin = kr(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
)

## PBmodcomp: Monte Carlo numbers (pbkrtest 0.5.2 does not reproduce them from seed=); the Python
## tests compare within Monte Carlo error only.
pb <- function(f1, f0, data, nsim, seed) {
  m1 <- lme4::lmer(f1, data, REML = FALSE); m0 <- lme4::lmer(f0, data, REML = FALSE)
  r <- suppressWarnings(pbkrtest::PBmodcomp(m1, m0, nsim = nsim, seed = seed))
  list(large = deparse(f1), small = deparse(f0), nsim = nsim,
       stat = r$test["LRT", "stat"], df = r$test["LRT", "df"],
       p_chisq = r$test["LRT", "p.value"], p_pb = r$test["PBtest", "p.value"],
       npos = unname(r$samples["npos"]), ref_mean = mean(r$ref), ref_sd = sd(r$ref))
}
pb_ref <- list(
  orthodont_interaction = pb(distance ~ age * Sex + (1 | Subject), distance ~ age + Sex + (1 | Subject),
                             Orthodont, nsim = 2000, seed = 1),
  sleep_unb_days2 = pb(Reaction ~ Days + I(Days^2) + (1 | Subject), Reaction ~ Days + (1 | Subject),
                       sleep_unb, nsim = 2000, seed = 2)
)

out <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
            pbkrtest = as.character(packageVersion("pbkrtest")),
            lmerTest = as.character(packageVersion("lmerTest")),
            profile = profile_ref, kenward_roger = kr_ref, pbmodcomp = pb_ref)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/inference_local.json")
