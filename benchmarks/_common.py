"""Pieces shared by the benchmark scripts (not a benchmark itself: run.py runs bench_*.py)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time


def warm_times(fit, reps: int):
    """(best seconds, median seconds, last result) of ``reps`` timed calls of ``fit()`` after an untimed one."""
    result = fit()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def run_r_lines(rscript: str, lines: list[str]) -> subprocess.CompletedProcess:
    """Run R code (a list of lines) with ``Rscript --vanilla`` from a temporary file."""
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write("\n".join(lines))
        path = fh.name
    try:
        return subprocess.run([rscript, "--vanilla", path], capture_output=True, text=True)
    finally:
        os.unlink(path)


def parse_r_results(stdout: str) -> dict[str, tuple[float, float, float]]:
    """``RESULT<TAB>name<TAB>best<TAB>median<TAB>criterion`` lines printed by the R side."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT\t"):
            _, name, best, med, crit = line.split("\t")
            out[name] = (float(best), float(med), float(crit))
    return out


def profile_fit(case, load, fit_once, *, sort: str, lines: int, note: str = "") -> None:
    """cProfile one warm fit of ``case`` (the first, untimed fit compiles and caches)."""
    import cProfile
    import pstats

    data = load(case)
    fit_once(case, data)
    prof = cProfile.Profile()
    prof.enable()
    fit = fit_once(case, data)
    prof.disable()
    print(f"{case.name}: {fit.opt.n_evals} criterion evaluations{note}")
    pstats.Stats(prof).sort_stats(sort).print_stats(lines)
