# Part "hessian" of make_reference_round2.R: writes tests/reference/glmm_hessian.json.
#
# For every GLMM case of glmer.json (plus Contraception probit with (urban | district)):
#  * glmer_default: glmer with glmer.json's control (criterion, theta, fixef, SEs)
#  * glmer_tight:   glmer with tolPwrss = 1e-12 (issue 12 item 5); criterion_best = the lower
#  * tmb:   exact Hessian of glmmTMB's Laplace objective: glmmTMB's exact (AD) gradient
#           fit$obj$gr differentiated by Richardson extrapolation (numDeriv::jacobian), after
#           Newton steps from glmmTMB's optimum until max|gradient| < 1e-9; SE of beta =
#           sqrt(diag(solve(H)))[beta] (invariant to the covariance parametrisation at
#           the optimum). Not for AGQ (glmmTMB has none) nor Gamma (glmmTMB's Gamma
#           estimates the shape jointly, glmer's does not: different objective).
#  * exact:  Richardson Hessian (numDeriv::genD) of glmer's Laplace / AGQ deviance
#           recomputed with fully converged inner iterations (round2_exactdev.R; glmer's
#           own devfun is too noisy for second differences), after Newton steps. This is
#           the reference wherever glmmTMB's objective is not glmer's: AGQ, Gamma and every
#           non-canonical link (probit, cloglog): glmer's Laplace log-determinant uses the
#           expected-information PIRLS weights, glmmTMB's the observed information, so the
#           two Laplace approximations (and their optima) differ there. Skipped for the
#           slow canonical-link cases verbagg_binomial, grouseticks_poisson, contraception_int.
#  * se_exact: the reference SEs (tmb for canonical-link Laplace fits, else exact);
#           se_exact_accuracy = max relative change with another Richardson step.

source(file.path(script_dir, "round2_exactdev.R"))

sym <- function(H) (H + t(H)) / 2

rich_jac <- function(f, x, d) {
  jacobian(f, x, method = "Richardson",
           method.args = list(eps = 1e-4, d = d, zero.tol = sqrt(.Machine$double.eps / 7e-7),
                              r = 4, v = 2))
}

tmb_exact <- function(case) {
  fit <- fit_tmb_case(case)
  obj <- fit$obj
  gr <- function(p) as.vector(obj$gr(p))
  par <- fit$fit$par
  pn <- names(par)
  for (k in 1:4) {
    g <- gr(par)
    if (max(abs(g)) < 1e-9) break
    par <- par - solve(sym(rich_jac(gr, par, 1e-4)), g)
  }
  g <- gr(par)
  H <- sym(rich_jac(gr, par, 1e-4))
  H2 <- sym(rich_jac(gr, par, 1e-3))
  ib <- which(pn == "beta")
  se <- sqrt(diag(solve(H)))[ib]
  se2 <- sqrt(diag(solve(H2)))[ib]
  nll <- obj$fn(par)
  list(method = paste("glmmTMB exact gradient fit$obj$gr, numDeriv::jacobian Richardson",
                      "(d=1e-4, r=4; alt d=1e-3), Newton-polished optimum"),
       par_names = V(pn), par = V(par), fixef = V(par[ib]),
       se_exact = V(se), se_exact_alt = V(se2),
       se_vcov = V(sqrt(diag(vcov(fit)$cond))),
       loglik = -nll, minus2loglik = 2 * nll,
       loglik_glmmTMB_fit = as.numeric(logLik(fit)),
       grad_max_abs = max(abs(g)), hessian_nll = M(H))
}

glmer_record <- function(fit, control_text) {
  vc <- as.matrix(vcov(fit))
  vc_rx <- tryCatch(suppressWarnings(as.matrix(vcov(fit, use.hessian = FALSE))),
                    error = function(e) NULL)
  list(control = control_text, criterion = fit@devcomp$cmp[["dev"]],
       loglik = as.numeric(logLik(fit)),
       theta = V(getME(fit, "theta")), fixef = V(fixef(fit)),
       se = V(sqrt(diag(vc))), se_rx = if (is.null(vc_rx)) NULL else V(sqrt(diag(vc_rx))),
       varcorr = varcorr_records(fit), optimizer_messages = msgs_of(fit))
}

