"""The kernels' C functions for nutpie (bayes/_native.py) give the kernels' values bit for bit,
reject failing points, and sample exactly what the Python-callback route samples (issue 10)."""

import numpy as np
import pandas as pd
import pytest

import bayesmixed as bm
from bayesmixed.bayes import _joint_kernels
from bayesmixed.bayes import collapsed as C
from bayesmixed.bayes import joint as J
from bayesmixed.bayes._collapsed_one import small_kernel
from bayesmixed.bayes._native import NativeDensity, nutpie_model

nutpie = pytest.importorskip("nutpie")


def _data(seed=0, n=80):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"g": rng.integers(0, 7, n).astype(str), "h": rng.integers(0, 4, n).astype(str),
                      "x": rng.uniform(-1, 1, n), "size": rng.integers(1, 9, n)})
    d["y"] = rng.poisson(np.exp(1 + 0.3 * d["x"]))
    d["k"] = rng.binomial(d["size"], 0.4)
    d["z"] = 2 + d["x"] + rng.normal(size=n)
    d["p"] = rng.gamma(2.0, np.exp(0.5 + 0.2 * d["x"]) / 2.0)
    return d


def _collapsed(formula, data, **kw):
    m = bm.Model(formula, data, **kw)
    cd = C.prepare(m.design, m.priors)
    kernel, rest = small_kernel(cd)
    return cd, kernel, (*rest, np.zeros(0))


@pytest.mark.parametrize("formula,name", [("z ~ x + (x | g)", "one"), ("z ~ x + (1 | g)", "one"),
                                          ("z ~ x + (x || g)", "small"), ("z ~ x + (1 | g) + (x | h)", "small")])
def test_collapsed_c_function_equals_the_kernel(formula, name):
    d = _data()
    w = np.random.default_rng(1).integers(1, 4, len(d)).astype(float)
    cd, kernel, args = _collapsed(formula, d, weights=w, offset=0.1 * d["x"].to_numpy())
    assert (kernel is C.logp_grad_one) == (name == "one")
    dens = NativeDensity(name, kernel, args, C.initial_point(cd, 0))
    for seed in range(3):
        x = C.initial_point(cd, seed + 10)
        lp, g = dens(x)
        ref, gref = C.collapsed_logp_and_grad(cd, x)
        assert lp == ref
        np.testing.assert_array_equal(g, gref)


@pytest.mark.parametrize("formula,family,link", [
    ("cbind(k, size - k) ~ x + (x | g)", "binomial", "logit"),
    ("y ~ x + (1 | g) + (x || h)", "poisson", "log"),
    ("y ~ x + (1 | g)", "negativebinomial", "log"),
    ("p ~ x + (x | g)", "gamma", "log")])
def test_joint_c_function_equals_the_kernel(formula, family, link):
    m = bm.Model(formula, _data(), family=family, link=link)
    jd = J.prepare_joint(m.design, m.priors)
    dens = NativeDensity("joint", _joint_kernels.joint_logp_grad, _joint_kernels.kernel_args(tuple(jd.args)),
                         J.initial_point(jd, 0))
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = J.initial_point(jd, 0) + rng.normal(size=jd.ndim) * 0.1
        lp, g = dens(x)
        ref, gref = J.joint_logp_and_grad(jd, x)
        assert lp == ref
        np.testing.assert_array_equal(g, gref)


@pytest.mark.parametrize("shift,error", [((-800, 0), ZeroDivisionError), ((0, 800), np.linalg.LinAlgError),
                                         ((800, 0), None)])
