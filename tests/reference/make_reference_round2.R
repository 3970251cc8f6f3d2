# Round-2 reference numbers (issues 12 and 13) from lme4 / glmmTMB / lmerTest / pbkrtest.
#
# Run from the repository root:
#   Rscript tests/reference/make_reference_round2.R              # all three files
#   Rscript tests/reference/make_reference_round2.R hessian      # one part: extra|hessian|inference
# Writes (layout: README.md)
#   tests/reference/lme4_extra.json     Machines (f || g) and diag() models, GLMM summary lines
#   tests/reference/glmm_hessian.json   exact GLMM fixed-effect SEs + lme4 tight-tolerance fits
#   tests/reference/inference.json      profile CIs, Kenward-Roger, PBmodcomp, bootMer
# The existing lmer.json / glmer.json (make_reference.R) are not touched.

args <- commandArgs(trailingOnly = TRUE)
parts <- if (length(args)) args else c("extra", "hessian", "inference")
script_dir <- file.path("tests", "reference")
source(file.path(script_dir, "round2_common.R"))
t_start <- Sys.time()

if ("extra" %in% parts) source(file.path(script_dir, "round2_extra.R"))
if ("hessian" %in% parts) source(file.path(script_dir, "round2_hessian.R"))
if ("inference" %in% parts) source(file.path(script_dir, "round2_inference.R"))

cat("total time", format(Sys.time() - t_start), "\n")
