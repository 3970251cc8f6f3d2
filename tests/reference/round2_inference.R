# Part "inference" of make_reference_round2.R: writes tests/reference/inference.json (issue 13).
#   profile:  lme4 confint(fit, method="profile") (level 0.95), rows as lme4 names them
#             (.sig01..., .sigma) with lme4's oldNames=FALSE names and the API names
#   kenward_roger: lmerTest summary(ddf="Kenward-Roger") / pbkrtest vcovAdj on unbalanced data
#             (deterministic row removal; the kept rows are stored, 1-based R row numbers)
#   pbmodcomp: pbkrtest PBmodcomp(large, small, nsim=1000, seed=...)
#   bootmer:  lme4 bootMer parametric bootstrap, nsim=500, replicate summaries + replicates

# lme4's parameter names for the covariance parameters of a fit, in theta order, with
# the API spelling (correlations named first column first: cor_(Intercept).Days|Subject)
param_names <- function(fit, has_sigma) {
  wald <- suppressMessages(confint(fit, method = "Wald", oldNames = FALSE))
  newn <- rownames(wald)
  old <- rownames(suppressMessages(confint(fit, method = "Wald", oldNames = TRUE)))
  api <- newn
  for (i in seq_along(api)) {
    m <- regmatches(api[i], regexec("^cor_(.+)\\.(.+)\\|(.+)$", api[i]))[[1]]
    if (length(m) == 4) {
      # lme4 writes cor_<later column>.<earlier column>|group; find the split that names
      # two columns of that term
      cn <- getME(fit, "cnms")[[m[4]]]
      body <- sub("^cor_", "", sub("\\|[^|]*$", "", api[i]))
      for (a in cn) for (b in cn) if (a != b && identical(paste0(a, ".", b), body))
        api[i] <- paste0("cor_", b, ".", a, "|", m[4])
    }
  }
  list(lme4_name = V(old), lme4_newname = V(newn), api_name = V(api))
}

profile_case <- function(id, fit, formula, dataset, REML, glmm = FALSE) {
  cat("profile:", id, "\n")
  t0 <- Sys.time()
  ci <- suppressWarnings(confint(fit, method = "profile", oldNames = TRUE))
  nm <- param_names(fit, !glmm)
  stopifnot(identical(rownames(ci), as.vector(nm$lme4_name)))
  list(id = id, dataset = dataset, formula = formula, REML = REML,
       engine = if (glmm) "lme4::glmer (nAGQ=1)" else "lme4::lmer",
       call = "confint(fit, method='profile', level=0.95)",
       note = paste("lme4's profile() refits a REML fit by ML (devfun2 calls refitML), so",
                    "the intervals are profile-likelihood (ML) intervals for REML fits too"),
       lme4_name = nm$lme4_name, lme4_newname = nm$lme4_newname, api_name = nm$api_name,
       lower = V(ci[, 1]), upper = V(ci[, 2]),
       estimate_theta = V(getME(fit, "theta")), fixef = NV(fixef(fit)),
       sigma = if (glmm) NULL else sigma(fit),
       seconds = as.numeric(difftime(Sys.time(), t0, units = "secs")))
}

D_ss <- sleepstudy
D_dye <- Dyestuff
D_pen <- Penicillin
D_cbpp <- cbpp
profiles <- list(
  profile_case("sleepstudy_corr_reml",
               lme4::lmer(Reaction ~ Days + (Days | Subject), D_ss, REML = TRUE),
               "Reaction ~ Days + (Days | Subject)", "sleepstudy", TRUE),
  profile_case("sleepstudy_corr_ml",
               lme4::lmer(Reaction ~ Days + (Days | Subject), D_ss, REML = FALSE),
               "Reaction ~ Days + (Days | Subject)", "sleepstudy", FALSE),
  profile_case("dyestuff_reml", lme4::lmer(Yield ~ 1 + (1 | Batch), D_dye, REML = TRUE),
               "Yield ~ 1 + (1 | Batch)", "Dyestuff", TRUE),
  profile_case("dyestuff_ml", lme4::lmer(Yield ~ 1 + (1 | Batch), D_dye, REML = FALSE),
               "Yield ~ 1 + (1 | Batch)", "Dyestuff", FALSE),
  profile_case("penicillin_crossed_reml",
               lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), D_pen, REML = TRUE),
               "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", TRUE),
  profile_case("cbpp_logit_agq1",
               glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), D_cbpp,
                     family = binomial),
               "cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", NA,
               glmm = TRUE))