def test_a_failing_point_is_rejected_not_fatal(shift, error):
    """A raising kernel (sigma 0, a singular factor) or a non-finite value: -inf, zero gradient."""
    cd, kernel, args = _collapsed("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    x = C.initial_point(cd, 0)
    x[-1] += shift[0]
    x[0] += shift[1]
    if error is not None:
        with pytest.raises(error):
            C.collapsed_logp_and_grad(cd, x)
    dens = NativeDensity("one", kernel, args, C.initial_point(cd, 0))
    lp, g = dens(x)
    assert lp == -np.inf and not g.any()
    assert dens(C.initial_point(cd, 0))[0] > -np.inf          # and the next point is evaluated as usual


def test_unexpected_arguments_fall_back_to_python_callbacks():
    cd, kernel, args = _collapsed("z ~ x + (x | g)", _data())
    assert nutpie_model("small", kernel, args, C.initial_point(cd, 0), list(cd.names), "hyper", None) is None
    bad = (*args[:-1], np.zeros(0, dtype=np.float32))
    assert nutpie_model("one", kernel, bad, C.initial_point(cd, 0), list(cd.names), "hyper", None) is None
    with pytest.raises(TypeError, match="'one' layout"):
        NativeDensity("one", kernel, bad, C.initial_point(cd, 0))


def _draws(compiled, seed=5):
    tr = nutpie.sample(compiled, draws=60, tune=60, chains=2, seed=seed, progress_bar=False)
    return np.asarray(tr.posterior["theta_u"]), int(tr.sample_stats["diverging"].sum())


def test_native_and_callback_routes_draw_the_same():
    cd, _, _ = _collapsed("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    native = C.compile_nutpie(cd)
    assert type(native).__name__ == "CompiledPyMCModel"         # the default is the C function
    a, _ = _draws(native)
    b, _ = _draws(C.compile_nutpie(cd, native=False))
    np.testing.assert_array_equal(a, b)
    m = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", bm.load_dataset("cbpp"),
                 family="binomial")
    jd = J.prepare_joint(m.design, m.priors)
    a, _ = _draws(J.compile_nutpie(jd))
    b, _ = _draws(J.compile_nutpie(jd, native=False))
    np.testing.assert_array_equal(a, b)


def test_rejected_points_become_divergences():
    """Identity-link Poisson from a start near the support's edge: failures are divergences,
    the run completes (nutpie treats the C function's failure code as recoverable)."""
    m = bm.Model("y ~ x + (1 | g)", _data(), family="poisson", link="identity")
    jd = J.prepare_joint(m.design, m.priors)
    x, div = _draws(J.compile_nutpie(jd))
    assert np.isfinite(x).all() and x.shape[:2] == (2, 60)


def test_pieces_compiled_by_a_second_process_with_empty_caches(tmp_path):
    """With an empty numba cache and an idle core, two pieces of the one-term kernel are compiled
    by a second process; the kernel then gives the same value as in this process."""
    import os
    import subprocess
    import sys

    cd, kernel, args = _collapsed("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    x = C.initial_point(cd, 4)
    ref = C.collapsed_logp_and_grad(cd, x)
    code = f"""
import numpy as np, bayesmixed as bm
import bayesmixed.bayes._addrcall as A
from bayesmixed.bayes import collapsed as C
started = []
A._idle_core = lambda: True
spawn = A.compile_elsewhere
A.compile_elsewhere = lambda *a: started.append(a) or spawn(*a)
m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
cd = C.prepare(m.design, m.priors)
lp, g = C.collapsed_logp_and_grad(cd, np.array({list(x)!r}))
print("+".join(started[0][1]), repr(lp), repr(list(g)))
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    pieces, lp, g = out.stdout.strip().split(" ", 2)
    assert pieces == "schur+grad"
    assert float(lp) == ref[0]
    np.testing.assert_array_equal(np.array(eval(g)), ref[1])
    assert any("_schur_one" in p.name for p in tmp_path.rglob("*.nbi"))


def test_numpy_scalars_are_passed_as_the_c_function_passes_them():
    """A float32 or int32 scalar argument would compile the kernel for that type while the C
    function passes double/int64: scalars are converted first, so both give the kernel's value."""
    cd, kernel, args = _collapsed("z ~ x + (x | g)", _data())
    x = C.initial_point(cd, 2)
    ref = kernel(x, *args)
    odd = tuple(np.float32(a) if isinstance(a, float) and a == int(a) else a for a in args)
    odd = tuple(np.int32(a) if isinstance(a, int) else a for a in odd)
    lp, g = NativeDensity("one", kernel, odd, x)(x)
    assert lp == ref[0]
    np.testing.assert_array_equal(g, ref[1])


def test_addresses_are_never_pickled():
    import pickle

    cd, kernel, args = _collapsed("z ~ x + (x | g)", _data())
    dens = NativeDensity("one", kernel, args, C.initial_point(cd, 0))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(dens)


def test_a_strided_array_is_a_typing_error_not_a_wrong_value():
    """The pieces are compiled for C-contiguous arrays and called through their addresses: a
    caller passing a strided array must not compile (it would index without strides)."""
    from numba.core.errors import TypingError

    cd, kernel, args = _collapsed("z ~ x + (x | g)", _data())
    vals = np.asfortranarray(args[13])                 # the level rows' values, 2-d
    assert not vals.flags.c_contiguous
    with pytest.raises(TypingError, match="declared"):
        kernel(C.initial_point(cd, 0), *args[:13], vals, *args[14:])
