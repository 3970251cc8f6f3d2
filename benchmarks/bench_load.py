"""Speed on a busy machine: each case timed quiet, then with busy processes on every core.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_load.py              # LMM and GLMM cases, 2 busy processes
    .venv/bin/python benchmarks/bench_load.py --quick      # skip InstEval
    .venv/bin/python benchmarks/bench_load.py --busy 3     # more busy processes

A library user does not control the load on their machine. This benchmark starts the
load itself: ``--busy`` processes (default: one per core) that spin on the CPU for as
long as the loaded half of the run lasts, then stop (each also stops by itself after
``--max-busy-seconds``). Every case is timed in this process (warm: one untimed fit
first), best of k fits, first quiet and then loaded. The goal (issue 12): no case
slower than 2.5 x its quiet time under two busy processes on two cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import pandas as pd  # noqa: E402

import bench_glmm  # noqa: E402
import bench_lmm  # noqa: E402

SPIN = "import time\nend = time.time() + {secs}\nx = 0\nwhile time.time() < end:\n    x += 1\n"

LMM = ["sleepstudy_corr_reml", "penicillin_crossed_reml", "pastes_nested_reml", "insteval_ml"]
GLMM = ["cbpp_logit", "verbagg_binomial", "contraception_slope", "grouseticks_negbin"]


def start_busy(n: int, max_seconds: float) -> list[subprocess.Popen]:
    """``n`` processes spinning on the CPU (pure Python: no BLAS threads of their own)."""
    code = SPIN.format(secs=max_seconds)
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=10)


def time_cases(names: list[str], reps_scale: float) -> dict[str, float]:
    """Best warm fit time of each case, in seconds."""
    out = {}
    for name in names:
        if name in bench_lmm.BY_NAME:
            c = bench_lmm.BY_NAME[name]
            best, _, _ = bench_lmm.time_python(c, max(1, round(c.reps * reps_scale)))
        else:
            c = bench_glmm.BY_NAME[name]
            best, _, _, _ = bench_glmm.time_python(c, max(1, round(c.reps * reps_scale)))
        out[name] = best
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy processes (default: cores)")
    ap.add_argument("--quick", action="store_true", help="skip InstEval")
    ap.add_argument("--reps-scale", type=float, default=0.5, help="multiply every case's repetitions")
    ap.add_argument("--max-busy-seconds", type=float, default=1800.0,
                    help="the busy processes stop by themselves after this long")
    args = ap.parse_args(argv)
    names = [n for n in LMM + GLMM if not (args.quick and n == "insteval_ml")]

    load0 = os.getloadavg()[0]
    quiet = time_cases(names, args.reps_scale)
    procs = start_busy(args.busy, args.max_busy_seconds)
    try:
        time.sleep(2.0)                       # let the spinners reach the run queue
        load1 = os.getloadavg()[0]
        loaded = time_cases(names, args.reps_scale)
        load2 = os.getloadavg()[0]
    finally:
        stop_busy(procs)
    table = pd.DataFrame({"quiet_s": quiet, "loaded_s": loaded})
    table["loaded/quiet"] = table["loaded_s"] / table["quiet_s"]
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160):
        print(table)
    worst = table["loaded/quiet"].max()
    print(f"\nbest of k warm fits; {args.busy} busy processes on {os.cpu_count()} cores in the loaded "
          f"half. load average: {load0:.2f} before, {load1:.2f} / {load2:.2f} during. "
          f"worst loaded/quiet {worst:.2f} (goal <= 2.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
