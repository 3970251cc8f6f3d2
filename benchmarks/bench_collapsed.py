"""Collapsed NUTS (b and beta integrated out) against bambi, end to end in fresh processes.

Every (library, model) pair runs in its own fresh Python process with the on-disk caches
warm (numba's cache of the collapsed kernels; run once before measuring). For bayesmixed
the same process then fits a second, different model ("second model": nothing may
compile). Reported per fit:

- ``wall_s``: from building the model to the posterior with b and beta drawn and the
  pointwise log-likelihood (as benchmarks/bench_bayes.py: ``import bayesmixed`` not
  counted, the sampler's own imports counted); ``process_s``: from process start
  (every import counted); ``cpu_s``: process CPU time over ``wall_s`` (robust to load
  from other processes on a shared machine);
- min ESS-bulk over every user-visible scalar (beta, sd, correlations, sigma), ESS per
  second of ``wall_s``, divergences.

bambi's sleepstudy model has no correlation (bambi cannot model it); ours does.

Measured 2026-11-30 09:40-09:47 UTC on the shared 2-core machine under heavy load from other
work (load average 9.8 before, 11.1 after: wall times are 4-6x the CPU times, so the
per-CPU-second ratio is the fairer one); 4 chains x 1000 draws after 1000 tuning,
OPENBLAS_NUM_THREADS=1 for both libraries:

==========  ===================================  ===================================  ==============
model       collapsed wall / CPU / min ESS       bambi wall / CPU / min ESS           ratio ESS/s
==========  ===================================  ===================================  ==============
sleepstudy  19.2 s / 2.8 s / 3418, 0 div.        49.0 s / 11.7 s / 1000, 0 div.       8.7 (wall), 14.6 (CPU)
radon       21.5 s / 4.1 s / 1072, 0 div.        107.2 s / 16.8 s / 709, 0 div.       7.5 (wall), 6.3 (CPU)
==========  ===================================  ===================================  ==============

Again at 10:17-10:24 UTC with the final kernels (load average 7.3 before, 6.8 after):

==========  ===================================  ===================================  ==============
model       collapsed wall / CPU / min ESS       bambi wall / CPU / min ESS           ratio ESS/s
==========  ===================================  ===================================  ==============
sleepstudy  6.2 s / 2.5 s / 3215, 0 div.         19.4 s / 8.3 s / 1074, 0 div.        9.3 (wall), 10.1 (CPU)
radon       8.7 s / 4.3 s / 1078, 0 div.         16.5 s / 9.3 s / 659, 0 div.         3.1 (wall), 3.5 (CPU)
==========  ===================================  ===================================  ==============

(second model in the same process: radon after sleepstudy 7.1 s wall / 2.8 s CPU, sleepstudy
after radon 2.2 s wall / 1.1 s CPU.) First run, second, different model in the same process:
radon after sleepstudy 15.8 s wall / 3.0 s CPU;
sleepstudy after radon 5.0 s wall / 1.0 s CPU. Per gradient (CPU): sleepstudy 10 us, radon
30 us (numba kernel; nutpie's Python callback adds 25-50 us), InstEval about 100 ms (dense
Schur complement of size 1159: LAPACK potrf + potri dominate with the sparse rank updates).

InstEval (``y ~ service + (1|s) + (1|d) + (1|dept:service)``, 73 421 rows, q = 4128, dense part
1159), 2 chains x 100 draws after 150 tuning, same load (8-13): 1165 s wall, 223 s CPU, 0
divergences, depth 2 (3.6 gradients per draw), ESS-bulk 203-372 from 200 draws, R-hat <= 1.01;
drawing b and beta for the 200 draws took 45 s wall. Projected for 4 chains x 200 draws after
150 tuning (ESS-bulk >= 400 each) on an idle 2-core machine: about 650 s CPU, 6-7 min wall
with two chains at a time (the kernels and LAPACK release the GIL) -- not measured here.

Run: ``.venv/bin/python benchmarks/bench_collapsed.py [--draws 1000] [--models sleepstudy radon]
[--libraries collapsed bambi] [--insteval]``. ``--insteval`` adds the full InstEval posterior
(``y ~ service + (1|s) + (1|d) + (1|dept:service)``) with ``--insteval-draws`` per chain.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_bayes import _min_ess, radon_like, run_bambi  # noqa: E402

MODELS = {
    "sleepstudy": "Reaction ~ Days + (Days | Subject)",
    "radon": "log_radon ~ floor + log_uranium + (1 + floor | county)",
    "radon1": "log_radon ~ floor + (1 | county)",
    "InstEval": "y ~ service + (1|s) + (1|d) + (1|dept:service)",
}


def _data(name):
    import bayesmixed as bm

    if name == "sleepstudy":
        return bm.load_dataset("sleepstudy")
    if name == "InstEval":
        return bm.load_dataset("InstEval")
    return radon_like()


def run_collapsed(name, draws, tune, seed, chains=4):
    import bayesmixed as bm
    from bayesmixed.bayes.collapsed import sample_collapsed

    data = _data(name)
    t0, c0 = time.perf_counter(), time.process_time()
    m = bm.Model(MODELS[name], data)
    timings: dict = {}
    idata = sample_collapsed(m, draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False,
                             timings=timings)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    post = idata["posterior"]
    names = [v for v in post.data_vars if not v.startswith("b_")]
    stats = idata["sample_stats"]
    import arviz as az

    rhat = az.rhat(post.to_dataset()[names])
    return {"wall_s": wall, "cpu_s": cpu, "process_s": time.perf_counter() - _T_START,
            "sampling_s": timings["sampling"], "effects_s": timings["effects"],
            "min_ess_bulk": _min_ess(post, names), "divergences": int(stats["diverging"].sum()),
            "max_rhat": float(max(float(rhat[v].max()) for v in rhat.data_vars)),
            "gradients": int(stats["n_steps"].sum())}


def _child(lib, names, draws, tune, seed):
    for i, name in enumerate(names):
        if lib == "bambi":
            c0 = time.process_time()
            r = run_bambi(MODELS[name], _data(name), "gaussian", draws, tune, seed)
            r.update(cpu_s=time.process_time() - c0, process_s=time.perf_counter() - _T_START)
        else:
            r = run_collapsed(name, draws, tune, seed)
        r.update(model=name, library=lib, phase="fresh process" if i == 0 else "second model")
        print("RESULT " + json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--models", nargs="+", default=["sleepstudy", "radon"])
    ap.add_argument("--libraries", nargs="+", default=["collapsed", "bambi"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--insteval", action="store_true")
    ap.add_argument("--insteval-draws", type=int, default=300)
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        _child(args.one[0], args.one[1:], args.draws, args.tune, args.seed)
        return
    print(f"load average before: {os.getloadavg()}", flush=True)
    jobs = []
    for i, name in enumerate(args.models):
        for lib in args.libraries:
            second = [args.models[(i + 1) % len(args.models)]] if lib == "collapsed" and len(args.models) > 1 else []
            jobs.append((lib, [name, *second], args.draws, args.tune))
    if args.insteval:
        jobs.append(("collapsed", ["InstEval"], args.insteval_draws, args.insteval_draws))
    rows = []
    for lib, names, draws, tune in jobs:
        out = subprocess.run([sys.executable, __file__, "--one", lib, *names, "--draws", str(draws),
                              "--tune", str(tune), "--seed", str(args.seed)],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("RESULT "):
                r = json.loads(line[len("RESULT "):])
                r["ess_per_s"] = r["min_ess_bulk"] / r["wall_s"]
                rows.append(r)
                print(f"{r['model']:10s} {r['library']:9s} {r['phase']:13s} wall {r['wall_s']:6.1f} s  process "
                      f"{r['process_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s  min ESS-bulk {r['min_ess_bulk']:6.0f}  "
                      f"ESS/s {r['ess_per_s']:7.1f}  divergences {r['divergences']}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    for name in args.models:
        ours = [r for r in rows if r["model"] == name and r["library"] == "collapsed" and r["phase"] == "fresh process"]
        theirs = [r for r in rows if r["model"] == name and r["library"] == "bambi"]
        if ours and theirs:
            o, t = ours[0], theirs[0]
            print(f"{name}: collapsed / bambi ESS/s = {o['ess_per_s'] / t['ess_per_s']:.2f} (wall), "
                  f"{(o['min_ess_bulk'] / o['cpu_s']) / (t['min_ess_bulk'] / t['cpu_s']):.2f} (per CPU second)")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