# ------------------------------------------------------------ Kenward-Roger
kr_case <- function(id, dataset, data, rows, rule, formula, small_formula = NULL, note = NULL) {
  cat("KR:", id, "\n")
  D_kr <- data[rows, ]
  assign("D_kr", D_kr, envir = globalenv())
  fit <- lmerTest::lmer(as.formula(formula), data = D_kr, REML = TRUE)
  kr <- summary(fit, ddf = "Kenward-Roger")$coefficients
  sa <- summary(fit, ddf = "Satterthwaite")$coefficients
  va <- as.matrix(pbkrtest::vcovAdj(fit))
  an <- anova(fit, ddf = "Kenward-Roger")
  an_s <- anova(fit, ddf = "Satterthwaite")
  res <- list(
    id = id, dataset = dataset, formula = formula, REML = TRUE, data_note = note,
    row_rule = rule, rows_kept_1based = V(rows), n = length(rows),
    engine = "lmerTest::lmer (default control)",
    fixef_names = V(rownames(kr)), fixef = V(kr[, "Estimate"]),
    kr = list(se = V(kr[, "Std. Error"]), df = V(kr[, "df"]), t = V(kr[, "t value"]),
              p = V(kr[, "Pr(>|t|)"])),
    satterthwaite = list(se = V(sa[, "Std. Error"]), df = V(sa[, "df"]),
                         t = V(sa[, "t value"]), p = V(sa[, "Pr(>|t|)"])),
    vcov_unadjusted = M(as.matrix(vcov(fit))), vcovAdj = M(va),
    anova_kr = list(terms = V(rownames(an)), F = V(an[["F value"]]), NumDF = V(an$NumDF),
                    DenDF = V(an$DenDF), p = V(an[["Pr(>F)"]]), type = "III (lmerTest default)"),
    anova_satterthwaite = list(terms = V(rownames(an_s)), F = V(an_s[["F value"]]),
                               NumDF = V(an_s$NumDF), DenDF = V(an_s$DenDF),
                               p = V(an_s[["Pr(>F)"]])),
    theta = V(getME(fit, "theta")), sigma = sigma(fit),
    criterion = fit@devcomp$cmp[["REML"]])
  if (!is.null(small_formula)) {
    small <- lme4::lmer(as.formula(small_formula), data = D_kr, REML = TRUE)
    km <- pbkrtest::KRmodcomp(as(fit, "lmerMod"), small)
    st <- km$stats
    res$krmodcomp <- list(small_formula = small_formula, Fstat = st$Fstat, ndf = st$ndf,
                          ddf = st$ddf, F_scaling = st$F.scaling, p = st$p.value)
  }
  res
}

ss_rows <- which(seq_len(nrow(sleepstudy)) %% 7 != 3)
orth <- orthodont_data()
orth_rows <- which(seq_len(nrow(orth)) %% 5 != 2)
kenward_roger <- list(
  kr_case("sleepstudy_unbalanced", "sleepstudy", sleepstudy, ss_rows,
          "drop R rows i (1-based) with i %% 7 == 3", "Reaction ~ Days + (Days | Subject)",
          small_formula = "Reaction ~ 1 + (Days | Subject)"),
  kr_case("orthodont_unbalanced", "Orthodont", orth, orth_rows,
          "drop R rows i (1-based) with i %% 5 == 2", "distance ~ age + Sex + (1 | Subject)",
          small_formula = "distance ~ age + (1 | Subject)",
          note = paste(ORTH_NOTE, "| (age | Subject) is not used: on these rows its fit is",
                       "nearly singular (theta[3] ~ 5e-5), where Kenward-Roger is ill-conditioned")))

