"""Native log densities for nutpie: the compiled kernels called from nutpie's threads without Python.

nutpie's ``from_pyfunc`` route calls a Python function for every gradient: 40-70 us of
interpreter work around a 10 us kernel, and the chains take turns on the GIL. nutpie
also accepts a C function ``int64 logp(dim, x*, grad*, logp*, user_data*)`` (what its
own numba backend hands it); this module gives it one for each of the package's kernels
(:func:`~bayesmixed.bayes._collapsed_one.logp_grad_one`,
:func:`~bayesmixed.bayes._collapsed_kernels.logp_grad_small`,
:func:`~bayesmixed.bayes._joint_kernels.joint_logp_grad`).

Nothing is compiled per model. The C functions are small and cached on disk with the
kernels (numba ``cfunc(cache=True)``). They do not link the kernels in (LLVM would
optimise the whole kernel again, seconds with empty caches): ``user_data`` holds the
address of the kernel's already compiled native function and, for every argument, its
value or its data pointer and shape; the C function rebuilds the arrays and calls the
kernel through that address with numba's calling convention.

:func:`nutpie_model` returns ``None`` when any of this is unavailable (another nutpie,
another numba, an argument of an unexpected type); the caller then uses ``from_pyfunc``.
The two routes give the same draws for the same seed (tested).
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["NativeDensity", "nutpie_model", "SPECS"]

LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                       types.CPointer(types.double), types.voidptr)
EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                         types.voidptr)
_RESULT = types.Tuple((types.float64, types.Array(types.float64, 1, "C")))
SLOT = 4                                     # int64 slots per argument: value or pointer, then up to 3 dims
_FAILED = 4                                  # nutpie: a recoverable failure (the point is rejected)

# the kernels' arguments after x: i/d int64/float64 scalar, f<k>/i<k> a C-contiguous k-d float64/int64 array
SPECS = {
    "one": "i i i1 f2 f1 f1 i f1 f1 f3 i1 i1 f2 f2 d d f1".split(),
    "small": "i1 i1 i1 i1 i1 i1 i1 f2 f1 f1 i f1 f1 f3 i1 i1 f2 f2 d d f1".split(),
    "joint": "i i i f1 f1 f1 f1 f1 f2 f1 f1 f2 i1 i2 i1 i1 i1 i i1 i1 i1 i1 f2 f1 f1 i f1".split(),
}


@intrinsic
def _voidptr(typingctx, address):
    """An integer address as a ``void*``."""
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(address), codegen


_CALLED = types.Tuple((types.boolean, types.float64, types.Array(types.float64, 1, "C")))


@intrinsic
def _call(typingctx, address, args):
    """Call the compiled kernel at ``address`` with the tuple ``args`` (numba's calling convention):
    ``(ok, value, gradient)``; ``ok`` is false when the kernel raised (value and gradient are
    then empty placeholders). No exception machinery in the caller: cheaper to compile."""
    argtys = tuple(args.types)

    def codegen(context, builder, sig, llargs):
        fnty = context.call_conv.get_function_type(_RESULT, argtys)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        vals = cgutils.unpack_tuple(builder, llargs[1], len(argtys))
        status, res = context.call_conv.call_function(builder, fn, _RESULT, argtys, vals)
        out = cgutils.alloca_once_value(builder, context.get_constant_null(_RESULT))
        with builder.if_then(status.is_ok, likely=True):
            builder.store(res, out)
        value, grad = cgutils.unpack_tuple(builder, builder.load(out), 2)
        return context.make_tuple(builder, _CALLED, (status.is_ok, value, grad))
    return _CALLED(address, args), codegen


@numba.njit(inline="always")
def _f1(ud, j):  # pragma: no cover - compiled
    o = 1 + 4 * j
    return numba.carray(_voidptr(ud[o]), (ud[o + 1],), np.float64)


@numba.njit(inline="always")
def _f2(ud, j):  # pragma: no cover - compiled
    o = 1 + 4 * j
    return numba.carray(_voidptr(ud[o]), (ud[o + 1], ud[o + 2]), np.float64)


@numba.njit(inline="always")
def _f3(ud, j):  # pragma: no cover - compiled
    o = 1 + 4 * j
    return numba.carray(_voidptr(ud[o]), (ud[o + 1], ud[o + 2], ud[o + 3]), np.float64)


@numba.njit(inline="always")
def _i1(ud, j):  # pragma: no cover - compiled
    o = 1 + 4 * j
    return numba.carray(_voidptr(ud[o]), (ud[o + 1],), np.int64)


@numba.njit(inline="always")
def _i2(ud, j):  # pragma: no cover - compiled
    o = 1 + 4 * j
    return numba.carray(_voidptr(ud[o]), (ud[o + 1], ud[o + 2]), np.int64)


@numba.njit(inline="always")
def _i(ud, j):  # pragma: no cover - compiled
    return ud[1 + 4 * j]


@numba.njit(inline="always")
def _d(ud, j):  # pragma: no cover - compiled
    return numba.carray(_voidptr(ud[1 + 4 * j]), (1,), np.float64)[0]


@numba.njit(inline="always")
def _store(dim, v, gr, g_, lp_):  # pragma: no cover - compiled
    """Write value and gradient for nutpie; a recoverable failure code where any is not finite."""
    if not np.isfinite(v):
        return _FAILED
    g = numba.carray(g_, (dim,))
    for i in range(dim):
        if not np.isfinite(gr[i]):
            return _FAILED
        g[i] = gr[i]
    numba.carray(lp_, (1,))[0] = v
    return 0


def _one(dim, x_, g_, lp_, ud_):  # pragma: no cover - compiled
    ud = numba.carray(ud_, (1 + 4 * 17,), np.int64)
    x = numba.carray(x_, (dim,))
    ok, v, gr = _call(ud[0], (x, _i(ud, 0), _i(ud, 1), _i1(ud, 2), _f2(ud, 3), _f1(ud, 4), _f1(ud, 5), _i(ud, 6),
                               _f1(ud, 7), _f1(ud, 8), _f3(ud, 9), _i1(ud, 10), _i1(ud, 11), _f2(ud, 12),
                               _f2(ud, 13), _d(ud, 14), _d(ud, 15), _f1(ud, 16)))
    if not ok:                      # the kernel raised (a failed factorization): reject
        return _FAILED
    return _store(dim, v, gr, g_, lp_)


def _small(dim, x_, g_, lp_, ud_):  # pragma: no cover - compiled
    ud = numba.carray(ud_, (1 + 4 * 21,), np.int64)
    x = numba.carray(x_, (dim,))
    ok, v, gr = _call(ud[0], (x, _i1(ud, 0), _i1(ud, 1), _i1(ud, 2), _i1(ud, 3), _i1(ud, 4), _i1(ud, 5),
                               _i1(ud, 6), _f2(ud, 7), _f1(ud, 8), _f1(ud, 9), _i(ud, 10), _f1(ud, 11), _f1(ud, 12),
                               _f3(ud, 13), _i1(ud, 14), _i1(ud, 15), _f2(ud, 16), _f2(ud, 17), _d(ud, 18),
                               _d(ud, 19), _f1(ud, 20)))
    if not ok:                      # the kernel raised (a failed factorization): reject
        return _FAILED
    return _store(dim, v, gr, g_, lp_)


def _joint(dim, x_, g_, lp_, ud_):  # pragma: no cover - compiled
    ud = numba.carray(ud_, (1 + 4 * 27,), np.int64)
    x = numba.carray(x_, (dim,))
    ok, v, gr = _call(ud[0], (x, _i(ud, 0), _i(ud, 1), _i(ud, 2), _f1(ud, 3), _f1(ud, 4), _f1(ud, 5), _f1(ud, 6),
                               _f1(ud, 7), _f2(ud, 8), _f1(ud, 9), _f1(ud, 10), _f2(ud, 11), _i1(ud, 12),
                               _i2(ud, 13), _i1(ud, 14), _i1(ud, 15), _i1(ud, 16), _i(ud, 17), _i1(ud, 18),
                               _i1(ud, 19), _i1(ud, 20), _i1(ud, 21), _f2(ud, 22), _f1(ud, 23), _f1(ud, 24),
                               _i(ud, 25), _f1(ud, 26)))
    if not ok:                      # the kernel raised (a failed factorization): reject
        return _FAILED
    return _store(dim, v, gr, g_, lp_)


def _expand(dim, nexp, x_, out_, ud_):  # pragma: no cover - compiled
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (nexp,))
    for i in range(dim):
        out[i] = x[i]
    return 0


_CPROTO = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_void_p)
_PYFUNCS = {"one": _one, "small": _small, "joint": _joint}
_COMPILED: dict = {}


def _cfunc(name: str):
    """The C function of ``name`` (compiled, or loaded from numba's cache, on first use)."""
    if name not in _COMPILED:
        if name == "expand":
            _COMPILED[name] = numba.cfunc(EXPAND_SIG, cache=True)(_expand)
        else:
            _COMPILED[name] = numba.cfunc(LOGP_SIG, cache=True)(_PYFUNCS[name])
    return _COMPILED[name]


def _matches(a, code: str) -> bool:
    if code == "i":
        return isinstance(a, (int, np.integer)) and not isinstance(a, bool)
    if code == "d":
        return isinstance(a, (float, np.floating))
    dtype = np.float64 if code[0] == "f" else np.int64
    return (isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == int(code[1])
            and a.flags.c_contiguous)


class NativeDensity:
    """A kernel and its arguments packed for the C functions (``user_data``), kept alive together.

    ``kernel(x0, *args)`` is called once here: it compiles or loads the kernel for these
    argument types, and checks that it returns ``(float, 1-d array)``.
    """

    def __init__(self, name: str, kernel, args: tuple, x0: np.ndarray):
        spec = SPECS[name]
        if len(args) != len(spec) or not all(_matches(a, c) for a, c in zip(args, spec)):
            raise TypeError(f"arguments do not match the {name!r} layout")
        kernel(np.ascontiguousarray(x0, dtype=np.float64), *args)
        sig = tuple(numba.typeof(a) for a in (np.ascontiguousarray(x0, dtype=np.float64), *args))
        cres = kernel.overloads[sig]
        if cres.signature.return_type != _RESULT:
            raise TypeError(f"{kernel.__name__} returns {cres.signature.return_type}")
        self.name = name
        self.keep = [kernel]
        ud = np.zeros(1 + SLOT * len(args), dtype=np.int64)
        ud[0] = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        for j, (a, code) in enumerate(zip(args, spec)):
            o = 1 + SLOT * j
            if code == "i":
                ud[o] = int(a)
                continue
            arr = np.array([a], dtype=np.float64) if code == "d" else a
            self.keep.append(arr)
            ud[o] = arr.ctypes.data
            ud[o + 1:o + 1 + arr.ndim] = arr.shape
        self.user_data = ud

    def __call__(self, x) -> tuple[float, np.ndarray]:
        """Evaluate through the C function (what nutpie calls): ``(logp, grad)``, ``-inf`` on failure."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        g, lp = np.zeros(x.shape[0]), np.zeros(1)
        fn = _CPROTO(_cfunc(self.name).address)
        rc = fn(x.shape[0], x.ctypes.data, g.ctypes.data, lp.ctypes.data, self.user_data.ctypes.data)
        return (float(lp[0]), g) if rc == 0 else (-np.inf, np.zeros(x.shape[0]))


def nutpie_model(name: str, kernel, args: tuple, x0: np.ndarray, names: list[str], dim_name: str, initial_point):
    """A nutpie model (``theta_u`` over ``dim_name`` with coordinates ``names``) whose density is
    ``kernel(x, *args)`` through the C function ``name``; ``None`` when the arguments do not
    fit that layout or this nutpie cannot take a C function (the caller uses ``from_pyfunc``)."""
    try:
        from nutpie.compile_pymc import CompiledPyMCModel

        density = NativeDensity(name, kernel, args, x0)
        ndim = len(names)
        return CompiledPyMCModel(
            _n_dim=ndim, dims={"theta_u": (dim_name,)}, _coords={dim_name: list(names)},
            _shapes={"theta_u": (ndim,)}, compiled_logp_func=_cfunc(name),
            compiled_expand_func=_cfunc("expand"), initial_point_func=initial_point,
            shared_data={"keep": density}, shared_var_keys={}, user_data=density.user_data,
            n_expanded=ndim, shape_info=(["theta_u"], [slice(0, ndim)], [(ndim,)]), logp_func=None,
            expand_func=None)
    except (ImportError, TypeError, AttributeError, KeyError):
        return None
