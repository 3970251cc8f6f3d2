"""Pieces shared by the benchmark scripts (not a benchmark itself: run.py runs bench_*.py)."""

from __future__ import annotations


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
