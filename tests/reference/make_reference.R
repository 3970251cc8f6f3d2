# Reference numbers from lme4 / nlme / lmerTest / glmmTMB for bayesmixed's parity tests.
#
# Run from the repository root:   Rscript tests/reference/make_reference.R
# Writes tests/reference/lmer.json and tests/reference/glmer.json (layout: README.md).
# Data come straight from the R packages (the same data bayesmixed ships, see
# export_datasets.R); any change made to a data set before fitting is recorded in the
# case as "data_note" / "extra_columns" / "extra_data".

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(lmerTest)
  library(glmmTMB)
  library(mlmRev)
  library(jsonlite)
})

t_start <- Sys.time()
out_dir <- file.path("tests", "reference")
pkgs <- c("lme4", "Matrix", "nlme", "lmerTest", "glmmTMB", "TMB", "mlmRev", "nloptr",
          "minqa", "jsonlite", "performance")
versions <- c(list(R = R.version.string),
              lapply(setNames(pkgs, pkgs), function(p)
                tryCatch(as.character(packageVersion(p)), error = function(e) NULL)))

V <- function(x) if (is.null(x)) NULL else I(unname(as.vector(x)))   # always a JSON array
M <- function(m) { m <- as.matrix(m); dimnames(m) <- NULL; m }       # list of rows
S <- function(x) if (is.null(x) || length(x) == 0) NULL else unname(as.vector(x)[1])
write_json_file <- function(obj, file) {
  txt <- toJSON(obj, auto_unbox = TRUE, null = "null", na = "null", digits = I(17),
                pretty = FALSE)
  writeLines(txt, file)
  cat(sprintf("wrote %s (%.0f kB)\n", file, file.size(file) / 1024))
}

varcorr_records <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  lapply(seq_len(nrow(vc)), function(i) list(
    grp = vc$grp[i],
    var1 = if (is.na(vc$var1[i])) NULL else vc$var1[i],
    var2 = if (is.na(vc$var2[i])) NULL else vc$var2[i],
    vcov = vc$vcov[i], sdcor = vc$sdcor[i]))
}

# condition sds per level (rows) and term column, from ranef(condVar=TRUE)
condsd_matrix <- function(re_df) {
  pv <- attr(re_df, "postVar")
  if (is.null(pv)) pv <- attr(re_df, "condVar")
  if (is.null(pv)) return(NULL)
  pvs <- if (is.list(pv)) pv else list(pv)
  cols <- lapply(pvs, function(a) {
    q <- dim(a)[1]
    out <- matrix(NA_real_, dim(a)[3], q)
    for (j in seq_len(q)) out[, j] <- sqrt(a[j, j, ])
    out
  })
  do.call(cbind, cols)
}

ranef_block <- function(fit, max_levels = NULL) {
  rr <- ranef(fit, condVar = TRUE)
  out <- list()
  for (g in names(rr)) {
    df <- rr[[g]]
    vals <- as.matrix(df)
    sds <- condsd_matrix(df)
    lev <- rownames(df)
    n_all <- length(lev)
    if (!is.null(max_levels) && n_all > max_levels) {
      keep <- seq_len(max_levels)
      vals <- vals[keep, , drop = FALSE]
      if (!is.null(sds)) sds <- sds[keep, , drop = FALSE]
      lev <- lev[keep]
    }
    out[[g]] <- list(levels = V(lev), columns = V(colnames(df)), n_levels = n_all,
                     values = M(vals), condsd = if (is.null(sds)) NULL else M(sds))
  }
  out
}

start_theta <- function(fit) { lw <- getME(fit, "lower"); ifelse(lw == 0, 1, 0) }

skipped <- list()
note_skip <- function(id, err) {
  msg <- conditionMessage(err)
  cat("SKIPPED", id, ":", msg, "\n")
  skipped[[length(skipped) + 1]] <<- list(id = id, error = msg)
}

# ============================================================ linear mixed models
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12, xtol_rel = 1e-10,
                                    maxeval = 1e5))
