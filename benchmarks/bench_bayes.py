"""bayesmixed vs bambi: NUTS on the same models in one run; ESS-bulk per second, divergences, wall time.

Models (issue 4):

- sleepstudy ``Reaction ~ Days + (Days | Subject)`` (bambi's version is uncorrelated,
  ``(Days || Subject)`` in lme4 terms: bambi has no correlated random effects);
- radon-style county model ``log_radon ~ floor + log_uranium + (1 + floor | county)``
  on *simulated* data (no radon data set ships): 85 counties, 919 houses, county
  sizes from a lognormal as in the Minnesota survey, fixed seed;
- cbpp ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial.

Both libraries sample with nutpie (bambi: ``inference_method="nutpie"``) with 4 chains x
``--draws`` after ``--tune``. ESS is the minimum bulk ESS over the parameters both
models share (fixed effects, group-level sds, residual sd), divided by wall time from
building the model to having the posterior (compilation included), and by sampling
time alone. Every (library, model) pair runs in its own fresh Python process, twice:
"cold" is the first fit in that process (numba's on-disk caches as they are, nothing
compiled in memory: a user's time to the first posterior), "warm" a second fit of the
same model, built afresh, in the same process (bayesmixed then reuses the compiled
density from its content-keyed cache; bambi recompiles part of its model). Running
both libraries in one process would favour whichever goes second: numba keeps the op
implementations the first one compiled.

Measured 2026-11-22 on the shared 2-core machine (load 1-5 from other work; 4 x 1000
draws after 1000 tuning; end-to-end ESS-bulk/s, bayesmixed / bambi):

==========  =============  =============  ====================================
model       cold           warm           bayesmixed sampling-only ESS/s
==========  =============  =============  ====================================
sleepstudy  100.6 / 101.7  1194 / 281     1410 (compile 10.4 s cold)
radon       31.3 / 46.5    295 / 93       355  (compile 14.1 s cold)
cbpp        128.3 / 102.8  3279 / 165     3349 (compile 7.1 s cold)
==========  =============  =============  ====================================

Zero divergences everywhere. A first-ever run (empty numba cache) compiles for minutes.

Run: ``.venv/bin/python benchmarks/bench_bayes.py [--draws 1000] [--models sleepstudy radon cbpp]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def radon_like(seed: int = 20240611) -> pd.DataFrame:
    """85 counties, 919 houses: log radon with a floor effect and a county-level uranium predictor."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(1, np.round(rng.lognormal(np.log(6), 1.0, size=85))).astype(int)
    sizes = np.maximum(1, np.round(sizes * 919 / sizes.sum())).astype(int)
    sizes[np.argmax(sizes)] += 919 - sizes.sum()
    county = np.repeat(np.arange(85), sizes)
    log_u = rng.normal(0, 0.35, size=85)
    a = 1.45 + 0.7 * log_u + rng.normal(0, 0.15, size=85)
    b = -0.65 + rng.normal(0, 0.25, size=85)
    floor = (rng.random(len(county)) < 0.17).astype(float)
    y = a[county] + b[county] * floor + rng.normal(0, 0.72, size=len(county))
    return pd.DataFrame({"log_radon": y, "floor": floor, "log_uranium": log_u[county],
                         "county": pd.Categorical([f"c{c:02d}" for c in county])})


def cases():
    import bayesmixed as bm

    return {
        "sleepstudy": ("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"), "gaussian"),
        "radon": ("log_radon ~ floor + log_uranium + (1 + floor | county)", radon_like(), "gaussian"),
        "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                 "binomial"),
    }


def _min_ess(posterior, names) -> float:
    import arviz as az

    ess = az.ess(posterior.to_dataset()[names] if hasattr(posterior, "to_dataset") else posterior[names])
    return float(min(np.nanmin(np.asarray(ess[v])) for v in ess.data_vars))


def run_bayesmixed(formula, data, family, draws, tune, seed):
    import bayesmixed as bm

    t0 = time.perf_counter()
    m = bm.Model(formula, data, family=family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(method="nuts", draws=draws, tune=tune, chains=4, random_seed=seed, progressbar=False)
    wall = time.perf_counter() - t0
    names = [n for n in fit.param_names if not n.startswith("cor_")]
    ess = _min_ess(fit.idata["posterior"], names)
    return {"wall_s": wall, "compile_s": fit.timings.get("compile"),
            "sampling_s": fit.timings.get("sampling"), "min_ess_bulk": ess,
            "divergences": fit.diagnostics["divergences"]}


def run_bambi(formula, data, family, draws, tune, seed):
    import bayesmixed as bm
    from bayesmixed.bayes import to_bambi

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bmodel = to_bambi(bm.Model(formula, data, family=family), allow_uncorrelated=True)
        idata = bmodel.fit(draws=draws, tune=tune, chains=4, random_seed=seed, inference_method="nutpie",
                           progressbar=False)
    wall = time.perf_counter() - t0
    post = idata["posterior"]
    names = [v for v in post.data_vars if ("|" not in v or v.endswith("_sigma")) and not v.endswith("_offset")
             and not v.endswith("_mean")]
    ess = _min_ess(post, names)
    div = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    return {"wall_s": wall, "compile_s": None, "sampling_s": None, "min_ess_bulk": ess, "divergences": div}


def _one(lib: str, name: str, draws: int, tune: int, seed: int) -> None:
    """Child process: cold then warm fit of one model with one library, one JSON line each."""
    import json

    formula, data, family = cases()[name]
    fn = run_bayesmixed if lib == "bayesmixed" else run_bambi
    for phase in ("cold", "warm"):
        r = fn(formula, data, family, draws, tune, seed)
        r.update(model=name, library=f"{lib} ({phase})")
        print("RESULT " + json.dumps(r), flush=True)


def main():
    import json
    import subprocess
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--models", nargs="+", default=["sleepstudy", "radon", "cbpp"])
    ap.add_argument("--libraries", nargs="+", default=["bambi", "bayesmixed"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("LIBRARY", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        _one(*args.one, args.draws, args.tune, args.seed)
        return
    rows = []
    for name in args.models:
        for lib in args.libraries:
            out = subprocess.run([sys.executable, __file__, "--one", lib, name, "--draws", str(args.draws),
                                  "--tune", str(args.tune), "--seed", str(args.seed)],
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                if not line.startswith("RESULT "):
                    continue
                r = json.loads(line[len("RESULT "):])
                r["ess_per_s"] = r["min_ess_bulk"] / r["wall_s"]
                r["ess_per_s_sampling"] = r["min_ess_bulk"] / r["sampling_s"] if r["sampling_s"] else np.nan
                rows.append(r)
                print(f"{name:11s} {r['library']:18s} wall {r['wall_s']:7.1f} s  compile "
                      f"{r['compile_s'] or float('nan'):6.1f} s  min ESS-bulk {r['min_ess_bulk']:7.0f}  ESS/s "
                      f"{r['ess_per_s']:7.1f}  divergences {r['divergences']}", flush=True)
    tab = pd.DataFrame(rows).set_index(["model", "library"])
    print()
    print(tab[["wall_s", "compile_s", "sampling_s", "min_ess_bulk", "ess_per_s", "ess_per_s_sampling",
               "divergences"]].round(1).to_string())
    for name in args.models:
        for phase in ("cold", "warm"):
            try:
                ours = tab.loc[(name, f"bayesmixed ({phase})"), "ess_per_s"]
                theirs = tab.loc[(name, f"bambi ({phase})"), "ess_per_s"]
            except KeyError:
                continue
            print(f"{name} ({phase}): bayesmixed / bambi end-to-end ESS/s = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
