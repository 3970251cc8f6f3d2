"""bayesmixed vs glmer: Laplace / adaptive Gauss-Hermite GLMM fits on the same data, in one run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_glmm.py                 # every case, R too if present
    .venv/bin/python benchmarks/bench_glmm.py --cases verbagg_binomial cbpp_logit
    .venv/bin/python benchmarks/bench_glmm.py --profile verbagg_binomial   # cProfile one fit

What is timed, on both sides, is one fit end to end from a data frame already in memory:
``bm.Model(formula, data, family=...).fit(...)`` in Python (parsing, design, the two
optimisation stages, lme4's convergence checks with the finite-difference Hessian) and
``glmer(formula, data, family, nAGQ=...)`` (or ``glmer.nb``) in R with lme4's default
settings. Both are warm: one untimed fit first in the same process; R's timing
(``system.time`` inside one R session) excludes R's start-up and package loading. Each
case reports the best of ``reps`` runs and the median, and the criterion each side
reaches (glmer's carries its PIRLS tolerance, so ours may be lower by ~1e-6 relative).
R is skipped with a note when ``Rscript`` or lme4 is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bayesmixed as bm  # noqa: E402
from _common import parse_r_results, profile_fit, run_r_lines, warm_times  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str            # bm.load_dataset name, or "gamma_sim"
    r_data: str             # R expression giving the same data frame
    formula: str
    family: str             # bayesmixed family name
    r_family: str           # R family expression ("" for glmer.nb)
    link: str | None = None
    nAGQ: int = 1
    weights: str | None = None
    reps: int = 5
    r_reps: int = 3


CB = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
CASES = [
    Case("cbpp_logit", "cbpp", "lme4::cbpp", CB, "binomial", "binomial"),
    Case("cbpp_probit", "cbpp", "lme4::cbpp", CB, "binomial", "binomial(link='probit')", "probit"),
    Case("cbpp_cloglog", "cbpp", "lme4::cbpp", CB, "binomial", "binomial(link='cloglog')", "cloglog"),
    Case("cbpp_logit_agq25", "cbpp", "lme4::cbpp", CB, "binomial", "binomial", nAGQ=25),
    Case("cbpp_prop_weights", "cbpp", "lme4::cbpp", "incidence/size ~ period + (1 | herd)", "binomial",
         "binomial", weights="size"),
    Case("grouseticks_poisson", "grouseticks", "lme4::grouseticks",
         "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson", "poisson",
         reps=3, r_reps=2),
    Case("grouseticks_offset", "grouseticks", "lme4::grouseticks",
         "TICKS ~ YEAR + offset(log(HEIGHT/100)) + (1 | BROOD)", "poisson", "poisson"),
    Case("verbagg_binomial", "VerbAgg", "lme4::VerbAgg",
         "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial", "binomial",
         reps=3, r_reps=1),
    Case("contraception_int", "Contraception", "mlmRev::Contraception",
         "use ~ age + I(age^2) + urban + livch + (1 | district)", "binomial", "binomial"),
    Case("contraception_slope", "Contraception", "mlmRev::Contraception",
         "use ~ age + I(age^2) + urban + livch + (urban | district)", "binomial", "binomial", reps=3, r_reps=2),
    Case("gamma_log_sim", "gamma_sim", "gam_dat", "y ~ x + (1 | g)", "gamma", "Gamma(link='log')", "log"),
    Case("grouseticks_negbin", "grouseticks", "lme4::grouseticks", "TICKS ~ YEAR + (1 | LOCATION)",
         "negativebinomial", "", reps=3, r_reps=2),
]
BY_NAME = {c.name: c for c in CASES}

R_PRELUDE = r"""
suppressPackageStartupMessages({library(lme4)})
set.seed(1)
g <- factor(rep(seq_len(20), each = 10)); b <- rnorm(20, 0, 0.4); x <- rnorm(200)
mu <- exp(1 + 0.5 * x + b[as.integer(g)])
gam_dat <- data.frame(g = g, x = x, y = rgamma(200, shape = 5, rate = 5 / mu))
run <- function(name, formula, data, family, nAGQ, weights, reps) {
  times <- numeric(reps)
  fitit <- function() suppressMessages(suppressWarnings(
    if (is.null(family)) glmer.nb(as.formula(formula), data = data)
    else if (is.null(weights)) glmer(as.formula(formula), data = data, family = family, nAGQ = nAGQ)
    else glmer(as.formula(formula), data = data, family = family, nAGQ = nAGQ, weights = data[[weights]])))
  for (i in seq_len(reps)) times[i] <- system.time(fit <- fitit())[["elapsed"]]
  cat(sprintf("RESULT\t%s\t%.6f\t%.6f\t%.10f\n", name, min(times), median(times), -2 * as.numeric(logLik(fit))))
}
invisible(suppressMessages(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)))
"""


def gamma_sim() -> pd.DataFrame:
    """The R side's simulated Gamma data (tests/reference/glmer.json keeps a copy)."""
    import json

    ref = json.loads((Path(__file__).resolve().parent.parent / "tests/reference/glmer.json").read_text())
    case = next(c for c in ref["cases"] if c["id"] == "gamma_log_sim")
    data = pd.DataFrame(case["extra_data"])
    data["g"] = pd.Categorical(data["g"], categories=sorted(data["g"].unique(), key=int))
    return data