tight_ignore <- lmerControl(optimizer = "nloptwrap",
                            optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12,
                                           xtol_rel = 1e-10, maxeval = 1e5),
                            check.nobs.vs.nlev = "ignore", check.nobs.vs.rankZ = "ignore",
                            check.nlev.gtr.1 = "ignore", check.nobs.vs.nRE = "ignore")
CONTROL_TEXT <- paste0("lmerControl(optimizer='nloptwrap', optCtrl=list(xtol_abs=1e-10, ",
                       "ftol_abs=1e-12, xtol_rel=1e-10, maxeval=1e5))")

fit_lmer <- function(formula, dname, REML, weights = NULL, offset = NULL, control = tight) {
  cl <- call("lmer", formula = as.formula(formula, env = globalenv()),
             data = as.name(dname), REML = REML, control = control)
  if (!is.null(weights)) cl$weights <- as.name(weights)
  if (!is.null(offset)) cl$offset <- as.name(offset)
  eval(cl, globalenv())
}

lmm_case <- function(id, dataset, data, formula, REML, weights = NULL, offset = NULL,
                     control = tight, control_note = NULL, data_note = NULL,
                     extra_columns = NULL, max_levels = NULL, notes = NULL) {
  cat("lmer:", id, "\n")
  dname <- paste0("D_", id)
  assign(dname, data, envir = globalenv())
  fit <- fit_lmer(formula, dname, REML, weights, offset, control)
  theta <- getME(fit, "theta")
  lower <- getME(fit, "lower")
  theta0 <- start_theta(fit)
  theta_mid <- 0.5 * (theta0 + theta)
  devfun <- update(fit, devFunOnly = TRUE)
  crit_eval <- c(devfun(theta0), devfun(theta_mid))
  crit <- if (REML) fit@devcomp$cmp[["REML"]] else fit@devcomp$cmp[["dev"]]
  vc <- as.matrix(vcov(fit))
  ll <- logLik(fit)
  satt <- tryCatch({
    co <- summary(lmerTest::as_lmerModLmerTest(fit))$coefficients
    list(df = V(co[, "df"]), t = V(co[, "t value"]), p = V(co[, "Pr(>|t|)"]))
  }, error = function(e) list(error = conditionMessage(e)))
  msgs <- fit@optinfo$conv$lme4$messages
  list(
    id = id, dataset = dataset, formula = formula, REML = REML,
    weights = weights, offset = offset,
    control = if (identical(control, tight)) CONTROL_TEXT else paste(CONTROL_TEXT, "+ check.* = 'ignore'"),
    control_note = control_note, data_note = data_note, notes = notes,
    extra_columns = extra_columns,
    theta = V(theta), criterion = crit,
    theta_eval = list(V(theta0), V(theta_mid)), criterion_eval = V(crit_eval),
    lower = V(lower),
    fixef_names = V(names(fixef(fit))), fixef = V(fixef(fit)),
    fixef_se = V(sqrt(diag(vc))), vcov = M(vc),
    varcorr = varcorr_records(fit),
    ranef = ranef_block(fit, max_levels),
    ranef_truncated_to = max_levels,
    sigma = sigma(fit), loglik = as.numeric(ll), df_loglik = attr(ll, "df"),
    aic = AIC(fit), bic = BIC(fit),
    deviance = if (REML) NULL else deviance(fit),
    nobs = nobs(fit), ngroups = as.list(ngrps(fit)),
    fitted_head = V(head(fitted(fit), 10)), resid_head = V(head(residuals(fit), 10)),
    satterthwaite = satt,
    isSingular = isSingular(fit),
    optimizer_messages = if (length(msgs)) V(msgs) else NULL
  )
}

lmm_cases <- list()
add_lmm <- function(...) {
  args <- list(...)
  res <- tryCatch(do.call(lmm_case, args), error = function(e) { note_skip(args$id, e); NULL })
  if (!is.null(res)) lmm_cases[[length(lmm_cases) + 1]] <<- res
}

