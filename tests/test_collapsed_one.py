"""The one-term collapsed kernel (``_collapsed_one``) equals the general small kernel.

Every single-term model: the same log density (rel 1e-12), gradient (rel 1e-9) and
conditional draws of the spherical effects (1e-10), for scalar and correlated
terms, weights, offsets, no intercept and every positive prior family.
"""

from __future__ import annotations

import numpy as np
import pytest

import bayesmixed as bm
from bayesmixed.bayes import _collapsed_kernels as K
from bayesmixed.bayes import _collapsed_one as O
from bayesmixed.bayes import collapsed as C
from tests.test_collapsed import _random_x, _sleep, _tiny_crossed

_FAMILIES = [("HalfNormal", {"sigma": 2}), ("HalfStudentT", {"nu": 4, "sigma": 2}), ("HalfCauchy", {"beta": 2}),
             ("HalfFlat", {}), ("Exponential", {"lam": 2}), ("Gamma", {"alpha": 2, "beta": 1}),
             ("InverseGamma", {"alpha": 3, "beta": 2}), ("LogNormal", {"mu": 0, "sigma": 1}),
             ("Uniform", {"lower": 0, "upper": 5})]
_WO = {"weights": "w", "offset": "off"}

CASES = {
    "correlated": ("Reaction ~ Days + (Days | Subject)", _sleep, {}, {}),
    "scalar": ("Reaction ~ Days + (1 | Subject)", _sleep, {}, {}),
    "k=3, weights, offset, lkj": (
        "y ~ x + (1 + x + x2 | g)", _tiny_crossed, _WO,
        {"sd_g[Intercept]": _FAMILIES[1], "sd_g[x]": _FAMILIES[5], "sd_g[x2]": _FAMILIES[7],
         "sigma": _FAMILIES[2], "lkj_eta": 1.5, "x": ("Normal", {"mu": 0.3, "sigma": 3})}),
    "no intercept, k=2": ("y ~ 0 + x + (x | h)", _tiny_crossed, {},
                          {"sd_h": _FAMILIES[6], "sigma": _FAMILIES[0]}),
    "scalar, weights, uncentred": ("y ~ x + x2 + (1 | g)", _tiny_crossed, {"weights": "w"},
                                   {"sd_g": _FAMILIES[8], "sigma": _FAMILIES[4]}),
}
for _i, (_fam, _args) in enumerate(_FAMILIES):              # every family on the sd and on sigma
    CASES[f"scalar, offset, {_fam}"] = ("y ~ x + (1 | g)", _tiny_crossed, {"offset": "off"},
                                        {"sd_g": (_fam, _args), "sigma": _FAMILIES[(_i + 3) % len(_FAMILIES)]})


def _prepared(name):
    formula, data, kw, pri = CASES[name]
    m = bm.Model(formula, data(), **kw)
    priors = m.priors if not pri else bm.bayes.resolve_priors(m.design, pri)
    return C.prepare(m.design, priors)


def _general(cd, x, z):
    return K.logp_grad_small(x, *cd.args_hyper, cd.s0, cd.A11, cd.ptr, cd.rows, cd.vals, cd.A22, cd.n,
                             cd.sumlogw, z)


@pytest.mark.parametrize("name", list(CASES))
def test_one_term_kernel_equals_general_kernel(name):
    cd = _prepared(name)
    kernel, rest = O.small_kernel(cd)
    assert kernel is O.logp_grad_one and len(cd.args_hyper[0]) == 1
    rng = np.random.default_rng(7)
    for _ in range(4):
        x = _random_x(cd, rng)
        lp, g = kernel(x, *rest, np.zeros(0))
        lp0, g0 = _general(cd, x, np.zeros(0))
        assert lp == pytest.approx(lp0, rel=1e-12)
        np.testing.assert_allclose(g, g0, rtol=1e-9, atol=1e-9 * np.abs(g0).max())
        assert (lp, g.tolist()) == tuple(C.collapsed_logp_and_grad(cd, x)[:1]) + (g.tolist(),)
        z = rng.normal(size=cd.n_effects)
        s, out = kernel(x, *rest, z)
        s0, out0 = _general(cd, x, z)
        assert s == s0
        np.testing.assert_allclose(out, out0, rtol=1e-10, atol=1e-10 * np.abs(out0).max())


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days || Subject)",
                                     "Reaction ~ (1 | Subject) + (0 + Days | Subject)"])
def test_multi_term_models_keep_the_general_kernel(formula):
    m = bm.Model(formula, _sleep())
    assert O.small_kernel(C.prepare(m.design, m.priors))[0] is K.logp_grad_small
