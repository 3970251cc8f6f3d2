"""Large crossed designs and data larger than memory (issue 13): wall time and peak memory.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_scale.py                  # every case, full sizes
    .venv/bin/python benchmarks/bench_scale.py --quick          # smaller sizes (a minute or two)
    .venv/bin/python benchmarks/bench_scale.py --cases a d      # some cases
    .venv/bin/python benchmarks/bench_scale.py --dir /tmp/bm_scale --keep   # keep the Parquet files
    .venv/bin/python benchmarks/bench_scale.py --blas-threads 1  # on a loaded machine
    .venv/bin/python benchmarks/bench_scale.py --cases d --d-size 10000000 100000 2000   # another size

Cases (Gaussian, ML, ``y ~ x + (1|g) + (1|h)`` unless said; simulated MovieLens-shaped data
written by this script, integer codes, a few ratings per user-item pair at random):

- ``a``: 1 000 000 rows, 10 000 x 1 000 levels, in memory (target <= 2 s);
- ``b``: 10 000 000 rows, 200 000 users x 5 000 items, in memory (target <= 2 min, <= 8 GB);
- ``c``: InstEval ML, ``y ~ service + (1|s) + (1|d) + (1|dept:service)`` (target <= 1.2 s);
- ``d``: 50 000 000 rows in Parquet (10 files), ``y ~ x1 + x2 + f + (1|g) + (1|h)``,
  500 000 x 2 000 levels, read through DuckDB chunk by chunk (target <= 5 min, <= 6 GB).

Each case runs in its own Python process (so its peak resident memory, ``ru_maxrss``, is
its own); what is timed is the process's first ``bm.Model(formula, data).fit(method="ml")``,
design included (not ``import bayesmixed``, timed apart; cases a and c also time a second fit),
in wall time and in CPU time of the process (on a shared machine the CPU time is the
better estimate of the wall time on a quiet one, for the single-threaded parts).
For the in-memory cases the simulated DataFrame is built before timing and counts in the
peak memory, as a user's data would. The load average is printed: on a shared machine
the numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SIZES = {   # case: (rows, levels of g, levels of h), full and --quick
    "a": ((1_000_000, 10_000, 1_000), (100_000, 1_000, 100)),
    "b": ((10_000_000, 200_000, 5_000), (1_000_000, 20_000, 500)),
    "d": ((50_000_000, 500_000, 2_000), (2_000_000, 20_000, 200)),
}
TARGETS = {"a": (2.0, None), "b": (120.0, 8.0), "c": (1.2, None), "d": (300.0, 6.0)}
FORMULAS = {
    "a": "y ~ x + (1 | g) + (1 | h)",
    "b": "y ~ x + (1 | g) + (1 | h)",
    "c": "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
    "d": "y ~ x1 + x2 + f + (1 | g) + (1 | h)",
}


def simulate(n: int, ng: int, nh: int, seed: int, *, extra: bool = False) -> pd.DataFrame:
    """MovieLens-shaped ratings: skewed user and item activity, user + item effects, noise."""
    rng = np.random.default_rng(seed)
    # activity: a few users and items rate a lot (Zipf-like weights), every level used at least once
    g = np.concatenate([np.arange(ng), rng.choice(ng, n - ng, p=_zipf(ng, rng))]).astype(np.int32)
    h = np.concatenate([rng.permutation(nh), rng.choice(nh, n - nh, p=_zipf(nh, rng))]).astype(np.int32)
    rng.shuffle(h)
    bg = rng.normal(0, 0.5, ng)
    bh = rng.normal(0, 0.3, nh)
    x = rng.normal(size=n)
    y = 3.5 + 0.2 * x + bg[g] + bh[h] + rng.normal(0, 0.9, n)
    cols = {"y": y, "x": x, "g": g, "h": h}
    if extra:
        x2 = rng.uniform(-1, 1, n)
        f = rng.integers(0, 4, n)
        y += 0.1 * x2 + np.array([0.0, 0.1, -0.1, 0.2])[f]
        cols = {"y": y, "x1": x, "x2": x2, "f": pd.Categorical.from_codes(f, ["A", "B", "C", "D"]), "g": g, "h": h}
    return pd.DataFrame(cols)


def _zipf(k: int, rng) -> np.ndarray:
    w = 1.0 / (1.0 + rng.permutation(k)) ** 0.6
    return w / w.sum()


def write_parquet(directory: Path, n: int, ng: int, nh: int, files: int = 10) -> Path:
    """Case d's data as ``files`` Parquet files, written a file at a time (never all rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = directory / f"d_{n}"
    if out.exists() and len(list(out.glob("*.parquet"))) == files:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    bg, bh = rng.normal(0, 0.5, ng), rng.normal(0, 0.3, nh)
    pg, ph = _zipf(ng, rng), _zipf(nh, rng)
    per = n // files
    for i in range(files):
        m = per if i < files - 1 else n - per * (files - 1)
        g = rng.choice(ng, m, p=pg).astype(np.int32)
        if i == 0:
            g[:ng] = np.arange(ng)                         # every level at least once
        h = rng.choice(nh, m, p=ph).astype(np.int32)
        if i == 0:
            h[:nh] = np.arange(nh)
        x1, x2, f = rng.normal(size=m), rng.uniform(-1, 1, m), rng.integers(0, 4, m)
        y = 3.5 + 0.2 * x1 + 0.1 * x2 + np.array([0.0, 0.1, -0.1, 0.2])[f] + bg[g] + bh[h] + rng.normal(0, 0.9, m)
        table = pa.table({"y": y, "x1": x1, "x2": x2,
                          "f": pa.DictionaryArray.from_arrays(f.astype(np.int32), ["A", "B", "C", "D"]),
                          "g": g, "h": h})
        pq.write_table(table, out / f"part{i:02d}.parquet", row_group_size=1_000_000)
    return out


