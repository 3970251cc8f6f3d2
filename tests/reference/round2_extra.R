# Part "extra" of make_reference_round2.R: writes tests/reference/lme4_extra.json.
#   machines: score ~ Machine + (Machine || Worker) and relatives (issue 12 item 1)
#   summaries: lme4's printed GLMM summary (AIC BIC logLik deviance df.resid line, fixed-effect
#              correlation block) for cbpp, VerbAgg, Contraception and two negative binomials
#              (issue 12 item 3)

# ------------------------------------------------------------ Machines
mach <- machines_data()
assign("D_mach", mach, envir = globalenv())
lctrl <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12, xtol_rel = 1e-10,
                                    maxeval = 1e5))
LCTRL_TEXT <- paste0("lmerControl(optimizer='nloptwrap', optCtrl=list(xtol_abs=1e-10, ",
                     "ftol_abs=1e-12, xtol_rel=1e-10, maxeval=1e5))")

lmer_record <- function(id, formula, note = NULL) {
  cat("lmer:", id, "\n")
  fit <- lme4::lmer(as.formula(formula), data = D_mach, REML = TRUE, control = lctrl)
  vc <- as.matrix(vcov(fit))
  list(id = id, engine = "lme4::lmer", formula = formula, REML = TRUE, control = LCTRL_TEXT,
       note = note,
       criterion = fit@devcomp$cmp[["REML"]], loglik = as.numeric(logLik(fit)),
       theta = V(getME(fit, "theta")), lower = V(getME(fit, "lower")),
       cnms = lapply(getME(fit, "cnms"), V),
       fixef_names = V(names(fixef(fit))), fixef = V(fixef(fit)),
       fixef_se = V(sqrt(diag(vc))), sigma = sigma(fit),
       varcorr = varcorr_records(fit), isSingular = isSingular(fit),
       optimizer_messages = msgs_of(fit))
}

tmb_record <- function(id, formula, note = NULL) {
  cat("glmmTMB:", id, "\n")
  fit <- glmmTMB(as.formula(formula), data = D_mach, REML = TRUE)
  ll <- logLik(fit)
  list(id = id, engine = "glmmTMB::glmmTMB(REML=TRUE)", formula = formula, REML = TRUE,
       note = note,
       criterion = -2 * as.numeric(ll), loglik = as.numeric(ll), df_loglik = attr(ll, "df"),
       fixef_names = V(names(fixef(fit)$cond)), fixef = V(fixef(fit)$cond),
       fixef_se = V(sqrt(diag(vcov(fit)$cond))), sigma = sigma(fit),
       terms = tmb_varcorr(fit),
       convergence = fit$fit$convergence, pdHess = fit$sdr$pdHess)
}

machines <- list(
  dataset = "Machines", data_note = MACH_NOTE,
  criterion_note = paste("criterion = REML criterion (-2 restricted log-likelihood); for",
                         "glmmTMB -2 * logLik(fit) of the REML fit"),
  cases = list(
    lmer_record("machines_dblbar_lme4", "score ~ Machine + (Machine || Worker)",
                note = paste("lme4 expands || (expandDoubleVerts) into (1 | Worker) +",
                             "(0 + Machine | Worker): the 3 x 3 Machine block stays correlated")),
    lmer_record("machines_dblbar_expanded_lme4",
                "score ~ Machine + (1 | Worker) + (0 + Machine | Worker)",
                note = "what lme4 fits for (Machine || Worker), written out"),
    lmer_record("machines_corr_lme4", "score ~ Machine + (Machine | Worker)"),
    lmer_record("machines_onevar_per_machine_lme4",
                paste("score ~ Machine + (1 | Worker) + (0 + dummy(Machine, 'A') | Worker) +",
                      "(0 + dummy(Machine, 'B') | Worker) + (0 + dummy(Machine, 'C') | Worker)"),
                note = paste("one variance per machine plus a worker intercept, in lme4 syntax;",
                             "same model as glmmTMB's (1 | Worker) + diag(0 + Machine | Worker)")),
    tmb_record("machines_diag_glmmTMB", "score ~ Machine + diag(Machine | Worker)",
               note = paste("diagonal covariance over the columns of (Machine | Worker):",
                            "(Intercept), MachineB, MachineC")),
    tmb_record("machines_int_diag0_glmmTMB",
               "score ~ Machine + (1 | Worker) + diag(0 + Machine | Worker)",
               note = "one variance per machine (A, B, C) plus a worker intercept"),
    tmb_record("machines_corr_glmmTMB", "score ~ Machine + (Machine | Worker)",
               note = "cross-check of lme4's (Machine | Worker)")))

