# Export the data sets shipped in bayesmixed/datasets/data/ from R.
#
# Run from the repository root:   Rscript tests/reference/export_datasets.R [name ...]
# (with names, only those data sets are written)
#
# For each data set it writes
#   bayesmixed/datasets/data/<name>.csv.gz   gzip CSV, R's column names, factors as labels,
#                                            NA as an empty field, doubles written so that
#                                            they read back bit-identical
#   bayesmixed/datasets/data/<name>.json     sidecar: name, title, doc, source, rows,
#                                            columns, categorical (levels in R's order),
#                                            ordered (ordered-factor columns)
# radon comes from rstanarm (its data only: rstanarm itself is not attached), Salamanders
# from glmmTMB.

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(mlmRev)
  library(jsonlite)
})

only <- commandArgs(trailingOnly = TRUE)

out_dir <- file.path("bayesmixed", "datasets", "data")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

# Shortest decimal string that reads back to exactly the same double.
num_to_chr <- function(x) {
  s <- formatC(x, digits = 15, format = "g")
  bad <- !is.na(x) & as.numeric(s) != x
  s[bad] <- formatC(x[bad], digits = 17, format = "g")
  s <- trimws(s)
  s[is.na(x)] <- ""
  s
}

csv_field <- function(s) {
  # quote only when needed (commas, quotes, line breaks, leading/trailing spaces)
  need <- grepl("[\",\n\r]|^ | $", s)
  s[need] <- paste0("\"", gsub("\"", "\"\"", s[need]), "\"")
  s
}

export <- function(df, name, source, title, doc) {
  if (length(only) && !(name %in% only)) return(invisible(NULL))
  df <- as.data.frame(df)
  # drop groupedData / other attributes: keep plain columns only
  cols <- lapply(names(df), function(nm) {
    x <- df[[nm]]
    if (is.factor(x)) {
      s <- as.character(x)
      s[is.na(s)] <- ""
      csv_field(s)
    } else if (is.logical(x)) {
      s <- ifelse(x, "TRUE", "FALSE"); s[is.na(s)] <- ""; s
    } else if (is.integer(x)) {
      s <- as.character(x); s[is.na(s)] <- ""; s
    } else if (is.numeric(x)) {
      num_to_chr(as.numeric(x))
    } else {
      s <- as.character(x); s[is.na(s)] <- ""; csv_field(s)
    }
  })
  lines <- c(paste(csv_field(names(df)), collapse = ","),
             do.call(paste, c(cols, sep = ",")))
  con <- gzfile(file.path(out_dir, paste0(name, ".csv.gz")), "wb", compression = 9)
  writeLines(lines, con, sep = "\n")
  close(con)

  categorical <- list()
  ordered_cols <- character(0)
  for (nm in names(df)) {
    x <- df[[nm]]
    if (is.factor(x)) {
      categorical[[nm]] <- levels(x)
      if (is.ordered(x)) ordered_cols <- c(ordered_cols, nm)
    }
  }
  dtypes <- vapply(df, function(x) {
    if (is.factor(x)) "category" else if (is.logical(x)) "bool"
    else if (is.integer(x)) "int" else if (is.numeric(x)) "float" else "str"
  }, character(1))
  side <- list(
    name = name,
    title = title,
    doc = paste(doc, collapse = "\n"),
    source = source,
    rows = nrow(df),
    columns = names(df),
    dtypes = as.list(dtypes),
    categorical = if (length(categorical)) categorical else structure(list(), names = character(0)),
    ordered = I(ordered_cols)
  )
  writeLines(toJSON(side, auto_unbox = TRUE, pretty = TRUE, null = "null"),
             file.path(out_dir, paste0(name, ".json")))
  cat(sprintf("%-14s %6d rows  %2d cols  (%s)\n", name, nrow(df), ncol(df), source))
}

# ---------------------------------------------------------------- lme4
export(sleepstudy, "sleepstudy", "lme4::sleepstudy",
  "Reaction times in a sleep deprivation study",
  c("Average daily reaction time of 18 subjects restricted to 3 hours of sleep per night",
    "(Belenky et al. 2003), 180 rows. Days 0-1 were training, day 2 baseline; deprivation",
    "began after day 2.",
    "Columns: Reaction - mean reaction time (ms); Days - days of sleep deprivation (0-9);",
    "Subject - subject id (factor, 18 levels)."))

export(Dyestuff, "Dyestuff", "lme4::Dyestuff",
  "Yield of dyestuff by batch",
  c("Yield of dyestuff (Naphthalene Black 12B) from 5 preparations made from each of 6",
    "batches of an intermediate product (Davies & Goldsmith 1972), 30 rows.",
    "Columns: Batch - batch of the intermediate (factor A-F); Yield - yield in grams of",
    "standard colour."))

