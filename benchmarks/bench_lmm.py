"""bayesmixed vs lme4: REML/ML fits of linear mixed models on the same data, in one run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_lmm.py                 # every case, R too if present
    .venv/bin/python benchmarks/bench_lmm.py --quick         # skip InstEval
    .venv/bin/python benchmarks/bench_lmm.py --cases sleepstudy_corr_reml dyestuff_reml
    .venv/bin/python benchmarks/bench_lmm.py --profile insteval_ml   # cProfile one fit

What is timed, on both sides, is one fit end to end from a data frame already in memory:
``bm.Model(formula, data).fit(method=...)`` in Python (formula parsing, design, optimizer,
results) and ``lmer(formula, data, REML=...)`` in R, with lme4's default optimizer
settings. Both are warm: one untimed fit first in the same process, since R's timing
(``system.time`` inside one R session) excludes R's start-up and package loading.
Each case reports the best of ``reps`` runs (the least disturbed by other work on the
machine) and the median. The criterion each side reaches is printed too, to show that
both fitted the same model. R is skipped, with a note, when ``Rscript`` or lme4 is missing.
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

import pandas as pd  # noqa: E402

import bayesmixed as bm  # noqa: E402
from _common import parse_r_results, profile_fit, run_r_lines, warm_times  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str            # bm.load_dataset name
    r_data: str             # R expression giving the same data frame
    formula: str
    reml: bool
    reps: int               # timed repetitions (small cases: many, InstEval: few)
    r_reps: int


CASES = [
    Case("sleepstudy_corr_reml", "sleepstudy", "lme4::sleepstudy",
         "Reaction ~ Days + (Days | Subject)", True, 20, 20),
    Case("dyestuff_reml", "Dyestuff", "lme4::Dyestuff", "Yield ~ 1 + (1 | Batch)", True, 20, 20),
    Case("penicillin_crossed_reml", "Penicillin", "lme4::Penicillin",
         "diameter ~ 1 + (1 | plate) + (1 | sample)", True, 20, 20),
    Case("pastes_nested_reml", "Pastes", "lme4::Pastes", "strength ~ 1 + (1 | batch/cask)", True, 20, 20),
    Case("machines_nested_reml", "Machines", "machines",
         "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", True, 20, 20),
    Case("insteval_ml", "InstEval", "lme4::InstEval",
         "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", False, 3, 1),
]
BY_NAME = {c.name: c for c in CASES}

R_PRELUDE = r"""
suppressPackageStartupMessages({library(lme4)})
machines <- as.data.frame(nlme::Machines)
# nlme's groupedData makes Worker ordered; lme4 fits (and the reference fixtures) use it unordered
machines$Worker <- factor(machines$Worker, levels = levels(machines$Worker), ordered = FALSE)
run <- function(name, formula, data, REML, reps) {
  times <- numeric(reps)
  for (i in seq_len(reps)) {
    times[i] <- system.time(fit <- suppressMessages(suppressWarnings(
      lmer(as.formula(formula), data = data, REML = REML))))[["elapsed"]]
  }
  crit <- if (REML) REMLcrit(fit) else deviance(fit)
  cat(sprintf("RESULT\t%s\t%.6f\t%.6f\t%.10f\n", name, min(times), median(times), crit))
}
# warm-up: one untimed fit, so lazy loading and first-call costs are not timed
invisible(suppressMessages(lmer(Reaction ~ Days + (Days | Subject), sleepstudy)))
"""


def load(case: Case) -> pd.DataFrame:
    data = bm.load_dataset(case.dataset)
    if case.dataset == "Machines":     # as the R side: Worker unordered, level order kept
        data = data.copy()
        data["Worker"] = data["Worker"].cat.as_unordered()
    return data


def fit_once(case: Case, data: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.Model(case.formula, data).fit(method="reml" if case.reml else "ml")


def time_python(case: Case, reps: int | None = None) -> tuple[float, float, float]:
    """(best seconds, median seconds, criterion) of ``reps`` warm fits."""
    data = load(case)
    best, median, fit = warm_times(lambda: fit_once(case, data), reps or case.reps)
    return best, median, fit.objective


def time_r(cases: list[Case], reps_scale: float = 1.0) -> tuple[dict[str, tuple[float, float, float]], str]:
    """Per case (best, median, criterion) from one R session; a note when R is unavailable."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {}, "Rscript not found: lme4 times skipped"
    lines = [R_PRELUDE]
    for c in cases:
        reps = max(1, round(c.r_reps * reps_scale))
        lines.append(f'run("{c.name}", "{c.formula}", {c.r_data}, {"TRUE" if c.reml else "FALSE"}, {reps})')
    proc = run_r_lines(rscript, lines)
    if proc.returncode != 0:
        return {}, f"R failed (lme4 times skipped): {proc.stderr.strip().splitlines()[-1:]}"
    out = parse_r_results(proc.stdout)
    return out, ""


def profile(case: Case) -> None:
    profile_fit(case, load, fit_once, sort="cumulative", lines=30, note="")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", choices=list(BY_NAME), help="cases to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="skip InstEval")
    ap.add_argument("--no-r", action="store_true", help="time bayesmixed only")
    ap.add_argument("--reps-scale", type=float, default=1.0, help="multiply every case's repetitions")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="limit NumPy/SciPy BLAS threads (threadpoolctl) for the Python side")
    ap.add_argument("--profile", choices=list(BY_NAME), help="cProfile one warm fit of a case and exit")
    args = ap.parse_args(argv)
    if args.profile:
        profile(BY_NAME[args.profile])
        return 0
    cases = [BY_NAME[n] for n in args.cases] if args.cases else list(CASES)
    if args.quick:
        cases = [c for c in cases if c.name != "insteval_ml"]

    load1 = os.getloadavg()[0]
    limits = None
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=args.blas_threads)   # stays in force for the run
    rows, note = [], "lme4 skipped (--no-r)" if args.no_r else ""
    for c in cases:
        # R and Python back to back per case, so a change in the machine's load during the
        # run hits both sides of a ratio alike
        r_times = {}
        if not args.no_r:
            r_times, note = time_r([c], args.reps_scale)
        best, med, crit = time_python(c, max(1, round(c.reps * args.reps_scale)))
        rb, rm, rcrit = r_times.get(c.name, (float("nan"),) * 3)
        rows.append({"case": c.name, "bayesmixed_s": best, "bm_median_s": med, "lme4_s": rb,
                     "lme4_median_s": rm, "bm/lme4": best / rb, "crit_diff": crit - rcrit})
    table = pd.DataFrame(rows).set_index("case")
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160,
                           "display.max_columns", None):
        print(table)
    print(f"\nbest of k warm fits; 'bm/lme4' < 1 means bayesmixed is faster; crit_diff = our "
          f"criterion - lme4's (negative: ours is lower). load average at start {load1:.2f}, "
          f"at end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if limits is not None:
        print(f"Python side with BLAS threads limited to {args.blas_threads}")
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
