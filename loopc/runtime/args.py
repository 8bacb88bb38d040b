"""Argument checks that run before native code: a wrong call raises, never crashes.

One implementation for every backend. ``check_arguments`` takes numpy arrays; a backend
whose kernels also take device arrays passes ``device_arg``, a function that describes such
an object (shape, dtype, c_contiguous, readonly, ptr, nbytes — see
``loopc.targets.cuda.device.DeviceArg``) or returns None for anything else.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError
from ..ir.stmt import Evaluate, Store, walk_stmt
from ..te import expr as E
from ..te.extern import BufferArg

#: the advice of each message, on each side of the bus
_HINTS = {
    "host": {"contiguous": "pass numpy.ascontiguousarray(x)",
             "readonly": "the array is read-only; pass a writeable array"},
    "device": {"contiguous": "pass a contiguous copy (x.contiguous() / cupy.ascontiguousarray(x))",
               "readonly": "the device array is read-only"},
}


def written_buffers(func) -> set:
    """The parameter buffers that ``func`` stores to (its outputs), also through an extern call."""
    out = set()
    for s in walk_stmt(func.body):
        if isinstance(s, Store):
            out.add(s.buffer)
        elif isinstance(s, Evaluate):
            out.update(a.buffer for a in E.walk(s.value) if isinstance(a, BufferArg) and a.writes)
    return out


def _describe(b):
    return f"{b.name}: {b.dtype}[{', '.join(map(str, b.shape))}]"


def check_arguments(name, params, arrays, written=(), device_arg=None, sizes=None) -> list:
    """Raise ArgumentError unless ``arrays`` match ``params`` in count, type, shape, dtype,
    C-contiguity, and (for written parameters) writeability. ``sizes`` (Var -> int, from
    ``loopc.runtime.sizes.bind_sizes``) gives symbolic shapes their values.

    Returns one ``(side, array)`` per argument: ``("host", ndarray)``, or, where ``device_arg``
    is given and accepts the object, ``("device", its description)``."""
    if len(arrays) != len(params):
        sig = ", ".join(_describe(b) for b in params)
        raise ArgumentError(f"{name}() takes {len(params)} arrays ({sig}) but was called with {len(arrays)}")
    checked = []
    shapes = getattr(sizes, "shapes", None)     # a BoundSizes' shapes: no evaluation per call
    for pos, (buf, arr) in enumerate(zip(params, arrays)):
        want = sizes if shapes is None else shapes[pos]
        where = f"{name}() argument {pos} ('{buf.name}')"
        if isinstance(arr, np.ndarray):
            _check_one(where, buf, "host", arr.dtype, arr.shape, arr.flags.c_contiguous, not arr.flags.writeable,
                       buf in written, want)
            checked.append(("host", arr))
            continue
        dev = _device(where, buf, arr, device_arg)
        _check_one(where, buf, "device", dev.dtype, dev.shape, dev.c_contiguous, dev.readonly, buf in written,
                   want)
        checked.append(("device", dev))
    return checked


def _device(where, buf, arr, device_arg):
    """The device description of ``arr``, or the ArgumentError that says what to pass instead."""
    dev = None
    if device_arg is not None:
        try:
            dev = device_arg(arr)
        except ArgumentError as err:
            raise ArgumentError(f"{where} cannot be passed to the GPU: {err}") from None
    if dev is not None:
        return dev
    if device_arg is None:
        raise ArgumentError(f"{where} must be a numpy.ndarray of {buf.dtype}{list(buf.shape)}, "
                            f"got {type(arr).__name__}; convert it with numpy.asarray(x, dtype='{buf.dtype}')")
    raise ArgumentError(
        f"{where} must be a numpy.ndarray or a CUDA device array (numba, CuPy, a PyTorch CUDA tensor) of "
        f"{buf.dtype}[{', '.join(map(str, buf.shape))}], got {type(arr).__module__}.{type(arr).__name__}; "
        f"convert it with numpy.asarray(x, dtype='{buf.dtype}') or move it to the GPU")


def _expected_shape(buf, sizes):
    """``buf``'s shape as ints (symbolic dimensions at ``sizes``, or ``sizes`` itself when it is
    that shape already), or None when a size is unknown."""
    if not buf.symbolic:
        return tuple(buf.shape)
    if isinstance(sizes, tuple):
        return sizes
    from .sizes import concrete_shape
    try:
        return concrete_shape(buf, sizes or {})
    except KeyError:
        return None


def _check_one(where, buf, side, dtype, shape, c_contiguous, readonly, is_output, sizes=None):
    if dtype != np.dtype(buf.dtype):
        raise ArgumentError(f"{where} has dtype {dtype}, expected {buf.dtype}; pass x.astype('{buf.dtype}')")
    expected = _expected_shape(buf, sizes)
    if expected is None or tuple(shape) != expected:
        text = f"({', '.join(map(str, buf.shape))})"
        if expected is not None and buf.symbolic:
            text += f" = {expected}"
        raise ArgumentError(f"{where} has shape {tuple(shape)}, expected {text}")
    if not c_contiguous:
        raise ArgumentError(f"{where} is not C-contiguous (a transposed or sliced view?); "
                            f"{_HINTS[side]['contiguous']}")
    if is_output and readonly:
        raise ArgumentError(f"{where} is an output but {_HINTS[side]['readonly']}")


def check_overlap(name, params, checked, written) -> None:
    """ArgumentError when an output shares memory with another argument on its side of the
    bus (``checked``: what :func:`check_arguments` returned)."""
    for pos, (buf, (side, arr)) in enumerate(zip(params, checked)):
        if buf not in written:
            continue
        for other_pos, (other_side, other) in enumerate(checked):
            if other_pos == pos or other_side != side:
                continue
            if side == "host":
                overlap = np.shares_memory(arr, other)
            else:
                overlap = arr.ptr < other.ptr + other.nbytes and other.ptr < arr.ptr + arr.nbytes
            if overlap:
                raise ArgumentError(
                    f"{name}() output argument {pos} ('{buf.name}') overlaps argument {other_pos} "
                    f"('{params[other_pos].name}'); compiled kernels assume outputs do not alias "
                    "inputs: pass a separate output array")
