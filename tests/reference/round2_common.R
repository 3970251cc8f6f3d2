# Helpers shared by the round-2 reference scripts (make_reference_round2.R).
# Sourced, not run on its own.

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(lmerTest)
  library(glmmTMB)
  library(mlmRev)
  library(pbkrtest)
  library(numDeriv)
  library(jsonlite)
})

out_dir <- file.path("tests", "reference")
pkgs <- c("lme4", "Matrix", "nlme", "lmerTest", "glmmTMB", "TMB", "mlmRev", "pbkrtest",
          "numDeriv", "minqa", "nloptr", "jsonlite", "rstanarm")
versions <- c(list(R = R.version.string),
              lapply(setNames(pkgs, pkgs), function(p)
                tryCatch(as.character(packageVersion(p)), error = function(e) NULL)))

V <- function(x) if (is.null(x)) NULL else I(unname(as.vector(x)))   # always a JSON array
M <- function(m) { m <- as.matrix(m); dimnames(m) <- NULL; m }       # list of rows
NV <- function(x) as.list(x)                                         # named numbers -> object

write_json_file <- function(obj, file) {
  txt <- toJSON(obj, auto_unbox = TRUE, null = "null", na = "null", digits = I(17),
                pretty = FALSE)
  writeLines(txt, file)
  cat(sprintf("wrote %s (%.0f kB)\n", file, file.size(file) / 1024))
}

header <- function(script) list(versions = versions, script = script,
                                 generated = format(Sys.time(), tz = "UTC", usetz = TRUE))

varcorr_records <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  lapply(seq_len(nrow(vc)), function(i) list(
    grp = vc$grp[i],
    var1 = if (is.na(vc$var1[i])) NULL else vc$var1[i],
    var2 = if (is.na(vc$var2[i])) NULL else vc$var2[i],
    vcov = vc$vcov[i], sdcor = vc$sdcor[i]))
}

# glmmTMB conditional-model covariance terms: one record per term (terms sharing a
# grouping factor are named "Worker", "Worker.1", ... by VarCorr)
tmb_varcorr <- function(fit) {
  vc <- VarCorr(fit)$cond
  lapply(names(vc), function(nm) {
    m <- vc[[nm]]
    list(term = nm, columns = V(colnames(m)), sd = V(attr(m, "stddev")),
         cor = M(attr(m, "correlation")))
  })
}

msgs_of <- function(fit) {
  m <- fit@optinfo$conv$lme4$messages
  if (length(m)) V(m) else NULL
}

machines_data <- function() {
  mach <- as.data.frame(Machines)
  mach$Worker <- factor(mach$Worker, ordered = FALSE)
  mach
}

orthodont_data <- function() {
  orth <- as.data.frame(Orthodont)
  orth$Subject <- factor(orth$Subject, ordered = FALSE)
  orth
}

MACH_NOTE <- paste("Worker (an ordered factor in nlme's groupedData) converted to an",
                   "unordered factor, level order kept (6, 2, 4, 1, 3, 5)")
ORTH_NOTE <- paste("Subject (an ordered factor in nlme's groupedData) converted to an",
                   "unordered factor, level order kept")

GCTRL_DEFAULT <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
GCTRL_DEFAULT_TEXT <- "glmerControl(optimizer='bobyqa', optCtrl=list(maxfun=1e5))"
GCTRL_TIGHT <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(maxfun = 1e5))
GCTRL_TIGHT_TEXT <- "glmerControl(optimizer='bobyqa', tolPwrss=1e-12, optCtrl=list(maxfun=1e5))"

# The GLMM cases of glmer.json (same ids, data, formulas as make_reference.R), plus the
# Contraception probit model with a random slope (issue 12).
gamma_sim_data <- function() {
  set.seed(1)
  n_g <- 20; n_per <- 10
  g <- factor(rep(seq_len(n_g), each = n_per))
  b <- rnorm(n_g, 0, 0.4)
  x <- rnorm(n_g * n_per)
  mu <- exp(1 + 0.5 * x + b[as.integer(g)])
  y <- rgamma(n_g * n_per, shape = 5, rate = 5 / mu)
  data.frame(g = g, x = x, y = y)
}

glmm_case_list <- function() {
  cb_form <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
  cases <- list()
  add <- function(...) cases[[length(cases) + 1]] <<- list(...)
  for (lk in c("logit", "probit", "cloglog")) for (q in c(1, 25))
    add(id = sprintf("cbpp_%s_agq%d", lk, q), dataset = "cbpp", data = cbpp,
        formula = cb_form, family = "binomial", link = lk, nAGQ = q, weights = NULL)
  add(id = "cbpp_prop_weights", dataset = "cbpp", data = cbpp,
      formula = "incidence/size ~ period + (1 | herd)", family = "binomial", link = "logit",
      nAGQ = 1, weights = "size")
  add(id = "grouseticks_poisson", dataset = "grouseticks", data = grouseticks,
      formula = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
      family = "poisson", link = "log", nAGQ = 1, weights = NULL)
  add(id = "verbagg_binomial", dataset = "VerbAgg", data = VerbAgg,
      formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
      family = "binomial", link = "logit", nAGQ = 1, weights = NULL)
  add(id = "contraception_int", dataset = "Contraception", data = Contraception,
      formula = "use ~ age + I(age^2) + urban + livch + (1 | district)",
      family = "binomial", link = "logit", nAGQ = 1, weights = NULL)
  add(id = "contraception_urban_slope", dataset = "Contraception", data = Contraception,
      formula = "use ~ age + I(age^2) + urban + livch + (urban | district)",
      family = "binomial", link = "logit", nAGQ = 1, weights = NULL)
  add(id = "contraception_urban_slope_probit", dataset = "Contraception", data = Contraception,
      formula = "use ~ age + I(age^2) + urban + livch + (urban | district)",
      family = "binomial", link = "probit", nAGQ = 1, weights = NULL,
      new = TRUE)
  add(id = "grouseticks_poisson_offset", dataset = "grouseticks", data = grouseticks,
      formula = "TICKS ~ YEAR + offset(log(HEIGHT/100)) + (1 | BROOD)",
      family = "poisson", link = "log", nAGQ = 1, weights = NULL)
  add(id = "gamma_log_sim", dataset = NULL, data = gamma_sim_data(),
      formula = "y ~ x + (1 | g)", family = "Gamma", link = "log", nAGQ = 1, weights = NULL)
  cases
}

fit_glmer_case <- function(case, control) {
  dname <- paste0("G_", case$id)
  assign(dname, case$data, envir = globalenv())
  fam <- do.call(case$family, list(link = case$link))
  cl <- call("glmer", formula = as.formula(case$formula, env = globalenv()),
             data = as.name(dname), family = fam, nAGQ = case$nAGQ, control = control)
  if (!is.null(case$weights)) cl$weights <- as.name(case$weights)
  suppressWarnings(eval(cl, globalenv()))
}

fit_tmb_case <- function(case) {
  dname <- paste0("G_", case$id)
  assign(dname, case$data, envir = globalenv())
  fam <- do.call(case$family, list(link = case$link))
  cl <- call("glmmTMB", formula = as.formula(case$formula, env = globalenv()),
             data = as.name(dname), family = fam)
  if (!is.null(case$weights)) cl$weights <- as.name(case$weights)
  suppressWarnings(eval(cl, globalenv()))
}
