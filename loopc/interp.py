"""The reference interpreter: runs lowered loop IR as plain Python over numpy arrays.

Slow and simple, so that tests can check lowering apart from any code generator:

    func = loopc.lower(s, [A, B, C]); loopc.interp.run(func, a, b, c)
"""
from __future__ import annotations

import linecache

import numpy as np

from .ir.stmt import LoweredFunc
from .pysource import PySourceEmitter
from .runtime import packed


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _wrap(bits):
    """Truncate toward zero, then wrap to a two's-complement integer of ``bits`` (like C casts)."""
    half = 1 << (bits - 1)

    def cast(x):
        if not isinstance(x, (int, np.integer)):     # floats truncate first (exact for ints)
            x = np.trunc(x)
        return (int(x) + half) % (1 << bits) - half
    return cast


def _wrap_unsigned(bits):
    """Truncate toward zero, then wrap to an unsigned integer of ``bits`` (-1 -> 2**bits - 1)."""
    def cast(x):
        if not isinstance(x, (int, np.integer)):
            x = np.trunc(x)
        return int(x) % (1 << bits)
    return cast


def _shl(a, n, bits):
    """``a << n`` wrapped to ``bits`` (the caller wraps); numpy's 0 for a count outside [0, bits)."""
    n = int(n)
    return int(a) << n if 0 <= n < bits else 0


def _shr(a, n, bits):
    """``a >> n``: Python's >> is arithmetic (a signed value) and logical (an unsigned one, >= 0);
    a count outside [0, bits) gives -1 or 0, as numpy."""
    a, n = int(a), int(n)
    return a >> n if 0 <= n < bits else (-1 if a < 0 else 0)


def _popcount(a, bits):
    return bin(int(a) & ((1 << bits) - 1)).count("1")


def _abs(x):
    """abs with numpy's integer semantics (abs(INT_MIN) == INT_MIN in its dtype)."""
    if isinstance(x, np.integer):
        with np.errstate(over="ignore"):
            return np.abs(x)
    return abs(x)


def _floordiv(a, b):
    """Python's // for floats; for integers numpy's convention x // 0 == 0 (no exception)."""
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        return np.floor(a / b)
    return 0 if b == 0 else a // b


def _floormod(a, b):
    return 0 if b == 0 else a % b


_RUNTIME = {
    "_f16": np.float16, "_f32": np.float32, "_f64": np.float64, "_i32": _wrap(32), "_i64": _wrap(64),
    "_i8": _wrap(8), "_i16": _wrap(16), "_u8": _wrap_unsigned(8), "_u16": _wrap_unsigned(16),
    "_u32": _wrap_unsigned(32), "_u64": _wrap_unsigned(64), "_shl": _shl, "_shr": _shr, "_popcount": _popcount,
    "_min": np.minimum, "_max": np.maximum, "_exp": np.exp, "_log": np.log, "_sqrt": np.sqrt, "_tanh": np.tanh,
    "_sigmoid": _sigmoid, "_abs": _abs, "_floor": np.floor, "_floordiv": _floordiv, "_floormod": _floormod,
    "_exp2": np.exp2, "_log2": np.log2, "_log10": np.log10, "_ceil": np.ceil, "_trunc": np.trunc, "_round": np.rint,
    "_power": np.power, "_fmod": np.fmod,
    "_alloc": lambda n, dtype: np.zeros(n, dtype=dtype),
    "_call_packed": packed.call_packed_func, "_call_extern": packed.call_extern_func, "_view": packed.buffer_view,
}


def to_python(func: LoweredFunc):
    """Compile ``func`` to a Python function taking flat numpy arrays; returns (fn, source)."""
    packed.check_calls(func, f"{func.name}() (interpreted)")
    emitter = PySourceEmitter(reserved=_RUNTIME)
    src = emitter.function(func)
    filename = f"<loopc-interp {func.name}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    namespace = dict(_RUNTIME)
    exec(compile(src, filename, "exec"), namespace)  # noqa: S102 - our own generated source
    return namespace[emitter.name(func, func.name)], src


def run(func: LoweredFunc, *args):
    """Run ``func`` on numpy arrays (outputs written in place), like a built Module; symbolic
    sizes listed in ``lower``'s args are ints among them, in their places."""
    from .runtime.args import check_arguments, written_buffers
    from .runtime.sizes import bind_sizes, size_values, split_call
    arrays, scalars = split_call(func, args)
    sizes = bind_sizes(func, arrays, scalars)
    check_arguments(func.name, func.params, arrays, written_buffers(func), sizes=sizes)
    fn, _ = to_python(func)
    with np.errstate(all="ignore"):
        fn(*[a.reshape(-1) for a in arrays], *size_values(func, sizes))