export(Dyestuff2, "Dyestuff2", "lme4::Dyestuff2",
  "Simulated dyestuff yields with small batch variance",
  c("Constructed data with the layout of Dyestuff (Box & Tiao 1973) in which the",
    "between-batch mean square is below the within-batch one; a REML fit is singular",
    "(zero batch variance). 30 rows.",
    "Columns: Batch - batch (factor A-F); Yield - simulated yield."))

export(Penicillin, "Penicillin", "lme4::Penicillin",
  "Variation in penicillin testing",
  c("Six penicillin samples each assayed on 24 agar plates by the B. subtilis plate method",
    "(Davies & Goldsmith 1972); a fully crossed design, 144 rows.",
    "Columns: diameter - diameter (mm) of the zone of growth inhibition; plate - assay",
    "plate (factor a-x); sample - penicillin sample (factor A-F)."))

export(Pastes, "Pastes", "lme4::Pastes",
  "Paste strength by batch and cask",
  c("Strength of a chemical paste: 10 delivery batches, 3 casks sampled per batch, two",
    "assays per cask (Davies & Goldsmith 1972); casks are nested in batches. 60 rows.",
    "Columns: strength - paste strength; batch - delivery batch (factor A-J); cask - cask",
    "within batch (factor a-c, labels reused across batches); sample - batch:cask",
    "combination (factor, 30 levels A:a to J:c)."))

export(cake, "cake", "lme4::cake",
  "Breakage angle of chocolate cakes",
  c("Split-plot experiment: cakes from 3 recipes (whole units, 15 replicates each) baked",
    "at 6 temperatures (sub-units) (Cook 1938; Cochran & Cox 1957). 270 rows.",
    "Columns: replicate - replicate number within recipe (factor 1-15); recipe - factor",
    "A, B, C; temperature - baking temperature as an ORDERED factor 175<...<225 (R uses",
    "polynomial contrasts for it); angle - angle at which the cake broke; temp - baking",
    "temperature in degrees F as a number."))

export(InstEval, "InstEval", "lme4::InstEval",
  "Lecture evaluations by students at ETH Zurich",
  c("Anonymised ratings of lectures by students at ETH Zurich, 73421 rows; a medium-sized",
    "partially crossed design.",
    "Columns: s - student (factor, 2972 levels); d - lecturer (factor, 1128 levels);",
    "studage - student's semester number (ordered factor 2<4<6<8); lectage - how many",
    "semesters back the lecture was (ordered factor 1<...<6); service - 1 if the lecture",
    "was held for another department than the lecturer's own (factor 0/1); dept - coded",
    "department of the lecture (factor, 14 levels); y - rating from 1 (poor) to 5 (very good)."))

export(cbpp, "cbpp", "lme4::cbpp",
  "Contagious bovine pleuropneumonia incidence",
  c("Serological incidence of contagious bovine pleuropneumonia in 15 zebu cattle herds",
    "in Ethiopia, followed over up to 4 quarterly periods (Lesnoff et al. 2004). 56 rows.",
    "Columns: herd - herd id (factor 1-15); incidence - number of new serological cases in",
    "the period; size - herd size at the start of the period; period - factor 1-4.",
    "Usual model: cbind(incidence, size - incidence) ~ period + (1 | herd), binomial."))

export(grouseticks, "grouseticks", "lme4::grouseticks",
  "Ticks on red grouse chicks",
  c("Number of ticks counted on the heads of red grouse chicks (Elston et al. 2001), 403",
    "rows, one per chick.",
    "Columns: INDEX - chick (factor, observation level); TICKS - tick count; BROOD - brood",
    "(factor, 118 levels); HEIGHT - altitude above sea level (m); YEAR - year minus 1900",
    "(factor 95, 96, 97); LOCATION - location code (factor, 63 levels); cHEIGHT - HEIGHT",
    "centred at its mean."))

export(VerbAgg, "VerbAgg", "lme4::VerbAgg",
  "Verbal aggression item responses",
  c("Responses of 316 subjects to 24 items of a verbal aggression questionnaire (De Boeck",
    "& Wilson 2004), 7584 rows.",
    "Columns: Anger - trait anger score (STAXI); Gender - factor F/M; item - item (factor,",
    "24 levels); resp - response, ordered factor no<perhaps<yes; id - subject (factor);",
    "btype - behaviour type (curse, scold, shout); situ - situation (other, self);",
    "mode - behaviour mode (want, do: note this level order); r2 - dichotomised response",
    "N/Y (perhaps and yes -> Y)."))

# ---------------------------------------------------------------- nlme
export(Machines, "Machines", "nlme::Machines",
  "Productivity scores for machines and workers",
  c("Productivity score of 6 workers, each using 3 brands of machine 3 times (Milliken &",
    "Johnson 1992). 54 rows.",
    "Columns: Worker - worker (ORDERED factor in nlme, ordered by mean score: 6<2<4<1<3<5);",
    "Machine - machine brand (factor A, B, C); score - overall productivity score."))