hess_case <- function(case) {
  cat("hessian:", case$id, "\n")
  t0 <- Sys.time()
  f_def <- fit_glmer_case(case, GCTRL_DEFAULT)
  f_tight <- fit_glmer_case(case, GCTRL_TIGHT)
  canonical <- (case$family == "binomial" && case$link == "logit") ||
    (case$family == "poisson" && case$link == "log")
  use_tmb <- case$nAGQ == 1 && case$family != "Gamma"
  tmb <- if (use_tmb) tryCatch(tmb_exact(case), error = function(e) list(error = conditionMessage(e))) else NULL
  run_exact <- !(case$id %in% c("verbagg_binomial", "grouseticks_poisson", "contraception_int"))
  dev <- if (run_exact) tryCatch(exactdev_hessian(case, f_tight),
                                 error = function(e) list(error = conditionMessage(e))) else NULL
  ref <- if (canonical && use_tmb && is.null(tmb$error)) tmb else dev
  rel <- function(a, b) max(abs(a / b - 1))
  res <- list(
    id = case$id, dataset = case$dataset, formula = case$formula, family = case$family,
    link = case$link, nAGQ = case$nAGQ, weights = case$weights,
    in_glmer_json = is.null(case$new),
    fixef_names = V(names(fixef(f_def))),
    canonical_link = canonical,
    reference = if (identical(ref, tmb)) "tmb" else "exact",
    fixef = ref$fixef, se_exact = ref$se_exact,
    se_exact_accuracy = rel(unlist(ref$se_exact_alt), unlist(ref$se_exact)),
    se_glmer_default = V(sqrt(diag(as.matrix(vcov(f_def))))),
    se_glmmTMB_vcov = if (use_tmb) tmb$se_vcov else NULL,
    loglik = if (identical(ref, tmb)) tmb$loglik else -dev$criterion_exact / 2,
    glmer_default = glmer_record(f_def, GCTRL_DEFAULT_TEXT),
    glmer_tight = glmer_record(f_tight, GCTRL_TIGHT_TEXT),
    criterion_best = min(f_def@devcomp$cmp[["dev"]], f_tight@devcomp$cmp[["dev"]]),
    tmb = tmb, exact = dev,
    seconds = as.numeric(difftime(Sys.time(), t0, units = "secs")))
  if (use_tmb && is.null(tmb$error) && !is.null(dev) && is.null(dev$error))
    res$se_tmb_vs_exact = rel(unlist(dev$se_exact), unlist(tmb$se_exact))
  cat(sprintf("   ref=%s acc=%.1e glmer_def=%.1e tmb_vcov=%s  (%.0f s)\n", res$reference,
              res$se_exact_accuracy, rel(unlist(res$se_glmer_default), unlist(res$se_exact)),
              if (use_tmb) sprintf("%.1e", rel(unlist(tmb$se_vcov), unlist(tmb$se_exact))) else "-",
              res$seconds))
  res
}

hcases <- lapply(glmm_case_list(), function(case)
  tryCatch(hess_case(case), error = function(e) list(id = case$id, error = conditionMessage(e))))

write_json_file(c(header("tests/reference/make_reference_round2.R hessian"),
                  list(note = paste(
                    "se_exact: fixed-effect SEs from an exact Hessian of the Laplace (AGQ)",
                    "deviance at the optimum (see 'reference': tmb = glmmTMB AD gradient +",
                    "Richardson; exact = glmer's deviance with converged PIRLS + Richardson,",
                    "used for AGQ, Gamma and non-canonical links where glmmTMB's Laplace",
                    "approximation is not glmer's); tmb.se_exact is glmmTMB's own exact SE.",
                    "se_exact_accuracy = max relative change with another Richardson step.",
                    "criterion_best = min(glmer_default, glmer_tight criterion): compare",
                    "optima to the better of the two. hessian_nll is w.r.t. par in par_names",
                    "(glmmTMB: beta then theta = log-SDs / correlation parameters);",
                    "exact.hessian_half_deviance is w.r.t. (lme4 theta, beta)."),
                    cases = hcases)),
                file.path(out_dir, "glmm_hessian.json"))
