"""Argument checks that run before native code: a wrong call raises, never crashes."""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError
from ..ir.stmt import Store, walk_stmt


def written_buffers(func) -> set:
    """The parameter buffers that ``func`` stores to (its outputs)."""
    return {s.buffer for s in walk_stmt(func.body) if isinstance(s, Store)}


def _describe(b):
    return f"{b.name}: {b.dtype}[{', '.join(map(str, b.shape))}]"


def check_arguments(name, params, arrays, written=()):
    """Raise ArgumentError unless ``arrays`` match ``params`` in count, type, shape, dtype,
    C-contiguity, and (for written parameters) writeability."""
    if len(arrays) != len(params):
        sig = ", ".join(_describe(b) for b in params)
        raise ArgumentError(f"{name}() takes {len(params)} arrays ({sig}) but was called with {len(arrays)}")
    for pos, (buf, arr) in enumerate(zip(params, arrays)):
        where = f"{name}() argument {pos} ('{buf.name}')"
        if not isinstance(arr, np.ndarray):
            raise ArgumentError(f"{where} must be a numpy.ndarray of {buf.dtype}{list(buf.shape)}, "
                                f"got {type(arr).__name__}; convert it with numpy.asarray(x, dtype='{buf.dtype}')")
        if arr.dtype != np.dtype(buf.dtype):
            raise ArgumentError(f"{where} has dtype {arr.dtype}, expected {buf.dtype}; "
                                f"pass x.astype('{buf.dtype}')")
        if tuple(arr.shape) != tuple(buf.shape):
            raise ArgumentError(f"{where} has shape {tuple(arr.shape)}, expected {tuple(buf.shape)}")
        if not arr.flags.c_contiguous:
            raise ArgumentError(f"{where} is not C-contiguous (a transposed or sliced view?); "
                                "pass numpy.ascontiguousarray(x)")
        if buf in written and not arr.flags.writeable:
            raise ArgumentError(f"{where} is an output but the array is read-only; pass a writeable array")