export(Orthodont, "Orthodont", "nlme::Orthodont",
  "Growth curve data on an orthodontic measurement",
  c("Distance (mm) from the pituitary to the pterygomaxillary fissure measured every two",
    "years from age 8 to 14 on 27 children, 16 boys and 11 girls (Potthoff & Roy 1964).",
    "108 rows.",
    "Columns: distance - the distance in mm; age - age in years; Subject - child (ORDERED",
    "factor in nlme, ordered by mean distance); Sex - factor Male/Female."))

export(Oats, "Oats", "nlme::Oats",
  "Split-plot experiment on varieties of oats",
  c("Yield of oats in a split-plot field trial (Yates 1935): 6 blocks, 3 varieties on whole",
    "plots, 4 nitrogen concentrations on sub-plots. 72 rows.",
    "Columns: Block - block (ORDERED factor in nlme, I to VI ordered by mean yield);",
    "Variety - Golden Rain, Marvellous, Victory; nitro - nitrogen (cwt/acre: 0, 0.2, 0.4,",
    "0.6); yield - yield (1/4 lbs per sub-plot)."))

# ---------------------------------------------------------------- mlmRev
export(Contraception, "Contraception", "mlmRev::Contraception",
  "Contraceptive use in Bangladesh",
  c("Subsample of the 1988 Bangladesh Fertility Survey: contraceptive use of 1934 women",
    "in 60 districts (Huq & Cleland 1990). 1934 rows.",
    "Columns: woman - woman id (factor); district - district (factor, 60 levels); use -",
    "contraceptive use at survey time (factor N/Y); livch - number of living children",
    "(factor 0, 1, 2, 3+); age - age in years, centred at the mean; urban - urban",
    "residence (factor N/Y)."))

export(Exam, "Exam", "mlmRev::Exam",
  "Exam scores from inner London",
  c("GCSE exam scores of 4059 students in 65 inner-London schools (Goldstein et al. 1993).",
    "4059 rows.",
    "Columns: school - school (factor); normexam - normalised exam score; schgend - school",
    "gender (mixed, boys, girls); schavg - school average of intake score; vr - student's",
    "verbal reasoning band at intake (bottom 25%, mid 50%, top 25%); intake - band of",
    "London Reading Test intake score; standLRT - standardised LRT score; sex - F/M;",
    "type - school type (Mxd, Sngl); student - student id within school (factor)."))

# ---------------------------------------------------------------- small example
wvxyz <- data.frame(
  v = c(6, 10, 6, 13, 19, 12, 11, 17, 18, 12),
  w = c(366, 383, 332, 331, 311, 352, 356, 351, 399, 357),
  x = c(8, 1, 4, 10, 8, 10, 3, 1, 1, 2),
  y = c(97, 56, 97, 68, 94, 66, 81, 76, 86, 69),
  z = c(188, 184, 181, 194, 190, 180, 192, 184, 192, 191)
)
export(wvxyz, "wvxyz", "bayesmixed (ten-row tutorial example)",
  "Ten-row toy example for random intercepts",
  c("Ten observations of five numeric variables from a web tutorial on linear mixed",
    "models, used there as x ~ y + z with a random intercept for w (lmer(x ~ y + z +",
    "(1 | w))) and in nlme as lme(x ~ y + z, random = ~1 | w/v). Every w value is",
    "distinct, so each group has a single observation.",
    "Columns: v, w, x, y, z - all numeric."))

# ---------------------------------------------------------------- rstanarm
radon_env <- new.env()
data("radon", package = "rstanarm", envir = radon_env)
export(radon_env$radon, "radon", "rstanarm::radon",
  "Radon levels in Minnesota homes",
  c("Radon measurements in 919 houses in 85 Minnesota counties (EPA radon survey) as",
    "prepared by Gelman & Hill (2007), Data Analysis Using Regression and",
    "Multilevel/Hierarchical Models, ch. 12; copied from the R package rstanarm (radon).",
    "Columns: floor - floor of the measurement, 0 = basement, 1 = first floor (integer);",
    "county - county name (factor, 85 levels); log_radon - log radon level (log pCi/L);",
    "log_uranium - log soil uranium level (ppm) of the county, a county-level predictor.",
    "Usual model: log_radon ~ floor + (1 | county), or + log_uranium."))

# ---------------------------------------------------------------- glmmTMB
export(glmmTMB::Salamanders, "Salamanders", "glmmTMB::Salamanders",
  "Salamander counts in Appalachian streams",
  c("Repeated counts of salamanders of 7 species/life stages at 23 stream sites, some",
    "affected by mountaintop-removal coal mining (Price et al. 2016), 644 rows.",
    "Columns: site - site (ORDERED factor in glmmTMB); mined - factor yes/no; cover,",
    "DOP (days since precipitation), Wtemp (water temperature), DOY (day of year) -",
    "scaled covariates; sample - repeated sample number (1-4); spp - species/life stage",
    "(factor GP, PR, DM, EC-A, EC-L, DES-L, DF); count - number of salamanders observed.",
    "lme4 example: glmer.nb(count ~ spp + mined + (1 | site))."))