# ------------------------------------------------------------ GLMM summaries
summary_record <- function(id, fit, formula, dataset, engine) {
  cat("summary:", id, "\n")
  s <- summary(fit)
  txt <- capture.output(print(s))
  i_aic <- grep("^ +AIC +BIC +logLik", txt)
  vc <- as.matrix(vcov(fit))
  corr <- cov2cor(vc)
  i_cor <- grep("^Correlation of Fixed Effects", txt)
  cor_lines <- if (length(i_cor)) {
    j <- i_cor + 1
    while (j <= length(txt) && nzchar(trimws(txt[j])) &&
           !grepl("^(optimizer|convergence|Model failed|Some predictor)", txt[j])) j <- j + 1
    V(txt[(i_cor + 1):(j - 1)])
  } else NULL
  list(id = id, dataset = dataset, formula = formula, engine = engine,
       AICtab = NV(s$AICtab),
       AICtab_note = "summary(fit)$AICtab: its 'deviance' is -2 logLik (not deviance(fit))",
       deviance_fun = deviance(fit), minus2loglik = -2 * as.numeric(logLik(fit)),
       aic_lines = if (length(i_aic)) V(txt[i_aic:(i_aic + 1)]) else NULL,
       fixef_names = V(names(fixef(fit))),
       fixef_corr = M(corr),
       corr_lines = cor_lines,
       printed = V(txt))
}

G_cbpp <- cbpp
f_cbpp <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = G_cbpp,
                family = binomial, control = GCTRL_DEFAULT)
G_verb <- VerbAgg
f_verb <- glmer(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), data = G_verb,
                family = binomial, control = GCTRL_DEFAULT)
G_contra <- Contraception
f_contra <- suppressWarnings(glmer(use ~ age + I(age^2) + urban + livch + (urban | district),
                                   data = G_contra, family = binomial, control = GCTRL_DEFAULT))
G_nb <- grouseticks
f_nb <- glmer.nb(TICKS ~ YEAR + (1 | LOCATION), data = G_nb)
G_sal <- Salamanders
f_sal <- glmer.nb(count ~ spp + mined + (1 | site), data = G_sal)

summaries <- list(
  summary_record("cbpp_logit_agq1", f_cbpp,
                 "cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
                 paste("lme4::glmer(family=binomial,", GCTRL_DEFAULT_TEXT, ")")),
  summary_record("verbagg_binomial", f_verb,
                 "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "VerbAgg",
                 paste("lme4::glmer(family=binomial,", GCTRL_DEFAULT_TEXT, ")")),
  summary_record("contraception_urban_slope", f_contra,
                 "use ~ age + I(age^2) + urban + livch + (urban | district)", "Contraception",
                 paste("lme4::glmer(family=binomial,", GCTRL_DEFAULT_TEXT, ")")),
  summary_record("grouseticks_nb_glmer", f_nb, "TICKS ~ YEAR + (1 | LOCATION)", "grouseticks",
                 "lme4::glmer.nb (default control)"),
  summary_record("salamanders_nb_glmer", f_sal, "count ~ spp + mined + (1 | site)",
                 "Salamanders", "lme4::glmer.nb (default control)"))

write_json_file(c(header("tests/reference/make_reference_round2.R extra"),
                  list(machines = machines, summaries = summaries)),
                file.path(out_dir, "lme4_extra.json"))