# ------------------------------------------------------------ PBmodcomp
pb_case <- function(id, dataset, data, large_f, small_f, seed, nsim = 1000, note = NULL) {
  cat("PBmodcomp:", id, "\n")
  t0 <- Sys.time()
  assign("D_pb", data, envir = globalenv())
  large <- lme4::lmer(as.formula(large_f), data = D_pb, REML = FALSE)
  small <- lme4::lmer(as.formula(small_f), data = D_pb, REML = FALSE)
  # pbkrtest 0.5.2 ignores PBmodcomp's seed argument (PBrefdist never uses it) and may
  # simulate in forked processes: seed the session RNG and run in this process (cl = 1)
  set.seed(seed)
  pb <- pbkrtest::PBmodcomp(large, small, nsim = nsim, cl = 1)
  tt <- pb$test
  ref <- as.vector(pb$ref)
  samples <- attr(pb$ref, "samples")
  list(id = id, dataset = dataset, large = large_f, small = small_f, REML = FALSE,
       data_note = note,
       call = sprintf("set.seed(%d); PBmodcomp(large, small, nsim=%d, cl=1)", seed, nsim),
       nsim = nsim, n_ref_total = length(ref), samples = NV(samples),
       samples_note = "pbkrtest: PB p = (1 + n.extreme) / (1 + npos), npos = #(ref > 0)",
       LRT = list(stat = tt["LRT", "stat"], df = tt["LRT", "df"], p = tt["LRT", "p.value"]),
       PBtest = list(stat = tt["PBtest", "stat"], p = tt["PBtest", "p.value"]),
       test_rows = V(rownames(tt)), test_stat = V(tt$stat), test_p = V(tt$p.value),
       ref_summary = list(mean = mean(ref, na.rm = TRUE), sd = sd(ref, na.rm = TRUE),
                          quantiles = NV(quantile(ref, c(0.5, 0.9, 0.95, 0.99), na.rm = TRUE))),
       ref = V(ref),
       seconds = as.numeric(difftime(Sys.time(), t0, units = "secs")))
}

pbmodcomp <- list(
  pb_case("sleepstudy_quadratic", "sleepstudy", sleepstudy,
          "Reaction ~ Days + I(Days^2) + (Days | Subject)", "Reaction ~ Days + (Days | Subject)",
          seed = 20261130),
  pb_case("orthodont_sex", "Orthodont", orth,
          "distance ~ age + Sex + (1 | Subject)", "distance ~ age + (1 | Subject)",
          seed = 20261130, note = ORTH_NOTE))

# ------------------------------------------------------------ bootMer
cat("bootMer\n")
t0 <- Sys.time()
f_boot <- lme4::lmer(Reaction ~ Days + (Days | Subject), D_ss, REML = TRUE)
boot_fun <- function(f) {
  vc <- as.data.frame(VarCorr(f))
  c(fixef(f), `sd_(Intercept)|Subject` = vc$sdcor[1], `cor_(Intercept).Days|Subject` = vc$sdcor[3],
    `sd_Days|Subject` = vc$sdcor[2], sigma = sigma(f))
}
bm <- bootMer(f_boot, boot_fun, nsim = 500, seed = 20261130, type = "parametric", use.u = FALSE)
reps <- bm$t
bootmer <- list(
  id = "sleepstudy_corr_reml", dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
  REML = TRUE, call = "bootMer(fit, FUN, nsim=500, seed=20261130, type='parametric', use.u=FALSE)",
  stat_names = V(colnames(reps)), t0 = V(bm$t0),
  n_failed = sum(!stats::complete.cases(reps)),
  mean = V(colMeans(reps, na.rm = TRUE)), sd = V(apply(reps, 2, sd, na.rm = TRUE)),
  q025 = V(apply(reps, 2, quantile, 0.025, na.rm = TRUE)),
  q975 = V(apply(reps, 2, quantile, 0.975, na.rm = TRUE)),
  percentile_note = "q025/q975: quantile type 7 of the replicates (confint(method='boot') uses boot.ci's percentile)",
  replicates = M(reps),
  seconds = as.numeric(difftime(Sys.time(), t0, units = "secs")))

write_json_file(c(header("tests/reference/make_reference_round2.R inference"),
                  list(profile = profiles, kenward_roger = kenward_roger,
                       pbmodcomp = pbmodcomp, bootmer = bootmer)),
                file.path(out_dir, "inference.json"))
