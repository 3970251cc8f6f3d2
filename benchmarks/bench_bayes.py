"""bayesmixed vs bambi, NUTS end to end: empty caches, warm caches, a second model (issue 10).

Data and models (4 chains x ``--draws`` after ``--tune``, nutpie on both sides, bambi with
``inference_method="nutpie"``; default priors of each library):

- ``sleepstudy``: ``Reaction ~ Days + (Days | Subject)``. bambi cannot model the
  correlation of a random intercept and slope: its model is ``(Days || Subject)``;
  ours has the correlation (and its ESS counts).
- ``radon``: the real Minnesota radon data (``bm.load_dataset("radon")``: 919 houses,
  85 counties), ``log_radon ~ floor + (1 | county)``.
- ``radon2`` (optional): ``log_radon ~ floor + log_uranium + (1 + floor | county)``.
- ``cbpp``: ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial
  (bambi: ``p(incidence, size)``). Not Gaussian: bayesmixed samples the joint PyMC model.

Scenarios, every (library, model) in its own fresh Python process:

- (a) ``empty``: fresh, empty cache directories for numba (``NUMBA_CACHE_DIR``; the
  package's ``cache=True`` kernels and nutpie/PyTensor's numba code honour it) and
  PyTensor (``PYTENSOR_FLAGS=compiledir=...``): the first fit after installing;
- (b) ``warm``: the default cache directories, warmed by an untimed run first: the first
  fit in a new notebook kernel;
- (c) ``second``: bayesmixed only, in the process of (b), a second, different model
  (sleepstudy -> radon -> cbpp -> sleepstudy): a new model in a running kernel.

Reported per fit: ``wall_s`` from building the model to the posterior (b and beta drawn,
pointwise log-likelihood and idata assembled; ``import bayesmixed`` not counted, the
sampler's own imports counted), ``process_s`` from process start (all imports counted),
``cpu_s`` the process CPU time over ``wall_s`` (robust to other load on a shared machine),
the minimum ESS-bulk over every user-visible scalar (fixed effects, SDs, correlations,
sigma; bambi: common terms, group sds, sigma), ESS-bulk per wall second, divergences.
The load average is printed at the start and the end.

``--insteval`` runs the InstEval full posterior instead
(``y ~ service + (1|s) + (1|d) + (1|dept:service)``, 73 421 rows, 4 chains x
``--insteval-draws`` after ``--insteval-tune`` tuning steps) and reports wall and CPU
time (and their ratio: about 2 when both cores run a chain), min ESS-bulk and max R-hat
over the fixed effects, SDs and sigma, and the leapfrog steps (gradients) per kept draw.

Measured numbers: benchmarks/README.md.

Run: ``.venv/bin/python benchmarks/bench_bayes.py [--draws 1000] [--tune 1000]
[--models sleepstudy radon cbpp] [--scenarios empty warm] [--libraries bayesmixed bambi]``
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian"),
    "radon": ("log_radon ~ floor + (1 | county)", "radon", "gaussian"),
    "radon2": ("log_radon ~ floor + log_uranium + (1 + floor | county)", "radon", "gaussian"),
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial"),
    "InstEval": ("y ~ service + (1|s) + (1|d) + (1|dept:service)", "InstEval", "gaussian"),
}


def _min(table) -> float:
    return float(min(np.nanmin(np.asarray(table[v])) for v in table.data_vars))


def _max(table) -> float:
    return float(max(np.nanmax(np.asarray(table[v])) for v in table.data_vars))


def _scalars(post, lib: str):
    """The user-visible scalars: no random effects, no non-centred offsets, no correlation diagonal."""
    if lib == "bambi":
        return [v for v in post.data_vars if ("|" not in v or v.endswith("_sigma"))
                and not v.endswith("_offset") and not v.endswith("_mean")]
    return [v for v in post.data_vars if not v.startswith(("b_", "z_", "corr_", "chol_"))]


def fit_once(lib: str, name: str, draws: int, tune: int, seed: int) -> dict:
    """One fit of ``MODELS[name]`` by ``lib``: timings, min ESS-bulk, max R-hat, divergences."""
    import bayesmixed as bm

    formula, dname, family = MODELS[name]
    data = bm.load_dataset(dname)
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if lib == "bambi":
            from bayesmixed.bayes import to_bambi

            bmodel = to_bambi(bm.Model(formula, data, family=family), allow_uncorrelated=True)
            idata = bmodel.fit(draws=draws, tune=tune, chains=4, random_seed=seed, inference_method="nutpie",
                               progressbar=False)
            timings = {}
        else:
            fit = bm.Model(formula, data, family=family).fit(method="nuts", draws=draws, tune=tune, chains=4,
                                                             random_seed=seed, progressbar=False)
            idata, timings = fit.idata, dict(getattr(fit, "timings", {}) or {})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    import arviz as az

    post = idata["posterior"]
    ds = (post.to_dataset() if hasattr(post, "to_dataset") else post)[_scalars(post, lib)]
    stats = idata["sample_stats"]
    return {"model": name, "library": lib, "wall_s": wall, "cpu_s": cpu,
            "process_s": time.perf_counter() - _T_START, "min_ess_bulk": _min(az.ess(ds)),
            "max_rhat": _max(az.rhat(ds)), "divergences": int(np.asarray(stats["diverging"]).sum()),
            "steps_per_draw": float(np.asarray(stats["n_steps"]).mean()) if "n_steps" in stats else None,
            "timings": {k: round(float(v), 3) for k, v in timings.items() if isinstance(v, (int, float))}}


def _child(lib: str, names: list[str], draws: int, tune: int, seed: int) -> None:
    for i, name in enumerate(names):
        r = fit_once(lib, name, draws, tune, seed)
        r["second"] = i > 0
        print("RESULT " + json.dumps(r), flush=True)


def _run(lib, names, draws, tune, seed, env=None) -> list[dict]:
    cmd = [sys.executable, __file__, "--child", lib, *names, "--draws", str(draws), "--tune", str(tune),
           "--seed", str(seed)]
    env = {**os.environ, "PYTHONPATH": ROOT, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{lib} {names} failed:\n{out.stderr[-3000:]}")
    return [json.loads(line[7:]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]


def _print(scenario: str, r: dict) -> None:
    r["ess_per_s"] = r["min_ess_bulk"] / r["wall_s"]
    print(f"{scenario:6s} {r['model']:10s} {r['library']:10s} wall {r['wall_s']:6.1f} s  process "
          f"{r['process_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s  min ESS-bulk {r['min_ess_bulk']:6.0f}  "
          f"ESS/s {r['ess_per_s']:7.1f}  R-hat {r['max_rhat']:.4f}  div {r['divergences']}  "
          f"{r['timings'] or ''}", flush=True)
    if r["model"] == "InstEval":
        print(f"       CPU/wall {r['cpu_s'] / r['wall_s']:.2f}  leapfrog steps per draw {r['steps_per_draw']:.2f}",
              flush=True)


def benchmark(models, libraries, scenarios, draws, tune, seed) -> list[dict]:
    """Every scenario x model x library in fresh processes; rows as printed."""
    rows = []
    nxt = {m: models[(i + 1) % len(models)] for i, m in enumerate(models)}
    for scenario in scenarios:
        if scenario == "warm":          # untimed: fill the default on-disk caches
            for name in models:
                for lib in libraries:
                    _run(lib, [name], 20, 20, seed)
        for name in models:
            for lib in libraries:
                with tempfile.TemporaryDirectory(prefix="bench_bayes_") as tmp:
                    env = None
                    if scenario == "empty":
                        env = {"NUMBA_CACHE_DIR": os.path.join(tmp, "numba"),
                               "PYTENSOR_FLAGS": f"compiledir={os.path.join(tmp, 'pytensor')}"}
                    names = [name, nxt[name]] if lib == "bayesmixed" and scenario == "warm" and len(models) > 1 \
                        else [name]
                    for r in _run(lib, names, draws, tune, seed, env):
                        r["scenario"] = "second" if r.pop("second") else scenario
                        _print(r["scenario"], r)
                        rows.append(r)
    return rows


def ratios(rows) -> None:
    """bayesmixed / bambi: ESS per second (wall and per CPU second) and wall time."""
    def get(s, m, lib):
        return next((r for r in rows if r["scenario"] == s and r["model"] == m and r["library"] == lib), None)
    for s in ("empty", "warm"):
        for m in dict.fromkeys(r["model"] for r in rows):
            o, t = get(s, m, "bayesmixed"), get(s, m, "bambi")
            if o and t:
                print(f"{s:6s} {m:10s} bayesmixed/bambi: ESS/s {o['ess_per_s'] / t['ess_per_s']:5.2f} (wall), "
                      f"{(o['min_ess_bulk'] / o['cpu_s']) / (t['min_ess_bulk'] / t['cpu_s']):5.2f} (CPU); "
                      f"wall {o['wall_s'] / t['wall_s']:.2f}, process {o['process_s'] / t['process_s']:.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--models", nargs="+", default=["sleepstudy", "radon", "cbpp"])
    ap.add_argument("--libraries", nargs="+", default=["bayesmixed", "bambi"])
    ap.add_argument("--scenarios", nargs="+", default=["empty", "warm"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--insteval", action="store_true")
    ap.add_argument("--insteval-draws", type=int, default=250)
    ap.add_argument("--insteval-tune", type=int, default=100)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child[0], args.child[1:], args.draws, args.tune, args.seed)
        return
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  load average at start: {os.getloadavg()}",
          flush=True)
    if args.insteval:
        for r in _run("bayesmixed", ["InstEval"], args.insteval_draws, args.insteval_tune, args.seed):
            r["scenario"] = "warm"
            _print("warm", r)
    else:
        ratios(benchmark(args.models, args.libraries, args.scenarios, args.draws, args.tune, args.seed))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
