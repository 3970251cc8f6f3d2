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
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.np.arrayobj import make_array, populate_array

from bayesmixed.bayes._addrcall import flagging_caller, int64_at

__all__ = ["NativeDensity", "nutpie_model", "SPECS"]

LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                       types.CPointer(types.double), types.voidptr)
EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                         types.voidptr)
_RESULT = types.Tuple((types.float64, types.Array(types.float64, 1, "C")))
_X = types.Array(types.float64, 1, "C")
SLOT = 4                                     # int64 slots per argument: value or pointer, then up to 3 dims
_FAILED = 4                                  # nutpie: a recoverable failure (the point is rejected)

# the kernels' arguments after x: i/d int64/float64 scalar, f<k>/i<k> a C-contiguous k-d float64/int64 array
SPECS = {
    "one": "i1 i i i1 f2 f1 f1 i f1 f1 f3 i1 i1 f2 f2 d d f1".split(),
    "small": "i1 i1 i1 i1 i1 i1 i1 f2 f1 f1 i f1 f1 f3 i1 i1 f2 f2 d d f1".split(),
    "joint": "i1 i i i f1 f1 f1 f1 f1 f2 f1 f1 f2 i1 i2 i1 i1 i1 i i1 i1 i1 i1 f2 f1 f1 i f1".split(),
}
_TYPES = {"i": types.int64, "d": types.float64}
_TYPES.update({f"{c}{nd}": types.Array(dt, nd, "C") for c, dt in (("f", types.float64), ("i", types.int64))
               for nd in (1, 2, 3)})


def _argument(context, builder, slot, code: str):
    """The LLVM value of one kernel argument from its ``user_data`` slots (arrays borrowed, no meminfo)."""
    if code == "i":
        return slot(0)
    if code == "d":
        return builder.load(builder.inttoptr(slot(0), ir.DoubleType().as_pointer()))
    aryty = _TYPES[code]
    dt = context.get_data_type(aryty.dtype)
    itemsize = context.get_abi_sizeof(dt)
    shape = [slot(1 + d) for d in range(aryty.ndim)]
    strides = [context.get_constant(types.intp, itemsize)]
    for d in range(aryty.ndim - 1, 0, -1):                 # C order
        strides.insert(0, builder.mul(strides[0], shape[d]))
    ary = make_array(aryty)(context, builder)
    populate_array(ary, data=builder.inttoptr(slot(0), dt.as_pointer()), shape=cgutils.pack_array(builder, shape),
                   strides=cgutils.pack_array(builder, strides), itemsize=context.get_constant(types.intp, itemsize),
                   meminfo=None)
    return ary._getvalue()


def _caller(name: str):
    """An intrinsic ``call(address, (user_data, x)) -> (ok, (value, gradient))``: the kernel at
    ``address`` called with ``x`` and the arguments ``SPECS[name]`` describes, read from
    ``user_data``; ``ok`` is false when the kernel raised. Everything is generated here, in
    one step: the C function types nothing per argument."""
    codes = SPECS[name]

    def build(context, builder, value):
        user_data, x = cgutils.unpack_tuple(builder, value, 2)
        base = builder.bitcast(user_data, ir.IntType(64).as_pointer())
        return [x] + [_argument(context, builder, lambda d, o=1 + SLOT * j: int64_at(builder, base, o + d), code)
                      for j, code in enumerate(codes)]
    return flagging_caller(name, _RESULT, (_X, *(_TYPES[c] for c in codes)), build_args=build)


_call_one, _call_small, _call_joint = (_caller(n) for n in ("one", "small", "joint"))


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
    ok, res = _call_one(numba.carray(ud_, (1,), np.int64)[0], (ud_, numba.carray(x_, (dim,))))
    return _store(dim, res[0], res[1], g_, lp_) if ok else _FAILED      # not ok: the kernel raised, reject the point


def _small(dim, x_, g_, lp_, ud_):  # pragma: no cover - compiled
    ok, res = _call_small(numba.carray(ud_, (1,), np.int64)[0], (ud_, numba.carray(x_, (dim,))))
    return _store(dim, res[0], res[1], g_, lp_) if ok else _FAILED


def _joint(dim, x_, g_, lp_, ud_):  # pragma: no cover - compiled
    ok, res = _call_joint(numba.carray(ud_, (1,), np.int64)[0], (ud_, numba.carray(x_, (dim,))))
    return _store(dim, res[0], res[1], g_, lp_) if ok else _FAILED


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
        # scalars as the C function passes them (int64, double), whatever numpy type they came as
        args = tuple(int(a) if c == "i" else float(a) if c == "d" else a for a, c in zip(args, spec))
        x0 = np.ascontiguousarray(x0, dtype=np.float64)
        kernel(x0, *args)
        cres = kernel.overloads[tuple(numba.typeof(a) for a in (x0, *args))]   # argument types as checked above
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

    def __reduce__(self):
        raise TypeError("a NativeDensity holds this process's memory addresses and cannot be pickled or "
                        "copied; build a new one from the kernel and its arguments")

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
    fit that layout, the kernel does not compile or evaluate at ``x0``, or this nutpie cannot
    take a C function (the caller uses ``from_pyfunc``, which reports any real error)."""
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
    except Exception:  # noqa: BLE001 - anything this route cannot do falls back to the Python callbacks
        return None
