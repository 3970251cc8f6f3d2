"""Calling a compiled numba function through its address, from compiled code.

A numba function that calls another compiles the callee into itself: LLVM optimises the
callee's code again inside every caller (about 1.9 s for the one-term collapsed kernel
with empty caches, on top of compiling its four pieces). Calling through the callee's
address instead (numba's own calling convention, the callee compiled once on its own,
for the argument types named here) leaves the caller small. The address is a run-time
value, so the caller stays cacheable on disk; :func:`native_address` gives it.

The caller's argument types are checked against the declared ones when it compiles
(a mismatch is a typing error, never a call with the wrong layout): dtype, dimensions and
contiguity (a callee compiled for C-contiguous arrays ignores strides); mutability does
not change numba's argument layout. Process-specific: an address is valid only in the
process that took it (never pickle one).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from bayesmixed._threads import available_cores, other_runnable

__all__ = ["compile_elsewhere", "is_cached", "native_address", "piece_addresses", "propagating_caller",
           "flagging_caller"]

# run by compile_elsewhere: import the kernel module without the package's heavy __init__
# (pandas, scipy, formulaic: a second or more) and compile the named pieces into the cache
_CHILD = """
import os, sys, types
root, module = sys.argv[1], sys.argv[2]
for name, sub in (("bayesmixed", ""), ("bayesmixed.bayes", "bayes")):
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(root, sub) if sub else root]
        sys.modules[name] = pkg
import importlib
mod = importlib.import_module(module)
for piece in sys.argv[3:]:
    f, _, args = mod.PIECES[piece]
    f.compile(tuple(args))
"""
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _idle_core() -> bool:
    return available_cores() - other_runnable() >= 2


def is_cached(dispatcher) -> bool:
    """Whether numba's on-disk cache has an index for ``dispatcher`` (it was compiled before)."""
    try:
        return os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:             # another numba: say cached, so nothing is started
        return True


def compile_elsewhere(module: str, pieces) -> subprocess.Popen | None:
    """Start a Python process that compiles ``module.PIECES[p]`` for ``p`` in ``pieces`` into numba's
    cache (``None`` if it cannot start). Call ``.wait()`` before loading them."""
    exe = os.path.basename(sys.executable or "")
    if not pieces or getattr(sys, "frozen", False) or not exe.startswith("python"):
        return None                      # an embedded or frozen interpreter: not a Python to start
    try:
        return subprocess.Popen([sys.executable, "-c", _CHILD, _PACKAGE_ROOT, module, *pieces],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def native_address(dispatcher, argtypes: tuple, restype=None) -> int:
    """The address of ``dispatcher``'s native function for ``argtypes`` (compiled, or loaded from
    numba's cache, here); ``TypeError`` if it does not return ``restype``."""
    dispatcher.compile(tuple(argtypes))
    cres = dispatcher.overloads[tuple(argtypes)]
    if restype is not None and cres.signature.return_type != restype:
        raise TypeError(f"{dispatcher.__name__} returns {cres.signature.return_type}, declared {restype}")
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


_ADDRESSES: dict = {}


def piece_addresses(module: str, pieces: dict, in_child: tuple = (), caller=None, caller_args: tuple = ()
                    ) -> np.ndarray:
    """The native addresses of ``pieces`` (``{name: (dispatcher, restype, argtypes)}`` of the
    kernel module ``module``), in their order; each compiled or loaded once per process.

    With numba's cache empty for all of ``in_child`` (the first fit after installing) and a
    core idle right now (on a busy machine a second process only slows both), a second
    Python process compiles those while this one compiles the others and then ``caller``,
    the kernel that calls the pieces, for ``(x, addresses, *caller_args)`` (it needs no
    address to compile); the results come through the cache. If that process fails, this
    one compiles them as usual.
    """
    if module not in _ADDRESSES:
        child = None
        if in_child and not any(is_cached(pieces[n][0]) for n in in_child) and _idle_core():
            child = compile_elsewhere(module, in_child)
        try:
            found = {name: native_address(f, args, res) for name, (f, res, args) in pieces.items()
                     if name not in in_child}
            if caller is not None:
                caller.compile(tuple(numba.typeof(a) for a in (np.zeros(1), np.zeros(1, dtype=np.int64),
                                                               *caller_args)))
            if child is not None:
                try:
                    child.wait(timeout=600)
                except subprocess.TimeoutExpired:      # stuck: compile the pieces here instead
                    pass
        finally:
            if child is not None and child.poll() is None:    # an error or interrupt here: do not leave it
                child.kill()
                child.wait()
        found.update({n: native_address(pieces[n][0], pieces[n][2], pieces[n][1]) for n in in_child})
        _ADDRESSES[module] = np.array([found[n] for n in pieces], dtype=np.int64)
    return _ADDRESSES[module]


def _same(declared, given) -> bool:
    if isinstance(declared, types.Array) and isinstance(given, types.Array):
        return (declared.dtype == given.dtype and declared.ndim == given.ndim
                and (declared.layout != "C" or given.layout == "C"))
    return declared == given


def _check(name: str, argtypes: tuple, given: tuple) -> None:
    if len(given) != len(argtypes) or not all(_same(a, b) for a, b in zip(argtypes, given)):
        raise TypingError(f"{name}: called with {given}, declared {argtypes}")


def _emit_call(context, builder, restype, argtypes, address, vals):
    fnty = context.call_conv.get_function_type(restype, argtypes)
    fn = builder.inttoptr(address, fnty.as_pointer())
    return context.call_conv.call_function(builder, fn, restype, argtypes, vals)


def propagating_caller(name: str, restype, argtypes: tuple):
    """An intrinsic ``call(address, args_tuple) -> restype``; an exception raised in the callee
    propagates to the caller unchanged (type and message)."""
    argtypes = tuple(argtypes)

    @intrinsic
    def call(typingctx, address, args):
        _check(name, argtypes, tuple(args.types))

        def codegen(context, builder, sig, llargs):
            vals = cgutils.unpack_tuple(builder, llargs[1], len(argtypes))
            status, res = _emit_call(context, builder, restype, argtypes, llargs[0], vals)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return res
        return restype(address, args), codegen
    return call


def flagging_caller(name: str, restype, argtypes: tuple, build_args):
    """An intrinsic ``call(address, value) -> (ok, result)``, for C functions that cannot raise:
    the callee's arguments are ``build_args(context, builder, value)`` (LLVM values built from
    any ``value``, e.g. a pointer); ``ok`` is false when the callee raised (``result`` is then
    a null placeholder)."""
    argtypes = tuple(argtypes)
    result = types.Tuple((types.boolean, restype))

    @intrinsic
    def call(typingctx, address, value):
        def codegen(context, builder, sig, llargs):
            vals = build_args(context, builder, llargs[1])
            status, res = _emit_call(context, builder, restype, argtypes, llargs[0], vals)
            out = cgutils.alloca_once_value(builder, context.get_constant_null(restype))
            with builder.if_then(status.is_ok, likely=True):
                builder.store(res, out)
            return context.make_tuple(builder, result, (status.is_ok, builder.load(out)))
        return result(address, value), codegen
    return call


def int64_at(builder, base, k: int):
    """``base[k]`` of an ``int64*``."""
    return builder.load(builder.gep(base, [ir.Constant(ir.IntType(64), k)]))
