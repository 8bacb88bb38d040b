"""The functions extern stages call: TVM's global function registry, and C libraries.

    @loopc.register_func("my.matmul")           # TVM: @tvm.register_func("my.matmul")
    def my_matmul(a, b, c):                      # numpy views: inputs read-only, outputs writable
        np.matmul(a, b, out=c)

    loopc.load_library("./libmine.so")           # its C symbols become callable by te.call_extern

A compiled module calls a registered function through a ctypes callback per call site
(:class:`PackedCalls`, kept alive by the module); the interpreter calls it directly
(:func:`call_packed_func`). A function that raises makes the call raise ExternCallError,
chained to the function's exception.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

from ..errors import BuildError, ExternCallError, LoopcError

_REGISTRY: dict = {}
_LIBRARIES: list = []
_PROCESS: list = []         # the process's own symbols, opened on first use

#: what a compiled module calls: ``int32 site(int64 *slots)``, one 8-byte slot per argument
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
_CTYPES = {"float32": ctypes.c_float, "float64": ctypes.c_double, "int32": ctypes.c_int32,
           "int64": ctypes.c_int64, "bool": ctypes.c_bool}


def register_func(func_name, f=None, override: bool = False):
    """TVM's ``register_func``: ``register_func("name", f)``, or as a decorator
    (``@register_func("name")``, or ``@register_func`` for the function's own name). A name that
    is taken is a LoopcError unless ``override=True``."""
    if callable(func_name) and f is None:
        f, func_name = func_name, func_name.__name__
    if not isinstance(func_name, str) or not func_name:
        raise LoopcError(f"register_func: the name must be a non-empty string, got {func_name!r}")

    def register(fn):
        if not callable(fn):
            raise LoopcError(f"register_func({func_name!r}): {fn!r} is not callable")
        if func_name in _REGISTRY and not override:
            raise LoopcError(f"register_func: a function is already registered as {func_name!r}; "
                             "pass override=True to replace it")
        _REGISTRY[func_name] = fn
        return fn
    return register if f is None else register(f)


def get_global_func(name: str, allow_missing: bool = False):
    """The function registered as ``name`` (TVM's ``get_global_func``); None or a LoopcError if none is."""
    if name not in _REGISTRY and not allow_missing:
        raise LoopcError(f"no function is registered as {name!r}; register it with loopc.register_func({name!r})")
    return _REGISTRY.get(name)


def remove_global_func(name: str) -> None:
    """Forget the function registered as ``name``."""
    _REGISTRY.pop(name, None)


def require_func(name: str, where: str) -> None:
    """BuildError unless a function is registered as ``name`` (``where``: who calls it)."""
    if name not in _REGISTRY:
        raise BuildError(f"{where} calls te.call_packed({name!r}), but no function is registered under that name; "
                         f"register one first: loopc.register_func({name!r}, f) (or @loopc.register_func({name!r}))")


def load_library(path):
    """Load the shared library at ``path`` so that ``te.call_extern`` finds its C symbols, in
    compiled code and in the interpreter alike; returns its ctypes handle."""
    path = os.fspath(path)
    try:
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as err:
        raise LoopcError(f"load_library: cannot load {path!r}: {err}") from None
    import llvmlite.binding as llvm
    llvm.load_library_permanently(path)
    _LIBRARIES.append(lib)
    return lib


def symbol_address(name: str):
    """The address of C symbol ``name`` in a loaded library or this process (libc, libm), or None."""
    if not _PROCESS:
        _PROCESS.append(ctypes.CDLL(None))
    for lib in _LIBRARIES[::-1] + _PROCESS:
        try:
            return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


def require_symbol(name: str, where: str) -> int:
    address = symbol_address(name)
    if address is None:
        raise BuildError(f"{where} calls te.call_extern(..., {name!r}, ...), but no loaded library defines the C "
                         f"symbol {name!r}; load the library that does: loopc.load_library(path)")
    return address


def extern_calls(func) -> list:
    """The ExternCalls of a LoweredFunc's extern stages, in order."""
    from ..ir.stmt import Evaluate, walk_stmt
    return [s.value for s in walk_stmt(func.body) if isinstance(s, Evaluate)]


def check_calls(func, where: str) -> None:
    """BuildError when a function that ``func``'s extern stages call is not registered
    (te.call_packed) or not loaded (te.call_extern)."""
    for call in extern_calls(func):
        if call.kind == "packed":
            require_func(call.name, where)
        else:
            require_symbol(call.name, where)


# --------------------------------------------------------------------------- calling


def call_packed_func(name: str, args) -> None:
    """Call the function registered as ``name``; its exception becomes ExternCallError."""
    f = _REGISTRY.get(name)
    if f is None:
        raise ExternCallError(f"te.call_packed({name!r}): no function is registered under that name "
                              f"(any more); register it with loopc.register_func({name!r}, f)")
    try:
        f(*args)
    except Exception as err:  # noqa: BLE001 - the user's function: any error is theirs, reported as one
        raise ExternCallError(f"te.call_packed({name!r}): the registered function raised "
                              f"{type(err).__name__}: {err}") from err


def buffer_view(flat: np.ndarray, shape, writes: bool) -> np.ndarray:
    """What a registered function receives for a buffer: ``flat`` in its shape, read-only for inputs."""
    view = flat.reshape(shape)
    if not writes:
        view = view.view()
        view.flags.writeable = False
    return view


def call_extern_func(name: str, dtype: str, args) -> None:
    """Call C symbol ``name`` through ctypes (the interpreter's way); ``args`` are
    ``("buffer", ndarray)`` or ``(dtype, number)``. Integers pass as 64-bit values, like compiled code."""
    address = require_symbol(name, "the interpreted function")
    c_args, types = [], []
    for kind, value in args:
        if kind == "buffer":
            types.append(ctypes.c_void_p)
            c_args.append(value.ctypes.data)
        else:
            ctype = ctypes.c_int64 if kind in ("int32", "int64", "bool") else _CTYPES[kind]
            types.append(ctype)
            c_args.append(ctype(value.item() if isinstance(value, np.generic) else value))
    fn = ctypes.CFUNCTYPE(_CTYPES[dtype], *types)(address)
    fn(*c_args)


class PackedCalls:
    """The ctypes callbacks one compiled module calls, one per ``te.call_packed`` site; they live
    as long as the module. A callback never lets an exception into native code: it keeps it and
    returns 1, and the module raises :meth:`error` after the kernel returns."""

    def __init__(self):
        self.callbacks = []
        self.failure = None          # (function name, exception) of the last failed call

    def site(self, call) -> int:
        """The address of a callback for ``call`` (an ExternCall of kind "packed" on BufferArgs)."""
        from ..te.extern import BufferArg
        from ..te import expr as E
        name = call.name
        decoders = []
        for k, a in enumerate(call.args):
            if isinstance(a, BufferArg):
                buf = a.buffer
                nbytes = buf.size * np.dtype(buf.dtype).itemsize
                decoders.append(lambda slots, k=k, buf=buf, nbytes=nbytes, writes=a.writes: buffer_view(
                    np.frombuffer((ctypes.c_char * nbytes).from_address(slots[k]), dtype=buf.dtype), buf.shape,
                    writes))
            elif E.is_float(a.dtype):
                decoders.append(lambda slots, k=k, dt=a.dtype: np.dtype(dt).type(
                    ctypes.c_double.from_buffer_copy(ctypes.c_int64(slots[k])).value))
            else:
                decoders.append(lambda slots, k=k, dt=a.dtype: np.dtype(dt).type(slots[k]))

        def run(slots_address):
            try:
                slots = (ctypes.c_int64 * max(len(decoders), 1)).from_address(slots_address)
                call_packed_func(name, [decode(slots) for decode in decoders])
                return 0
            except BaseException as err:  # noqa: BLE001 - nothing may unwind into native code
                self.failure = (name, err)
                return 1
        callback = CALLBACK(run)
        self.callbacks.append(callback)
        return ctypes.cast(callback, ctypes.c_void_p).value

    def error(self, module_name: str) -> LoopcError:
        """The error of the last failed call (and forget it)."""
        name, err = self.failure or ("?", None)
        self.failure = None
        if isinstance(err, ExternCallError):
            out = ExternCallError(f"{module_name}(): {err}")
            out.__cause__ = err.__cause__
            return out
        out = ExternCallError(f"{module_name}(): te.call_packed({name!r}) failed: {type(err).__name__}: {err}")
        out.__cause__ = err
        return out


__all__ = ["register_func", "get_global_func", "remove_global_func", "load_library", "symbol_address",
           "call_packed_func", "call_extern_func", "buffer_view", "PackedCalls", "require_func", "require_symbol",
           "extern_calls", "check_calls"]