def _cpu() -> float:
    """CPU seconds of this process (all threads): on a shared machine, closer to quiet wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_case(case: str, quick: bool, path: str | None) -> dict:
    """One case in this process: data, then the timed design + ML fit; peak memory at the end.

    The fit timed is the process's first (numba's compiled kernels come from its on-disk
    cache; ``import bayesmixed`` is timed apart, ``import_s``). Cases a and c then time a
    second fit in the same process (``second_s``, ``second_cpu_s``).
    """
    cpu_i, t_i = _cpu(), time.perf_counter()
    import bayesmixed as bm

    import_s, import_cpu_s = time.perf_counter() - t_i, _cpu() - cpu_i
    if case == "c":
        data = bm.load_dataset("InstEval")
    elif case == "d":
        data = path
    else:
        data = simulate(*SIZES[case][1 if quick else 0], seed=1)
    warnings.simplefilter("ignore")
    cpu0, t0 = _cpu(), time.perf_counter()
    model = bm.Model(FORMULAS[case], data)
    t1, cpu1 = time.perf_counter(), _cpu()
    fit = model.fit(method="ml")
    t2 = time.perf_counter()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    system = getattr(getattr(getattr(fit, "_optimum", None), "devfun", None), "system", None)
    cache = getattr(system, "__dict__", {}).get("_schur_cache")      # Schur products reused (same first theta)
    plan = cache._plans[2] if cache is not None and cache._plans else None
    cpu_s = _cpu() - cpu0
    second = {}
    if case in ("a", "c"):
        cpu3, t3 = _cpu(), time.perf_counter()
        again = bm.Model(FORMULAS[case], data).fit(method="ml")
        second = {"second_s": time.perf_counter() - t3, "second_cpu_s": _cpu() - cpu3,
                  "second_deviance": again.deviance}
    return {"case": case, "n": int(fit.nobs), "levels": fit.ngroups, "design_s": t1 - t0, "fit_s": t2 - t1,
            "total_s": t2 - t0, "cpu_s": cpu_s, "design_cpu_s": cpu1 - cpu0, "peak_gb": peak_gb, "deviance": fit.deviance,
            "import_s": import_s, "import_cpu_s": import_cpu_s, **second,
            "evals": int(getattr(fit.opt, "n_evals", -1)), "theta": fit.theta.round(4).tolist(),
            "load": os.getloadavg(), "schur_reused": getattr(cache, "hits", None),
            "plan": None if plan is None else {"dense_columns": plan.n_heavy, "classes": plan.n_classes}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--cases", nargs="*", default=["a", "b", "c", "d"], choices=["a", "b", "c", "d"])
    ap.add_argument("--dir", default=None, help="where case d's Parquet files go (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep case d's Parquet files")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="BLAS/OpenMP threads of each case's process (1 helps on a loaded machine)")
    ap.add_argument("--d-size", nargs=3, type=int, default=None, metavar=("ROWS", "G", "H"),
                    help="case d's rows and levels of g and h (instead of the full or --quick size)")
    ap.add_argument("--run-case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_case:
        print("RESULT " + json.dumps(run_case(args.run_case, args.quick, args.path)))
        return
    print("load:", os.getloadavg(), "cores:", os.cpu_count())
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="bm_scale_"))
    results = []
    for case in args.cases:
        path = None
        if case == "d":
            n, ng, nh = args.d_size or SIZES["d"][1 if args.quick else 0]
            free = shutil.disk_usage(workdir.parent if not workdir.exists() else workdir).free / 1e9
            need = n * 40 / 1e9
            if free < 2 * need:
                print(f"case d skipped: {free:.1f} GB free, {need:.1f} GB needed")
                continue
            t = time.perf_counter()
            path = str(write_parquet(workdir, n, ng, nh))
            print(f"case d: wrote {n} rows to {path} in {time.perf_counter() - t:.0f} s")
        cmd = [sys.executable, __file__, "--run-case", case, *(["--quick"] if args.quick else []),
               *(["--path", path] if path else [])]
        env = dict(os.environ)
        if args.blas_threads:
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
                env[var] = str(args.blas_threads)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            print(f"case {case} failed:\n{proc.stderr[-3000:]}")
            continue
        res = json.loads(line[0][7:])
        results.append(res)
        tgt_s, tgt_gb = TARGETS[case]
        print(f"case {case}: n={res['n']:,} levels={res['levels']} total {res['total_s']:.2f} s "
              f"(CPU {res['cpu_s']:.2f} s) "
              f"(design {res['design_s']:.2f} s, fit {res['fit_s']:.2f} s, {res['evals']} evaluations), "
              f"peak {res['peak_gb']:.2f} GB, deviance {res['deviance']:.4f}; target <= {tgt_s:g} s"
              + (f", <= {tgt_gb:g} GB" if tgt_gb else "") + ("" if not args.quick else " (full size)"),
              flush=True)
        if "second_s" in res:
            print(f"  second fit in the process {res['second_s']:.2f} s (CPU {res['second_cpu_s']:.2f} s); "
                  f"import bayesmixed {res['import_s']:.2f} s (CPU {res['import_cpu_s']:.2f} s, not counted)")
        print("load:", os.getloadavg())
    if not args.keep and not args.dir:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