def load(case: Case) -> pd.DataFrame:
    return gamma_sim() if case.dataset == "gamma_sim" else bm.load_dataset(case.dataset)


def fit_once(case: Case, data: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bm.Model(case.formula, data, family=case.family, link=case.link, weights=case.weights)
        return model.fit(method="laplace" if case.nAGQ == 1 else "agq", nAGQ=case.nAGQ)


def time_python(case: Case, reps: int | None = None) -> tuple[float, float, float, int]:
    """(best seconds, median seconds, -2 logLik, criterion evaluations) of ``reps`` warm fits."""
    data = load(case)
    best, median, fit = warm_times(lambda: fit_once(case, data), reps or case.reps)
    return best, median, -2 * fit.loglik, fit.opt.n_evals


def time_r(cases: list[Case], reps_scale: float = 1.0) -> tuple[dict[str, tuple[float, float, float]], str]:
    """Per case (best, median, -2 logLik) from one R session; a note when R is unavailable."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {}, "Rscript not found: glmer times skipped"
    lines = [R_PRELUDE]
    for c in cases:
        reps = max(1, round(c.r_reps * reps_scale))
        fam = c.r_family or "NULL"
        w = f'"{c.weights}"' if c.weights else "NULL"
        lines.append(f'run("{c.name}", "{c.formula}", {c.r_data}, {fam}, {c.nAGQ}, {w}, {reps})')
    proc = run_r_lines(rscript, lines)
    out = parse_r_results(proc.stdout)
    note = "" if proc.returncode == 0 else f"R failed part-way (some glmer times missing): " \
                                            f"{proc.stderr.strip().splitlines()[-1:]}"
    return out, note


def profile(case: Case) -> None:
    profile_fit(case, load, fit_once, sort="tottime", lines=25, note=" (+ the Hessian's)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", choices=list(BY_NAME), help="cases to run (default: all)")
    ap.add_argument("--no-r", action="store_true", help="time bayesmixed only")
    ap.add_argument("--reps-scale", type=float, default=1.0, help="multiply every case's repetitions")
    ap.add_argument("--profile", choices=list(BY_NAME), help="cProfile one warm fit of a case and exit")
    args = ap.parse_args(argv)
    if args.profile:
        profile(BY_NAME[args.profile])
        return 0
    cases = [BY_NAME[n] for n in args.cases] if args.cases else list(CASES)
    load1 = os.getloadavg()[0]
    r_times, note = ({}, "glmer skipped (--no-r)") if args.no_r else time_r(cases, args.reps_scale)
    rows = []
    for c in cases:
        best, med, crit, nev = time_python(c, max(1, round(c.reps * args.reps_scale)))
        rb, rm, rcrit = r_times.get(c.name, (np.nan,) * 3)
        rows.append({"case": c.name, "bayesmixed_s": best, "bm_median_s": med, "glmer_s": rb,
                     "glmer_median_s": rm, "bm/glmer": best / rb, "evals": nev,
                     "crit_diff": crit - rcrit})
    table = pd.DataFrame(rows).set_index("case")
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160,
                           "display.max_columns", None):
        print(table)
    print(f"\nbest of k warm fits; 'bm/glmer' < 1 means bayesmixed is faster; crit_diff = our -2 logLik - "
          f"glmer's (negative: ours is lower); evals = criterion evaluations in the two optimisation "
          f"stages. load average at start {load1:.2f}, at end {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores")
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