ss <- sleepstudy
add_lmm(id = "sleepstudy_corr_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE)
add_lmm(id = "sleepstudy_corr_ml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE)
add_lmm(id = "sleepstudy_int_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + (1 | Subject)", REML = TRUE)
add_lmm(id = "sleepstudy_uncorr_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + (Days || Subject)", REML = TRUE)
add_lmm(id = "sleepstudy_twoterms_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", REML = TRUE)
add_lmm(id = "sleepstudy_null_ml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ 1 + (1 | Subject)", REML = FALSE)
add_lmm(id = "sleepstudy_quad_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + I(Days^2) + (Days | Subject)", REML = TRUE)
add_lmm(id = "sleepstudy_log_reml", dataset = "sleepstudy", data = ss,
        formula = "log(Reaction) ~ Days + (Days | Subject)", REML = TRUE)
add_lmm(id = "sleepstudy_scale_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ scale(Days) + (1 | Subject)", REML = TRUE,
        notes = "scale() as in R: centre by the mean, divide by the sd with n-1 denominator")
ssw <- ss
ssw$w <- 1 + (seq_len(nrow(ssw)) %% 3)
add_lmm(id = "sleepstudy_weights_reml", dataset = "sleepstudy", data = ssw,
        formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE, weights = "w",
        extra_columns = list(w = V(ssw$w)),
        data_note = "weights column w = 1 + (seq_len(180) %% 3) added to sleepstudy")
add_lmm(id = "sleepstudy_offset_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + offset(Days) + (1 | Subject)", REML = TRUE)
add_lmm(id = "sleepstudy_offset_arg_reml", dataset = "sleepstudy", data = ss,
        formula = "Reaction ~ Days + (1 | Subject)", REML = TRUE, offset = "Days",
        notes = "same model as sleepstudy_offset_reml, offset given as the offset= argument")

add_lmm(id = "dyestuff_reml", dataset = "Dyestuff", data = Dyestuff,
        formula = "Yield ~ 1 + (1 | Batch)", REML = TRUE)
add_lmm(id = "dyestuff_ml", dataset = "Dyestuff", data = Dyestuff,
        formula = "Yield ~ 1 + (1 | Batch)", REML = FALSE)
add_lmm(id = "dyestuff2_reml", dataset = "Dyestuff2", data = Dyestuff2,
        formula = "Yield ~ 1 + (1 | Batch)", REML = TRUE,
        notes = "singular fit: theta = 0")

add_lmm(id = "penicillin_crossed_reml", dataset = "Penicillin", data = Penicillin,
        formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", REML = TRUE)

add_lmm(id = "pastes_nested_reml", dataset = "Pastes", data = Pastes,
        formula = "strength ~ 1 + (1 | batch/cask)", REML = TRUE)
add_lmm(id = "pastes_nested_explicit_reml", dataset = "Pastes", data = Pastes,
        formula = "strength ~ 1 + (1 | batch) + (1 | batch:cask)", REML = TRUE)

cake_u <- cake
cake_u$temperature <- factor(cake_u$temperature, ordered = FALSE)
add_lmm(id = "cake_interaction_reml", dataset = "cake", data = cake_u,
        formula = "angle ~ recipe * temperature + (1 | recipe:replicate)", REML = TRUE,
        data_note = paste("temperature converted to an unordered factor in R",
                          "(factor(temperature, ordered=FALSE), same level order) so that",
                          "treatment contrasts are used, not R's polynomial contrasts"))
add_lmm(id = "cake_temp_ml", dataset = "cake", data = cake,
        formula = "angle ~ recipe + temp + (1 | recipe:replicate)", REML = FALSE)

mach <- as.data.frame(Machines)
mach$Worker <- factor(mach$Worker, ordered = FALSE)
mach_note <- paste("Worker (an ordered factor in nlme's groupedData) converted to an",
                   "unordered factor, level order kept (6, 2, 4, 1, 3, 5)")
add_lmm(id = "machines_nested_reml", dataset = "Machines", data = mach,
        formula = "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", REML = TRUE,
        data_note = mach_note)
add_lmm(id = "machines_factor_slopes_reml", dataset = "Machines", data = mach,
        formula = "score ~ Machine + (0 + Machine | Worker)", REML = TRUE,
        data_note = mach_note)

orth <- as.data.frame(Orthodont)
orth$Subject <- factor(orth$Subject, ordered = FALSE)
add_lmm(id = "orthodont_reml", dataset = "Orthodont", data = orth,
        formula = "distance ~ age * Sex + (age | Subject)", REML = TRUE,
        data_note = paste("Subject (an ordered factor in nlme's groupedData) converted to an",
                          "unordered factor, level order kept"))

t0 <- Sys.time()
add_lmm(id = "insteval_ml", dataset = "InstEval", data = InstEval,
        formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", REML = FALSE,
        max_levels = 20,
        notes = "ranef values/condsd truncated to the first 20 levels of each factor")
cat("InstEval took", format(Sys.time() - t0), "\n")

wv <- data.frame(
  v = c(6, 10, 6, 13, 19, 12, 11, 17, 18, 12),
  w = c(366, 383, 332, 331, 311, 352, 356, 351, 399, 357),
  x = c(8, 1, 4, 10, 8, 10, 3, 1, 1, 2),
  y = c(97, 56, 97, 68, 94, 66, 81, 76, 86, 69),
  z = c(188, 184, 181, 194, 190, 180, 192, 184, 192, 191))
add_lmm(id = "wvxyz_reml", dataset = "wvxyz", data = wv,
        formula = "x ~ y + z + (1 | w)", REML = TRUE, control = tight_ignore,
        control_note = paste("check.nobs.vs.nlev='ignore', check.nobs.vs.rankZ='ignore',",
                             "check.nlev.gtr.1='ignore', check.nobs.vs.nRE='ignore' (the",
                             "last is also needed): every w value is distinct, one",
                             "observation per group"),
        data_note = "w is numeric; lmer turns the grouping variable into factor(w) (levels sorted numerically)",
        notes = paste("one observation per group: only sigma^2 + sigma_w^2 is identified, the",
                      "REML criterion is flat along that ridge, so theta/sigma/varcorr/ranef",
                      "depend on the optimizer path; criterion, fixef, vcov are well defined"))

# ------------------------------------------------------------ nlme lme on wvxyz
lme_block <- function(fit, levels) {
  vc <- VarCorr(fit)
  vc_tab <- lapply(seq_len(nrow(vc)), function(i) list(
    name = rownames(vc)[i],
    variance = suppressWarnings(as.numeric(vc[i, "Variance"])),
    stddev = suppressWarnings(as.numeric(vc[i, "StdDev"]))))
  re_sd <- lapply(fit$modelStruct$reStruct, function(pd)
    fit$sigma * sqrt(as.matrix(pd)[1, 1]))
  coefs <- lapply(setNames(seq_along(levels[-1]), levels[-1]), function(k) {
    co <- coef(fit, level = k)
    list(levels = V(rownames(co)), columns = V(colnames(co)), values = M(co))
  })
  fv <- fitted(fit, level = 0:(length(levels) - 1))
  ll <- logLik(fit)
  list(fixef_names = V(names(fixef(fit))), fixef = V(fixef(fit)),
       fixef_se = V(sqrt(diag(vcov(fit)))),
       re_sd = re_sd, varcorr_table = vc_tab, sigma = fit$sigma,
       loglik = as.numeric(ll), df_loglik = attr(ll, "df"), aic = AIC(fit), bic = BIC(fit),
       coef = coefs,
       fitted = lapply(setNames(seq_len(ncol(fv)), c("fixed", levels[-1])),
                       function(j) V(fv[, j])),
       fitted_columns = V(colnames(fv)))
}
nlme_out <- list()
nlme_out$wvxyz_w <- tryCatch({
  f1 <- lme(x ~ y + z, random = ~ 1 | w, data = wv, method = "REML")
  c(list(id = "wvxyz_w", dataset = "wvxyz", formula = "x ~ y + z", random = "~1 | w",
         method = "REML"), lme_block(f1, c("fixed", "w")))
}, error = function(e) { note_skip("nlme_wvxyz_w", e); NULL })
nlme_out$wvxyz_w_v <- tryCatch({
  f2 <- lme(x ~ y + z, random = ~ 1 | w/v, data = wv, method = "REML")
  c(list(id = "wvxyz_w_v", dataset = "wvxyz", formula = "x ~ y + z", random = "~1 | w/v",
         method = "REML"), lme_block(f2, c("fixed", "w", "v")))
}, error = function(e) { note_skip("nlme_wvxyz_w_v", e); NULL })
nlme_out$note <- paste("nlme uses its own optimizer (nlminb on log-sd parameters); with one",
                       "observation per w group the variance split is not identified, so",
                       "compare logLik, fixef and fitted(level 0) tightly, the rest loosely.",
                       "coef[[k]] is coef(fit, level=k) (k = 1: w, 2: w/v); fitted has one",
                       "vector per fitted(fit, level=0:K) column.")

# ------------------------------------------------------------ anova
anova_out <- tryCatch({
  D_anova <- sleepstudy
  m1 <- lmer(Reaction ~ Days + (1 | Subject), D_anova, control = tight)
  m2 <- lmer(Reaction ~ Days + (Days || Subject), D_anova, control = tight)
  m3 <- lmer(Reaction ~ Days + (Days | Subject), D_anova, control = tight)
  tab <- anova(m1, m2, m3)
  forms <- c(m1 = "Reaction ~ Days + (1 | Subject)", m2 = "Reaction ~ Days + (Days || Subject)",
             m3 = "Reaction ~ Days + (Days | Subject)")
  devcol <- intersect(c("deviance", "-2*log(L)"), colnames(tab))[1]
  num <- function(x) if (is.na(x)) NULL else x
  list(
    dataset = "sleepstudy", REML_fits = TRUE, refit = "ML (anova refits REML fits by ML)",
    r_columns = V(colnames(tab)),
    table = lapply(seq_len(nrow(tab)), function(i) list(
      model = rownames(tab)[i], formula = forms[[rownames(tab)[i]]],
      npar = tab$npar[i], AIC = tab$AIC[i], BIC = tab$BIC[i], logLik = tab$logLik[i],
      deviance = tab[[devcol]][i], Chisq = num(tab$Chisq[i]), Df = num(tab$Df[i]),
      `Pr(>Chisq)` = num(tab[["Pr(>Chisq)"]][i]))))
}, error = function(e) { note_skip("anova", e); NULL })

# ------------------------------------------------------------ R^2 (Nakagawa & Schielzeth)
r2_one <- function(fit) {
  X <- getME(fit, "X")
  vf <- var(as.vector(X %*% fixef(fit)))
  # Johnson (2014): for each random term, mean over observations of x_i' Sigma x_i
  vr <- 0
  for (g in names(VarCorr(fit))) {
    Sig <- VarCorr(fit)[[g]]
    cn <- colnames(Sig)
    if (!all(cn %in% colnames(X))) stop("random-effect columns not in X: ", paste(cn, collapse = ","))
    Zg <- X[, cn, drop = FALSE]
    vr <- vr + mean(rowSums((Zg %*% Sig) * Zg))
  }
  ve <- sigma(fit)^2
  res <- list(var_fixed = vf, var_random = vr, var_resid = ve,
              marginal = vf / (vf + vr + ve), conditional = (vf + vr) / (vf + vr + ve))
  if (requireNamespace("performance", quietly = TRUE)) {
    p <- tryCatch(performance::r2_nakagawa(fit), error = function(e) NULL)
    if (!is.null(p)) {
      res$performance_marginal <- S(p$R2_marginal)
      res$performance_conditional <- S(p$R2_conditional)
    }
  }
  res
}
r2_out <- tryCatch({
  D_r2 <- sleepstudy
  fa <- lmer(Reaction ~ Days + (Days | Subject), D_r2, control = tight)
  fb <- lmer(Reaction ~ Days + (1 | Subject), D_r2, control = tight)
  list(
    r2_method = paste(
      "Nakagawa & Schielzeth (2013) with Johnson's (2014) extension for random slopes,",
      "computed by hand in R: var_fixed = var(as.vector(X %*% fixef)) (n-1 denominator);",
      "var_random = sum over random terms of mean_i(x_i' Sigma x_i), x_i the row of the",
      "term's model columns; var_resid = sigma^2; marginal = vf/(vf+vr+ve);",
      "conditional = (vf+vr)/(vf+vr+ve). performance_* give performance::r2_nakagawa",
      "as a cross-check (MuMIn is not installed)."),
    cases = list(
      c(list(id = "sleepstudy_corr_reml", formula = "Reaction ~ Days + (Days | Subject)",
             REML = TRUE), r2_one(fa)),
      c(list(id = "sleepstudy_int_reml", formula = "Reaction ~ Days + (1 | Subject)",
             REML = TRUE), r2_one(fb))))
}, error = function(e) { note_skip("r2", e); NULL })

write_json_file(list(versions = versions, generated = format(Sys.time(), tz = "UTC", usetz = TRUE),
                     control = CONTROL_TEXT, cases = lmm_cases, nlme = nlme_out,
                     anova = anova_out, r2 = r2_out,
                     skipped = skipped),
                file.path(out_dir, "lmer.json"))
lmm_skipped <- skipped
skipped <- list()

# ============================================================ generalized LMMs
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
GCONTROL_TEXT <- "glmerControl(optimizer='bobyqa', optCtrl=list(maxfun=1e5))"

glmm_case <- function(id, dataset, data, formula, family, link, nAGQ = 1, weights = NULL,
                      data_note = NULL, extra_data = NULL, notes = NULL) {
  cat("glmer:", id, "\n")
  dname <- paste0("G_", id)
  assign(dname, data, envir = globalenv())
  fam <- do.call(family, list(link = link))
  cl <- call("glmer", formula = as.formula(formula, env = globalenv()),
             data = as.name(dname), family = fam, nAGQ = nAGQ, control = gctrl)
  if (!is.null(weights)) cl$weights <- as.name(weights)
  fit <- eval(cl, globalenv())
  theta <- getME(fit, "theta")
  beta <- fixef(fit)
  devfun <- update(fit, devFunOnly = TRUE)
  p1 <- c(theta, beta)
  p2 <- c(theta * 0.5 + 0.25, beta * 0.9)
  crit_eval <- c(devfun(p1), devfun(p2))
  vc <- as.matrix(vcov(fit))
  vc_rx <- tryCatch(suppressWarnings(as.matrix(vcov(fit, use.hessian = FALSE))),
                    error = function(e) NULL)
  ll <- logLik(fit)
  msgs <- fit@optinfo$conv$lme4$messages
  list(
    id = id, dataset = dataset, formula = formula, family = family, link = link,
    nAGQ = nAGQ, weights = weights, offset = NULL, control = GCONTROL_TEXT,
    data_note = data_note, notes = notes, extra_data = extra_data,
    theta = V(theta), lower = V(getME(fit, "lower")),
    criterion = fit@devcomp$cmp[["dev"]],
    par_eval = list(V(p1), V(p2)), criterion_eval = V(crit_eval),
    theta_eval = list(V(theta), V(theta * 0.5 + 0.25)), beta_eval = list(V(beta), V(beta * 0.9)),
    fixef_names = V(names(beta)), fixef = V(beta), beta = V(beta),
    fixef_se = V(sqrt(diag(vc))), vcov = M(vc),
    vcov_note = "vcov/fixef_se: lme4 default (finite-difference Hessian); *_rx: vcov(fit, use.hessian=FALSE)",
    fixef_se_rx = if (is.null(vc_rx)) NULL else V(sqrt(diag(vc_rx))),
    varcorr = varcorr_records(fit),
    ranef = ranef_block(fit),
    sigma = sigma(fit),
    loglik = as.numeric(ll), df_loglik = attr(ll, "df"), aic = AIC(fit), bic = BIC(fit),
    deviance = deviance(fit),
    nobs = nobs(fit), ngroups = as.list(ngrps(fit)),
    fitted_head = V(head(fitted(fit), 10)), resid_head = V(head(residuals(fit), 10)),
    resid_type = "deviance",
    isSingular = isSingular(fit),
    optimizer_messages = if (length(msgs)) V(msgs) else NULL
  )
}

glmm_cases <- list()
add_glmm <- function(...) {
  args <- list(...)
  res <- tryCatch(do.call(glmm_case, args), error = function(e) { note_skip(args$id, e); NULL })
  if (!is.null(res)) glmm_cases[[length(glmm_cases) + 1]] <<- res
}

cb_form <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
for (lk in c("logit", "probit", "cloglog")) {
  for (q in c(1, 25)) {
    add_glmm(id = sprintf("cbpp_%s_agq%d", lk, q), dataset = "cbpp", data = cbpp,
             formula = cb_form, family = "binomial", link = lk, nAGQ = q)
  }
}
add_glmm(id = "cbpp_prop_weights", dataset = "cbpp", data = cbpp,
         formula = "incidence/size ~ period + (1 | herd)", family = "binomial",
         link = "logit", weights = "size",
         notes = "proportion response with prior weights = size; same fit as cbpp_logit_agq1")

add_glmm(id = "grouseticks_poisson", dataset = "grouseticks", data = grouseticks,
         formula = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
         family = "poisson", link = "log",
         data_note = "YEAR is a factor (levels 95, 96, 97) in lme4's grouseticks")

add_glmm(id = "verbagg_binomial", dataset = "VerbAgg", data = VerbAgg,
         formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
         family = "binomial", link = "logit",
         data_note = "r2 is a factor N/Y: the first level (N) is failure, Y success")

add_glmm(id = "contraception_int", dataset = "Contraception", data = Contraception,
         formula = "use ~ age + I(age^2) + urban + livch + (1 | district)",
         family = "binomial", link = "logit",
         data_note = "use is a factor N/Y: N failure, Y success")
add_glmm(id = "contraception_urban_slope", dataset = "Contraception", data = Contraception,
         formula = "use ~ age + I(age^2) + urban + livch + (urban | district)",
         family = "binomial", link = "logit",
         data_note = "use is a factor N/Y: N failure, Y success")

# poisson with an offset: keep only if glmer reports no convergence problems
off_case <- tryCatch(glmm_case(
  id = "grouseticks_poisson_offset", dataset = "grouseticks", data = grouseticks,
  formula = "TICKS ~ YEAR + offset(log(HEIGHT/100)) + (1 | BROOD)",
  family = "poisson", link = "log"), error = function(e) { note_skip("grouseticks_poisson_offset", e); NULL })
if (!is.null(off_case)) {
  if (is.null(off_case$optimizer_messages)) {
    glmm_cases[[length(glmm_cases) + 1]] <- off_case
  } else {
    skipped[[length(skipped) + 1]] <- list(id = "grouseticks_poisson_offset",
      error = paste("convergence messages:", paste(off_case$optimizer_messages, collapse = "; ")))
  }
}

# Gamma, log link, simulated
set.seed(1)
n_g <- 20; n_per <- 10
g <- factor(rep(seq_len(n_g), each = n_per))
b <- rnorm(n_g, 0, 0.4)
x <- rnorm(n_g * n_per)
mu <- exp(1 + 0.5 * x + b[as.integer(g)])
y <- rgamma(n_g * n_per, shape = 5, rate = 5 / mu)
gam_dat <- data.frame(g = g, x = x, y = y)
add_glmm(id = "gamma_log_sim", dataset = NULL, data = gam_dat,
         formula = "y ~ x + (1 | g)", family = "Gamma", link = "log",
         extra_data = lapply(seq_len(nrow(gam_dat)), function(i)
           list(g = as.character(gam_dat$g[i]), x = gam_dat$x[i], y = gam_dat$y[i])),
         data_note = paste("simulated in R: set.seed(1); g = factor(rep(1:20, each=10));",
                           "b = rnorm(20, 0, 0.4); x = rnorm(200); mu = exp(1 + 0.5x + b[g]);",
                           "y = rgamma(200, shape=5, rate=5/mu); data in extra_data"),
         notes = paste("glmer's Gamma Laplace fit profiles no dispersion: the deviance uses",
                       "the family's aic() with the dispersion estimated from the deviance",
                       "residuals; sigma(fit) is the reported scale"))

# ------------------------------------------------------------ negative binomial
nb_out <- list()
nb_out$glmer_nb <- tryCatch({
  cat("glmer.nb\n")
  G_nb <- grouseticks
  fnb <- glmer.nb(TICKS ~ YEAR + (1 | LOCATION), data = G_nb)
  ll <- logLik(fnb)
  list(id = "grouseticks_nb_glmer", dataset = "grouseticks",
       formula = "TICKS ~ YEAR + (1 | LOCATION)", engine = "lme4::glmer.nb",
       family = "negativebinomial", link = "log",
       theta_nb = getME(fnb, "glmer.nb.theta"), dispersion = getME(fnb, "glmer.nb.theta"),
       theta = V(getME(fnb, "theta")),
       fixef_names = V(names(fixef(fnb))), fixef = V(fixef(fnb)),
       fixef_se = V(sqrt(diag(as.matrix(vcov(fnb))))),
       varcorr = varcorr_records(fnb),
       loglik = as.numeric(ll), df_loglik = attr(ll, "df"), aic = AIC(fnb), bic = BIC(fnb),
       criterion = fnb@devcomp$cmp[["dev"]], nobs = nobs(fnb),
       optimizer_messages = if (length(fnb@optinfo$conv$lme4$messages)) V(fnb@optinfo$conv$lme4$messages) else NULL)
}, error = function(e) { note_skip("grouseticks_nb_glmer", e); NULL })
nb_out$glmmTMB_nbinom2 <- tryCatch({
  cat("glmmTMB nbinom2\n")
  ftmb <- glmmTMB(TICKS ~ YEAR + (1 | LOCATION), family = nbinom2, data = grouseticks)
  ll <- logLik(ftmb)
  sd_loc <- attr(VarCorr(ftmb)$cond$LOCATION, "stddev")
  list(id = "grouseticks_nb_glmmTMB", dataset = "grouseticks",
       formula = "TICKS ~ YEAR + (1 | LOCATION)", engine = "glmmTMB::glmmTMB(family=nbinom2)",
       family = "negativebinomial", link = "log",
       theta_nb = sigma(ftmb), dispersion = sigma(ftmb),
       fixef_names = V(names(fixef(ftmb)$cond)), fixef = V(fixef(ftmb)$cond),
       fixef_se = V(sqrt(diag(vcov(ftmb)$cond))),
       varcorr = list(list(grp = "LOCATION", var1 = "(Intercept)", var2 = NULL,
                           vcov = unname(sd_loc^2), sdcor = unname(sd_loc))),
       loglik = as.numeric(ll), df_loglik = attr(ll, "df"), aic = AIC(ftmb), bic = BIC(ftmb),
       nobs = nobs(ftmb))
}, error = function(e) { note_skip("grouseticks_nb_glmmTMB", e); NULL })
nb_out$note <- paste("theta_nb / dispersion is the NB2 size parameter k (Var = mu + mu^2/k):",
                     "getME(fit, 'glmer.nb.theta') for glmer.nb, sigma(fit) for glmmTMB nbinom2")

write_json_file(list(versions = versions, generated = format(Sys.time(), tz = "UTC", usetz = TRUE),
                     control = GCONTROL_TEXT, cases = glmm_cases, negbin = nb_out,
                     skipped = skipped),
                file.path(out_dir, "glmer.json"))
cat("lmer skipped:", length(lmm_skipped), " glmer skipped:", length(skipped), "\n")
cat("total time", format(Sys.time() - t_start), "\n")
