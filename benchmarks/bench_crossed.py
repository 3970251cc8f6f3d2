"""Large crossed designs by ML: quiet, then with busy processes on every core.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_crossed.py                 # 1e6 rows and InstEval
    .venv/bin/python benchmarks/bench_crossed.py --rows 200000   # a smaller simulated case
    .venv/bin/python benchmarks/bench_crossed.py --blas-threads 1   # force one BLAS thread
    .venv/bin/python benchmarks/bench_crossed.py --no-load       # quiet half only

Cases (issue 13, part 1): ``y ~ x + (1|g) + (1|h)`` on simulated data with 10 000 x 1 000
levels (MovieLens-shaped: integer codes as pandas categoricals, fixed seed), and InstEval
``y ~ service + (1|s) + (1|d) + (1|dept:service)``. Each is timed end to end
(``bm.Model(...).fit(method="ml")``: design, optimizer, results), warm (one untimed fit
first), best of ``--reps``; then again with ``--busy`` spinning processes started by the
benchmark itself (issue 12, part 4: loaded <= 2.5 x quiet). The load average and the
number of criterion evaluations are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bayesmixed as bm  # noqa: E402
from bench_load import start_busy, stop_busy  # noqa: E402


def simulate(n: int, n_g: int = 10_000, n_h: int = 1_000, seed: int = 1) -> pd.DataFrame:
    """Gaussian crossed data: y = 1 + 0.5 x + b_g + c_h + e (no per-row Python)."""
    rng = np.random.default_rng(seed)
    g, h, x = rng.integers(0, n_g, n), rng.integers(0, n_h, n), rng.normal(size=n)
    y = 1 + 0.5 * x + 0.7 * rng.normal(size=n_g)[g] + 0.5 * rng.normal(size=n_h)[h] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "h": pd.Categorical(h)})


def cases(rows: int) -> list[tuple[str, str, pd.DataFrame]]:
    return [(f"crossed_{rows}_ml", "y ~ x + (1 | g) + (1 | h)", simulate(rows)),
            ("insteval_ml", "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", bm.load_dataset("InstEval"))]


def time_case(formula: str, data: pd.DataFrame, reps: int) -> tuple[float, int, float]:
    """(best seconds, criterion evaluations, ML deviance) of ``reps`` warm fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bm.Model(formula, data).fit(method="ml")
        best = np.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            fit = bm.Model(formula, data).fit(method="ml")
            best = min(best, time.perf_counter() - t0)
    return best, fit.opt.n_evals, fit.objective


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-load", action="store_true", help="quiet half only")
    ap.add_argument("--blas-threads", type=int, default=None, help="force BLAS threads (threadpoolctl)")
    args = ap.parse_args(argv)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=args.blas_threads)  # noqa: F841 - in force for the run
    rows = []
    for name, formula, data in cases(args.rows):
        load0 = os.getloadavg()[0]
        quiet, n_evals, dev = time_case(formula, data, args.reps)
        row = {"case": name, "quiet_s": quiet, "evals": n_evals, "deviance": dev, "load_quiet": load0}
        if not args.no_load:
            procs = start_busy(args.busy, 1800.0)
            try:
                time.sleep(2.0)
                row["loaded_s"], _, _ = time_case(formula, data, args.reps)
                row["load_busy"] = os.getloadavg()[0]
            finally:
                stop_busy(procs)
            row["loaded/quiet"] = row["loaded_s"] / quiet
        rows.append(row)
        print(row, flush=True)
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160):
        print(pd.DataFrame(rows).set_index("case"))
    print(f"\nbest of {args.reps} warm fits on {os.cpu_count()} cores; load average "
          f"(1 min) printed per case; BLAS threads: {args.blas_threads or 'chosen by bayesmixed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
