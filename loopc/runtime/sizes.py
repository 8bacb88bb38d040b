"""Symbolic sizes at call time: split a call's arguments into arrays and explicit sizes, bind
every size Var from the arrays' shapes (``loopc.lower.sizes.SizeSignature``), and check them.

    f = loopc.build(s, [A, B, C])        # A: (n, 4), B: (n + 2, 4)
    f(a, b, c)                           # n = a.shape[0]; b.shape[0] must be n + 2

A disagreement (two arrays, an explicit size and an array, a size_var below 1, or reads a
size would send outside a tensor) is an ArgumentError naming the array, the dimension and
the expected value; the kernel never runs with sizes that do not fit its arrays.
"""
from __future__ import annotations

import numbers

from ..arith.extents import evaluate
from ..errors import ArgumentError, LoweringError
from ..te.expr import SizeVar

#: each distinct set of sizes has its deferred read checks run once; at most this many are remembered
_MAX_CHECKED = 256
INT32_MAX = 2**31 - 1


def call_arity(func) -> int:
    """How many arguments a call of ``func`` takes (arrays plus explicit sizes)."""
    return len(func.params) + (0 if func.sizes is None else len(func.sizes.scalars))


def split_call(func, args):
    """(arrays, explicit size values) of a call; ArgumentError for a wrong count."""
    sig = func.sizes
    if sig is None or not sig.scalars:
        return tuple(args), ()
    if len(args) != call_arity(func):
        names = [b.name for b in func.params]
        for pos, v in sig.scalars:
            names.insert(pos, v.name)
        raise ArgumentError(f"{func.name}() takes {call_arity(func)} arguments ({', '.join(names)}) "
                            f"but was called with {len(args)}")
    positions = {pos for pos, _ in sig.scalars}
    arrays = tuple(a for n, a in enumerate(args) if n not in positions)
    scalars = tuple(args[pos] for pos, _ in sig.scalars)
    return arrays, scalars


def bind_sizes(func, arrays, scalars=()) -> dict:
    """Var -> int for every size of ``func`` in this call (empty when nothing is symbolic);
    a call with the shapes and sizes of a recent good one reuses its answer."""
    sig = func.sizes
    if sig is None:
        return {}
    for (pos, v), x in zip(sig.scalars, scalars):
        if not isinstance(x, numbers.Integral) or isinstance(x, bool):
            raise ArgumentError(f"{func.name}() argument {pos} is the size '{v.name}': pass an int, "
                                f"got {type(x).__name__}")
    key = (tuple(_shape(arrays, i) for i in range(len(arrays))), tuple(int(x) for x in scalars))
    cache = func.attrs.setdefault("bound_sizes", {})
    hit = cache.get(key)
    if hit is not None:
        return hit
    values = _bind(func, sig, arrays, scalars)
    if len(values) == len(sig.size_vars):
        values = BoundSizes(values)
        values.shapes = tuple(concrete_shape(b, values) for b in func.params)
        if len(cache) >= _MAX_CHECKED:
            cache.clear()
        cache[key] = values
    return values


class BoundSizes(dict):
    """Var -> int of one call, with ``shapes``: the shape each parameter must have."""
    shapes: tuple = ()


def _bind(func, sig, arrays, scalars) -> dict:
    """The sizes of one call, every check on them done (ArgumentError otherwise)."""
    values, origin = {}, {}
    for (pos, v), x in zip(sig.scalars, scalars):
        values[v], origin[v] = int(x), f"argument {pos}"
    for v, i, d, coef, rest in sig.steps:
        buf, shape = func.params[i], _shape(arrays, i)
        if shape is None or len(shape) != len(buf.shape):
            continue        # check_arguments names the wrong type or rank
        num = shape[d] - evaluate(rest, values)
        if num % coef:
            raise ArgumentError(f"{func.name}() argument {i} ('{buf.name}') has {shape[d]} in dimension {d}, which "
                                f"must be {buf.shape[d]}: no int value of {v.name} gives that")
        values[v], origin[v] = num // coef, f"argument {i} ('{buf.name}') dimension {d}"
    if len(values) < len(sig.size_vars):
        return values       # an argument of the wrong rank: check_arguments says which
    for v in sig.size_vars:
        lo, hi = (-2**31, INT32_MAX) if v.dtype == "int32" else (-2**63, 2**63 - 1)
        if isinstance(v, SizeVar) and values[v] < 1:
            raise ArgumentError(f"{func.name}(): the size {v.name} = {values[v]} (from {origin[v]}) must be at "
                                "least 1 (it is a te.size_var)")
        if not lo <= values[v] <= hi:
            raise ArgumentError(f"{func.name}(): the size {v.name} = {values[v]} does not fit its dtype {v.dtype}")
    for i, buf in enumerate(func.params):
        shape = _shape(arrays, i)
        if shape is None or len(shape) != len(buf.shape):
            continue
        for d, dim in enumerate(buf.shape):
            want = evaluate(dim, values)
            if not isinstance(dim, int) and shape[d] != want:
                given = ", ".join(f"{v.name} = {values[v]} from {origin[v]}" for v in sig.size_vars)
                raise ArgumentError(f"{func.name}() argument {i} ('{buf.name}') has {shape[d]} in dimension {d}, "
                                    f"expected {dim} = {want} ({given})")
        if buf.symbolic and all(v.dtype == "int32" for v in sig.size_vars) and _count(shape) > INT32_MAX:
            raise ArgumentError(f"{func.name}() argument {i} ('{buf.name}') has {_count(shape)} elements, more than "
                                "int32 index math reaches; declare the sizes with te.var(name, 'int64')")
    _check_reads(func, values)
    return values


def concrete_shape(buf, sizes) -> tuple:
    """The shape ``buf`` must have under ``sizes``."""
    return tuple(evaluate(d, sizes) for d in buf.shape) if buf.symbolic else tuple(buf.shape)


def size_values(func, sizes) -> tuple:
    """The kernel's trailing size arguments, in order."""
    return tuple(sizes[v] for v in func.size_vars)


def _shape(arrays, i):
    if i >= len(arrays):
        return None
    shape = getattr(arrays[i], "shape", None)
    return None if shape is None else tuple(int(x) for x in shape)


def _count(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _check_reads(func, values):
    """The reads that lowering could not prove inside their tensors for every size, checked
    at these sizes (once per distinct set of sizes)."""
    sig = func.sizes
    if not sig.deferred_ops:
        return
    cache = func.attrs.setdefault("checked_sizes", {})
    key = tuple(values[v] for v in sig.size_vars)
    if key in cache:
        if cache[key] is not None:
            raise ArgumentError(cache[key])
        return
    from ..lower.bounds import check_reads_in_bounds
    try:
        check_reads_in_bounds(sig.deferred_ops, sig.deferred_ranges, sizes=values)
        error = None
    except LoweringError as err:
        at = ", ".join(f"{v.name} = {values[v]}" for v in sig.size_vars)
        error = f"{func.name}() with {at}: {err}"
    if len(cache) >= _MAX_CHECKED:
        cache.clear()
    cache[key] = error
    if error is not None:
        raise ArgumentError(error)
